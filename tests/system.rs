//! The system under test on the emulated network: etcd clusters elect, serve clients in the
//! client hosts, survive a killed leader, rejoin after restart, stop answering when paused, and
//! leave no process or data behind. Needs root, OVS and etcd (scripts/setup.sh).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use reckon::net::impair::Impairment;
use reckon::net::{Network, NetworkOptions};
use reckon::system::{self, Cluster, ClusterOptions};

fn cluster_opts(prefix: &str) -> ClusterOptions {
    let base =
        std::env::temp_dir().join(format!("reckon-test-sys-{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    ClusterOptions {
        failure_timeout: Duration::from_millis(500),
        log_dir: base.join("logs"),
        data_root: base.join("data"),
    }
}

/// `etcdctl` from inside `host` against `endpoints`; its output, or what went wrong.
fn etcdctl(
    net: &Network,
    host: &str,
    endpoints: &[String],
    args: &[&str],
) -> Result<String, String> {
    let o = net
        .command(host, "etcdctl")
        .unwrap()
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--dial-timeout=2s", "--command-timeout=3s"])
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(text(&o))
    }
}

fn etcd_pids_alive(c: &Cluster) -> Vec<u32> {
    c.nodes
        .iter()
        .filter_map(|n| n.pid())
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect()
}

fn elect_and_serve(topology: &str, nodes: usize, prefix: &str) {
    let t = topo(
        topology,
        nodes,
        if topology == "simple" { Some(2) } else { None },
    );
    let mut net = Network::up(&t, &opts(prefix)).unwrap();
    let co = cluster_opts(prefix);
    let c = Cluster::start(&mut net, &system::builtin("etcd").unwrap(), &co).unwrap();
    let leader = c.wait_ready(Duration::from_secs(30)).unwrap();
    assert!(
        t.nodes().any(|n| n.name == leader),
        "leader {leader} is not a node"
    );
    assert_eq!(
        c.status().iter().filter(|s| s.answer.is_some()).count(),
        nodes
    );
    // Every client host writes a key of its own and reads it back.
    let eps = c.endpoints();
    for client in t.clients() {
        let key = format!("key-{}", client.name);
        etcdctl(
            &net,
            &client.name,
            &eps,
            &["put", &key, &client.ip.to_string()],
        )
        .unwrap();
        let got = etcdctl(
            &net,
            &client.name,
            &eps,
            &["get", &key, "--print-value-only"],
        )
        .unwrap();
        assert_eq!(got.trim(), client.ip.to_string());
    }
    let pids: Vec<u32> = c.nodes.iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), nodes);
    drop(c);
    drop(net);
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "etcd pid {p} survived"
        );
    }
    assert!(!co.data_root.exists(), "data directory left behind");
    assert!(
        co.log_dir.join(format!("{leader}.log")).exists(),
        "logs are kept"
    );
    assert_clean(prefix);
}

#[test]
fn etcd_3_on_simple() {
    elect_and_serve("simple", 3, "ys3");
}

#[test]
fn etcd_5_on_simple() {
    elect_and_serve("simple", 5, "ys5");
}

#[test]
fn etcd_3_on_wan() {
    elect_and_serve("wan", 3, "yw3");
}

#[test]
fn etcd_5_on_wan() {
    elect_and_serve("wan", 5, "yw5");
}

#[test]
fn a_killed_leader_is_replaced_and_rejoins_with_its_data() {
    let mut net = Network::up(&topo("wan", 3, None), &opts("ykl")).unwrap();
    let mut c = Cluster::start(
        &mut net,
        &system::builtin("etcd").unwrap(),
        &cluster_opts("ykl"),
    )
    .unwrap();
    let old = c.wait_ready(Duration::from_secs(30)).unwrap();
    let eps = c.endpoints();
    etcdctl(&net, "mc1", &eps, &["put", "before", "kill"]).unwrap();
    c.stop(&old).unwrap();
    let new = c.wait_ready(Duration::from_secs(30)).unwrap();
    assert_ne!(new, old, "the killed leader is still reported");
    assert!(c
        .status()
        .iter()
        .any(|s| s.node == old && s.answer.is_none()));
    // The cluster still serves, and a write made now must reach the old leader after restart.
    etcdctl(&net, "mc2", &eps, &["put", "during", "outage"]).unwrap();
    c.restart(&old).unwrap();
    c.wait_ready(Duration::from_secs(30)).unwrap();
    let old_ep = c.endpoints()[c.nodes.iter().position(|n| n.name == old).unwrap()].clone();
    // A serializable read is answered from the node's own data.
    let mut got = String::new();
    for _ in 0..50 {
        got = etcdctl(
            &net,
            "mc3",
            &[old_ep.clone()],
            &["get", "during", "--print-value-only", "--consistency=s"],
        )
        .unwrap_or_default();
        if got.trim() == "outage" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got.trim(), "outage", "the restarted node did not catch up");
    let before = etcdctl(
        &net,
        "mc3",
        &[old_ep],
        &["get", "before", "--print-value-only", "--consistency=s"],
    )
    .unwrap();
    assert_eq!(before.trim(), "kill", "the restarted node lost its data");
    drop(c);
    drop(net);
    assert_clean("ykl");
}

#[test]
fn a_paused_node_stops_answering_until_resumed() {
    let mut net = Network::up(&topo("simple", 3, None), &opts("ypa")).unwrap();
    let mut c = Cluster::start(
        &mut net,
        &system::builtin("etcd-pre-vote").unwrap(),
        &cluster_opts("ypa"),
    )
    .unwrap();
    let leader = c.wait_ready(Duration::from_secs(30)).unwrap();
    let follower = c
        .nodes
        .iter()
        .find(|n| n.name != leader)
        .unwrap()
        .name
        .clone();
    c.pause(&follower).unwrap();
    let st = c.status();
    assert!(
        st.iter().any(|s| s.node == follower && s.answer.is_none()),
        "paused {follower} answered: {st:?}"
    );
    assert!(st.iter().filter(|s| s.answer.is_some()).count() == 2);
    c.resume(&follower).unwrap();
    c.wait_ready(Duration::from_secs(30)).unwrap();
    assert!(c.status().iter().all(|s| s.answer.is_some()));
    drop(c);
    drop(net);
    assert_clean("ypa");
}

#[test]
fn a_client_cut_off_from_the_nodes_gets_errors_not_answers() {
    let mut net = Network::up(
        &topo("wan", 3, None),
        &NetworkOptions {
            impairable_all: true,
            ..opts("ycu")
        },
    )
    .unwrap();
    let c = Cluster::start(
        &mut net,
        &system::builtin("etcd").unwrap(),
        &cluster_opts("ycu"),
    )
    .unwrap();
    c.wait_ready(Duration::from_secs(30)).unwrap();
    let eps = c.endpoints();
    etcdctl(&net, "mc1", &eps, &["put", "k", "v1"]).unwrap();
    // Cut mc1's link both ways: its traffic really crosses the emulated network, so it fails.
    let cut = Impairment {
        loss_pct: 100.0,
        ..Default::default()
    };
    net.set_impairment("mc1", Some(cut), Some(cut)).unwrap();
    let err = etcdctl(&net, "mc1", &eps, &["put", "k", "v2"]).unwrap_err();
    assert!(
        err.contains("deadline") || err.contains("context") || err.contains("Error"),
        "{err}"
    );
    // Another client still gets answers, and sees v1.
    assert_eq!(
        etcdctl(&net, "mc2", &eps, &["get", "k", "--print-value-only"])
            .unwrap()
            .trim(),
        "v1"
    );
    net.set_impairment(
        "mc1",
        Some(Impairment::default()),
        Some(Impairment::default()),
    )
    .unwrap();
    etcdctl(&net, "mc1", &eps, &["put", "k", "v3"]).unwrap();
    drop(c);
    drop(net);
    assert_clean("ycu");
}

#[test]
fn no_election_within_the_deadline_shows_the_logs() {
    let mut net = Network::up(&topo("simple", 3, None), &opts("yne")).unwrap();
    let mut c = Cluster::start(
        &mut net,
        &system::builtin("etcd").unwrap(),
        &cluster_opts("yne"),
    )
    .unwrap();
    // Freeze two of three at once: no majority can form.
    c.pause("h2").unwrap();
    c.pause("h3").unwrap();
    let err = c
        .wait_ready(Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no leader within 3s") && err.contains("--- h1") && err.contains("h1.log"),
        "{err}"
    );
    assert!(!etcd_pids_alive(&c).is_empty());
    let pids: Vec<u32> = c.nodes.iter().filter_map(|n| n.pid()).collect();
    drop(c);
    drop(net);
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "paused etcd {p} survived teardown"
        );
    }
    assert_clean("yne");
}

#[test]
fn bad_system_input_is_refused() {
    let e = system::builtin("zookeeper-x").unwrap_err().to_string();
    assert!(
        e.contains("unknown system 'zookeeper-x'") && e.contains("etcd, etcd-pre-vote"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("reckon-test-sysf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "description = \"x\"\nbinary = \"/usr/bin/etcd\"\ninstall_hint = \"\"\nadapter = \"etcd\"\nclient_port = 1\npeer_port = 2\nmember = \"{name}\"\nargs = [\"--name\", \"{nmae}\"]\n").unwrap();
    let e = system::from_file(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:8:", bad.display())) && e.contains("{nmae}"),
        "{e}"
    );
    std::fs::write(&bad, "description = \"x\"\nbinary = 3\n").unwrap();
    let e = system::from_file(&bad).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2:", bad.display())), "{e}");
    // A missing binary says how to install it, and starts nothing.
    let missing = dir.join("nobin.toml");
    let src = include_str!("../systems/etcd.toml").replace("/usr/bin/etcd", "/nonexistent/etcd");
    std::fs::write(&missing, src).unwrap();
    let def = system::from_file(&missing).unwrap();
    let mut net = Network::up(&topo("simple", 1, None), &opts("ybi")).unwrap();
    let e = Cluster::start(&mut net, &def, &cluster_opts("ybi"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("/nonexistent/etcd not found; install it: apt-get install etcd-server"),
        "{e}"
    );
    drop(net);
    assert_clean("ybi");
    // And through the CLI: unknown names list the choices.
    let o = reckon(&["--prefix", "ybc", "topo", "up", "wan", "--system", "raft9"]);
    assert!(
        !o.status.success() && text(&o).contains("known systems: etcd, etcd-pre-vote"),
        "{}",
        text(&o)
    );
    assert_clean("ybc");
}

#[test]
fn topo_up_with_a_system_leaves_it_running_until_down() {
    let p = "yto";
    let _ = opts(p);
    let logs: PathBuf =
        std::env::temp_dir().join(format!("reckon-test-yto-{}", std::process::id()));
    let o = reckon(&[
        "--prefix",
        p,
        "topo",
        "up",
        "simple",
        "--system",
        "etcd",
        "--failure-timeout",
        "0.5",
        "--log-dir",
        logs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("etcd is up: leader h"), "{}", text(&o));
    let o = reckon(&[
        "--prefix",
        p,
        "topo",
        "exec",
        "mc1",
        "--",
        "etcdctl",
        "--endpoints=http://10.0.1.2:2379",
        "put",
        "a",
        "b",
    ]);
    assert!(
        o.status.success() && text(&o).contains("OK"),
        "{}",
        text(&o)
    );
    let o = reckon(&["--prefix", p, "topo", "down"]);
    assert!(
        o.status.success() && text(&o).contains("3 processes"),
        "{}",
        text(&o)
    );
    assert!(logs.join("h1.log").exists());
    assert_clean(p);
}
