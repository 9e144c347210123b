//! Clients of the system under test, inside the client hosts: the built-in etcd client (put,
//! get, per-operation timeout, endpoint choice) and external clients over reckon's stdio
//! protocol, including one that dies mid-run. Needs root, OVS and etcd.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reckon::client::etcd::{EtcdClient, Request, Target};
use reckon::client::stdio::{Message, Operation, Payload, StdioClient};
use reckon::client::{local_node, runtime};
use reckon::net::impair::Impairment;
use reckon::net::{Network, NetworkOptions};
use reckon::system::{self, Cluster, ClusterOptions};

const STDIO_CLIENT: &str = env!("CARGO_BIN_EXE_reckon-stdio-client");

fn cluster(net: &mut Network, prefix: &str) -> (Cluster, std::path::PathBuf) {
    let base = std::env::temp_dir().join(format!("reckon-test-cl-{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let co = ClusterOptions {
        failure_timeout: Duration::from_millis(500),
        log_dir: base.join("logs"),
        data_root: base.join("data"),
    };
    let c = Cluster::start(net, &system::builtin("etcd").unwrap(), &co).unwrap();
    c.wait_ready(Duration::from_secs(30)).unwrap();
    (c, base)
}

/// A built-in client in `host`.
fn client(
    net: &Network,
    host: &str,
    eps: &[String],
    local: Option<usize>,
    t: Target,
) -> EtcdClient {
    let netns = std::sync::Arc::new(reckon::net::open_host(net.manifest(), host).unwrap());
    EtcdClient::new(netns, eps, local, t).unwrap()
}

const PUT: Request<'static> = Request::Put {
    key: "k",
    value: b"v",
};

#[test]
fn the_built_in_client_writes_and_reads_from_every_client_host() {
    let t = topo("wan", 3, None);
    let mut net = Network::up(&t, &opts("ybw")).unwrap();
    let (c, _) = cluster(&mut net, "ybw");
    let eps = c.endpoints();
    let leader = c.leader().unwrap();
    let leader_ep = eps[t.nodes().position(|n| n.name == leader).unwrap()].clone();
    let rt = runtime().unwrap();
    for host in t.clients() {
        let local = local_node(&t, &host.name);
        for target in [Target::Sticky, Target::Leader, Target::All] {
            let kv = client(&net, &host.name, &eps, local, target);
            let key = format!("k-{target:?}");
            let (puts, get) = rt.block_on(async {
                // As a run does before its clock starts (clientv3 dials at creation too).
                assert!(kv.warm_up(Duration::from_secs(3)).await.is_empty());
                let mut puts = Vec::new();
                for _ in 0..3 {
                    puts.push(kv.put(&key, b"value", Duration::from_secs(3)).await);
                }
                (puts, kv.get(&key, Duration::from_secs(3)).await)
            });
            let puts: Vec<String> = puts
                .into_iter()
                .map(|p| p.unwrap_or_else(|e| panic!("{} {target:?} put: {e}", host.name)))
                .collect();
            let (value, _) = get.unwrap_or_else(|e| panic!("{} {target:?} get: {e}", host.name));
            assert_eq!(value.as_deref(), Some(&b"value"[..]));
            match target {
                // In wan, mc<i>'s own data centre holds h<i>; the client stays there.
                Target::Sticky => {
                    assert!(
                        puts.iter().all(|p| *p == eps[local.unwrap()]),
                        "{} {puts:?}",
                        host.name
                    )
                }
                Target::Leader => {
                    assert!(
                        puts.iter().all(|p| *p == leader_ep),
                        "{} {puts:?}",
                        host.name
                    )
                }
                // Round-robin: three operations, three endpoints.
                Target::All => {
                    let mut p = puts.clone();
                    p.sort();
                    p.dedup();
                    assert_eq!(p.len(), 3, "{} {puts:?}", host.name);
                }
            }
        }
    }
    drop(c);
    drop(net);
    assert_clean("ybw");
}

#[test]
fn a_cut_off_client_times_out_within_the_operation_timeout() {
    let mut net = Network::up(
        &topo("wan", 3, None),
        &NetworkOptions {
            impairable_all: true,
            ..opts("yto2")
        },
    )
    .unwrap();
    let (c, _) = cluster(&mut net, "yto2");
    let eps = c.endpoints();
    let kv = client(&net, "mc2", &eps, Some(1), Target::Sticky);
    let rt = runtime().unwrap();
    // Connected first, then cut: requests go out and nothing comes back.
    rt.block_on(kv.warm_up(Duration::from_secs(3)));
    let cut = Impairment {
        loss_pct: 100.0,
        ..Default::default()
    };
    net.set_impairment("mc2", Some(cut), Some(cut)).unwrap();
    let t = Instant::now();
    let o = rt.block_on(kv.perform(&PUT, Duration::from_secs(1)));
    let took = t.elapsed();
    let e = o.result.unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert_eq!(
        o.attempts, 1,
        "a write that may have been applied is not retried"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1300),
        "the timeout covers the whole operation: took {took:?}"
    );
    drop(c);
    drop(net);
    assert_clean("yto2");
}

#[test]
fn the_leader_target_follows_a_new_leader() {
    let t = topo("simple", 3, None);
    let mut net = Network::up(&t, &opts("ylf")).unwrap();
    let (mut c, _) = cluster(&mut net, "ylf");
    let eps = c.endpoints();
    let kv = client(&net, "mc1", &eps, None, Target::Leader);
    let rt = runtime().unwrap();
    rt.block_on(kv.warm_up(Duration::from_secs(3)));
    let old = c.leader().unwrap();
    c.stop(&old).unwrap();
    let new = c.wait_ready(Duration::from_secs(30)).unwrap();
    let new_ep = eps[t.nodes().position(|n| n.name == new).unwrap()].clone();
    // The first operation finds the old leader gone, looks the leader up once, and goes there.
    let served = rt
        .block_on(kv.put("after", b"failover", Duration::from_secs(5)))
        .unwrap();
    assert_eq!(served, new_ep);
    // The next goes straight to it.
    let o = rt.block_on(kv.perform(&PUT, Duration::from_secs(2)));
    assert_eq!((o.result.is_ok(), o.attempts), (true, 1), "{o:?}");
    drop(c);
    drop(net);
    assert_clean("ylf");
}

/// A follower cut off from the two other nodes: it has no leader. The sticky client in its
/// data centre is told so at once (etcd's "require leader"), moves on within the same
/// operation, and stays there; the round-robin client sends every third operation to it, and
/// those fail.
#[test]
fn a_leaderless_member_is_left_at_once_by_sticky_and_hit_by_round_robin() {
    let t = topo("wan", 3, None);
    let mut net = Network::up(&t, &opts("yll")).unwrap();
    let (c, _) = cluster(&mut net, "yll");
    let eps = c.endpoints();
    let rt = runtime().unwrap();
    // A follower, so the others keep (or quickly have) a leader; in wan, mc<i> is beside h<i>.
    let leader = c.leader().unwrap();
    let nodes: Vec<String> = t.nodes().map(|n| n.name.clone()).collect();
    let f = nodes.iter().position(|n| *n != leader).unwrap();
    let others: Vec<String> = nodes.iter().filter(|n| **n != nodes[f]).cloned().collect();
    let host = format!("mc{}", f + 1);
    let sticky = client(&net, &host, &eps, Some(f), Target::Sticky);
    let all = client(&net, &host, &eps, Some(f), Target::All);
    rt.block_on(sticky.warm_up(Duration::from_secs(3)));
    rt.block_on(all.warm_up(Duration::from_secs(3)));
    net.partition(std::slice::from_ref(&nodes[f]), &others, false)
        .unwrap();
    // Until its election timeout (0.5 s) passes it still believes in its leader; then it
    // campaigns (and cannot win) with no leader, while the others keep theirs.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = rt.block_on(sticky.statuses(Duration::from_secs(1)));
        let cut_off = st[f].as_ref().is_some_and(|s| s.leader == 0);
        let led = st
            .iter()
            .enumerate()
            .all(|(i, s)| i == f || s.as_ref().is_some_and(|s| s.leader != 0));
        if cut_off && led {
            break;
        }
        assert!(Instant::now() < deadline, "no such state: {st:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = Instant::now();
    let o = rt.block_on(sticky.perform(&PUT, Duration::from_secs(2)));
    let took = t0.elapsed();
    assert!(o.result.is_ok(), "{o:?}");
    assert_eq!(o.attempts, 2, "refused by h1, served by the next: {o:?}");
    assert_ne!(o.endpoint, Some(f));
    // Two WAN round trips (20 ms each way), nowhere near the 2 s timeout.
    assert!(took < Duration::from_millis(400), "took {took:?}");
    let o = rt.block_on(sticky.perform(&PUT, Duration::from_secs(2)));
    assert_eq!((o.result.is_ok(), o.attempts), (true, 1), "sticky: {o:?}");
    // Round-robin: of six reads, the two that land on the cut-off member fail; the others
    // succeed.
    let outcomes: Vec<_> = (0..6)
        .map(|_| rt.block_on(all.perform(&Request::Get { key: "k" }, Duration::from_millis(500))))
        .collect();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    assert_eq!(failed, 2, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.attempts == 1),
        "no retry: {outcomes:?}"
    );
    drop(c);
    drop(net);
    assert_clean("yll");
}

fn ops(n: usize) -> Vec<Operation> {
    (0..n)
        .map(|i| Operation {
            payload: if i % 2 == 0 {
                Payload::Write {
                    key: format!("{i:04}"),
                    value: "v".repeat(8),
                }
            } else {
                Payload::Read {
                    key: format!("{:04}", i - 1),
                }
            },
            time: i as f64 * 0.05,
        })
        .collect()
}

#[test]
fn an_external_client_runs_the_whole_stdio_exchange() {
    let mut net = Network::up(&topo("wan", 3, None), &opts("yst")).unwrap();
    let (c, base) = cluster(&mut net, "yst");
    let mut cl = StdioClient::spawn(
        net.manifest(),
        "mc1",
        &[STDIO_CLIENT.into()],
        &c.endpoints(),
        1,
        false,
        &base.join("client-1.stderr"),
    )
    .unwrap();
    cl.preload(
        true,
        Operation {
            payload: Payload::Write {
                key: "prereq".into(),
                value: "done".into(),
            },
            time: 0.0,
        },
    )
    .unwrap();
    for op in ops(6) {
        cl.preload(false, op).unwrap();
    }
    cl.finalise(Duration::from_secs(10)).unwrap();
    cl.start().unwrap();
    let (results, end) = cl.collect(Duration::from_secs(10));
    end.unwrap();
    assert_eq!(results.len(), 6);
    for r in &results {
        let Message::Result {
            result,
            clientid,
            t_submitted,
            t_result,
            other,
            ..
        } = r
        else {
            panic!()
        };
        assert_eq!(result, "Success");
        assert_eq!(clientid, "1");
        assert!(t_result >= t_submitted);
        assert!(other["target"]
            .as_str()
            .unwrap()
            .starts_with("http://10.0.1."));
    }
    // The prerequisite and the writes really reached etcd.
    let kv = client(&net, "mc3", &c.endpoints(), None, Target::All);
    let rt = runtime().unwrap();
    let got = rt.block_on(async {
        (
            kv.get("prereq", Duration::from_secs(3)).await,
            kv.get("0004", Duration::from_secs(3)).await,
        )
    });
    assert_eq!(got.0.unwrap().0.as_deref(), Some(&b"done"[..]));
    assert_eq!(got.1.unwrap().0.as_deref(), Some(&b"vvvvvvvv"[..]));
    drop(cl);
    drop(c);
    drop(net);
    assert_clean("yst");
}

#[test]
fn a_client_that_dies_mid_run_is_reported_and_its_results_kept() {
    let mut net = Network::up(&topo("simple", 3, None), &opts("ydi")).unwrap();
    let (c, base) = cluster(&mut net, "ydi");
    let cmd = vec![STDIO_CLIENT.to_string(), "--die-after=2".into()];
    let mut cl = StdioClient::spawn(
        net.manifest(),
        "mc1",
        &cmd,
        &c.endpoints(),
        7,
        false,
        &base.join("client-7.stderr"),
    )
    .unwrap();
    for op in ops(5) {
        cl.preload(false, op).unwrap();
    }
    cl.finalise(Duration::from_secs(10)).unwrap();
    cl.start().unwrap();
    let (results, end) = cl.collect(Duration::from_secs(10));
    assert_eq!(results.len(), 2, "the results sent before it died are kept");
    let e = end.unwrap_err().to_string();
    assert!(
        e.contains("client 7 on mc1") && e.contains("after 2 results") && e.contains("exited"),
        "{e}"
    );
    assert!(
        e.contains("dying after 2 results"),
        "stderr tail missing: {e}"
    );
    // A command that does not exist is a clear error too.
    let e = StdioClient::spawn(
        net.manifest(),
        "mc1",
        &["/nonexistent/client".into()],
        &c.endpoints(),
        8,
        false,
        &base.join("c8"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("could not start /nonexistent/client"), "{e}");
    drop(cl);
    drop(c);
    drop(net);
    assert_clean("ydi");
}
