//! Partitions as OpenFlow drop rules, spoken directly (OpenFlow 1.0) to a bridge's management
//! socket: a cut takes well under a millisecond once the connection is open (`ovs-ofctl`, a
//! process per change, takes 10-15 ms here). Hosts' own firewalls stay untouched.
//!
//! A directed cut s -> d is one rule on s's switch, where s's packets enter the network:
//! `priority=1000, ip, nw_src=s, nw_dst=d, actions=drop`. Healing deletes exactly those rules.

use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const OFP_VERSION: u8 = 0x01;
const OFPT_HELLO: u8 = 0;
const OFPT_ERROR: u8 = 1;
const OFPT_ECHO_REQUEST: u8 = 2;
const OFPT_ECHO_REPLY: u8 = 3;
const OFPT_FLOW_MOD: u8 = 14;
const OFPT_BARRIER_REQUEST: u8 = 18;
const OFPT_BARRIER_REPLY: u8 = 19;
const OFPFC_ADD: u16 = 0;
const OFPFC_DELETE_STRICT: u16 = 4;
const PRIORITY: u16 = 1000;
/// Marks reckon's rules.
pub const COOKIE: u64 = 0x7265_636b_6f6e_0001;

/// An OpenFlow connection to one bridge.
pub struct OfConn {
    stream: UnixStream,
    xid: u32,
    pub bridge: String,
}

impl OfConn {
    /// Connect to `<rundir>/<bridge>.mgmt` and say hello.
    pub fn connect(rundir: &Path, bridge: &str) -> io::Result<OfConn> {
        let path = rundir.join(format!("{bridge}.mgmt"));
        let stream = UnixStream::connect(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut c = OfConn {
            stream,
            xid: 0,
            bridge: bridge.into(),
        };
        c.send(OFPT_HELLO, &[])?;
        let (ty, _) = c.recv()?;
        if ty != OFPT_HELLO {
            return Err(io::Error::other(format!(
                "{bridge}: expected OpenFlow hello, got type {ty}"
            )));
        }
        Ok(c)
    }

    fn send(&mut self, ty: u8, body: &[u8]) -> io::Result<u32> {
        self.xid = self.xid.wrapping_add(1);
        let mut m = Vec::with_capacity(8 + body.len());
        m.push(OFP_VERSION);
        m.push(ty);
        m.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        m.extend_from_slice(&self.xid.to_be_bytes());
        m.extend_from_slice(body);
        self.stream.write_all(&m)?;
        Ok(self.xid)
    }

    fn recv(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut h = [0u8; 8];
        self.stream.read_exact(&mut h)?;
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(8)];
        self.stream.read_exact(&mut body)?;
        Ok((h[1], body))
    }

    fn flow_mod(src: Ipv4Addr, dst: Ipv4Addr, command: u16) -> Vec<u8> {
        // ofp_match: wildcard everything but dl_type, nw_src and nw_dst.
        const OFPFW_ALL: u32 = (1 << 22) - 1;
        const OFPFW_DL_TYPE: u32 = 1 << 4;
        const OFPFW_NW_SRC_MASK: u32 = 0x3f << 8;
        const OFPFW_NW_DST_MASK: u32 = 0x3f << 14;
        let wildcards = OFPFW_ALL & !OFPFW_DL_TYPE & !OFPFW_NW_SRC_MASK & !OFPFW_NW_DST_MASK;
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&wildcards.to_be_bytes());
        b.extend_from_slice(&[0u8; 2 + 6 + 6 + 2 + 1 + 1]); // in_port, dl_src, dl_dst, dl_vlan, pcp, pad
        b.extend_from_slice(&0x0800u16.to_be_bytes()); // dl_type: IPv4
        b.extend_from_slice(&[0u8; 1 + 1 + 2]); // nw_tos, nw_proto, pad
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(&[0u8; 4]); // tp_src, tp_dst
        b.extend_from_slice(&COOKIE.to_be_bytes());
        b.extend_from_slice(&command.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes()); // idle_timeout
        b.extend_from_slice(&0u16.to_be_bytes()); // hard_timeout
        b.extend_from_slice(&PRIORITY.to_be_bytes());
        b.extend_from_slice(&u32::MAX.to_be_bytes()); // buffer_id: none
        b.extend_from_slice(&0xffffu16.to_be_bytes()); // out_port: none
        b.extend_from_slice(&0u16.to_be_bytes()); // flags; no actions: drop
        b
    }

    /// Add (or remove) drop rules for the directed pairs, then wait for the switch to confirm
    /// (barrier), failing on any OpenFlow error.
    pub fn drops(&mut self, pairs: &[(Ipv4Addr, Ipv4Addr)], add: bool) -> io::Result<()> {
        let command = if add { OFPFC_ADD } else { OFPFC_DELETE_STRICT };
        for (s, d) in pairs {
            self.send(OFPT_FLOW_MOD, &Self::flow_mod(*s, *d, command))?;
        }
        self.send(OFPT_BARRIER_REQUEST, &[])?;
        loop {
            let (ty, body) = self.recv()?;
            match ty {
                OFPT_BARRIER_REPLY => return Ok(()),
                OFPT_ERROR => {
                    let (t, c) = if body.len() >= 4 {
                        (
                            u16::from_be_bytes([body[0], body[1]]),
                            u16::from_be_bytes([body[2], body[3]]),
                        )
                    } else {
                        (0, 0)
                    };
                    return Err(io::Error::other(format!(
                        "{}: OpenFlow error type {t} code {c}",
                        self.bridge
                    )));
                }
                OFPT_ECHO_REQUEST => {
                    self.send(OFPT_ECHO_REPLY, &body)?;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_flow_mod_has_openflow_1_0s_size() {
        let b =
            super::OfConn::flow_mod("10.0.1.1".parse().unwrap(), "10.0.1.2".parse().unwrap(), 0);
        assert_eq!(b.len() + 8, 72);
        assert_eq!(&b[28..32], &[10, 0, 1, 1][..]);
        assert_eq!(&b[32..36], &[10, 0, 1, 2][..]);
    }
}
