//! The built-in NATS client (the `async-nats` crate, NATS's own Rust client), what NATS's
//! clients do: one connection to one server, the client's own data centre's first (the server
//! list in node order from there, kept in that order), and on a broken connection a reconnect
//! to the next with the library's back-off; `--client-target` does not apply. The servers
//! route requests over the cluster to the bucket stream's leader.
//!
//! A write is a key-value `put` on bucket [`BUCKET`]: a publish to `$KV.reckon.<key>` answered
//! once the stream's Raft group has committed it. A read is a `get`, served as the
//! definition's `reads` option says (the bucket, made by [`create_bucket`], allows both):
//! - `reads = "leader"` (the default): a `STREAM.MSG.GET` request for the key's last message,
//!   which only the stream's leader answers, from its own state. It sees
//!   every write committed before it, except while a deposed leader has not yet noticed (NATS
//!   has no read lease or read index): not strictly linearizable across a leader change.
//! - `reads = "direct"`: direct gets, answered by any replica (the nearest): fast, and
//!   possibly stale.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, kv};
use async_nats::ServerAddr;

use super::{BoxFuture, KvClient, Outcome};
use crate::workload::Op;

/// The bucket every operation goes to.
pub const BUCKET: &str = "reckon";
/// Its stream's name (JetStream's: `KV_<bucket>`).
pub const STREAM: &str = "KV_reckon";

/// How reads are served.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reads {
    /// By the stream's leader.
    Leader,
    /// By any replica.
    Direct,
}

/// A NATS client of one client host.
pub struct NatsClient {
    servers: Vec<ServerAddr>,
    reads: Reads,
    /// The servers' (ip, port), in node order: which one the client is connected to.
    nodes: Vec<(String, u16)>,
    conn: Mutex<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Conn {
    client: async_nats::Client,
    store: Arc<kv::Store>,
}

fn addrs(endpoints: &[String]) -> Result<Vec<ServerAddr>, String> {
    endpoints
        .iter()
        .map(|e| e.parse().map_err(|err| format!("endpoint {e}: {err}")))
        .collect()
}

fn options() -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .retain_servers_order()
        .ignore_discovered_servers()
        .connection_timeout(Duration::from_secs(1))
}

impl NatsClient {
    /// A client for the servers at `endpoints` (`nats://ip:port`, node order), starting with
    /// `local`'s.
    pub fn new(
        endpoints: &[String],
        local: Option<usize>,
        reads: Reads,
    ) -> Result<NatsClient, String> {
        let all = addrs(endpoints)?;
        let start = local.unwrap_or(0).min(all.len().saturating_sub(1));
        let servers = all[start..].iter().chain(&all[..start]).cloned().collect();
        let nodes = all
            .iter()
            .map(|a| (a.host().to_string(), a.port()))
            .collect();
        Ok(NatsClient {
            servers,
            reads,
            nodes,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    fn current(&self) -> Option<Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The connection and the bucket, made on first use (one attempt at a time). The library
    /// reconnects a broken connection itself.
    async fn conn(&self) -> Result<Conn, String> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let client = options()
            .connect(self.servers.clone())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let js = jetstream::new(client.clone());
        let store = js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| format!("bucket {BUCKET}: {e}"))?;
        let c = Conn {
            client,
            store: Arc::new(store),
        };
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    async fn read(&self, store: &kv::Store, key: &str) -> Result<Option<Vec<u8>>, String> {
        if self.reads == Reads::Direct {
            return store
                .get(key)
                .await
                .map(|v| v.map(|b| b.to_vec()))
                .map_err(|e| e.to_string());
        }
        let subject = format!("{}{key}", store.prefix);
        match store.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => {
                // A deleted or purged key's last message is a marker.
                let op = m.headers.get("KV-Operation").map(|v| v.as_str());
                Ok((!matches!(op, Some("DEL" | "PURGE"))).then(|| m.payload.to_vec()))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Index of the server the client is connected to.
    fn connected(&self, c: &Conn) -> Option<usize> {
        let info = c.client.server_info();
        self.nodes
            .iter()
            .position(|(h, p)| *h == info.host && *p == info.port)
    }
}

impl KvClient for NatsClient {
    fn perform<'a>(&'a self, op: &'a Op, timeout: Duration) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let work = async {
                let c = self.conn().await?;
                let r = match op {
                    Op::Write { key, value } => c
                        .store
                        .put(key.as_str(), value.clone().into_bytes().into())
                        .await
                        .map(|_| None)
                        .map_err(|e| e.to_string()),
                    Op::Read { key } => self.read(&c.store, key).await,
                };
                Ok::<_, String>((r, c))
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(Ok((result, c))) => Outcome {
                    result,
                    endpoint: self.connected(&c),
                    attempts: 1,
                },
                Ok(Err(e)) => Outcome {
                    result: Err(e),
                    endpoint: None,
                    attempts: 0,
                },
                Err(_) => Outcome {
                    result: Err("timed out".into()),
                    endpoint: self.current().and_then(|c| self.connected(&c)),
                    attempts: 1,
                },
            }
        })
    }

    fn warm_up(&self, timeout: Duration) -> BoxFuture<'_, Vec<String>> {
        Box::pin(super::open_within(timeout, "connection", self.conn()))
    }
}

/// Create the bucket with `replicas` replicas (one per node), retrying until JetStream's
/// cluster can place it or `within` has passed. Creating it again with the same settings is
/// not an error (a restarted `reckon topo up`, say).
pub async fn create_bucket(
    endpoints: &[String],
    replicas: usize,
    within: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    let servers = addrs(endpoints)?;
    let config = kv::Config {
        bucket: BUCKET.into(),
        history: 1,
        num_replicas: replicas,
        ..Default::default()
    };
    let mut last = String::from("no attempt");
    while tokio::time::Instant::now() < deadline {
        if crate::signals::interrupted() {
            return Err("interrupted".into());
        }
        let attempt = async {
            let client = options()
                .connect(servers.clone())
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut js = jetstream::new(client);
            js.set_timeout(Duration::from_secs(2));
            js.create_key_value(config.clone())
                .await
                .map(|_| ())
                .map_err(|e| format!("create bucket {BUCKET}: {e}"))
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => break,
        }
        // JetStream's cluster forms after the servers meet: try again shortly.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("no bucket within {within:?}: {last}"))
}
