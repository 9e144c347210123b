//! A plain HTTP/1.0 GET, for adapters that ask members about themselves over their monitoring
//! port (NATS's `/jsz` and `/raftz`). One request per connection, no redirects, a timeout on
//! the whole exchange and a cap on the answer's size.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The most an answer may hold: a member's status is a few kB.
const MAX_BYTES: u64 = 4 << 20;

/// The body of `GET path` at `addr`, if it answered 200 within `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|_| s.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| format!("{addr}: {e}"))?;
    let mut out = Vec::new();
    s.take(MAX_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: no HTTP answer"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{addr}{path}: {status}"));
    }
    Ok(body.to_string())
}
