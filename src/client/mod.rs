//! Clients of the system under test. They run inside the client hosts' namespaces, so their
//! traffic crosses the emulated network. `stdio` drives external clients over reckon's stdio
//! protocol; `etcd` is the built-in etcd v3 client, over `grpc` (unary gRPC on HTTP/2).

pub mod etcd;
pub mod grpc;
pub mod stdio;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use crate::workload::Op;

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

/// A key-value client the open loop drives: clones share connections, and operations may be
/// in flight together.
pub trait KvClient: Clone + Send + Sync + 'static {
    /// Do `op` within `timeout` in all (every attempt included).
    fn perform(&self, op: &Op, timeout: Duration) -> impl Future<Output = Outcome> + Send;
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

/// The network namespace of `host` in the network described by `m`, opened (to create the
/// sockets of a client of that host in it).
pub fn host_netns(
    m: &crate::net::registry::Manifest,
    host: &str,
) -> Result<Arc<OwnedFd>, crate::net::NetError> {
    crate::net::open_host(m, host).map(Arc::new)
}
