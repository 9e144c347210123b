//! A small synchronous rtnetlink client. Requests are batched into one `send` and their
//! acknowledgements collected afterwards, so building a topology of a hundred links costs a
//! handful of system calls rather than a process per command (what `ip` would cost).
//!
//! The socket lives in the network namespace of the thread that opened it: open one inside a
//! namespace (see [`super::netns::in_netns`]) to configure that namespace.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Requests per `send`: keeps the acks of one batch well inside the socket's receive buffer.
const BATCH: usize = 32;

/// One rtnetlink request and what it is for (used in error messages).
pub struct Request {
    what: String,
    flags: u16,
    msg: RouteNetlinkMessage,
}

impl Request {
    /// A veth pair `name` <-> `peer`, both down (set them up with [`Request::link_up`]; the
    /// kernel refuses, ENOTCONN, to open a veth end in the request that creates the pair). The
    /// peer is created directly inside the namespace `peer_netns` (an open namespace fd) when
    /// one is given.
    /// `group` is the link group of `name`; `peer_mac` the peer's MAC address, if set.
    pub fn add_veth(
        name: &str,
        group: u32,
        peer: &str,
        peer_netns: Option<RawFd>,
        peer_mac: Option<[u8; 6]>,
    ) -> Request {
        let mut peer_msg = LinkMessage::default();
        if let Some(mac) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        if let Some(fd) = peer_netns {
            peer_msg.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Group(group));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        Request {
            what: format!("create veth pair {name} <-> {peer}"),
            flags: NLM_F_CREATE | NLM_F_EXCL,
            msg: RouteNetlinkMessage::NewLink(msg),
        }
    }

    /// Set the link `name` up.
    pub fn link_up(name: &str) -> Request {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        Request {
            what: format!("set {name} up"),
            flags: 0,
            msg: RouteNetlinkMessage::SetLink(msg),
        }
    }

    /// Delete the link `name` (for a veth, both ends go).
    pub fn del_link(name: &str) -> Request {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        Request {
            what: format!("delete link {name}"),
            flags: 0,
            msg: RouteNetlinkMessage::DelLink(msg),
        }
    }

    /// Delete every link in link group `group`, in one batch (far faster than one by one: each
    /// single deletion waits for an RCU grace period).
    pub fn del_group(group: u32) -> Request {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        Request {
            what: format!("delete link group {group}"),
            flags: 0,
            msg: RouteNetlinkMessage::DelLink(msg),
        }
    }

    /// A permanent neighbour (ARP) entry: `ip` is at `mac` on link `ifindex`.
    pub fn add_neighbour(ifindex: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Request {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::Permanent;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        msg.attributes
            .push(NeighbourAttribute::LinkLocalAddress(mac.to_vec()));
        Request {
            what: format!("add neighbour {ip}"),
            flags: NLM_F_CREATE | NLM_F_EXCL,
            msg: RouteNetlinkMessage::NewNeighbour(msg),
        }
    }

    /// Add `addr/prefix_len` to the link with index `ifindex`.
    pub fn add_ipv4(ifindex: u32, addr: Ipv4Addr, prefix_len: u8) -> Request {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix_len;
        msg.header.index = ifindex;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        Request {
            what: format!("add address {addr}/{prefix_len}"),
            flags: NLM_F_CREATE | NLM_F_EXCL,
            msg: RouteNetlinkMessage::NewAddress(msg),
        }
    }
}

/// A failed request: what it was for and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {error}")]
pub struct RtnlError {
    pub what: String,
    pub error: io::Error,
}

impl RtnlError {
    /// The errno the kernel answered with, if any.
    pub fn errno(&self) -> Option<i32> {
        self.error.raw_os_error()
    }
}

/// An rtnetlink socket bound in the calling thread's network namespace.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Names of the links in link group `group`.
    pub fn links_in_group(&mut self, group: u32) -> io::Result<Vec<String>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(
            header,
            NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
        );
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
        let mut names = Vec::new();
        let mut rx: Vec<u8> = Vec::with_capacity(1 << 16);
        loop {
            rx.clear();
            self.sock.recv(&mut rx, 0)?;
            let mut off = 0;
            while off + 16 <= rx.len() {
                let len = u32::from_ne_bytes(rx[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > rx.len() {
                    break;
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..off + len])
                    .map_err(io::Error::other)?;
                off += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(names),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(io::Error::from_raw_os_error(-e.raw_code()))
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        let in_group = link
                            .attributes
                            .iter()
                            .any(|a| matches!(a, LinkAttribute::Group(g) if *g == group));
                        let name = link.attributes.iter().find_map(|a| match a {
                            LinkAttribute::IfName(n) => Some(n.clone()),
                            _ => None,
                        });
                        if let (true, Some(n)) = (in_group, name) {
                            names.push(n);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Run one request.
    pub fn run(&mut self, req: Request) -> Result<(), RtnlError> {
        self.run_all(vec![req]).into_iter().next().unwrap_or(Ok(()))
    }

    /// Run requests in order, batched; one result per request, in the same order.
    pub fn run_all(&mut self, reqs: Vec<Request>) -> Vec<Result<(), RtnlError>> {
        let mut results = Vec::with_capacity(reqs.len());
        let mut reqs = reqs.into_iter().peekable();
        while reqs.peek().is_some() {
            let chunk: Vec<Request> = reqs.by_ref().take(BATCH).collect();
            results.extend(self.run_batch(chunk));
        }
        results
    }

    fn run_batch(&mut self, reqs: Vec<Request>) -> Vec<Result<(), RtnlError>> {
        let first_seq = self.seq.wrapping_add(1);
        let mut buf = Vec::new();
        for req in &reqs {
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | req.flags;
            header.sequence_number = self.seq;
            let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(req.msg.clone()));
            nl.finalize();
            let start = buf.len();
            buf.resize(start + nl.buffer_len(), 0);
            nl.serialize(&mut buf[start..]);
        }
        let mut outcome: Vec<Option<Result<(), io::Error>>> = reqs.iter().map(|_| None).collect();
        if let Err(e) = self.sock.send_to(&buf, &SocketAddr::new(0, 0), 0) {
            return reqs
                .into_iter()
                .map(|r| {
                    Err(RtnlError {
                        what: r.what,
                        error: io::Error::new(e.kind(), e.to_string()),
                    })
                })
                .collect();
        }
        let mut pending = reqs.len();
        let mut rx: Vec<u8> = Vec::with_capacity(1 << 16);
        while pending > 0 {
            rx.clear();
            if let Err(e) = self.sock.recv(&mut rx, 0) {
                for slot in outcome.iter_mut().filter(|s| s.is_none()) {
                    *slot = Some(Err(io::Error::new(e.kind(), e.to_string())));
                }
                break;
            }
            let mut off = 0;
            while off + 16 <= rx.len() {
                let len = u32::from_ne_bytes(rx[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > rx.len() {
                    break;
                }
                if let Ok(msg) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..off + len])
                {
                    let idx = msg.header.sequence_number.wrapping_sub(first_seq) as usize;
                    if let (NetlinkPayload::Error(err), Some(slot)) =
                        (msg.payload, outcome.get_mut(idx))
                    {
                        if slot.is_none() {
                            pending -= 1;
                            *slot = Some(match err.code {
                                None => Ok(()),
                                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            });
                        }
                    }
                }
                off += (len + 3) & !3;
            }
        }
        reqs.into_iter()
            .zip(outcome)
            .map(|(r, o)| match o {
                Some(Ok(())) => Ok(()),
                Some(Err(error)) => Err(RtnlError {
                    what: r.what,
                    error,
                }),
                None => Err(RtnlError {
                    what: r.what,
                    error: io::Error::other("no answer from the kernel"),
                }),
            })
            .collect()
    }
}
