//! The built-in ZooKeeper client (the `zookeeper-client` crate), what ZooKeeper's own clients
//! do: one session, on one server of the connect string at a time (the library picks it at
//! random and moves to another when the connection breaks; `--client-target` does not apply).
//! A write is `setData` on `/reckon/<key>`, creating the znode (and `/reckon`) if it is
//! missing; a read is `getData`, after a `sync` with `reads = "sync"` (the default: the read
//! then sees every write completed before it began) or straight from the server's own copy with
//! `reads = "local"` (ZooKeeper's reads are not linearizable: a lagging follower answers stale
//! data). The session times out after [`SESSION`]; an expired session is replaced by a new one.

use std::time::Duration;

use zookeeper_client as zk;

use super::{BoxFuture, KvClient, Outcome};
use crate::workload::Op;

/// How reads are served.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reads {
    /// `sync`, then `getData`.
    Sync,
    /// `getData` from the connected server.
    Local,
}

/// The session timeout asked for (the definition lets the servers grant it).
pub const SESSION: Duration = Duration::from_secs(10);
const ROOT: &str = "/reckon";

/// A ZooKeeper client of one client host.
pub struct ZkClient {
    connect: String,
    reads: Reads,
    session: tokio::sync::Mutex<Option<zk::Client>>,
}

fn error(e: zk::Error) -> String {
    e.to_string()
}

impl ZkClient {
    /// A client for the servers at `endpoints` (`ip:port`).
    pub fn new(endpoints: &[String], reads: Reads) -> ZkClient {
        ZkClient {
            connect: endpoints.join(","),
            reads,
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// The session, opened (or opened again, after it expired) if need be.
    async fn client(&self) -> Result<zk::Client, String> {
        let mut s = self.session.lock().await;
        if let Some(c) = s.as_ref() {
            if !c.state().is_terminated() {
                return Ok(c.clone());
            }
        }
        let c = zk::Client::connector()
            .with_session_timeout(SESSION)
            .with_connection_timeout(Duration::from_secs(1))
            .connect(&self.connect)
            .await
            .map_err(error)?;
        *s = Some(c.clone());
        Ok(c)
    }

    async fn write(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let c = self.client().await?;
        let path = format!("{ROOT}/{key}");
        match c.set_data(&path, value, None).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NoNode) => {
                let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                match c.mkdir(ROOT, &opts).await {
                    Ok(()) | Err(zk::Error::NodeExists) => {}
                    Err(e) => return Err(error(e)),
                }
                match c.create(&path, value, &opts).await {
                    Ok(_) => Ok(()),
                    // Created meanwhile by another client: write over it.
                    Err(zk::Error::NodeExists) => c
                        .set_data(&path, value, None)
                        .await
                        .map(|_| ())
                        .map_err(error),
                    Err(e) => Err(error(e)),
                }
            }
            Err(e) => Err(error(e)),
        }
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let c = self.client().await?;
        let path = format!("{ROOT}/{key}");
        if self.reads == Reads::Sync {
            c.sync(&path).await.map_err(error)?;
        }
        match c.get_data(&path).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(error(e)),
        }
    }
}

impl KvClient for ZkClient {
    fn perform<'a>(&'a self, op: &'a Op, timeout: Duration) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let work = async {
                match op {
                    Op::Write { key, value } => {
                        self.write(key, value.as_bytes()).await.map(|_| None)
                    }
                    Op::Read { key } => self.read(key).await,
                }
            };
            let result = match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err("timed out".to_string()),
            };
            Outcome {
                result,
                // The library does not say which server answered.
                endpoint: None,
                attempts: 1,
            }
        })
    }

    fn warm_up(&self, timeout: Duration) -> BoxFuture<'_, Vec<String>> {
        Box::pin(super::open_within(timeout, "session", self.client()))
    }
}
