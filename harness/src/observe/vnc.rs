//! The `vnc` check: connect to the container's VNC server as a viewer would, and keep what it
//! shows as a PNG.
//!
//! Containers run without a network (`network: none`), so the server listens on the loopback of
//! the container's own network namespace. The harness reaches it from a dedicated thread that
//! joins that namespace (`setns` affects the calling thread only): no bridge, no port
//! publishing, no dependence on the host's firewall, the same for every engine (only the
//! container's host PID is needed) and inside a VM guest.
//!
//! The thread ends within its limit: every read and write of the session waits at most until
//! the session's deadline, so a server that stalls or trickles bytes cannot keep it.

use super::probe::Probe;
use super::rfb::{self, Framebuffer};
use crate::record::VncSeen;
use crate::scenario::VncCheck;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Connects to `127.0.0.1:port` inside the network namespace at `netns` (a `/proc/PID/ns/net`
/// path as the harness sees it) and captures the first full framebuffer, within `limit`.
pub async fn capture_in_netns(
    netns: &Path,
    port: u16,
    password: Option<String>,
    limit: Duration,
) -> Result<Framebuffer, String> {
    let netns = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let deadline = Instant::now() + limit;
    // A thread of its own, never a pooled one: it leaves the host's network namespace for good.
    let viewer = std::thread::Builder::new()
        .name("vnc-viewer".into())
        .spawn(move || {
            let _ = tx.send(session(&netns, port, password.as_deref(), deadline));
        })
        .map_err(|e| format!("failed to start the viewer thread: {e}"))?;
    let result = match rx.await {
        Ok(result) => result,
        Err(_) => Err("the viewer thread ended without an answer".into()),
    };
    // It has sent its answer: it ends now; joined off the async threads.
    let _ = tokio::task::spawn_blocking(move || viewer.join()).await;
    result
}

fn session(netns: &Path, port: u16, password: Option<&str>, deadline: Instant) -> Result<Framebuffer, String> {
    let ns = std::fs::File::open(netns).map_err(|e| format!("failed to open {}: {e}", netns.display()))?;
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
        .map_err(|e| format!("failed to enter the container's network namespace: {e}"))?;
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let stream = TcpStream::connect_timeout(&address.into(), left)
        .map_err(|e| format!("failed to connect to the VNC server at {address} in the container: {e}"))?;
    rfb::capture(Deadline { stream, deadline }, password)
        .map_err(|e| format!("the VNC session at {address} failed: {e}"))
}

/// A stream whose every read and write ends by `deadline`.
pub struct Deadline<S> {
    pub stream: S,
    pub deadline: Instant,
}

/// What a stream needs for [`Deadline`]: per-operation time limits.
pub trait TimedStream: Read + Write {
    fn set_limits(&self, limit: Duration) -> std::io::Result<()>;
}

impl TimedStream for TcpStream {
    fn set_limits(&self, limit: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

impl TimedStream for std::os::unix::net::UnixStream {
    fn set_limits(&self, limit: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

impl<S: TimedStream> Deadline<S> {
    fn arm(&self) -> std::io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the viewer's time is up"));
        }
        self.stream.set_limits(left)
    }
}

impl<S: TimedStream> Read for Deadline<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.read(buf)
    }
}

impl<S: TimedStream> Write for Deadline<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

impl Probe<'_> {
    /// Connects to the container's VNC server as a viewer; keeps the picture in `log_dir`.
    pub async fn vnc(
        &self,
        name: &str,
        check: &VncCheck,
        round: u32,
        log_dir: &Path,
        limit: Duration,
    ) -> Result<VncSeen, String> {
        let pid = self.pid(name).await?;
        let netns = self.session.host_path(&format!("/proc/{pid}/ns/net"));
        let started = Instant::now();
        let fb = capture_in_netns(&netns, check.port(), check.password.clone(), limit).await?;
        let seconds = started.elapsed().as_secs_f64();
        let screenshot = if check.screenshot {
            let file = format!("screenshot-round{round}.png");
            fb.write_png(&log_dir.join(&file)).map_err(|e| format!("failed to write {file}: {e:#}"))?;
            Some(file)
        } else {
            None
        };
        Ok(VncSeen {
            protocol: format!("{} {}", fb.version, fb.security),
            desktop: fb.name.clone(),
            width: fb.width,
            height: fb.height,
            distinct_colors: fb.distinct_colors(),
            screenshot,
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends one byte a second forever never gets the viewer past its deadline.
    #[test]
    fn a_trickling_server_cannot_keep_the_viewer_past_its_deadline() {
        let (client, mut server) = std::os::unix::net::UnixStream::pair().unwrap();
        let trickle = std::thread::spawn(move || {
            for _ in 0..30 {
                if server.write_all(b"R").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let started = Instant::now();
        let deadline = started + Duration::from_millis(700);
        let result = rfb::capture(Deadline { stream: client, deadline }, None);
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        drop(result);
        let _ = trickle.join();
    }
}
