//! The channel out of a running guest: a virtio-serial port the guest's harness writes to and
//! qemu copies into a file on the host as the bytes come, so each cell's record and logs reach
//! the host when the cell finishes, while the guest goes on with the next (a guest that dies
//! later loses none of them). The work disk is not read back at all.
//!
//! The stream is a series of frames, each a JSON header line and, for a file or a record, the
//! number of bytes the header gives:
//! - `{"frame":"started","cell":NAME}`: the guest starts a cell;
//! - `{"frame":"file","cell":NAME,"name":FILE,"bytes":N}` + N bytes: one file of its log directory;
//! - `{"frame":"record","cell":NAME,"bytes":N}` + N bytes: its record (JSON), after its files;
//! - `{"frame":"stop","reason":TEXT}`: the guest ends this boot early (a cell erred or left
//!   something behind); the cells it did not run go on in a fresh boot.
//!
//! A frame cut short (the guest died while writing it) is never delivered.

use crate::record::CellRecord;
use serde::{Deserialize, Serialize};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The name of the guest's port (`/sys/class/virtio-ports/*/name`).
pub const PORT_NAME: &str = "criu-matrix.cells";
/// The environment variable that gives the guest's harness the port's device.
pub const ENV: &str = "CRIU_MATRIX_GUEST_CHANNEL";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "frame", rename_all = "snake_case", deny_unknown_fields)]
enum Header {
    Started { cell: String },
    File { cell: String, name: String, bytes: u64 },
    Record { cell: String, bytes: u64 },
    Stop { reason: String },
}

/// What the guest said, decoded.
#[derive(Debug)]
pub enum Message {
    Started {
        cell: String,
    },
    File {
        cell: String,
        name: String,
        data: Vec<u8>,
    },
    Record {
        cell: String,
        record: Box<CellRecord>,
    },
    Stop {
        reason: String,
    },
    /// A frame that does not decode: the stream cannot be followed past it.
    Garbled {
        why: String,
    },
}

/// The guest's end: frames written to the port's device.
pub struct Sender {
    out: Box<dyn std::io::Write + Send>,
}

impl Sender {
    /// Opens the port's device (or any file, in tests).
    pub fn open(path: &Path) -> anyhow::Result<Sender> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("failed to open the host channel {}: {e}", path.display()))?;
        Ok(Sender { out: Box::new(file) })
    }

    fn frame(&mut self, header: &Header, payload: &[u8]) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(header)?;
        bytes.push(b'\n');
        bytes.extend_from_slice(payload);
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        Ok(())
    }

    pub fn started(&mut self, cell: &str) -> anyhow::Result<()> {
        self.frame(&Header::Started { cell: cell.to_string() }, &[])
    }

    /// The files of `dir` (a cell's log directory, flat), then the record: the host takes the
    /// cell as finished when the record arrives.
    pub fn finished(&mut self, record: &CellRecord, dir: Option<&Path>) -> anyhow::Result<()> {
        let cell = record.name.clone();
        let mut files: Vec<PathBuf> = match dir.map(std::fs::read_dir) {
            Some(Ok(entries)) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
            _ => Vec::new(),
        };
        files.sort();
        for path in files {
            let Ok(data) = std::fs::read(&path) else { continue };
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            self.frame(&Header::File { cell: cell.clone(), name, bytes: data.len() as u64 }, &data)?;
        }
        let json = serde_json::to_vec(record)?;
        self.frame(&Header::Record { cell, bytes: json.len() as u64 }, &json)
    }

    pub fn stop(&mut self, reason: &str) -> anyhow::Result<()> {
        self.frame(&Header::Stop { reason: reason.to_string() }, &[])
    }
}

/// The host's end: decodes the bytes as they arrive; keeps a frame cut short until the rest comes.
#[derive(Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    garbled: bool,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        if self.garbled {
            return out;
        }
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let header: Header = match serde_json::from_slice(&self.buffer[..end]) {
                Ok(h) => h,
                Err(e) => {
                    let line = String::from_utf8_lossy(&self.buffer[..end.min(200)]).into_owned();
                    out.push(Message::Garbled { why: format!("a frame header does not decode ({e}): {line}") });
                    self.garbled = true;
                    self.buffer.clear();
                    break;
                }
            };
            let bytes = match &header {
                Header::File { bytes, .. } | Header::Record { bytes, .. } => *bytes as usize,
                _ => 0,
            };
            if self.buffer.len() < end + 1 + bytes {
                break; // the rest of the frame has not come yet
            }
            let payload: Vec<u8> = self.buffer[end + 1..end + 1 + bytes].to_vec();
            self.buffer.drain(..end + 1 + bytes);
            out.push(match header {
                Header::Started { cell } => Message::Started { cell },
                Header::Stop { reason } => Message::Stop { reason },
                Header::File { cell, name, .. } => Message::File { cell, name, data: payload },
                Header::Record { cell, .. } => match serde_json::from_slice::<CellRecord>(&payload) {
                    Ok(record) => Message::Record { cell, record: Box::new(record) },
                    Err(e) => Message::Garbled { why: format!("the record of {cell} does not decode: {e}") },
                },
            });
        }
        out
    }

    /// Bytes of a frame that has not come whole (at the end of a boot: cut short).
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// The host file qemu writes the port into, read as it grows.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    decoder: Decoder,
}

impl Follower {
    pub fn new(path: &Path) -> Follower {
        Follower { path: path.to_path_buf(), offset: 0, decoder: Decoder::default() }
    }

    /// The messages completed since the last call.
    pub fn poll(&mut self) -> Vec<Message> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return Vec::new() };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.decoder.push(&bytes)
    }

    pub fn pending(&self) -> usize {
        self.decoder.pending()
    }
}

/// A file name from the guest, safe to write into a cell's log directory: one plain component.
pub fn safe_file_name(name: &str) -> Option<&str> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0');
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::record;

    fn stream(frames: impl FnOnce(&mut Sender)) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("port");
        std::fs::write(&path, b"").unwrap();
        let mut sender = Sender::open(&path).unwrap();
        frames(&mut sender);
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn a_cell_arrives_with_its_files_then_its_record() {
        let logs = tempfile::tempdir().unwrap();
        // Binary content and a newline inside a file do not confuse the framing.
        std::fs::write(logs.path().join("dump.log"), b"line 1\nline 2\n\x00\xff").unwrap();
        std::fs::write(logs.path().join("reproduce.sh"), b"#!/bin/sh\n").unwrap();
        let rec = record("a", "crun", "trixie", crate::record::Verdict::Pass);
        let bytes = stream(|s| {
            s.started(&rec.name).unwrap();
            s.finished(&rec, Some(logs.path())).unwrap();
            s.stop("a cell erred").unwrap();
        });
        let messages = Decoder::default().push(&bytes);
        let kinds: Vec<String> = messages
            .iter()
            .map(|m| match m {
                Message::Started { cell } => format!("started {cell}"),
                Message::File { name, data, .. } => format!("file {name} {}", data.len()),
                Message::Record { record, .. } => format!("record {}", record.verdict),
                Message::Stop { reason } => format!("stop {reason}"),
                Message::Garbled { why } => format!("garbled {why}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                format!("started {}", rec.name),
                "file dump.log 16".to_string(),
                "file reproduce.sh 10".to_string(),
                "record pass".to_string(),
                "stop a cell erred".to_string(),
            ]
        );
    }

    #[test]
    fn a_frame_cut_short_is_held_back_and_completed_by_the_rest() {
        let rec = record("a", "runc", "trixie", crate::record::Verdict::Fail);
        let bytes = stream(|s| {
            s.started(&rec.name).unwrap();
            s.finished(&rec, None).unwrap();
        });
        // Byte by byte, as a slow port might deliver it: nothing is delivered half made.
        let mut decoder = Decoder::default();
        let mut records = 0;
        for (i, b) in bytes.iter().enumerate() {
            for m in decoder.push(&[*b]) {
                if let Message::Record { record, .. } = m {
                    assert_eq!(i + 1, bytes.len(), "the record arrives with its last byte");
                    assert_eq!(record.name, rec.name);
                    records += 1;
                }
            }
        }
        assert_eq!(records, 1);
        assert_eq!(decoder.pending(), 0);
        // A guest that died mid-record: the record is never delivered, the bytes stay pending.
        let mut torn = Decoder::default();
        let delivered = torn.push(&bytes[..bytes.len() - 3]);
        assert!(delivered.iter().all(|m| !matches!(m, Message::Record { .. })));
        assert!(torn.pending() > 0);
    }

    #[test]
    fn a_header_that_does_not_decode_stops_the_stream() {
        let mut decoder = Decoder::default();
        let messages = decoder
            .push(b"{\"frame\":\"started\",\"cell\":\"a\"}\nnot a frame\n{\"frame\":\"stop\",\"reason\":\"x\"}\n");
        assert!(matches!(&messages[0], Message::Started { cell } if cell == "a"));
        assert!(matches!(&messages[1], Message::Garbled { why } if why.contains("not a frame")), "{messages:?}");
        assert_eq!(messages.len(), 2, "nothing after a garbled frame is trusted");
        assert!(decoder.push(b"{\"frame\":\"stop\",\"reason\":\"y\"}\n").is_empty());
    }

    #[test]
    fn the_follower_reads_a_growing_file_from_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cells.stream");
        let mut follower = Follower::new(&path);
        assert!(follower.poll().is_empty(), "no file yet");
        std::fs::write(&path, b"{\"frame\":\"started\",\"cell\":\"a\"}\n{\"frame\":\"st").unwrap();
        assert!(matches!(&follower.poll()[..], [Message::Started { .. }]));
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"op\",\"reason\":\"done\"}\n").unwrap();
        assert!(matches!(&follower.poll()[..], [Message::Stop { reason }] if reason == "done"));
        assert!(follower.poll().is_empty());
    }

    #[test]
    fn only_plain_file_names_are_written() {
        assert_eq!(safe_file_name("dump.log"), Some("dump.log"));
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b"] {
            assert_eq!(safe_file_name(bad), None, "{bad}");
        }
    }
}
