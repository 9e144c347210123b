//! Partitions are OpenFlow drop rules: a cut really drops packets between exactly the hosts
//! named, both ways (or one), and healing restores them. Needs root and OVS.

mod common;

use common::*;
use reckon::net::Network;

fn reaches(net: &Network, from: &str, to: &str) -> bool {
    let ip = net.topology().host(to).unwrap().ip.to_string();
    net.command(from, "ping")
        .unwrap()
        .args(["-c", "1", "-W", "1", "-q", &ip])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_cut_drops_exactly_the_pair_and_heals() {
    let mut net = Network::up(&topo("wan", 3, None), &opts("ypt")).unwrap();
    let n = net
        .partition(&["h1".into()], &["h2".into()], false)
        .unwrap();
    assert_eq!(n, 2);
    assert!(!reaches(&net, "h1", "h2"));
    assert!(!reaches(&net, "h2", "h1"));
    // Everything else still talks.
    for (a, b) in [
        ("h1", "h3"),
        ("h2", "h3"),
        ("mc1", "h2"),
        ("h1", "mc2"),
        ("mc1", "mc2"),
    ] {
        assert!(reaches(&net, a, b), "{a} -> {b}");
    }
    assert_eq!(net.heal().unwrap(), 2);
    assert!(reaches(&net, "h1", "h2"));
    assert!(reaches(&net, "h2", "h1"));
    let flows = sh("ovs-ofctl dump-flows ypt-s2");
    assert!(
        !flows.contains("drop"),
        "a drop rule survived healing: {flows}"
    );
    drop(net);
    assert_clean("ypt");
}

#[test]
fn a_one_way_cut_drops_one_direction() {
    let mut net = Network::up(&topo("simple", 3, None), &opts("ypo")).unwrap();
    net.partition(&["h1".into()], &["h3".into()], true).unwrap();
    // ping needs both ways; UDP shows the direction.
    assert!(!reaches(&net, "h1", "h3"));
    let t = net.topology().clone();
    let m = net.manifest().clone();
    let ns = |h: &str| reckon::net::netns::open(m.netns_of(h).unwrap()).unwrap();
    let probe = |from: &str, to: &str| -> bool {
        let dst = std::net::SocketAddrV4::new(t.host(to).unwrap().ip, 9100);
        let rx = reckon::net::netns::in_netns(ns(to), || std::net::UdpSocket::bind(dst))
            .unwrap()
            .unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let tx = reckon::net::netns::in_netns(ns(from), || std::net::UdpSocket::bind("0.0.0.0:0"))
            .unwrap()
            .unwrap();
        tx.send_to(b"x", dst).unwrap();
        let mut b = [0u8; 4];
        rx.recv(&mut b).is_ok()
    };
    assert!(!probe("h1", "h3"));
    assert!(probe("h3", "h1"));
    net.heal().unwrap();
    let flows = sh("ovs-ofctl dump-flows ypo-s1");
    assert!(
        !flows.contains("drop"),
        "a drop rule survived healing: {flows}"
    );
    assert!(probe("h1", "h3"), "{}", sh("ovs-appctl dpctl/dump-flows"));
    drop(net);
    assert_clean("ypo");
}
