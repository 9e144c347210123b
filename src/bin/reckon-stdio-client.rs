//! A client for reckon's stdio protocol that talks to etcd through its v3 JSON gateway
//! (HTTP/1.1, one request per connection). It is the reference for writing a client in any
//! language, and the one reckon's tests drive: `--die-after N` makes it exit after N results.
//!
//!     reckon-stdio-client --targets=http://10.0.1.1:2379,... --id=1 --ncpr=false
//!
//! Operations run one after another at their scheduled times (a late one starts at once); each
//! goes to the first target that answers, starting with the one that answered last.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reckon::client::stdio::{read_frame, write_frame, Message, OpKind, Operation, Payload};
use serde_json::{json, Value};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn arg(name: &str) -> Option<String> {
    std::env::args().find_map(|a| a.strip_prefix(&format!("--{name}=")).map(String::from))
}

/// POST a JSON body to `path` at `target` (`http://host:port`); the JSON answer.
fn post(target: &str, path: &str, body: &Value) -> Result<Value, String> {
    let hostport = target.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr = hostport
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect {hostport}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let body = body.to_string();
    let req = format!("POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send to {hostport}: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("answer from {hostport}: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{hostport}: {}", head.lines().next().unwrap_or("")));
    }
    // Chunked or not, the JSON object is the body's outermost braces.
    let (a, b) = (
        body.find('{').ok_or("no JSON in answer")?,
        body.rfind('}').ok_or("no JSON in answer")?,
    );
    serde_json::from_str(&body[a..=b]).map_err(|e| e.to_string())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

struct Client {
    targets: Vec<String>,
    preferred: usize,
    id: String,
}

impl Client {
    /// Do one operation; its outcome ("Success" or the error) and the target that served it.
    fn perform(&mut self, p: &Payload) -> (String, Option<String>) {
        let (path, body) = match p {
            Payload::Write { key, value } => {
                ("/v3/kv/put", json!({"key": b64(key), "value": b64(value)}))
            }
            Payload::Read { key } => ("/v3/kv/range", json!({"key": b64(key)})),
        };
        let mut last = String::from("no targets");
        for k in 0..self.targets.len() {
            let i = (self.preferred + k) % self.targets.len();
            match post(&self.targets[i], path, &body) {
                Ok(_) => {
                    self.preferred = i;
                    return ("Success".into(), Some(self.targets[i].clone()));
                }
                Err(e) => last = e,
            }
        }
        (last, None)
    }

    fn result(&mut self, op: &Operation, expected_start: f64) -> Message {
        let t_submitted = now();
        let (result, target) = self.perform(&op.payload);
        Message::Result {
            t_submitted,
            t_result: now(),
            result,
            op_kind: match op.payload {
                Payload::Write { .. } => OpKind::Write,
                Payload::Read { .. } => OpKind::Read,
            },
            clientid: self.id.clone(),
            other: json!({"expected_start": expected_start, "target": target}),
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("reckon-stdio-client: {e}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    let targets: Vec<String> = arg("targets")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let id = arg("id").unwrap_or_else(|| "0".into());
    let die_after: Option<usize> = arg("die-after").and_then(|n| n.parse().ok());
    if targets.is_empty() {
        return Err(io::Error::other("--targets=<url,...> is required"));
    }
    let mut client = Client {
        targets,
        preferred: id.parse::<usize>().unwrap_or(0),
        id,
    };
    let (mut input, mut output) = (io::stdin().lock(), io::stdout().lock());
    // Phase 1: preload; prerequisites are done at once.
    let mut ops = Vec::new();
    loop {
        match read_frame(&mut input)? {
            Some(Message::Preload {
                prereq: true,
                operation,
            }) => {
                let (r, _) = client.perform(&operation.payload);
                if r != "Success" {
                    eprintln!("prerequisite failed: {r}");
                }
            }
            Some(Message::Preload {
                prereq: false,
                operation,
            }) => ops.push(operation),
            Some(Message::Finalise) => break,
            Some(other) => {
                return Err(io::Error::other(format!(
                    "unexpected message before finalise: {other:?}"
                )))
            }
            None => return Ok(()),
        }
    }
    write_frame(&mut output, &Message::Ready)?;
    match read_frame(&mut input)? {
        Some(Message::Start) => {}
        other => return Err(io::Error::other(format!("expected start, got {other:?}"))),
    }
    // Phase 2: each operation at its time, its result sent as soon as it is known.
    let (start, start_unix) = (Instant::now(), now());
    for (n, op) in ops.iter().enumerate() {
        let due = Duration::from_secs_f64(op.time.max(0.0));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let r = client.result(op, start_unix + op.time);
        write_frame(&mut output, &r)?;
        if die_after == Some(n + 1) {
            eprintln!("dying after {} results, as asked (--die-after)", n + 1);
            std::process::exit(3);
        }
    }
    write_frame(&mut output, &Message::Finished)
}
