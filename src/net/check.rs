//! The connectivity check: every pair of hosts reaches each other over ICMP *and* TCP. (On
//! OVS's userspace datapath, a veth with tx checksum offload on passes ping but drops TCP, so a
//! ping-only check would pass a broken network.)
//!
//! Each host gets a thread inside its namespace with a TCP echo listener and a raw ICMP socket;
//! for each pair the lower-numbered host connects, sends a byte and waits for its echo, and pings.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const PORT: u16 = 7;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A host to check: its name, its namespace and its address.
pub struct Endpoint {
    pub name: String,
    pub netns: OwnedFd,
    pub ip: Ipv4Addr,
}

#[derive(Debug, thiserror::Error)]
#[error("connectivity check failed for {} of {pairs} host pairs:\n  {}", failures.len(), failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n  "))]
pub struct CheckError {
    pub pairs: usize,
    pub failures: Vec<String>,
}

/// Check all pairs; returns the number of pairs checked.
pub fn all_pairs(hosts: &[Endpoint]) -> Result<usize, CheckError> {
    let n = hosts.len();
    let pairs = n * n.saturating_sub(1) / 2;
    let failures = Mutex::new(Vec::new());
    let ready = Barrier::new(n);
    let done = Barrier::new(n);
    let stop = AtomicBool::new(false);
    let icmp_id_base = (std::process::id() as u16).wrapping_mul(31);
    std::thread::scope(|s| {
        for (i, me) in hosts.iter().enumerate() {
            let (failures, ready, done, stop) = (&failures, &ready, &done, &stop);
            s.spawn(move || {
                let fail = |msg: String| failures.lock().unwrap().push(msg);
                let setup = super::netns::enter(&me.netns)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        let l = TcpListener::bind(SocketAddrV4::new(me.ip, PORT))
                            .map_err(|e| format!("TCP listen: {e}"))?;
                        l.set_nonblocking(true).map_err(|e| e.to_string())?;
                        let icmp = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                            .map_err(|e| format!("ICMP socket: {e}"))?;
                        Ok((l, icmp))
                    });
                ready.wait();
                let (listener, icmp) = match setup {
                    Ok(x) => x,
                    Err(e) => {
                        fail(format!(
                            "{} ({}): setting up the check: {e}",
                            me.name, me.ip
                        ));
                        done.wait();
                        return;
                    }
                };
                std::thread::scope(|s2| {
                    s2.spawn(|| echo_server(&listener, stop));
                    let peers: Vec<&Endpoint> = hosts[i + 1..].iter().collect();
                    let id = icmp_id_base.wrapping_add(i as u16);
                    for (peer, err) in ping_all(&icmp, id, &peers) {
                        fail(format!(
                            "{} ({}) -> {} ({}): ICMP: {err}",
                            me.name, me.ip, peer.name, peer.ip
                        ));
                    }
                    for peer in &peers {
                        if let Err(e) = tcp_echo(peer.ip) {
                            fail(format!(
                                "{} ({}) -> {} ({}): TCP: {e}",
                                me.name, me.ip, peer.name, peer.ip
                            ));
                        }
                    }
                    done.wait();
                    stop.store(true, Ordering::Relaxed);
                });
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    if failures.is_empty() {
        Ok(pairs)
    } else {
        failures.sort();
        Err(CheckError { pairs, failures })
    }
}

/// Round-trip times of `count` pings, `gap` apart, from inside namespace `from` to `to`.
pub fn rtts(
    from: &OwnedFd,
    to: Ipv4Addr,
    count: usize,
    gap: Duration,
) -> std::io::Result<Vec<Duration>> {
    super::netns::in_netns(from, || -> std::io::Result<Vec<Duration>> {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let id = (std::process::id() as u16).wrapping_mul(7).wrapping_add(1);
        let dest = SocketAddr::V4(SocketAddrV4::new(to, 0)).into();
        let mut out = Vec::new();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        for seq in 0..count as u16 {
            std::thread::sleep(gap);
            let sent = Instant::now();
            sock.send_to(&echo_request(id, seq), &dest)?;
            while sent.elapsed() < Duration::from_secs(2) {
                let Ok((len, _)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let pkt: Vec<u8> = buf[..len]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                let ihl = ((pkt[0] & 0x0f) as usize) * 4;
                let Some(icmp) = pkt.get(ihl..ihl + 8) else {
                    continue;
                };
                if icmp[0] == 0
                    && u16::from_be_bytes([icmp[4], icmp[5]]) == id
                    && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
                {
                    out.push(sent.elapsed());
                    break;
                }
            }
        }
        Ok(out)
    })?
}

fn echo_server(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(TIMEOUT));
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_ok() {
                    let _ = s.write_all(&b);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn tcp_echo(ip: Ipv4Addr) -> Result<(), String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(ip, PORT));
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(b"r").map_err(|e| format!("send: {e}"))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).map_err(|e| format!("no echo: {e}"))?;
    if b != *b"r" {
        return Err("echo corrupted".into());
    }
    Ok(())
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8; // echo request
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"reckon!!");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Ping every peer (resending every 200 ms) until each has answered or the timeout passes.
/// Returns the peers that did not answer, with why.
fn ping_all<'a>(sock: &Socket, id: u16, peers: &[&'a Endpoint]) -> Vec<(&'a Endpoint, String)> {
    let mut waiting: HashSet<u16> = (0..peers.len() as u16).collect();
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let start = Instant::now();
    let mut last_send: Option<Instant> = None;
    let mut send_errors: Vec<Option<String>> = vec![None; peers.len()];
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    while !waiting.is_empty() && start.elapsed() < TIMEOUT {
        if last_send.is_none_or(|t| t.elapsed() > Duration::from_millis(200)) {
            for &seq in &waiting {
                let to = SocketAddr::V4(SocketAddrV4::new(peers[seq as usize].ip, 0));
                if let Err(e) = sock.send_to(&echo_request(id, seq), &to.into()) {
                    send_errors[seq as usize] = Some(e.to_string());
                }
            }
            last_send = Some(Instant::now());
        }
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let pkt: Vec<u8> = buf[..len]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let ihl = ((pkt.first().copied().unwrap_or(0) & 0x0f) as usize) * 4;
        let Some(icmp) = pkt.get(ihl..) else { continue };
        if icmp.len() < 8 || icmp[0] != 0 || u16::from_be_bytes([icmp[4], icmp[5]]) != id {
            continue;
        }
        let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
        let from_ip = from.as_socket_ipv4().map(|a| *a.ip());
        if (seq as usize) < peers.len() && from_ip == Some(peers[seq as usize].ip) {
            waiting.remove(&seq);
        }
    }
    let mut lost: Vec<_> = waiting
        .into_iter()
        .map(|seq| {
            let why = send_errors[seq as usize]
                .clone()
                .unwrap_or_else(|| format!("no echo reply within {TIMEOUT:?}"));
            (peers[seq as usize], why)
        })
        .collect();
    lost.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    lost
}
