//! The NATS adapter: JetStream key-value, one bucket (`reckon`, stream `KV_reckon`) with a
//! replica on every node, created by [`Adapter::prepare`] once the servers form their
//! JetStream cluster. Members are asked about themselves over their monitoring port (the
//! definition's `status_port`), from inside their own hosts: `/jsz` names the bucket stream's
//! Raft group, `/raftz` gives that group's state. Endpoints are `nats://ip:port`; the built-in
//! client is `client::nats`.
//!
//! What "leader" means: the leader of the bucket stream's Raft group, which orders every write
//! (and, with `reads = "leader"`, answers every read). JetStream's meta group (which creates
//! streams) has a leader of its own, possibly on another node; reckon's faults aim at the
//! stream's. Term and index are the stream group's Raft term and applied index.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{http, Adapter, Answer, ClientSpec, Member, MemberStatus, Prepare};
use crate::client::nats::{self as client, NatsClient, Reads};
use crate::client::KvClient;
use crate::net::registry::Manifest;

/// NATS JetStream.
pub struct Nats;

/// How long one monitoring request may take.
const ASK: Duration = Duration::from_secs(1);

impl Adapter for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn status(&self, m: &Manifest, members: &[Member]) -> Vec<MemberStatus> {
        let asked = super::ask_each(m, members, |mb| {
            let addr = SocketAddr::from((mb.ip, mb.status_port));
            let jsz = http::get(addr, "/jsz?accounts=true&streams=true", ASK).ok()?;
            let group = raft_group(&serde_json::from_str(&jsz).ok()?)?;
            let path = format!("/raftz?acc=%24G&group={group}");
            let raftz: Value = serde_json::from_str(&http::get(addr, &path, ASK).ok()?).ok()?;
            group_state(&mb.name, &raftz["$G"][group.as_str()])
        });
        members
            .iter()
            .zip(asked)
            .map(|(mb, a)| MemberStatus {
                node: mb.name.clone(),
                answer: a.map(|g| Answer {
                    member_id: mb.id as u64,
                    leader_id: members
                        .iter()
                        .find(|o| Some(&o.name) == g.leader.as_ref())
                        .map_or(0, |o| o.id as u64),
                    raft_term: g.term,
                    raft_index: g.applied,
                }),
            })
            .collect()
    }

    fn endpoint(&self, ip: Ipv4Addr, port: u16) -> String {
        format!("nats://{ip}:{port}")
    }

    fn client(&self, spec: ClientSpec<'_>) -> Result<Arc<dyn KvClient>, String> {
        Ok(Arc::new(NatsClient::new(
            spec.endpoints,
            spec.local,
            reads(spec.options)?,
        )?))
    }

    fn client_options(&self) -> &'static [&'static str] {
        &["reads"]
    }

    /// Create the bucket, replicated on every member, from inside the first member's host.
    fn prepare(&self, p: Prepare<'_>) -> Result<(), String> {
        let first = p.members.first().ok_or("no members")?;
        let fd = crate::net::open_host(p.manifest, &first.name).map_err(|e| e.to_string())?;
        let (endpoints, replicas, within) = (p.endpoints.to_vec(), p.members.len(), p.within);
        crate::net::netns::in_netns(&fd, || {
            let rt = crate::client::runtime().map_err(|e| e.to_string())?;
            rt.block_on(client::create_bucket(&endpoints, replicas, within))
        })
        .map_err(|e| format!("enter {}: {e}", first.name))?
    }
}

fn reads(options: &std::collections::BTreeMap<String, String>) -> Result<Reads, String> {
    match options.get("reads").map(String::as_str) {
        None | Some("leader") => Ok(Reads::Leader),
        Some("direct") => Ok(Reads::Direct),
        Some(other) => Err(format!(
            "[client] reads = \"{other}\": give \"leader\" or \"direct\""
        )),
    }
}

/// The bucket stream's Raft group, from `/jsz?accounts=true&streams=true`.
fn raft_group(jsz: &Value) -> Option<String> {
    jsz["account_details"]
        .as_array()?
        .iter()
        .filter_map(|a| a["stream_detail"].as_array())
        .flatten()
        .find(|s| s["name"] == client::STREAM)?["cluster"]["raft_group"]
        .as_str()
        .map(str::to_string)
}

/// A Raft group's state as one member sees it.
#[derive(Debug, PartialEq)]
struct GroupState {
    /// The leader's server name, if the member knows one.
    leader: Option<String>,
    term: u64,
    applied: u64,
}

/// From `/raftz`'s entry for one group: its peers are named by peer id, the member itself by
/// `id` (its name is `own`).
fn group_state(own: &str, g: &Value) -> Option<GroupState> {
    let leader = g["leader"]
        .as_str()
        .filter(|l| !l.is_empty())
        .and_then(|l| {
            if g["id"].as_str() == Some(l) {
                Some(own.to_string())
            } else {
                g["peers"][l]["name"].as_str().map(str::to_string)
            }
        });
    Some(GroupState {
        leader,
        term: g["term"].as_u64()?,
        applied: g["applied"].as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stream_group_and_its_leader() {
        let jsz = serde_json::json!({"account_details": [{"name": "$G", "stream_detail": [
            {"name": "OTHER", "cluster": {"raft_group": "S-R3F-other"}},
            {"name": "KV_reckon", "cluster": {"raft_group": "S-R3F-b6YN", "leader": "n3"}}]}]});
        assert_eq!(raft_group(&jsz).as_deref(), Some("S-R3F-b6YN"));
        assert_eq!(
            raft_group(&serde_json::json!({"account_details": []})),
            None
        );
        let g = serde_json::json!({"id": "44jz", "state": "FOLLOWER", "leader": "BXSc",
            "term": 4, "applied": 1001, "peers": {"BXSc": {"name": "mn3"}, "fjFy": {"name": "mn1"}}});
        let want = GroupState {
            leader: Some("mn3".into()),
            term: 4,
            applied: 1001,
        };
        assert_eq!(group_state("mn2", &g), Some(want));
        let mut own = g.clone();
        own["leader"] = "44jz".into();
        assert_eq!(
            group_state("mn2", &own).unwrap().leader.as_deref(),
            Some("mn2")
        );
        let mut none = g;
        none["leader"] = "".into();
        assert_eq!(group_state("mn2", &none).unwrap().leader, None);
    }
}
