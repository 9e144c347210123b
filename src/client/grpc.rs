//! Unary gRPC calls over one HTTP/2 connection (the `h2` crate), as lean as a load generator
//! needs: a request is one HEADERS and one DATA frame, queued together so that the connection
//! writes them — and every other request issued in the same turn of the event loop — in one
//! system call. Measured against a real etcd (see `reckon bench client`), this costs a fraction
//! of a full gRPC stack's CPU per call, which matters because reckon shares the machine with the
//! system it measures.
//!
//! A connection is opened from inside a client host: the socket is created in that host's
//! network namespace (a socket belongs to the namespace it was created in, whatever thread
//! later uses it), so one thread can drive the clients of every host.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Uri};

/// Why a call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// The server answered with a gRPC status other than OK.
    Status { code: u32, message: String },
    /// The connection failed or broke: open a new one before the next call. `sent`: the
    /// request may have reached the server (false when it certainly did not).
    Transport { message: String, sent: bool },
    /// The deadline passed first.
    Timeout,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { code, message } => write!(f, "{message} (grpc status {code})"),
            CallError::Transport { message, .. } => write!(f, "{message}"),
            CallError::Timeout => write!(f, "timed out"),
        }
    }
}

/// gRPC's UNAVAILABLE: etcd's answer when a member has no leader and the client asked it to
/// require one.
pub const UNAVAILABLE: u32 = 14;

/// One HTTP/2 connection to a gRPC server.
#[derive(Clone)]
pub struct Conn {
    send: h2::client::SendRequest<Bytes>,
    /// Parsed once: each request's URI is built from it without parsing.
    authority: http::uri::Authority,
}

/// Open a connection to `addr` from inside the network namespace `netns` (a host's), within
/// `timeout`. Must be called inside a tokio runtime.
pub async fn connect(
    netns: &Arc<OwnedFd>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Conn, CallError> {
    let ns = netns.clone();
    let sock = crate::net::netns::in_netns(ns.as_fd(), || {
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
    })
    .and_then(|r| r)
    .map_err(|e| unsent(format!("socket for {addr}: {e}")))?;
    sock.set_nonblocking(true)
        .and_then(|_| sock.set_tcp_nodelay(true))
        .map_err(|e| unsent(format!("socket for {addr}: {e}")))?;
    let std_stream: std::net::TcpStream = sock.into();
    let socket = tokio::net::TcpSocket::from_std_stream(std_stream);
    let open = async {
        let tcp = socket
            .connect(addr)
            .await
            .map_err(|e| unsent(format!("connect to {addr}: {e}")))?;
        let (send, conn) = h2::client::Builder::new()
            // Big windows: the server never waits for us to grant more, and we send a
            // WINDOW_UPDATE about once per gigabyte.
            .initial_window_size(1 << 30)
            .initial_connection_window_size(1 << 30)
            .max_concurrent_reset_streams(1 << 16)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(|e| unsent(format!("HTTP/2 handshake with {addr}: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            authority: http::uri::Authority::try_from(addr.to_string())
                .map_err(|e| unsent(format!("{addr}: {e}")))?,
        })
    };
    match tokio::time::timeout(timeout, open).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout),
    }
}

/// A gRPC method path, such as `/etcdserverpb.KV/Put`.
pub type Method = &'static str;

/// gRPC's wire form of a message: a flag byte (not compressed), a big-endian length, the bytes.
fn frame<M: prost::Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut b = BytesMut::with_capacity(5 + len);
    b.put_u8(0);
    b.put_u32(len as u32);
    // Encoding into a buffer with room for it cannot fail.
    let _ = m.encode(&mut b);
    b.freeze()
}

fn unsent(message: String) -> CallError {
    CallError::Transport {
        message,
        sent: false,
    }
}

fn status_of(h: &HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `grpc-timeout` header for `left`: the server gives up when the client does.
fn grpc_timeout(left: Duration) -> HeaderValue {
    let ms = left.as_millis().clamp(1, 99_999_999);
    HeaderValue::from_str(&format!("{ms}m")).unwrap_or(HeaderValue::from_static("1000m"))
}

impl Conn {
    /// Call `method` with `req` and decode the answer, within `timeout`. With `require_leader`,
    /// an etcd member without a leader answers UNAVAILABLE at once instead of waiting (etcd's
    /// `hasleader` metadata, what clientv3's `WithRequireLeader` sends).
    pub async fn unary<Req, Resp>(
        &self,
        method: Method,
        req: &Req,
        timeout: Duration,
        require_leader: bool,
    ) -> Result<Resp, CallError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let body = frame(req);
        let call = self.call(method, body, timeout, require_leader);
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(mut bytes)) => {
                let bad = |message: String| CallError::Transport {
                    message,
                    sent: true,
                };
                if bytes.len() < 5 {
                    return Err(bad(format!("{method}: answer of {} bytes", bytes.len())));
                }
                bytes.advance(5);
                Resp::decode(bytes).map_err(|e| bad(format!("{method}: undecodable answer: {e}")))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Timeout),
        }
    }

    async fn call(
        &self,
        method: Method,
        body: Bytes,
        timeout: Duration,
        require_leader: bool,
    ) -> Result<Bytes, CallError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static(method));
        let uri = Uri::from_parts(parts).map_err(|e| unsent(e.to_string()))?;
        let mut req = Request::post(uri)
            .body(())
            .map_err(|e| unsent(e.to_string()))?;
        let h = req.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("grpc-timeout", grpc_timeout(timeout));
        if require_leader {
            h.insert("hasleader", HeaderValue::from_static("true"));
        }
        let not_sent = |e: h2::Error| unsent(format!("{}: {e}", self.authority));
        // After the request was handed to the connection, a broken connection leaves its fate
        // unknown — unless the socket was already closed when it was to be written.
        let transport = |e: h2::Error| {
            let gone = e.get_io().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::NotConnected
                )
            });
            CallError::Transport {
                message: format!("{}: {e}", self.authority),
                sent: !gone,
            }
        };
        let mut send = self.send.clone().ready().await.map_err(not_sent)?;
        let (response, mut stream) = send.send_request(req, false).map_err(not_sent)?;
        stream.send_data(body, true).map_err(not_sent)?;
        let response = response.await.map_err(|e| {
            // The server refused or reset this stream: an answer about the call, not the
            // connection.
            if let Some(reason) = e.reason() {
                if e.is_remote() && !e.is_go_away() {
                    return CallError::Status {
                        code: UNAVAILABLE,
                        message: format!("stream reset by {}: {reason:?}", self.authority),
                    };
                }
            }
            transport(e)
        })?;
        // A "trailers-only" answer carries the status in its headers.
        if let Some((code, message)) = status_of(response.headers()) {
            if code != 0 {
                return Err(CallError::Status { code, message });
            }
        }
        if response.status() != http::StatusCode::OK {
            return Err(CallError::Transport {
                message: format!("{}: HTTP status {}", self.authority, response.status()),
                sent: true,
            });
        }
        let mut body = response.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(transport)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if data.is_empty() {
                data = BytesMut::from(chunk);
            } else {
                data.extend_from_slice(&chunk);
            }
        }
        let trailers = body.trailers().await.map_err(transport)?;
        match trailers.as_ref().and_then(status_of) {
            Some((0, _)) => Ok(data.freeze()),
            Some((code, message)) => Err(CallError::Status { code, message }),
            None => Err(CallError::Transport {
                message: format!("{}: answer without a gRPC status", self.authority),
                sent: true,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_and_statuses_decoded() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct M {
            #[prost(bytes = "vec", tag = "1")]
            key: Vec<u8>,
        }
        let f = frame(&M {
            key: b"ab".to_vec(),
        });
        assert_eq!(&f[..], &[0, 0, 0, 0, 4, 10, 2, b'a', b'b']);
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("14"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("etcdserver:%20no%20leader"),
        );
        assert_eq!(
            status_of(&h),
            Some((14, "etcdserver: no leader".to_string()))
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
    }
}
