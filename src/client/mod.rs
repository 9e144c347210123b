//! Clients of the system under test. They run inside the client hosts' namespaces, so their
//! traffic crosses the emulated network. [`KvClient`] is what the open loop drives; each system
//! adapter (`system::Adapter`) makes its built-in one: `etcd` (over `grpc`, unary gRPC on
//! HTTP/2), `zookeeper`, `nats`. `stdio` drives external clients over reckon's stdio protocol.

pub mod etcd;
pub mod grpc;
pub mod nats;
pub mod stdio;
pub mod zookeeper;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workload::Op;

/// Which endpoints a built-in client sends to: the real client it models (see the README's
/// "Clients"; each client says which it follows — ZooKeeper's session client has its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Stay on the endpoint that last answered (first: the client's own data centre's node);
    /// on a failure move to the next, and leave the failed one alone for a cool-down.
    #[value(alias = "local")]
    #[serde(alias = "local")]
    Sticky,
    /// The current leader, looked up again (once, shared) after a failure.
    Leader,
    /// Round-robin over every endpoint whose connection is up, one attempt (etcd clientv3).
    All,
}

/// How one operation went.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The value read (reads of an existing key; `None` for writes), or the error.
    pub result: Result<Option<Vec<u8>>, String>,
    /// Index (in node order) of the endpoint that answered.
    pub endpoint: Option<usize>,
    /// Requests sent (0 if no endpoint could be reached).
    pub attempts: u32,
}

/// A future a client returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A key-value client the open loop drives (shared: operations may be in flight together). A
/// write creates its key if it does not exist yet (the prerequisites are writes).
pub trait KvClient: Send + Sync {
    /// Do `op` within `timeout` in all (every attempt included).
    fn perform<'a>(&'a self, op: &'a Op, timeout: Duration) -> BoxFuture<'a, Outcome>;
    /// Before the clock starts: connect (within `timeout`). What could not be reached is
    /// returned to report, not fatal (a node may be down on purpose).
    fn warm_up(&self, timeout: Duration) -> BoxFuture<'_, Vec<String>>;
}

/// A client's [`KvClient::warm_up`] when it has one connection (or session) to open: what went
/// wrong opening it within `timeout`, if anything (`what` names it: "connection", "session").
pub async fn open_within<T>(
    timeout: Duration,
    what: &str,
    open: impl Future<Output = Result<T, String>>,
) -> Vec<String> {
    match tokio::time::timeout(timeout, open).await {
        Ok(Ok(_)) => Vec::new(),
        Ok(Err(e)) => vec![e],
        Err(_) => vec![format!("no {what} within {timeout:?}")],
    }
}

/// The index, among the topology's nodes, of the node in `client`'s data centre.
pub fn local_node(t: &crate::topology::Topology, client: &str) -> Option<usize> {
    let dc = t.host(client)?.dc?;
    t.nodes().position(|n| n.dc == Some(dc))
}

/// A single-threaded tokio runtime for the clients (they need no more: see `run::drive`).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
