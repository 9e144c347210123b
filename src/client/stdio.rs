//! reckon's stdio client protocol, unchanged, so reckon's existing per-system clients plug in.
//!
//! Frames are a 4-byte little-endian length and a JSON message. The driver sends `preload`
//! (each operation, `prereq` ones to be done before the run), `finalise`, then, once the client
//! said `ready`, `start`; the client sends a `result` per operation and `finished`. A client is
//! started as `<cmd> --targets=<urls> --id=<n> --ncpr=<bool>` inside its host.

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::{command_in, registry::Manifest, NetError};

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Payload {
    Write { key: String, value: String },
    Read { key: String },
}

/// An operation and when to issue it, in seconds from the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub payload: Payload,
    pub time: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Write,
    Read,
}

/// One message of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Message {
    Preload {
        prereq: bool,
        operation: Operation,
    },
    Finalise,
    Ready,
    Start,
    Result {
        /// Unix seconds.
        t_submitted: f64,
        t_result: f64,
        /// "Success", or what went wrong.
        result: String,
        op_kind: OpKind,
        clientid: String,
        #[serde(default)]
        other: serde_json::Value,
    },
    Finished,
}

/// Write one frame.
pub fn write_frame(w: &mut impl Write, m: &Message) -> io::Result<()> {
    let body = serde_json::to_vec(m).map_err(io::Error::other)?;
    w.write_all(&(body.len() as i32).to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// Read one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Message>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    let len = i32::from_le_bytes(len);
    if !(0..=64 << 20).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{e}: {}", String::from_utf8_lossy(&body)),
        )
    })
}

/// How a client's run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// It exited, closed its output or sent garbage first: what happened.
    Died(String),
    /// It said nothing for too long.
    Silent(Duration),
}

/// An external client process, running inside a client host.
pub struct StdioClient {
    pub id: u32,
    pub host: String,
    child: Child,
    stdin: Option<Input>,
    rx: Receiver<io::Result<Option<Message>>>,
    stderr: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("client {id} on {host}: {what}{}", if stderr.is_empty() { String::new() } else { format!("; last lines of its stderr:\n{stderr}") })]
    Protocol {
        id: u32,
        host: String,
        what: String,
        stderr: String,
    },
}

impl StdioClient {
    /// Start `command` (program and arguments) inside `host`, with reckon's arguments added.
    /// Its stderr goes to `stderr_log`.
    pub fn spawn(
        m: &Manifest,
        host: &str,
        command: &[String],
        targets: &[String],
        id: u32,
        ncpr: bool,
        stderr_log: &Path,
    ) -> Result<StdioClient, ClientError> {
        let (prog, args) = command.split_first().ok_or_else(|| ClientError::Protocol {
            id,
            host: host.into(),
            what: "empty client command".into(),
            stderr: String::new(),
        })?;
        let log = std::fs::File::create(stderr_log).map_err(|e| ClientError::Protocol {
            id,
            host: host.into(),
            what: format!("{}: {e}", stderr_log.display()),
            stderr: String::new(),
        })?;
        let mut cmd = command_in(m, host, prog)?;
        cmd.args(args)
            .arg(format!("--targets={}", targets.join(",")))
            .arg(format!("--id={id}"))
            .arg(format!("--ncpr={ncpr}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd.spawn().map_err(|e| ClientError::Protocol {
            id,
            host: host.into(),
            what: format!("could not start {prog}: {e}"),
            stderr: String::new(),
        })?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let m = read_frame(&mut r);
                let stop = !matches!(m, Ok(Some(_)));
                if tx.send(m).is_err() || stop {
                    break;
                }
            }
        });
        Ok(StdioClient {
            id,
            host: host.into(),
            stdin: child
                .stdin
                .take()
                .map(Input::new)
                .transpose()
                .map_err(|e| ClientError::Protocol {
                    id,
                    host: host.into(),
                    what: format!("its input: {e}"),
                    stderr: String::new(),
                })?,
            child,
            rx,
            stderr: stderr_log.into(),
        })
    }

    fn fail(&self, what: impl Into<String>) -> ClientError {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let stderr = lines[lines.len().saturating_sub(8)..].join("\n");
        ClientError::Protocol {
            id: self.id,
            host: self.host.clone(),
            what: what.into(),
            stderr,
        }
    }

    fn send(&mut self, m: &Message) -> Result<(), ClientError> {
        let r = match &mut self.stdin {
            Some(s) => write_frame(s, m),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "input closed")),
        };
        r.map_err(|e| {
            let status = self
                .child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            self.fail(format!("sending {}: {e}{status}", kind_of(m)))
        })
    }

    pub fn preload(&mut self, prereq: bool, operation: Operation) -> Result<(), ClientError> {
        self.send(&Message::Preload { prereq, operation })
    }

    /// Say the preload is over and wait for `ready` (the client does the prerequisites first);
    /// a Ctrl-C ends the wait.
    pub fn finalise(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.send(&Message::Finalise)?;
        let deadline = std::time::Instant::now() + timeout;
        let answer = loop {
            match self.rx.recv_timeout(POLL) {
                Err(RecvTimeoutError::Timeout) if crate::signals::interrupted() => {
                    return Err(self.fail("interrupted while waiting for ready"))
                }
                Err(RecvTimeoutError::Timeout) if std::time::Instant::now() < deadline => {}
                other => break other,
            }
        };
        match answer {
            Ok(Ok(Some(Message::Ready))) => Ok(()),
            Ok(Ok(Some(other))) => {
                Err(self.fail(format!("expected ready, got {}", kind_of(&other))))
            }
            Ok(Ok(None)) => {
                let status = self.exit_status();
                Err(self.fail(format!("exited before ready{status}")))
            }
            Ok(Err(e)) => Err(self.fail(format!("unreadable message before ready: {e}"))),
            Err(_) => Err(self.fail(format!("no ready within {timeout:?}"))),
        }
    }

    pub fn start(&mut self) -> Result<(), ClientError> {
        self.send(&Message::Start)
    }

    /// The next result, or how the client ended. `Ok(None)` once it finished cleanly.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Message>, End> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(Some(m @ Message::Result { .. }))) => Ok(Some(m)),
            Ok(Ok(Some(Message::Finished))) => Ok(None),
            Ok(Ok(Some(other))) => Err(End::Died(format!(
                "sent {} during the run",
                kind_of(&other)
            ))),
            Ok(Ok(None)) | Err(RecvTimeoutError::Disconnected) => Err(End::Died(format!(
                "its output ended before finished{}",
                self.exit_status()
            ))),
            Ok(Err(e)) => Err(End::Died(format!("unreadable message: {e}"))),
            Err(RecvTimeoutError::Timeout) => Err(End::Silent(timeout)),
        }
    }

    /// Collect results until the client finishes or dies; the results received are kept either
    /// way, and the error says what happened.
    pub fn collect(&mut self, silence: Duration) -> (Vec<Message>, Result<(), ClientError>) {
        let mut results = Vec::new();
        loop {
            match self.next(silence) {
                Ok(Some(m)) => results.push(m),
                Ok(None) => return (results, Ok(())),
                Err(end) => {
                    let what = match end {
                        End::Died(w) => format!("{w}, after {} results", results.len()),
                        End::Silent(d) => {
                            format!("said nothing for {d:?}, after {} results", results.len())
                        }
                    };
                    let e = self.fail(what);
                    return (results, Err(e));
                }
            }
        }
    }

    fn exit_status(&mut self) -> String {
        // Give a dying process a moment to be reaped.
        for _ in 0..50 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return format!(" (it exited: {s})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        String::new()
    }
}

/// How often a wait looks for a Ctrl-C.
const POLL: Duration = Duration::from_millis(100);
/// A client that takes nothing from its input for this long is given up.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's input, written without blocking for good: a write waits for the pipe to take
/// something for at most [`SEND_TIMEOUT`] (a client that never reads its input would
/// otherwise hold the run forever once the pipe is full), and gives up at once on a Ctrl-C.
struct Input {
    pipe: ChildStdin,
}

impl Input {
    fn new(pipe: ChildStdin) -> io::Result<Input> {
        use std::os::fd::AsRawFd;
        let fd = pipe.as_raw_fd();
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Input { pipe })
    }
}

impl Write for Input {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + SEND_TIMEOUT;
        loop {
            match self.pipe.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if crate::signals::interrupted() {
                        // Not ErrorKind::Interrupted: write_all would try again.
                        return Err(io::Error::other("interrupted"));
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("it read nothing of its input for {SEND_TIMEOUT:?}"),
                        ));
                    }
                    let mut p = libc::pollfd {
                        fd: self.pipe.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    unsafe { libc::poll(&mut p, 1, POLL.as_millis() as i32) };
                }
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for StdioClient {
    fn drop(&mut self) {
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn kind_of(m: &Message) -> &'static str {
    match m {
        Message::Preload { .. } => "preload",
        Message::Finalise => "finalise",
        Message::Ready => "ready",
        Message::Start => "start",
        Message::Result { .. } => "result",
        Message::Finished => "finished",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_reckons_json() {
        let m = Message::Preload {
            prereq: true,
            operation: Operation {
                payload: Payload::Write {
                    key: "0001".into(),
                    value: "xx".into(),
                },
                time: 0.5,
            },
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"kind":"preload","prereq":true,"operation":{"payload":{"kind":"write","key":"0001","value":"xx"},"time":0.5}}"#
        );
        assert_eq!(
            serde_json::to_string(&Message::Finalise).unwrap(),
            r#"{"kind":"finalise"}"#
        );
        let r: Message = serde_json::from_str(r#"{"kind":"result","t_submitted":1.5,"t_result":1.75,"result":"Success","op_kind":"read","clientid":"3","other":{"expected_start":1.4}}"#).unwrap();
        assert!(
            matches!(r, Message::Result { op_kind: OpKind::Read, ref result, .. } if result == "Success")
        );
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Message::Ready).unwrap();
        assert_eq!(
            &buf[..4],
            &(r#"{"kind":"ready"}"#.len() as i32).to_le_bytes()
        );
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some(Message::Ready));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut bad = &[5u8, 0, 0, 0, b'{', b'x'][..];
        assert!(read_frame(&mut bad).is_err());
    }
}
