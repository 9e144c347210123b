//! Clients of the system under test, inside the client hosts: the built-in etcd client (put,
//! get, per-operation timeout, endpoint choice) and external clients over reckon's stdio
//! protocol, including one that dies mid-run. Needs root, OVS and etcd.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reckon::client::etcd::{in_host, local_node, EtcdKv, Target};
use reckon::client::stdio::{Message, Operation, Payload, StdioClient};
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

#[test]
fn the_built_in_client_writes_and_reads_from_every_client_host() {
    let t = topo("wan", 3, None);
    let mut net = Network::up(&t, &opts("ybw")).unwrap();
    let (c, _) = cluster(&mut net, "ybw");
    let eps = c.endpoints();
    let leader = c.leader().unwrap();
    let leader_ep = eps[t.nodes().position(|n| n.name == leader).unwrap()].clone();
    for client in t.clients() {
        let local = local_node(&t, &client.name);
        for target in [Target::Local, Target::Leader, Target::All] {
            let all = eps.clone();
            let (put, get) = in_host(net.manifest(), &client.name, || async move {
                let kv = EtcdKv::new(all, local, target);
                let key = format!("{}-{target:?}", "k");
                let put = kv.put(&key, b"value", Duration::from_secs(3)).await;
                let get = kv.get(&key, Duration::from_secs(3)).await;
                (put, get)
            })
            .unwrap();
            let put = put.unwrap_or_else(|e| panic!("{} {target:?} put: {e}", client.name));
            let get = get.unwrap_or_else(|e| panic!("{} {target:?} get: {e}", client.name));
            assert_eq!(get.value.as_deref(), Some(&b"value"[..]));
            match target {
                // In wan, mc<i>'s own data centre holds h<i>.
                Target::Local => {
                    assert_eq!(put.endpoint, eps[local.unwrap()], "{} local", client.name)
                }
                Target::Leader => assert_eq!(put.endpoint, leader_ep, "{} leader", client.name),
                Target::All => assert_eq!(put.endpoint, eps.join(",")),
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
    let cut = Impairment {
        loss_pct: 100.0,
        ..Default::default()
    };
    net.set_impairment("mc2", Some(cut), Some(cut)).unwrap();
    let eps = c.endpoints();
    let (r, took) = in_host(net.manifest(), "mc2", || async move {
        let kv = EtcdKv::new(eps, Some(1), Target::Local);
        let t = Instant::now();
        (kv.put("x", b"y", Duration::from_secs(1)).await, t.elapsed())
    })
    .unwrap();
    let e = r.unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "took {took:?}"
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
    let old = c.leader().unwrap();
    c.stop(&old).unwrap();
    let new = c.wait_ready(Duration::from_secs(30)).unwrap();
    let eps = c.endpoints();
    let new_ep = eps[t.nodes().position(|n| n.name == new).unwrap()].clone();
    let served = in_host(net.manifest(), "mc1", || async move {
        let kv = EtcdKv::new(eps, None, Target::Leader);
        kv.put("after", b"failover", Duration::from_secs(5)).await
    })
    .unwrap()
    .unwrap();
    assert_eq!(served.endpoint, new_ep);
    drop(c);
    drop(net);
    assert_clean("ylf");
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
    let eps = c.endpoints();
    let got = in_host(net.manifest(), "mc3", || async move {
        let kv = EtcdKv::new(eps, None, Target::All);
        (
            kv.get("prereq", Duration::from_secs(3)).await,
            kv.get("0004", Duration::from_secs(3)).await,
        )
    })
    .unwrap();
    assert_eq!(got.0.unwrap().value.as_deref(), Some(&b"done"[..]));
    assert_eq!(got.1.unwrap().value.as_deref(), Some(&b"vvvvvvvv"[..]));
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
