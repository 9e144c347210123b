//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use reckon::net::{self, netns, Network, NetworkOptions};
use reckon::topology::{self, Size, Topology};

pub const BIN: &str = env!("CARGO_BIN_EXE_reckon");

/// Options for a test's network. Each test owns its prefix: leftovers of an earlier, crashed
/// run of the same test are removed first (by `clean`, which only touches unowned networks).
pub fn opts(prefix: &str) -> NetworkOptions {
    let o = NetworkOptions {
        prefix: prefix.into(),
        engine_bin: Some(BIN.into()),
        ..Default::default()
    };
    if net::validate_prefix(prefix).is_ok() {
        net::clean(Some(prefix), &o.ovs).unwrap();
    }
    o
}

pub fn topo(name: &str, nodes: usize, clients: Option<usize>) -> Topology {
    topology::builtin(name, Size { nodes, clients }).unwrap()
}

pub fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Everything visible from outside that carries `prefix`: namespaces, links, bridges, manifest.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    let mut left: Vec<String> = Vec::new();
    left.extend(
        sh("ip netns list")
            .lines()
            .filter(|l| l.starts_with(&p))
            .map(|l| format!("netns {l}")),
    );
    left.extend(
        sh("ip -o link show")
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .filter(|n| n.starts_with(&p))
            .map(|n| format!("link {n}")),
    );
    left.extend(
        sh("ovs-vsctl list-br")
            .lines()
            .filter(|l| l.starts_with(&p))
            .map(|l| format!("bridge {l}")),
    );
    if std::path::Path::new(&format!("/run/reckon/{prefix}.json")).exists() {
        left.push(format!("manifest {prefix}.json"));
    }
    left
}

pub fn assert_clean(prefix: &str) {
    let left = leftovers(prefix);
    assert!(left.is_empty(), "left behind for prefix {prefix}: {left:?}");
}

pub fn reckon(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A TCP exchange between two hosts made by the test itself, not by reckon's check.
pub fn tcp_between(net: &Network, from: &str, to: &str) -> Result<(), String> {
    let t = net.topology();
    let (src, dst) = (t.host(from).unwrap(), t.host(to).unwrap());
    let ns = |h: &str| netns::open(net.manifest().netns_of(h).unwrap()).unwrap();
    let addr = SocketAddrV4::new(dst.ip, 7777);
    let listener = netns::in_netns(ns(to), || TcpListener::bind(addr))
        .unwrap()
        .map_err(|e| e.to_string())?;
    let src_ip = src.ip;
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (mut c, peer) = listener.accept().map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            std::io::Read::read_exact(&mut c, &mut buf).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut c, &buf).map_err(|e| e.to_string())?;
            Ok::<Ipv4Addr, String>(match peer.ip() {
                std::net::IpAddr::V4(v) => v,
                _ => Ipv4Addr::UNSPECIFIED,
            })
        });
        let client = netns::in_netns(ns(from), || -> Result<(), String> {
            let mut c = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3))
                .map_err(|e| e.to_string())?;
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            std::io::Write::write_all(&mut c, b"hello").map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            std::io::Read::read_exact(&mut c, &mut buf).map_err(|e| e.to_string())?;
            if &buf != b"hello" {
                return Err("echo differs".into());
            }
            Ok(())
        })
        .unwrap();
        if client.is_err() {
            // Unblock the server thread.
            let _ = netns::in_netns(ns(to), || TcpStream::connect(addr));
        }
        let peer = server.join().unwrap();
        client?;
        if peer? != src_ip {
            return Err("connection came from the wrong address".into());
        }
        Ok(())
    })
}
