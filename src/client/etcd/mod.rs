//! The built-in etcd v3 client: etcd's gRPC API (KV Put and Range, Maintenance Status, Cluster
//! MemberList) over [`grpc`](super::grpc), one HTTP/2 connection per endpoint, opened from
//! inside the client's host. It models how real clients pick endpoints (`--client-target`):
//!
//! - `sticky` (the default; `local` is the same): stay on the endpoint that last answered,
//!   starting with the node in the client's own data centre. On an error or a timeout, move to
//!   the next endpoint; a failed endpoint is tried again only after a cool-down
//!   ([`COOL_DOWN`]). This is how most clients of consensus systems behave — etcd's clientv3
//!   before 3.4 (its pinned-endpoint balancer), ZooKeeper's client (one server per session),
//!   NATS — so it is the model that compares across systems.
//! - `leader`: send to the current leader. After a failure the leader is looked up again — one
//!   lookup at a time, at most every [`LOOKUP_INTERVAL`], shared by every operation that
//!   failed meanwhile (no thundering herd of Status calls).
//! - `all`: etcd clientv3's (3.4+) gRPC round-robin balancer: each operation goes to the next
//!   endpoint whose connection is up, once; a failed put is not retried elsewhere. This is what
//!   reckon's own Go client does, so results compare with reckon's. It does not ask etcd to
//!   require a leader (clientv3 does not by default), so an operation that lands on a member
//!   without a leader waits for it or fails.
//!
//! The operation timeout covers the whole operation, every attempt included. `sticky` and
//! `leader` send etcd's "require leader" metadata, so a member without a leader says so at once
//! instead of holding the request; such a refusal, a connection that could not be made and any
//! failed read are retried on the next endpoint within the timeout (each endpoint at most once
//! per operation). A write whose fate is unknown (it timed out, or its connection broke after it
//! was sent) is never retried: it may have been applied.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod leader;
mod proto;

use proto::*;
pub use proto::{ResponseHeader, StatusResponse};

use super::grpc::{self, CallError, Conn};
pub use super::Target;
use super::{BoxFuture, KvClient, Outcome};
use crate::clock::now_ns;
use crate::workload::Op;

/// How long a failed endpoint is left alone (`sticky`): gRPC's first reconnect back-off.
pub const COOL_DOWN: Duration = Duration::from_secs(1);
/// The least time between two leader lookups (`leader`).
pub const LOOKUP_INTERVAL: Duration = Duration::from_millis(100);
/// After a connection attempt fails, the endpoint is not dialled again for this long (gRPC's
/// reconnect back-off starts at 1 s).
pub const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

// ---- the client ----

/// What an operation does.
#[derive(Clone, Debug, PartialEq)]
pub enum Request<'a> {
    Put { key: &'a str, value: &'a [u8] },
    Get { key: &'a str },
}

impl Request<'_> {
    fn is_read(&self) -> bool {
        matches!(self, Request::Get { .. })
    }
}

struct Endpoint {
    url: String,
    addr: SocketAddr,
    conn: Option<Conn>,
    /// No new connection attempt before this instant (ns).
    dial_after: u64,
    last_dial_error: String,
    /// `sticky`: not chosen again before this instant (ns).
    cool_until: u64,
    member_id: u64,
    /// A connection attempt is under way.
    dialling: bool,
    /// Serialises connection attempts (one dial at a time per endpoint).
    gate: Arc<tokio::sync::Mutex<()>>,
}

struct State {
    eps: Vec<Endpoint>,
    /// `sticky`: the endpoint in use; `leader`: the leader, as last looked up.
    current: usize,
    /// `all`: the next endpoint in turn.
    next: usize,
    lookup_running: bool,
    last_lookup: u64,
}

/// An etcd client of one client host. Clones share connections and state, so the operations of
/// an open loop can be in flight together.
#[derive(Clone)]
pub struct EtcdClient {
    state: Arc<Mutex<State>>,
    lookup_done: Arc<tokio::sync::Notify>,
    netns: Arc<OwnedFd>,
    target: Target,
}

/// What an attempt's error means for the operation.
enum Failure {
    /// Not applied (refused, or never sent): another endpoint may be tried.
    Retry(String),
    /// May have been applied, or the time is up: the operation ends with this error.
    Final(String),
}

impl EtcdClient {
    /// A client in the host whose network namespace is `netns`, for the cluster's `endpoints`
    /// (`http://ip:port`, in node order); `local` is the index of the client's own node.
    pub fn new(
        netns: Arc<OwnedFd>,
        endpoints: &[String],
        local: Option<usize>,
        target: Target,
    ) -> Result<EtcdClient, String> {
        let mut eps = Vec::new();
        for url in endpoints {
            let hostport = url
                .strip_prefix("http://")
                .ok_or_else(|| format!("endpoint {url}: only http:// endpoints are supported"))?;
            let addr: SocketAddr = hostport
                .trim_end_matches('/')
                .parse()
                .map_err(|e| format!("endpoint {url}: {e}"))?;
            eps.push(Endpoint {
                url: url.clone(),
                addr,
                conn: None,
                dial_after: 0,
                last_dial_error: String::new(),
                cool_until: 0,
                member_id: 0,
                dialling: false,
                gate: Arc::new(tokio::sync::Mutex::new(())),
            });
        }
        if eps.is_empty() {
            return Err("no endpoints".into());
        }
        let current = local.unwrap_or(0).min(eps.len() - 1);
        Ok(EtcdClient {
            state: Arc::new(Mutex::new(State {
                eps,
                current,
                next: current,
                lookup_running: false,
                last_lookup: 0,
            })),
            lookup_done: Arc::new(tokio::sync::Notify::new()),
            netns,
            target,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before the clock starts: connect to every endpoint and, for `leader`, find the leader.
    /// Errors are not fatal (an endpoint may be down on purpose); they are returned to report.
    pub async fn warm_up(&self, timeout: Duration) -> Vec<String> {
        let n = self.state().eps.len();
        let deadline = now_ns() + timeout.as_nanos() as u64;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let c = self.clone();
            set.spawn(async move { c.conn(i, deadline).await.err() });
        }
        let mut errors = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(Some(Failure::Retry(e) | Failure::Final(e))) = r {
                errors.push(e);
            }
        }
        if self.target == Target::Leader {
            self.lookup(timeout).await;
        }
        errors
    }

    /// Endpoint `i`'s connection if it has one (`Ok(Some)`), or its address if it may be
    /// dialled now (`Ok(None)`: the caller dials), or why not.
    fn usable(&self, i: usize) -> Result<Result<Conn, SocketAddr>, Failure> {
        let s = self.state();
        let e = &s.eps[i];
        if let Some(c) = &e.conn {
            return Ok(Ok(c.clone()));
        }
        if now_ns() < e.dial_after {
            return Err(Failure::Retry(format!(
                "{}: not connected ({})",
                e.url, e.last_dial_error
            )));
        }
        Ok(Err(e.addr))
    }

    /// A connection to endpoint `i`, dialling (one dial at a time) if there is none.
    async fn conn(&self, i: usize, deadline: u64) -> Result<Conn, Failure> {
        if let Ok(c) = self.usable(i)? {
            return Ok(c);
        }
        let gate = self.state().eps[i].gate.clone();
        let left = |d: u64| Duration::from_nanos(d.saturating_sub(now_ns()));
        let _g = tokio::time::timeout(left(deadline), gate.lock())
            .await
            .map_err(|_| Failure::Final("timed out".into()))?;
        // Whoever held the gate may have connected, or failed, meanwhile.
        let addr = match self.usable(i)? {
            Ok(c) => return Ok(c),
            Err(addr) => addr,
        };
        self.state().eps[i].dialling = true;
        let r = grpc::connect(&self.netns, addr, left(deadline)).await;
        self.state().eps[i].dialling = false;
        match r {
            Ok(c) => {
                self.state().eps[i].conn = Some(c.clone());
                Ok(c)
            }
            Err(CallError::Timeout) => Err(Failure::Final(format!("connect to {addr}: timed out"))),
            Err(e) => {
                let mut s = self.state();
                let ep = &mut s.eps[i];
                ep.dial_after = now_ns() + RECONNECT_BACKOFF.as_nanos() as u64;
                ep.last_dial_error = e.to_string();
                Err(Failure::Retry(format!("{}: {e}", ep.url)))
            }
        }
    }

    /// One request to endpoint `i`.
    async fn attempt(
        &self,
        i: usize,
        req: &Request<'_>,
        deadline: u64,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let conn = self.conn(i, deadline).await?;
        let timeout = Duration::from_nanos(deadline.saturating_sub(now_ns()));
        if timeout.is_zero() {
            return Err(Failure::Final("timed out".into()));
        }
        let require_leader = self.target != Target::All;
        let r = match req {
            Request::Put { key, value } => conn
                .unary::<_, PutResponse>(
                    PUT,
                    &PutRequest {
                        key: key.as_bytes().to_vec(),
                        value: value.to_vec(),
                    },
                    timeout,
                    require_leader,
                )
                .await
                .map(|_| None),
            Request::Get { key } => conn
                .unary::<_, RangeResponse>(
                    RANGE,
                    &RangeRequest {
                        key: key.as_bytes().to_vec(),
                    },
                    timeout,
                    require_leader,
                )
                .await
                .map(|r| r.kvs.into_iter().next().map(|kv| kv.value)),
        };
        let url = || self.state().eps[i].url.clone();
        match r {
            Ok(v) => Ok(v),
            Err(CallError::Timeout) => Err(Failure::Final(format!("{}: timed out", url()))),
            Err(CallError::Transport { message, sent }) => {
                // The connection broke: the next request dials again.
                self.state().eps[i].conn = None;
                Err(if req.is_read() || !sent {
                    Failure::Retry(message)
                } else {
                    Failure::Final(message)
                })
            }
            Err(CallError::Status { code, message }) => {
                let e = format!("{}: {message}", url());
                let refused = code == grpc::UNAVAILABLE && message.contains("no leader");
                Err(if refused || req.is_read() {
                    Failure::Retry(e)
                } else {
                    Failure::Final(e)
                })
            }
        }
    }

    /// Do `req` within `timeout` in all.
    pub async fn perform(&self, req: &Request<'_>, timeout: Duration) -> Outcome {
        let deadline = now_ns() + timeout.as_nanos() as u64;
        match self.target {
            Target::All => self.round_robin(req, deadline).await,
            Target::Sticky | Target::Leader => self.failover(req, deadline).await,
        }
    }

    async fn round_robin(&self, req: &Request<'_>, deadline: u64) -> Outcome {
        // The next endpoint in turn whose connection is up (gRPC's picker skips the others and
        // dials them in the background).
        let pick = {
            let mut s = self.state();
            let n = s.eps.len();
            let mut pick = None;
            for k in 0..n {
                let i = (s.next + k) % n;
                if s.eps[i].conn.is_some() {
                    pick = Some(i);
                    s.next = (i + 1) % n;
                    break;
                }
            }
            pick
        };
        let redial = {
            let mut s = self.state();
            let now = now_ns();
            let mut v = Vec::new();
            for (i, e) in s.eps.iter_mut().enumerate() {
                if e.conn.is_none() && !e.dialling && now >= e.dial_after {
                    e.dialling = true;
                    v.push(i);
                }
            }
            v
        };
        for i in redial {
            let c = self.clone();
            let d = now_ns() + 5_000_000_000;
            tokio::spawn(async move {
                let _ = c.conn(i, d).await;
                c.state().eps[i].dialling = false;
            });
        }
        // None is up (at the start, say): the operation waits for the next endpoint in turn
        // to connect, as gRPC queues a call while its channel is connecting.
        let i = pick.unwrap_or_else(|| {
            let mut s = self.state();
            let i = s.next;
            s.next = (i + 1) % s.eps.len();
            i
        });
        match self.attempt(i, req, deadline).await {
            Ok(v) => Outcome {
                result: Ok(v),
                endpoint: Some(i),
                attempts: 1,
            },
            Err(Failure::Retry(e) | Failure::Final(e)) => Outcome {
                result: Err(e),
                endpoint: None,
                attempts: 1,
            },
        }
    }

    async fn failover(&self, req: &Request<'_>, deadline: u64) -> Outcome {
        let n = self.state().eps.len();
        let mut tried = vec![false; n];
        let mut attempts = 0;
        let mut errors: Vec<String> = Vec::new();
        loop {
            let i = self.state().current;
            let i = if tried[i] {
                match (0..n).map(|k| (i + k) % n).find(|&j| !tried[j]) {
                    Some(j) => j,
                    None => break,
                }
            } else {
                i
            };
            tried[i] = true;
            let dialled = self.state().eps[i].conn.is_some();
            let r = self.attempt(i, req, deadline).await;
            // A request went out unless the endpoint could not be connected to.
            if dialled || !matches!(r, Err(Failure::Retry(_))) {
                attempts += 1;
            }
            match r {
                Ok(v) => {
                    if self.target == Target::Sticky {
                        self.state().current = i;
                    }
                    return Outcome {
                        result: Ok(v),
                        endpoint: Some(i),
                        attempts,
                    };
                }
                Err(f) => {
                    let (e, retry) = match f {
                        Failure::Retry(e) => (e, true),
                        Failure::Final(e) => (e, false),
                    };
                    errors.push(e);
                    self.failed(i, deadline).await;
                    if !retry || now_ns() >= deadline {
                        break;
                    }
                }
            }
        }
        Outcome {
            result: Err(errors.join("; ")),
            endpoint: None,
            attempts,
        }
    }

    /// Endpoint `i` failed an operation: move on.
    async fn failed(&self, i: usize, deadline: u64) {
        match self.target {
            Target::Sticky => {
                let mut s = self.state();
                let now = now_ns();
                s.eps[i].cool_until = now + COOL_DOWN.as_nanos() as u64;
                // Only the first of the operations that failed on the current endpoint moves:
                // the others must not skip past the endpoint it moved to.
                if s.current == i {
                    let n = s.eps.len();
                    let next = (1..n)
                        .map(|k| (i + k) % n)
                        .find(|&j| s.eps[j].cool_until <= now)
                        .unwrap_or_else(|| {
                            (1..n)
                                .map(|k| (i + k) % n)
                                .min_by_key(|&j| s.eps[j].cool_until)
                                .unwrap_or(i)
                        });
                    s.current = next;
                }
            }
            Target::Leader => {
                let start = {
                    let mut s = self.state();
                    let now = now_ns();
                    if !s.lookup_running && now >= s.last_lookup + LOOKUP_INTERVAL.as_nanos() as u64
                    {
                        s.lookup_running = true;
                        true
                    } else {
                        false
                    }
                };
                let waiting = self.lookup_done.notified();
                if start {
                    let c = self.clone();
                    tokio::spawn(async move { c.lookup(Duration::from_millis(500)).await });
                }
                if self.state().lookup_running {
                    let left = Duration::from_nanos(deadline.saturating_sub(now_ns()));
                    let _ = tokio::time::timeout(left, waiting).await;
                }
            }
            Target::All => {}
        }
    }

    /// Write `key` = `value` within `timeout`; the endpoint that answered, or the error.
    pub async fn put(&self, key: &str, value: &[u8], timeout: Duration) -> Result<String, String> {
        let o = self.perform(&Request::Put { key, value }, timeout).await;
        o.result.map(|_| self.url(o.endpoint))
    }

    /// Read `key` (linearizable) within `timeout`; the value (if the key exists) and the
    /// endpoint that answered.
    pub async fn get(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<(Option<Vec<u8>>, String), String> {
        let o = self.perform(&Request::Get { key }, timeout).await;
        let ep = self.url(o.endpoint);
        o.result.map(|v| (v, ep))
    }

    fn url(&self, i: Option<usize>) -> String {
        i.map(|i| self.state().eps[i].url.clone())
            .unwrap_or_default()
    }
}

impl KvClient for EtcdClient {
    fn perform<'a>(&'a self, op: &'a Op, timeout: Duration) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let req = match op {
                Op::Write { key, value } => Request::Put {
                    key,
                    value: value.as_bytes(),
                },
                Op::Read { key } => Request::Get { key },
            };
            EtcdClient::perform(self, &req, timeout).await
        })
    }

    fn warm_up(&self, timeout: Duration) -> BoxFuture<'_, Vec<String>> {
        Box::pin(EtcdClient::warm_up(self, timeout))
    }
}
