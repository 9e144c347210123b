//! The partial-connectivity scenarios (quorum-loss, constrained-election, chained,
//! lossy-link) do to a real network what their files say: at each step, who reaches whom,
//! checked with pings between the hosts. The roles (who leads) come from a stand-in, so the
//! leader can be any node and can change between events; node events (pause, resume) are
//! recorded rather than carried out. Needs root and OVS.

mod common;

use std::collections::BTreeSet;

use common::*;
use reckon::fault::{self, Fault, Params};
use reckon::net::impair::Backend;
use reckon::net::Network;
use reckon::run::faults::{apply, resolve, Bindings, Nodes, Roles};
use reckon::system::SystemError;

const P: Params = Params {
    duration: 30.0,
    mtbf: 1.0,
};

struct Stand {
    leader: String,
    nodes: Vec<String>,
    /// Node events carried out: (action, node).
    done: Vec<(String, String)>,
}

impl Roles for Stand {
    fn leader(&self) -> Option<String> {
        Some(self.leader.clone())
    }
    fn states(&self) -> Vec<(String, bool, bool)> {
        self.nodes
            .iter()
            .map(|n| (n.clone(), true, false))
            .collect()
    }
}

impl Nodes for Stand {
    fn stop(&mut self, n: &str) -> Result<(), SystemError> {
        self.done.push(("kill".into(), n.into()));
        Ok(())
    }
    fn restart(&mut self, n: &str) -> Result<(), SystemError> {
        self.done.push(("restart".into(), n.into()));
        Ok(())
    }
    fn pause(&mut self, n: &str) -> Result<(), SystemError> {
        self.done.push(("pause".into(), n.into()));
        Ok(())
    }
    fn resume(&mut self, n: &str) -> Result<(), SystemError> {
        self.done.push(("resume".into(), n.into()));
        Ok(())
    }
}

/// Every event of `f` scheduled at `at`, in order.
fn play(f: &Fault, at: f64, net: &mut Network, s: &mut Stand, bound: &mut Bindings) {
    for ev in f.events.iter().filter(|e| (e.at - at).abs() < 1e-9) {
        let t = resolve(ev, &*s, net.topology(), 1, bound).unwrap();
        let mut nodes = Stand {
            leader: s.leader.clone(),
            nodes: s.nodes.clone(),
            done: Vec::new(),
        };
        apply(ev, &t, net, &mut nodes).unwrap();
        s.done.extend(nodes.done);
    }
}

/// The unordered pairs of `hosts` that cannot ping each other (pings in parallel).
fn unreachable(net: &Network, hosts: &[&str]) -> BTreeSet<(String, String)> {
    let mut pairs = Vec::new();
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    std::thread::scope(|sc| {
        let probes: Vec<_> = pairs
            .iter()
            .map(|(a, b)| {
                sc.spawn(move || {
                    let ip = net.topology().host(b).unwrap().ip.to_string();
                    // Three tries: a cut drops them all, a healthy path answers one.
                    let ok = net
                        .command(a, "ping")
                        .unwrap()
                        .args(["-c", "3", "-i", "0.2", "-W", "1", "-q", &ip])
                        .output()
                        .unwrap()
                        .status
                        .success();
                    (!ok).then(|| (a.clone(), b.clone()))
                })
            })
            .collect();
        probes
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect()
    })
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| {
            let (a, b) = if a < b { (a, b) } else { (b, a) };
            (a.to_string(), b.to_string())
        })
        .collect()
}

fn stand(leader: &str, n: usize) -> Stand {
    Stand {
        leader: leader.into(),
        nodes: (1..=n).map(|i| format!("h{i}")).collect(),
        done: Vec::new(),
    }
}

const FIVE: [&str; 5] = ["h1", "h2", "h3", "h4", "h5"];

#[test]
fn quorum_loss_leaves_the_leader_only_the_hub() {
    let f = fault::builtin("quorum-loss", P).unwrap();
    assert_eq!(f.nodes, Some(5));
    let mut net = Network::up(&topo("wan", 5, None), &opts("ysq")).unwrap();
    // The leader is h3: followers in node order are h1 h2 h4 h5, and the hub is h1.
    let mut s = stand("h3", 5);
    let mut bound = Bindings::new();
    play(&f, 10.0, &mut net, &mut s, &mut bound);
    assert_eq!(
        unreachable(&net, &FIVE),
        set(&[("h3", "h2"), ("h3", "h4"), ("h3", "h5")])
    );
    // Clients keep every link, the leader's too.
    assert!(unreachable(&net, &["mc2", "h3"]).is_empty());
    play(&f, 20.0, &mut net, &mut s, &mut bound);
    assert!(unreachable(&net, &FIVE).is_empty());
    drop(net);
    assert_clean("ysq");
}

#[test]
fn constrained_election_leaves_a_stale_node_the_only_one_connected_to_a_quorum() {
    let f = fault::builtin("constrained-election", P).unwrap();
    let mut net = Network::up(&topo("wan", 5, None), &opts("ysc")).unwrap();
    let mut s = stand("h1", 5);
    let mut bound = Bindings::new();
    // T/3: B (h2, the first follower) cut off from every node; the rest whole.
    play(&f, 10.0, &mut net, &mut s, &mut bound);
    assert_eq!(
        unreachable(&net, &FIVE),
        set(&[("h2", "h1"), ("h2", "h3"), ("h2", "h4"), ("h2", "h5")])
    );
    // T/2: the leader cut from all; h3 h4 h5 from each other; B reaches h3 h4 h5 only. By
    // now another node could lead: B and the rest were named at T/3 or by role now.
    play(&f, 15.0, &mut net, &mut s, &mut bound);
    assert_eq!(bound["B"], ["h2"]);
    assert_eq!(
        unreachable(&net, &FIVE),
        set(&[
            ("h1", "h2"),
            ("h1", "h3"),
            ("h1", "h4"),
            ("h1", "h5"),
            ("h3", "h4"),
            ("h3", "h5"),
            ("h4", "h5"),
        ])
    );
    assert!(unreachable(&net, &["mc1", "h1"]).is_empty());
    play(&f, 20.0, &mut net, &mut s, &mut bound);
    assert!(unreachable(&net, &FIVE).is_empty());
    drop(net);
    assert_clean("ysc");
}

#[test]
fn chained_cuts_the_followers_apart_and_moves_the_leader_role() {
    let f = fault::builtin("chained", P).unwrap();
    assert_eq!(f.nodes, Some(3));
    let mut net = Network::up(&topo("wan", 3, None), &opts("ysh")).unwrap();
    let mut s = stand("h2", 3);
    let mut bound = Bindings::new();
    play(&f, 10.0, &mut net, &mut s, &mut bound);
    let three = ["h1", "h2", "h3"];
    assert_eq!(unreachable(&net, &three), set(&[("h1", "h3")]));
    play(&f, 11.0, &mut net, &mut s, &mut bound);
    // Leadership moves while the leader is frozen: the resume still goes to the node that
    // was paused (named then), not to whoever leads now.
    s.leader = "h1".into();
    play(&f, 14.0, &mut net, &mut s, &mut bound);
    assert_eq!(
        s.done,
        [
            ("pause".into(), "h2".into()),
            ("resume".into(), "h2".into())
        ]
    );
    assert_eq!(unreachable(&net, &three), set(&[("h1", "h3")]));
    play(&f, 20.0, &mut net, &mut s, &mut bound);
    assert!(unreachable(&net, &three).is_empty());
    drop(net);
    assert_clean("ysh");
}

/// Percentage of `n` pings from `a` to `b` that got no answer.
fn ping_loss(net: &Network, a: &str, b: &str, n: usize) -> f64 {
    let ip = net.topology().host(b).unwrap().ip.to_string();
    let out = net
        .command(a, "ping")
        .unwrap()
        .args(["-c", &n.to_string(), "-i", "0.01", "-W", "1", "-q", &ip])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pct = text
        .split(", ")
        .find(|p| p.ends_with("% packet loss"))
        .and_then(|p| p.trim_end_matches("% packet loss").parse::<f64>().ok())
        .unwrap_or_else(|| panic!("ping said: {text}"));
    pct
}

#[test]
fn lossy_link_degrades_only_the_leader_to_follower_path() {
    let f = fault::builtin("lossy-link", P).unwrap();
    let mut o = opts("ysl");
    o.impairable_all = true;
    o.impair.backend = Backend::Userspace;
    let mut net = Network::up(&topo("wan", 3, None), &o).unwrap();
    let mut s = stand("h1", 3);
    let mut bound = Bindings::new();
    play(&f, 10.0, &mut net, &mut s, &mut bound);
    // 50 % each way: a ping and its answer both get through a quarter of the time.
    let lost = ping_loss(&net, "h1", "h2", 400);
    assert!((60.0..=88.0).contains(&lost), "h1 -> h2 lost {lost} %");
    for (a, b) in [("h1", "h3"), ("h2", "h3"), ("mc1", "h2"), ("h1", "mc2")] {
        let lost = ping_loss(&net, a, b, 200);
        assert!(
            lost <= 3.0,
            "{a} -> {b} lost {lost} %, the path is not degraded"
        );
    }
    play(&f, 20.0, &mut net, &mut s, &mut bound);
    let lost = ping_loss(&net, "h1", "h2", 200);
    assert!(
        lost <= 3.0,
        "h1 -> h2 lost {lost} % after the loss was cleared"
    );
    drop(net);
    assert_clean("ysl");
}

#[test]
fn a_scenario_written_for_five_nodes_refuses_three() {
    let o = reckon(&[
        "--prefix",
        "ysx",
        "run",
        "etcd",
        "wan",
        "uniform",
        "quorum-loss",
        "--number-nodes",
        "3",
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("written for 5 nodes") && t.contains("--number-nodes 3"),
        "{t}"
    );
    assert_clean("ysx");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("reckon-test-sc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn fault_rows(dir: &std::path::Path) -> Vec<(String, String)> {
    csv::Reader::from_path(dir.join("faults.csv"))
        .unwrap()
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(|r| {
            let r = r.unwrap();
            (r["action"].clone(), r["targets"].clone())
        })
        .collect()
}

#[test]
fn a_scenario_run_is_checked_and_gated_by_its_expectations() {
    let dir = scratch("ql");
    let out = dir.join("ql");
    let o = reckon(&[
        "--prefix",
        "ysr",
        "run",
        "etcd",
        "wan",
        "uniform",
        "quorum-loss",
        "--duration",
        "9",
        "--expect",
        "longest_gap < 0.001s, errors < 100%, linearizable",
        "--result-location",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(
        t.contains("expectation failed: longest_gap < 0.001s")
            && !t.contains("expectation failed: errors"),
        "{t}"
    );
    let s = json(&out.join("summary.json"));
    assert_eq!(s["check"]["linearizable"], true, "{s}");
    let verdicts: Vec<bool> = s["expect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(verdicts, [false, true, true]);
    // Five nodes by default; the leader cut from three of the four others.
    let rows = fault_rows(&out);
    assert_eq!(rows[0].0, "partition");
    let (a, b) = rows[0].1.split_once(" | ").unwrap();
    assert_eq!(
        (a.split(' ').count(), b.split(' ').count()),
        (1, 3),
        "{rows:?}"
    );
    assert!(!b.contains(a));
    assert!(out.join("fault.toml").exists());
    assert_clean("ysr");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_random_plan_replays_exactly_from_its_fault_file() {
    let dir = scratch("rp");
    let run = |name: &str, fault: &[&str]| {
        let out = dir.join(name);
        let mut args = vec!["--prefix", "ysp", "run", "etcd", "wan", "uniform"];
        args.extend(fault);
        args.extend([
            "--duration",
            "10",
            "--seed",
            "5",
            "--result-location",
            out.to_str().unwrap(),
        ]);
        let o = reckon(&args);
        assert!(o.status.success(), "{}", text(&o));
        out
    };
    let first = run(
        "first",
        &[
            "random",
            "--random-interval",
            "1",
            "--random-mix",
            "isolate,kill,oneway,halves",
        ],
    );
    let plan = first.join("fault.toml");
    let replay = run("replay", &["none", "--fault-file", plan.to_str().unwrap()]);
    let events = |d: &std::path::Path| json(&d.join("config.json"))["fault"]["events"].clone();
    assert!(
        events(&first).as_array().unwrap().len() >= 4,
        "{}",
        events(&first)
    );
    assert_eq!(events(&first), events(&replay));
    // Node selectors by number: the same hosts, whoever leads.
    assert_eq!(fault_rows(&first), fault_rows(&replay));
    assert_clean("ysp");
    let _ = std::fs::remove_dir_all(&dir);
}
