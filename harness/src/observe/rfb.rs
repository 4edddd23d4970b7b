//! A small RFB (VNC) client, as a person's viewer would connect: protocol 3.3, 3.7 or 3.8,
//! security None or VNC authentication (DES challenge), a shared session, then one full
//! framebuffer update in Raw encoding, decoded to RGB and written as a PNG.
//!
//! It speaks over any byte stream, so the protocol is unit-tested against a scripted server;
//! `vnc.rs` opens the real connection inside the container's network namespace.

use des::cipher::{Array, BlockCipherEncrypt, KeyInit};
use std::io::{Read, Write};

/// A framebuffer as the server sent it, in 8-bit RGB, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    pub width: u16,
    pub height: u16,
    /// The desktop name from the ServerInit message.
    pub name: String,
    /// The protocol version both sides agreed on, e.g. `3.8`.
    pub version: String,
    /// The security type used: `none` or `vnc-auth`.
    pub security: &'static str,
    pub rgb: Vec<u8>,
}

impl Framebuffer {
    /// How many distinct colors the picture has: a bare X root window has one or two, a drawn
    /// desktop (wallpaper, panel, a terminal with text) many.
    pub fn distinct_colors(&self) -> usize {
        let colours: std::collections::HashSet<[u8; 3]> =
            self.rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        colours.len()
    }

    /// The picture as a PNG file.
    pub fn write_png(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut encoder = png::Encoder::new(file, u32::from(self.width), u32::from(self.height));
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.rgb)?;
        writer.finish()?;
        Ok(())
    }
}

/// The RFB failures a viewer would report.
#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    #[error("the server did not speak RFB: it sent {0:?} as its version")]
    NotRfb(String),
    #[error("the server refused the connection: {0}")]
    Refused(String),
    #[error("the server offers no security type this client can use (offered: {0:?})")]
    NoUsableSecurity(Vec<u8>),
    #[error("the server asks for VNC authentication but no password is configured")]
    PasswordNeeded,
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("the server sent a rectangle in encoding {0}, which was not requested")]
    UnexpectedEncoding(i32),
    #[error("the server sent message type {0}, which this client does not know")]
    UnknownMessage(u8),
    #[error("a rectangle {w}x{h} at {x},{y} lies outside the {width}x{height} framebuffer")]
    OutOfBounds { x: u16, y: u16, w: u16, h: u16, width: u16, height: u16 },
    #[error("the server announced a {width}x{height} screen, outside 1 to {MAX_PIXELS} pixels")]
    Size { width: u16, height: u16 },
    #[error("the server sent {0} messages in a row that painted nothing")]
    Idle(u32),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The security types of RFB that this client can use.
const SECURITY_NONE: u8 = 1;
const SECURITY_VNC_AUTH: u8 = 2;
const ENCODING_RAW: i32 = 0;
/// The largest screen taken: 8K (7680x4320), 100 MB of RGB.
pub const MAX_PIXELS: u32 = 7680 * 4320;
/// The most messages in a row that paint nothing before the viewer gives up.
pub const MAX_IDLE_MESSAGES: u32 = 1000;

/// Runs a viewer's session to its first full framebuffer.
pub fn capture<S: Read + Write>(mut stream: S, password: Option<&str>) -> Result<Framebuffer, RfbError> {
    let minor = handshake_version(&mut stream)?;
    let security = negotiate_security(&mut stream, minor, password)?;
    stream.write_all(&[1])?; // ClientInit: shared, so other viewers stay connected
    let width = read_u16(&mut stream)?;
    let height = read_u16(&mut stream)?;
    let mut server_format = [0u8; 16];
    stream.read_exact(&mut server_format)?;
    let name = read_string(&mut stream)?;
    // The server says how big its screen is: never allocate more than a real desktop needs, and
    // refuse before asking for anything (a server that closes then cannot turn it into an I/O error).
    if u32::from(width) * u32::from(height) > MAX_PIXELS || width == 0 || height == 0 {
        return Err(RfbError::Size { width, height });
    }

    stream.write_all(&set_pixel_format())?;
    // SetEncodings: Raw only, so every rectangle is plain pixels.
    let mut encodings = vec![2u8, 0, 0, 1];
    encodings.extend_from_slice(&ENCODING_RAW.to_be_bytes());
    stream.write_all(&encodings)?;
    let mut request = vec![3u8, 0, 0, 0, 0, 0];
    request.extend_from_slice(&width.to_be_bytes());
    request.extend_from_slice(&height.to_be_bytes());
    stream.write_all(&request)?;
    stream.flush()?;

    let mut fb = Framebuffer {
        width,
        height,
        name,
        version: format!("3.{minor}"),
        security,
        rgb: vec![0; usize::from(width) * usize::from(height) * 3],
    };
    // The answer to a full request covers the screen; a server may split it over messages.
    // Messages that paint nothing (bells, empty updates) do not keep the viewer forever.
    let mut covered = 0usize;
    let full = usize::from(width) * usize::from(height);
    let mut idle = 0;
    while covered < full {
        let painted = read_server_message(&mut stream, &mut fb)?;
        idle = if painted == 0 { idle + 1 } else { 0 };
        if idle > MAX_IDLE_MESSAGES {
            return Err(RfbError::Idle(MAX_IDLE_MESSAGES));
        }
        covered += painted;
    }
    Ok(fb)
}

/// Reads the server's version and answers with the highest of 3.3, 3.7, 3.8 it allows.
fn handshake_version<S: Read + Write>(stream: &mut S) -> Result<u8, RfbError> {
    let mut version = [0u8; 12];
    stream.read_exact(&mut version)?;
    let text = String::from_utf8_lossy(&version).to_string();
    let parsed = text
        .strip_prefix("RFB ")
        .and_then(|v| v.trim_end().split_once('.'))
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    let minor = match parsed {
        Some((3, m)) if m >= 8 => 8,
        Some((3, 7)) => 7,
        // 3.3, and the odd minors some servers announce (3.4, 3.5, 3.6) mean 3.3.
        Some((3, m)) if m >= 3 => 3,
        Some((major, _)) if major > 3 => 8,
        _ => return Err(RfbError::NotRfb(text)),
    };
    stream.write_all(format!("RFB 003.00{minor}\n").as_bytes())?;
    Ok(minor)
}

fn negotiate_security<S: Read + Write>(
    stream: &mut S,
    minor: u8,
    password: Option<&str>,
) -> Result<&'static str, RfbError> {
    let chosen = if minor == 3 {
        // 3.3: the server decides, as a 32-bit type; 0 means it refuses, with a reason.
        let kind = read_u32(stream)?;
        match kind {
            0 => return Err(RfbError::Refused(read_string(stream)?)),
            1 | 2 => kind as u8,
            other => return Err(RfbError::NoUsableSecurity(vec![other as u8])),
        }
    } else {
        let mut count = [0u8];
        stream.read_exact(&mut count)?;
        if count[0] == 0 {
            return Err(RfbError::Refused(read_string(stream)?));
        }
        let mut offered = vec![0u8; usize::from(count[0])];
        stream.read_exact(&mut offered)?;
        let chosen = if offered.contains(&SECURITY_NONE) {
            SECURITY_NONE
        } else if offered.contains(&SECURITY_VNC_AUTH) {
            SECURITY_VNC_AUTH
        } else {
            return Err(RfbError::NoUsableSecurity(offered));
        };
        stream.write_all(&[chosen])?;
        chosen
    };
    if chosen == SECURITY_VNC_AUTH {
        let password = password.ok_or(RfbError::PasswordNeeded)?;
        let mut challenge = [0u8; 16];
        stream.read_exact(&mut challenge)?;
        stream.write_all(&vnc_auth_response(password, &challenge))?;
    }
    // 3.8 always sends a SecurityResult; 3.3 and 3.7 only after authentication.
    if chosen == SECURITY_VNC_AUTH || minor >= 8 {
        let result = read_u32(stream)?;
        if result != 0 {
            let reason = if minor >= 8 { read_string(stream)? } else { format!("security result {result}") };
            return Err(RfbError::AuthFailed(reason));
        }
    }
    Ok(if chosen == SECURITY_NONE { "none" } else { "vnc-auth" })
}

/// VNC authentication: the challenge encrypted with DES, keyed by the password (at most eight
/// bytes, zero-padded) with the bits of each byte mirrored, as every VNC implementation does.
pub fn vnc_auth_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new(&Array::from(key));
    let mut response = [0u8; 16];
    for (out, chunk) in response.chunks_exact_mut(8).zip(challenge.chunks_exact(8)) {
        let mut block = Array::from(<[u8; 8]>::try_from(chunk).expect("chunks of eight"));
        cipher.encrypt_block(&mut block);
        out.copy_from_slice(&block);
    }
    response
}

/// SetPixelFormat: 32 bits per pixel, depth 24, little-endian true colour, 8 bits a channel,
/// red in bits 16-23, green 8-15, blue 0-7.
fn set_pixel_format() -> [u8; 20] {
    let mut msg = [0u8; 20];
    msg[4] = 32; // bits per pixel
    msg[5] = 24; // depth
    msg[6] = 0; // big-endian flag
    msg[7] = 1; // true colour
    msg[8..10].copy_from_slice(&255u16.to_be_bytes());
    msg[10..12].copy_from_slice(&255u16.to_be_bytes());
    msg[12..14].copy_from_slice(&255u16.to_be_bytes());
    msg[14] = 16;
    msg[15] = 8;
    msg[16] = 0;
    msg
}

/// Reads one server message; returns how many pixels of framebuffer it painted.
fn read_server_message<S: Read>(stream: &mut S, fb: &mut Framebuffer) -> Result<usize, RfbError> {
    let mut kind = [0u8];
    stream.read_exact(&mut kind)?;
    match kind[0] {
        0 => {
            let mut header = [0u8; 3];
            stream.read_exact(&mut header)?;
            let rects = u16::from_be_bytes([header[1], header[2]]);
            let mut painted = 0;
            for _ in 0..rects {
                painted += read_rectangle(stream, fb)?;
            }
            Ok(painted)
        }
        1 => {
            // SetColourMapEntries: not used in true colour, skipped.
            let mut header = [0u8; 5];
            stream.read_exact(&mut header)?;
            let colours = u16::from_be_bytes([header[3], header[4]]);
            skip(stream, usize::from(colours) * 6)?;
            Ok(0)
        }
        2 => Ok(0), // Bell
        3 => {
            // ServerCutText: the clipboard, skipped.
            skip(stream, 3)?;
            let len = read_u32(stream)?;
            skip(stream, len as usize)?;
            Ok(0)
        }
        other => Err(RfbError::UnknownMessage(other)),
    }
}

fn read_rectangle<S: Read>(stream: &mut S, fb: &mut Framebuffer) -> Result<usize, RfbError> {
    let (x, y, w, h) = (read_u16(stream)?, read_u16(stream)?, read_u16(stream)?, read_u16(stream)?);
    let encoding = read_u32(stream)? as i32;
    if encoding != ENCODING_RAW {
        return Err(RfbError::UnexpectedEncoding(encoding));
    }
    let inside =
        u32::from(x) + u32::from(w) <= u32::from(fb.width) && u32::from(y) + u32::from(h) <= u32::from(fb.height);
    if !inside {
        return Err(RfbError::OutOfBounds { x, y, w, h, width: fb.width, height: fb.height });
    }
    let mut row = vec![0u8; usize::from(w) * 4];
    for line in 0..usize::from(h) {
        stream.read_exact(&mut row)?;
        let start = ((usize::from(y) + line) * usize::from(fb.width) + usize::from(x)) * 3;
        for (i, pixel) in row.chunks_exact(4).enumerate() {
            // Little-endian 32-bit: blue, green, red, unused.
            fb.rgb[start + i * 3..start + i * 3 + 3].copy_from_slice(&[pixel[2], pixel[1], pixel[0]]);
        }
    }
    Ok(usize::from(w) * usize::from(h))
}

fn read_u16<S: Read>(stream: &mut S) -> std::io::Result<u16> {
    let mut b = [0u8; 2];
    stream.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32<S: Read>(stream: &mut S) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    stream.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// A length-prefixed string (reasons, the desktop name), at most 64 KiB kept.
fn read_string<S: Read>(stream: &mut S) -> std::io::Result<String> {
    let len = read_u32(stream)? as usize;
    let mut text = vec![0u8; len.min(65536)];
    stream.read_exact(&mut text)?;
    skip(stream, len - text.len())?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

fn skip<S: Read>(stream: &mut S, n: usize) -> std::io::Result<()> {
    let copied = std::io::copy(&mut stream.take(n as u64), &mut std::io::sink())?;
    if copied < n as u64 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// Computed with OpenSSL's DES (`openssl enc -des-ecb -nopad`, key c64e96aeb62e4e1e: the
    /// mirrored bytes of `criumtrx`) over the challenge 00 01 .. 0f.
    const CRIUMTRX_RESPONSE: &str = "74b409eb4b173f66af41f325c5555540";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn vnc_authentication_matches_an_independent_des() {
        let challenge: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(hex(&vnc_auth_response("criumtrx", &challenge)), CRIUMTRX_RESPONSE);
        // Only eight bytes of a password count.
        assert_eq!(hex(&vnc_auth_response("criumtrxTOOLONG", &challenge)), CRIUMTRX_RESPONSE);
        assert_ne!(hex(&vnc_auth_response("criumtrY", &challenge)), CRIUMTRX_RESPONSE);
    }

    /// What a scripted server saw from the client, and the client's result.
    struct Exchange {
        client: Result<Framebuffer, RfbError>,
        server_read: Vec<u8>,
    }

    /// Runs the client against a server that sends `script` (reading what the client sends in
    /// between, `reads[i]` bytes before part `i`), then closes.
    fn exchange(script: Vec<(usize, Vec<u8>)>, password: Option<&str>) -> Exchange {
        let (client_end, mut server_end) = UnixStream::pair().unwrap();
        server_end.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (read, bytes) in script {
                let mut buf = vec![0u8; read];
                if server_end.read_exact(&mut buf).is_err() {
                    break;
                }
                seen.extend_from_slice(&buf);
                if server_end.write_all(&bytes).is_err() {
                    break;
                }
            }
            seen
        });
        client_end.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let client = capture(&client_end, password);
        drop(client_end);
        Exchange { client, server_read: server.join().unwrap() }
    }

    fn server_init(width: u16, height: u16, name: &str) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&width.to_be_bytes());
        m.extend_from_slice(&height.to_be_bytes());
        m.extend_from_slice(&[16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0]);
        m.extend_from_slice(&(name.len() as u32).to_be_bytes());
        m.extend_from_slice(name.as_bytes());
        m
    }

    /// A FramebufferUpdate of one Raw rectangle, pixels as little-endian 0x00RRGGBB.
    fn raw_update(x: u16, y: u16, w: u16, h: u16, pixels: &[u32]) -> Vec<u8> {
        let mut m = vec![0u8, 0, 0, 1];
        for v in [x, y, w, h] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        m.extend_from_slice(&0i32.to_be_bytes());
        for p in pixels {
            m.extend_from_slice(&p.to_le_bytes());
        }
        m
    }

    /// Client messages after ServerInit: SetPixelFormat (20), SetEncodings (8), request (10).
    const AFTER_INIT: usize = 20 + 8 + 10;

    #[test]
    fn a_38_session_with_vnc_auth_decodes_the_framebuffer() {
        let challenge: Vec<u8> = (0..16).collect();
        let pixels = [0x00ff0000, 0x0000ff00, 0x000000ff, 0x00123456];
        let script = vec![
            (0, b"RFB 003.008\n".to_vec()),
            (12, vec![2, 16, 2]),              // after the client's version: types Tight, VNC auth
            (1, challenge),                    // after the chosen type
            (16, 0u32.to_be_bytes().to_vec()), // after the response: OK
            (1, server_init(2, 2, "root's X desktop (c:1)")), // after ClientInit
            (AFTER_INIT, vec![2]),             // a Bell first, which must be skipped
            (0, raw_update(0, 0, 2, 2, &pixels)),
        ];
        let Exchange { client, server_read } = exchange(script, Some("criumtrx"));
        let fb = client.unwrap();
        assert_eq!((fb.width, fb.height, fb.version.as_str(), fb.security), (2, 2, "3.8", "vnc-auth"));
        assert_eq!(fb.name, "root's X desktop (c:1)");
        assert_eq!(fb.rgb, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 0x12, 0x34, 0x56]);
        assert_eq!(fb.distinct_colors(), 4);
        assert_eq!(&server_read[..12], b"RFB 003.008\n");
        assert_eq!(server_read[12], SECURITY_VNC_AUTH);
        assert_eq!(hex(&server_read[13..29]), CRIUMTRX_RESPONSE);
        assert_eq!(server_read[29], 1, "a shared session");
        let request = &server_read[server_read.len() - 10..];
        assert_eq!(request, &[3, 0, 0, 0, 0, 0, 0, 2, 0, 2], "a full, non-incremental update");
    }

    #[test]
    fn a_33_server_chooses_none_and_may_split_the_update() {
        let script = vec![
            (0, b"RFB 003.003\n".to_vec()),
            (12, 1u32.to_be_bytes().to_vec()), // security None, no result in 3.3
            (1, server_init(2, 1, "d")),
            (AFTER_INIT, raw_update(0, 0, 1, 1, &[0x00ffffff])),
            (0, raw_update(1, 0, 1, 1, &[0])),
        ];
        let fb = exchange(script, None).client.unwrap();
        assert_eq!((fb.version.as_str(), fb.security), ("3.3", "none"));
        assert_eq!(fb.rgb, vec![255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn refusals_and_bad_passwords_are_reported() {
        let mut refused = 0u32.to_be_bytes().to_vec();
        refused.extend_from_slice(&(10u32).to_be_bytes());
        refused.extend_from_slice(b"Too many\n!");
        let script = vec![(0, b"RFB 003.003\n".to_vec()), (12, refused)];
        let err = exchange(script, None).client.unwrap_err();
        assert!(matches!(&err, RfbError::Refused(r) if r == "Too many\n!"), "{err}");

        let mut failed = 1u32.to_be_bytes().to_vec();
        failed.extend_from_slice(&(14u32).to_be_bytes());
        failed.extend_from_slice(b"Wrong password");
        let script = vec![(0, b"RFB 003.008\n".to_vec()), (12, vec![1, 2]), (1, vec![7; 16]), (16, failed)];
        let err = exchange(script, Some("nope")).client.unwrap_err();
        assert!(matches!(&err, RfbError::AuthFailed(r) if r == "Wrong password"), "{err}");

        let script = vec![(0, b"RFB 003.008\n".to_vec()), (12, vec![1, 2]), (1, vec![7; 16])];
        assert!(matches!(exchange(script, None).client, Err(RfbError::PasswordNeeded)));
        let script = vec![(0, b"SSH-2.0-Open".to_vec())];
        assert!(matches!(exchange(script, None).client, Err(RfbError::NotRfb(_))));
    }

    #[test]
    fn a_rectangle_outside_the_screen_or_in_another_encoding_is_an_error() {
        let script = vec![
            (0, b"RFB 003.008\n".to_vec()),
            (12, vec![1, 1]),
            (1, 0u32.to_be_bytes().to_vec()),
            (1, server_init(1, 1, "d")),
            (AFTER_INIT, raw_update(1, 0, 1, 1, &[0])),
        ];
        assert!(matches!(exchange(script, None).client, Err(RfbError::OutOfBounds { .. })));
        let mut hextile = raw_update(0, 0, 1, 1, &[]);
        hextile[12..16].copy_from_slice(&5i32.to_be_bytes());
        let script = vec![
            (0, b"RFB 003.008\n".to_vec()),
            (12, vec![1, 1]),
            (1, 0u32.to_be_bytes().to_vec()),
            (1, server_init(1, 1, "d")),
            (AFTER_INIT, hextile),
        ];
        assert!(matches!(exchange(script, None).client, Err(RfbError::UnexpectedEncoding(5))));
    }

    #[test]
    fn a_huge_screen_is_refused_before_anything_is_allocated() {
        let script = vec![
            (0, b"RFB 003.008\n".to_vec()),
            (12, vec![1, 1]),
            (1, 0u32.to_be_bytes().to_vec()),
            (1, server_init(u16::MAX, u16::MAX, "d")),
        ];
        let err = exchange(script, None).client.unwrap_err();
        assert!(matches!(err, RfbError::Size { width: u16::MAX, height: u16::MAX }), "{err}");
    }

    #[test]
    fn updates_that_paint_nothing_do_not_keep_the_viewer() {
        // Empty updates and bells, more than the viewer takes, and never a pixel.
        let mut nothing = Vec::new();
        for _ in 0..=MAX_IDLE_MESSAGES / 2 {
            nothing.extend_from_slice(&[0, 0, 0, 0, 2]);
        }
        let script = vec![
            (0, b"RFB 003.008\n".to_vec()),
            (12, vec![1, 1]),
            (1, 0u32.to_be_bytes().to_vec()),
            (1, server_init(1, 1, "d")),
            (AFTER_INIT, nothing),
        ];
        let err = exchange(script, None).client.unwrap_err();
        assert!(matches!(err, RfbError::Idle(MAX_IDLE_MESSAGES)), "{err}");
    }

    #[test]
    fn the_png_holds_the_picture() {
        let fb = Framebuffer {
            width: 2,
            height: 1,
            name: "d".into(),
            version: "3.8".into(),
            security: "none",
            rgb: vec![1, 2, 3, 4, 5, 6],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");
        fb.write_png(&path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(&buf[..info.buffer_size()], &[1, 2, 3, 4, 5, 6]);
    }
}
