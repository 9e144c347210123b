//! The ZooKeeper adapter: a member's role and epoch from the `srvr` four-letter command (which
//! the definition whitelists), asked over TCP from inside the member's own host; endpoints as
//! `ip:port`, ZooKeeper's connect-string form; the built-in client is `client::zookeeper`.
//!
//! What "leader" means: the member whose `srvr` says `Mode: leader`. Its term is the epoch, the
//! high 32 bits of the last zxid; a follower's own answer names no leader, so followers are
//! given the one leader that answered (the highest epoch's, if two claim it).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::{Adapter, Answer, ClientSpec, Member, MemberStatus};
use crate::client::zookeeper::{Reads, ZkClient};
use crate::client::KvClient;
use crate::net::registry::Manifest;

/// ZooKeeper (ZAB).
pub struct ZooKeeper;

impl Adapter for ZooKeeper {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn status(&self, m: &Manifest, members: &[Member]) -> Vec<MemberStatus> {
        let asked = super::ask_each(m, members, |mb| {
            parse(&srvr(SocketAddr::from((mb.ip, mb.port)))?)
        });
        // The leader: who says so (the highest epoch, if two do).
        let leader = members
            .iter()
            .zip(&asked)
            .filter_map(|(mb, a)| a.filter(|(lead, _)| *lead).map(|(_, z)| (z >> 32, mb.id)))
            .max()
            .map(|(_, id)| id as u64)
            .unwrap_or(0);
        members
            .iter()
            .zip(asked)
            .map(|(mb, a)| MemberStatus {
                node: mb.name.clone(),
                answer: a.map(|(_, zxid)| Answer {
                    member_id: mb.id as u64,
                    leader_id: leader,
                    raft_term: zxid >> 32,
                    raft_index: zxid & 0xffff_ffff,
                }),
            })
            .collect()
    }

    fn endpoint(&self, ip: Ipv4Addr, port: u16) -> String {
        format!("{ip}:{port}")
    }

    fn client(&self, spec: ClientSpec<'_>) -> Result<Arc<dyn KvClient>, String> {
        let reads = match spec.options.get("reads").map(String::as_str) {
            None | Some("sync") => Reads::Sync,
            Some("local") => Reads::Local,
            Some(other) => {
                return Err(format!(
                    "[client] reads = \"{other}\": give \"sync\" or \"local\""
                ))
            }
        };
        Ok(Arc::new(ZkClient::new(spec.endpoints, reads)))
    }

    fn client_options(&self) -> &'static [&'static str] {
        &["reads"]
    }
}

/// `srvr`'s answer from `addr`, within a second.
fn srvr(addr: SocketAddr) -> Option<String> {
    let t = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&addr, t).ok()?;
    s.set_read_timeout(Some(t)).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// (is the leader, last zxid) from `srvr`; None unless the member is serving (a member
/// without a quorum says "not currently serving requests").
fn parse(out: &str) -> Option<(bool, u64)> {
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    let mode = field("Mode:")?;
    let zxid = field("Zxid:")?;
    let zxid = u64::from_str_radix(zxid.trim_start_matches("0x"), 16).ok()?;
    match mode.as_str() {
        "leader" | "standalone" => Some((true, zxid)),
        "follower" | "observer" => Some((false, zxid)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_srvr() {
        let leader = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x300000002\nMode: leader\nNode count: 5\n";
        assert_eq!(super::parse(leader), Some((true, 0x3_0000_0002)));
        let follower = leader.replace("Mode: leader", "Mode: follower");
        assert_eq!(super::parse(&follower), Some((false, 0x3_0000_0002)));
        assert_eq!(
            super::parse("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }
}
