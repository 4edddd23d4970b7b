//! The `vnc` check: connect to the container's VNC server as a viewer would, and keep what it
//! shows as a PNG.
//!
//! Containers run without a network (`network: none`), so the server listens on the loopback of
//! the container's own network namespace. The harness reaches it from a dedicated thread that
//! joins that namespace (`setns` affects the calling thread only) and ends with the session: no
//! bridge, no port publishing, no dependence on the host's firewall, the same for every engine
//! (only the container's host PID is needed) and inside a VM guest.

use super::rfb::{self, Framebuffer};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

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
    // A thread of its own, never a pooled one: it leaves the host's network namespace for good.
    std::thread::Builder::new()
        .name("vnc-viewer".into())
        .spawn(move || {
            let _ = tx.send(session(&netns, port, password.as_deref(), limit));
        })
        .map_err(|e| format!("failed to start the viewer thread: {e}"))?;
    match tokio::time::timeout(limit + Duration::from_secs(5), rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("the viewer thread ended without an answer".into()),
        Err(_) => Err(format!("no framebuffer within {:.0}s", limit.as_secs_f64())),
    }
}

fn session(netns: &Path, port: u16, password: Option<&str>, limit: Duration) -> Result<Framebuffer, String> {
    let ns = std::fs::File::open(netns).map_err(|e| format!("failed to open {}: {e}", netns.display()))?;
    // SAFETY: setns(2) on a namespace file we hold open; only this thread changes namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("failed to enter the container's network namespace: {}", std::io::Error::last_os_error()));
    }
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let stream = TcpStream::connect_timeout(&address.into(), limit)
        .map_err(|e| format!("failed to connect to the VNC server at {address} in the container: {e}"))?;
    stream.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(limit)).map_err(|e| e.to_string())?;
    rfb::capture(&stream, password).map_err(|e| format!("the VNC session at {address} failed: {e}"))
}
