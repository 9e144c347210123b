//! The etcd adapter: member status and leader lookup with `etcdctl endpoint status`, run inside
//! each node's own host so the question crosses only that host's stack; `http://` endpoints;
//! the built-in client is `client::etcd`.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;

use super::{Adapter, Answer, ClientSpec, Member, MemberStatus};
use crate::client::etcd::EtcdClient;
use crate::client::KvClient;
use crate::net::{command_in, registry::Manifest};

pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// etcd and etcd-like systems (their gRPC API, etcdctl).
pub struct Etcd;

impl Adapter for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn status(&self, m: &Manifest, members: &[Member]) -> Vec<MemberStatus> {
        status(m, members)
    }

    fn endpoint(&self, ip: Ipv4Addr, port: u16) -> String {
        format!("http://{ip}:{port}")
    }

    fn client(&self, spec: ClientSpec<'_>) -> Result<Arc<dyn KvClient>, String> {
        Ok(Arc::new(EtcdClient::new(
            spec.netns,
            spec.endpoints,
            spec.local,
            spec.target,
        )?))
    }
}

/// Status of each member, asked in parallel with a 1 s timeout each.
pub fn status(m: &Manifest, members: &[Member]) -> Vec<MemberStatus> {
    let children: Vec<_> = members
        .iter()
        .map(|Member { name, ip, port, .. }| {
            let child = command_in(m, name, ETCDCTL).ok().and_then(|mut c| {
                c.args([
                    &format!("--endpoints=http://{ip}:{port}"),
                    "--dial-timeout=1s",
                    "--command-timeout=1s",
                    "endpoint",
                    "status",
                    "-w",
                    "json",
                ])
                .env("ETCDCTL_API", "3")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()
            });
            (name.clone(), child)
        })
        .collect();
    children
        .into_iter()
        .map(|(node, child)| {
            let answer = child
                .and_then(|c| c.wait_with_output().ok())
                .filter(|o| o.status.success())
                .and_then(|o| parse(&o.stdout));
            MemberStatus { node, answer }
        })
        .collect()
}

/// `etcdctl endpoint status -w json`: `[{"Endpoint": ..., "Status": {"header": {"member_id",
/// "raft_term"}, "leader", "raftIndex", ...}}]`.
fn parse(out: &[u8]) -> Option<Answer> {
    let v: Value = serde_json::from_slice(out).ok()?;
    let s = &v.as_array()?.first()?["Status"];
    Some(Answer {
        member_id: s["header"]["member_id"].as_u64()?,
        leader_id: s["leader"].as_u64()?,
        raft_term: s["raftTerm"]
            .as_u64()
            .or_else(|| s["header"]["raft_term"].as_u64())
            .unwrap_or(0),
        raft_index: s["raftIndex"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_endpoint_status() {
        let out = br#"[{"Endpoint":"http://10.0.1.1:2379","Status":{"header":{"cluster_id":17237436991929493444,"member_id":9372538179322589801,"revision":1,"raft_term":2},"version":"3.4.23","dbSize":20480,"leader":9372538179322589801,"raftIndex":8,"raftTerm":2,"raftAppliedIndex":8,"dbSizeInUse":20480}}]"#;
        let a = super::parse(out).unwrap();
        assert_eq!(a.member_id, 9372538179322589801);
        assert_eq!(a.leader_id, a.member_id);
        assert_eq!((a.raft_term, a.raft_index), (2, 8));
        assert!(super::parse(b"garbage").is_none());
    }
}
