//! The built-in etcd v3 client (gRPC, the `etcd-client` crate). It runs inside a client host:
//! [`in_host`] gives it a thread in that host's namespace with a single-threaded tokio runtime,
//! so every connection it opens crosses the emulated network from that host.
//!
//! Endpoint choice, `--client-target`:
//! - `local`: the node in the client's own data centre first, then the others in order;
//! - `leader`: the current leader first (asked with the maintenance Status RPC, asked again
//!   after a failure), then the others;
//! - `all`: the crate's load balancing over every node.
//!
//! An operation has one timeout in all; each endpoint tried gets an equal share of it.

use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use serde::{Deserialize, Serialize};

use crate::net::{netns, registry::Manifest, NetError};

/// Which node a client sends to first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The node in the client's own data centre first (for hosts without one: the first node).
    Local,
    /// The current leader first.
    Leader,
    /// Balance over every node.
    All,
}

/// One finished operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    /// The endpoint that answered.
    pub endpoint: String,
    /// For reads: the value, if the key exists.
    pub value: Option<Vec<u8>>,
}

/// An etcd client of one client host. Clones share connections, so the operations of an
/// open-loop run can be in flight together (on the host's single-threaded runtime).
#[derive(Clone)]
pub struct EtcdKv {
    inner: std::rc::Rc<std::cell::RefCell<Inner>>,
    target: Target,
    all: Vec<String>,
    connect_timeout: Duration,
}

struct Inner {
    /// Endpoints in the order to try them (for `All`: one balanced client).
    order: Vec<String>,
    clients: Vec<Option<Client>>,
}

impl EtcdKv {
    /// `endpoints` of every node in node order; `local` the index of the client's own node.
    pub fn new(endpoints: Vec<String>, local: Option<usize>, target: Target) -> EtcdKv {
        let mut order = endpoints.clone();
        if let (Target::Local, Some(i)) = (target, local) {
            let last = order.len().saturating_sub(1);
            order.rotate_left(i.min(last));
        }
        if target == Target::All {
            order = vec![endpoints.join(",")];
        }
        let clients = order.iter().map(|_| None).collect();
        EtcdKv {
            inner: std::rc::Rc::new(std::cell::RefCell::new(Inner { order, clients })),
            target,
            all: endpoints,
            connect_timeout: Duration::from_millis(500),
        }
    }

    fn endpoint(&self, i: usize) -> String {
        self.inner.borrow().order[i].clone()
    }

    fn len(&self) -> usize {
        self.inner.borrow().order.len()
    }

    async fn client(&self, i: usize) -> Result<Client, String> {
        if let Some(c) = self.inner.borrow().clients[i].clone() {
            return Ok(c);
        }
        let ep = self.endpoint(i);
        let eps: Vec<&str> = ep.split(',').collect();
        let opts = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2));
        let c = tokio::time::timeout(self.connect_timeout * 2, Client::connect(eps, Some(opts)))
            .await
            .map_err(|_| format!("connect to {ep}: timed out"))?
            .map_err(|e| format!("connect to {ep}: {e}"))?;
        let mut inner = self.inner.borrow_mut();
        if inner.order.get(i) == Some(&ep) {
            inner.clients[i] = Some(c.clone());
        }
        Ok(c)
    }

    /// Put the leader first (Status RPC on each node until one names a leader it knows).
    async fn find_leader(&self) {
        let mut ids = Vec::new();
        let mut leader = 0;
        for i in 0..self.len() {
            let Ok(mut c) = self.client(i).await else {
                continue;
            };
            if let Ok(Ok(s)) = tokio::time::timeout(self.connect_timeout, c.status()).await {
                ids.push((i, s.header().map(|h| h.member_id()).unwrap_or(0)));
                if leader == 0 {
                    leader = s.leader();
                }
            }
        }
        if let Some(&(i, _)) = ids.iter().find(|(_, id)| *id == leader && leader != 0) {
            let mut inner = self.inner.borrow_mut();
            inner.order[..=i].rotate_right(1);
            inner.clients[..=i].rotate_right(1);
        }
    }

    /// Write `key` = `value` within `timeout` in all.
    pub async fn put(&self, key: &str, value: &[u8], timeout: Duration) -> Result<Served, String> {
        let (k, v) = (key.to_string(), value.to_vec());
        self.run(timeout, move |mut c| {
            let (k, v) = (k.clone(), v.clone());
            async move { c.put(k, v, None).await.map(|_| None) }
        })
        .await
    }

    /// Read `key` (linearizable) within `timeout` in all.
    pub async fn get(&self, key: &str, timeout: Duration) -> Result<Served, String> {
        let k = key.to_string();
        self.run(timeout, move |mut c| {
            let k = k.clone();
            async move {
                c.get(k, None)
                    .await
                    .map(|r| r.kvs().first().map(|kv| kv.value().to_vec()))
            }
        })
        .await
    }

    /// Try the endpoints in order until one answers, all within `timeout`.
    async fn run<F, Fut>(&self, timeout: Duration, op: F) -> Result<Served, String>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<Option<Vec<u8>>, etcd_client::Error>>,
    {
        let deadline = Instant::now() + timeout;
        let untouched = self.inner.borrow().clients.iter().all(|c| c.is_none());
        if self.target == Target::Leader && untouched {
            let _ = tokio::time::timeout(timeout / 2, self.find_leader()).await;
        }
        let mut errors = Vec::new();
        // Each endpoint gets an equal share of the timeout, so a node that hangs (cut off from
        // its leader, say) leaves time to try the next.
        let share = timeout / self.len().max(1) as u32;
        for i in 0..self.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let left = if i + 1 == self.len() {
                left
            } else {
                left.min(share)
            };
            let ep = self.endpoint(i);
            let attempt = async {
                let c = self.client(i).await?;
                op(c).await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(left, attempt).await {
                Ok(Ok(value)) => {
                    return Ok(Served {
                        endpoint: ep,
                        value,
                    })
                }
                Ok(Err(e)) => errors.push(format!("{ep}: {e}")),
                Err(_) => errors.push(format!("{ep}: timed out")),
            }
            // A failed endpoint gets a fresh connection next time.
            let mut inner = self.inner.borrow_mut();
            if inner.order.get(i) == Some(&ep) {
                inner.clients[i] = None;
            }
        }
        if self.target == Target::Leader {
            let _ = tokio::time::timeout(Duration::from_millis(200), self.find_leader()).await;
        }
        if errors.is_empty() {
            errors.push(format!("timed out after {timeout:?}"));
        }
        Err(errors.join("; "))
    }

    /// Every node's endpoint, in node order.
    pub fn endpoints(&self) -> &[String] {
        &self.all
    }
}

/// The index, among the topology's nodes, of the node in `client`'s data centre.
pub fn local_node(t: &crate::topology::Topology, client: &str) -> Option<usize> {
    let dc = t.host(client)?.dc?;
    t.nodes().position(|n| n.dc == Some(dc))
}

/// Run `f` to completion on a thread inside `host`'s namespace, with a single-threaded tokio
/// runtime: every socket it opens belongs to that host.
pub fn in_host<T, Fut>(
    m: &Manifest,
    host: &str,
    f: impl FnOnce() -> Fut + Send,
) -> Result<T, NetError>
where
    T: Send,
    Fut: Future<Output = T>,
{
    let ns = m.netns_of(host).ok_or_else(|| NetError::NoSuchHost {
        host: host.into(),
        prefix: m.prefix.clone(),
        known: m
            .namespaces
            .iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let fd = netns::open(ns).map_err(|source| NetError::Host {
        host: host.into(),
        what: "open namespace".into(),
        source,
    })?;
    netns::in_netns(&fd, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(f())
    })
    .map_err(|source| NetError::Host {
        host: host.into(),
        what: "enter namespace".into(),
        source,
    })
}
