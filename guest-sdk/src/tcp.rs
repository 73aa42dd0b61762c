//! Outbound TCP through the host (`vigil:health/tcp`), enough for a Redis
//! `PING` or a PostgreSQL startup packet. Connections are checked against
//! the service's `[grants] hosts` (scheme `tcp`; `--allow-host` with `vigil check`).
//!
//! ```no_run
//! use std::time::Duration;
//! use vigil_sdk::tcp::{Connection, ReadEnd};
//!
//! # fn demo() -> Result<(), vigil_sdk::ErrorCode> {
//! let timeout = Duration::from_secs(1);
//! let conn = Connection::connect("127.0.0.1", 6379, timeout)?;
//! conn.write_all(b"PING\r\n", timeout)?;
//! let (reply, end) = conn.read_until(b"+PONG", 4096, timeout)?;
//! assert_eq!(end, ReadEnd::Found);
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, Instant};

use crate::bindings::checker::vigil::health::tcp as raw;
use crate::units::format_duration;
use crate::{ErrorCode, Outcome};

/// Largest read the host serves in one call.
pub const MAX_READ: u32 = 1 << 20;

/// An open connection; closed when dropped.
#[derive(Debug)]
pub struct Connection {
    inner: raw::Connection,
}

/// Why [`Connection::read_until`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The reply contains the needle.
    Found,
    /// The peer closed the connection first.
    Closed,
    /// The byte limit was reached first.
    Limit,
    /// The deadline passed first.
    TimedOut,
}

impl Connection {
    /// Resolve `host` and connect within `timeout`.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Self, ErrorCode> {
        raw::Connection::connect(host, port, crate::millis_u32(timeout))
            .map(|inner| Connection { inner })
    }

    /// Write all of `data` within `timeout`.
    pub fn write_all(&self, data: &[u8], timeout: Duration) -> Result<(), ErrorCode> {
        self.inner.write(data, crate::millis_u32(timeout))
    }

    /// Read up to `max_bytes` (at most [`MAX_READ`]), returning as soon as
    /// some bytes arrive. An empty result means the peer closed.
    pub fn read(&self, max_bytes: u32, timeout: Duration) -> Result<Vec<u8>, ErrorCode> {
        self.inner
            .read(max_bytes.min(MAX_READ), crate::millis_u32(timeout))
    }

    /// Read until the reply contains `needle`, the peer closes, `limit`
    /// bytes have arrived or `timeout` (for the whole exchange) passes.
    /// Returns what was read and why it stopped; an empty needle is found
    /// at once. A timeout is reported as [`ReadEnd::TimedOut`] with the
    /// bytes read so far, other failures as `Err`.
    pub fn read_until(
        &self,
        needle: &[u8],
        limit: usize,
        timeout: Duration,
    ) -> Result<(Vec<u8>, ReadEnd), ErrorCode> {
        let deadline = Instant::now() + timeout;
        let mut reply = Vec::new();
        loop {
            if contains(&reply, needle) {
                return Ok((reply, ReadEnd::Found));
            }
            if reply.len() >= limit {
                return Ok((reply, ReadEnd::Limit));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok((reply, ReadEnd::TimedOut));
            }
            let want = u32::try_from(limit - reply.len()).unwrap_or(MAX_READ);
            match self.read(want, left) {
                Ok(chunk) if chunk.is_empty() => return Ok((reply, ReadEnd::Closed)),
                Ok(chunk) => reply.extend_from_slice(&chunk),
                Err(ErrorCode::Timeout) => return Ok((reply, ReadEnd::TimedOut)),
                Err(e) => return Err(e),
            }
        }
    }

    /// The raw WIT resource.
    pub fn as_raw(&self) -> &raw::Connection {
        &self.inner
    }
}

/// One request/reply conversation with a server under a single deadline:
/// the connection, a read buffer, and the verdicts every protocol check
/// gives alike (refused, closed early, too slow, too much). The protocol's
/// own parser decides where a reply ends.
///
/// ```no_run
/// use std::time::Duration;
/// use vigil_sdk::tcp::Exchange;
///
/// # fn demo() -> Result<(), vigil_sdk::Outcome> {
/// let mut redis = Exchange::connect("127.0.0.1", 6379, Duration::from_secs(1), 4096)?;
/// redis.send("PING", b"PING\r\n")?;
/// let line = redis.receive(
///     "PING",
///     |buffer| Ok::<_, &str>(buffer.iter().position(|&b| b == b'\n').map(|end| (buffer[..end].to_vec(), end + 1))),
///     |address, _bytes, why| vigil_sdk::Outcome::retry(format!("{address}: {why}")),
/// )?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Exchange {
    conn: Connection,
    address: String,
    buffer: Vec<u8>,
    deadline: Instant,
    timeout: Duration,
    limit: usize,
}

impl Exchange {
    /// Connect to `host:port`; `timeout` covers the connect and every
    /// exchange after it, and a reply may be at most `limit` bytes.
    pub fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        limit: usize,
    ) -> Result<Self, Outcome> {
        let address = format!("{host}:{port}");
        let deadline = Instant::now() + timeout;
        let conn = Connection::connect(host, port, timeout)
            .map_err(|e| e.outcome(format_args!("connect {address}")))?;
        Ok(Exchange {
            conn,
            address,
            buffer: Vec::new(),
            deadline,
            timeout,
            limit,
        })
    }

    /// `host:port`, as messages name the server.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Send `bytes`; `what` names them in a failure (never put a secret in it).
    pub fn send(&self, what: &str, bytes: &[u8]) -> Result<(), Outcome> {
        self.conn
            .write_all(bytes, self.left())
            .map_err(|e| e.outcome(format_args!("send {what} to {}", self.address)))
    }

    /// Read until `parse` finds a whole reply in the buffered bytes
    /// (`Ok(Some((reply, bytes used)))`; `Ok(None)` asks for more). Bytes
    /// after the reply stay buffered for the next call. A parse error
    /// becomes `malformed(address, buffered bytes, error)`; a peer that
    /// closes, stays silent past the deadline, or sends more than the limit
    /// is a `retry` naming `what` it was asked.
    pub fn receive<T, E>(
        &mut self,
        what: &str,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
        malformed: impl FnOnce(&str, &[u8], E) -> Outcome,
    ) -> Result<T, Outcome> {
        let address = &self.address;
        loop {
            match parse(&self.buffer) {
                Ok(Some((reply, used))) => {
                    self.buffer.drain(..used.min(self.buffer.len()));
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(why) => return Err(malformed(address, &self.buffer, why)),
            }
            if self.buffer.len() > self.limit {
                return Err(Outcome::retry(format!(
                    "{address} sent more than {} bytes in reply to {what}",
                    self.limit
                )));
            }
            let no_reply = || {
                Outcome::retry(format!(
                    "{address} did not answer {what} within {}",
                    format_duration(self.timeout)
                ))
            };
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_reply());
            }
            match self.conn.read(64 * 1024, left) {
                Ok(chunk) if chunk.is_empty() => {
                    return Err(Outcome::retry(format!(
                        "{address} closed the connection instead of answering {what}"
                    )));
                }
                Ok(chunk) => self.buffer.extend_from_slice(&chunk),
                Err(ErrorCode::Timeout) => return Err(no_reply()),
                Err(e) => {
                    return Err(e.outcome(format_args!("read the reply to {what} from {address}")));
                }
            }
        }
    }
}

/// Whether `haystack` contains `needle` (an empty needle always matches).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decode the escapes `\r`, `\n`, `\t`, `\0`, `\\` and `\xNN` in a config
/// value, for protocols that need control characters or binary bytes.
///
/// ```
/// use vigil_sdk::tcp::unescape;
///
/// assert_eq!(unescape(r"PING\r\n"), Ok(b"PING\r\n".to_vec()));
/// assert_eq!(unescape(r"\x00\x01a\\b"), Ok(b"\x00\x01a\\b".to_vec()));
/// assert!(unescape(r"\q").is_err());
/// ```
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = (hex.len() == 2)
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("`\\x{hex}` needs two hex digits"))?;
                out.push(byte);
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}` (use \\r \\n \\t \\0 \\\\ or \\xNN)"
                ));
            }
            None => return Err("a trailing `\\` escapes nothing".into()),
        }
    }
    Ok(out)
}

/// Show bytes for a message: printable ASCII as is, everything else
/// escaped, at most `max` bytes.
///
/// ```
/// assert_eq!(vigil_sdk::tcp::escape(b"+PONG\r\n", 64), r"+PONG\r\n");
/// ```
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}
