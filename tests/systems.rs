//! Every system besides etcd 3.4 (whose own tests are tests/system.rs and tests/run.rs), the
//! same checks for each: the cluster elects a leader from its definition (ZooKeeper: the
//! templated zoo.cfg and myid; NATS: its server config, then the bucket the adapter creates),
//! the built-in client writes and reads from a client host, a killed leader is replaced and
//! rejoins with its data when restarted, and a partial-partition run completes with both fault
//! events recorded. Needs root, OVS, Debian's zookeeper, etcd 3.5 and NATS (scripts/setup.sh
//! installs them).

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::*;
use reckon::client::runtime;
use reckon::net::Network;
use reckon::system::{self, ClientSpec, Cluster, ClusterOptions};
use reckon::workload::Op;

/// One system at a time: each runs three members (ZooKeeper's in JVMs) on two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn cluster(net: &mut Network, system: &str, prefix: &str) -> Cluster {
    let base =
        std::env::temp_dir().join(format!("reckon-test-sys-{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let co = ClusterOptions {
        failure_timeout: Duration::from_millis(1000),
        log_dir: base.join("logs"),
        data_root: base.join("data"),
    };
    let c = Cluster::start(net, &system::builtin(system).unwrap(), &co).unwrap();
    c.wait_ready(Duration::from_secs(60)).unwrap();
    c
}

/// Do `ops` with the built-in client from inside `host`; each outcome's result.
fn from_host(
    net: &Network,
    c: &Cluster,
    host: &str,
    ops: Vec<Op>,
) -> Vec<Result<Option<Vec<u8>>, String>> {
    let fd = reckon::net::open_host(net.manifest(), host).unwrap();
    let eps = c.endpoints();
    let def = &c.def;
    reckon::net::netns::in_netns(&fd, || {
        let rt = runtime().unwrap();
        rt.block_on(async {
            let kv = def
                .adapter()
                .client(ClientSpec {
                    netns: std::sync::Arc::new(fd.try_clone().unwrap()),
                    endpoints: &eps,
                    local: None,
                    target: reckon::client::Target::Sticky,
                    options: &def.client,
                })
                .unwrap();
            // A member killed on purpose cannot be connected to: not fatal.
            kv.warm_up(Duration::from_secs(10)).await;
            let mut out = Vec::new();
            for op in &ops {
                out.push(kv.perform(op, Duration::from_secs(5)).await.result);
            }
            out
        })
    })
    .unwrap()
}

fn write(k: &str, v: &str) -> Op {
    Op::Write {
        key: k.into(),
        value: v.into(),
    }
}

fn read(k: &str) -> Op {
    Op::Read { key: k.into() }
}

fn elects_serves_and_survives_a_leader_kill(system: &str, prefix: &str, endpoint: &str) {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = topo("wan", 3, None);
    let mut net = Network::up(&t, &opts(prefix)).unwrap();
    let mut c = cluster(&mut net, system, prefix);
    let st = c.status();
    assert!(st.iter().all(|s| s.answer.is_some()), "{st:?}");
    let old = c.leader().expect("a leader");
    // Endpoints in the system's own form.
    assert_eq!(c.endpoints()[0], endpoint, "{:?}", c.endpoints());
    let got = from_host(
        &net,
        &c,
        "mc2",
        vec![write("001", "a"), read("001"), read("missing")],
    );
    assert_eq!(got[0], Ok(None));
    assert_eq!(got[1], Ok(Some(b"a".to_vec())));
    assert_eq!(got[2], Ok(None), "a key never written reads as absent");

    // The leader killed: the others elect another, which serves (with the data).
    c.stop(&old).unwrap();
    let new = c.wait_ready(Duration::from_secs(60)).unwrap();
    assert_ne!(new, old);
    let got = from_host(&net, &c, "mc3", vec![read("001"), write("001", "b")]);
    assert_eq!(got[0], Ok(Some(b"a".to_vec())));
    assert_eq!(got[1], Ok(None));
    // Restarted with its data, the old leader rejoins: all three answer again.
    c.restart(&old).unwrap();
    c.wait_ready(Duration::from_secs(60)).unwrap();
    assert!(c.status().iter().all(|s| s.answer.is_some()));
    let got = from_host(&net, &c, "mc1", vec![read("001")]);
    assert_eq!(got[0], Ok(Some(b"b".to_vec())));
    drop(c);
    drop(net);
    assert_clean(prefix);
}

fn a_partial_partition_run_completes(system: &str, p: &str) {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::temp_dir().join(format!("reckon-test-sys-run-{p}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = opts(p);
    let o = reckon(&[
        "--prefix",
        p,
        "run",
        system,
        "wan",
        "uniform",
        "partial-partition",
        "--duration",
        "9",
        "--rate",
        "30",
        "--write-ratio",
        "0.5",
        "--result-location",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let faults: Vec<reckon::record::FaultRecord> = csv::Reader::from_path(dir.join("faults.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults.iter().all(|f| f.error.is_empty()), "{faults:?}");
    assert_eq!(faults[0].action, "partition");
    let s: reckon::record::Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s.ops, 270);
    assert!(s.phases.last().unwrap().ok > 0, "{s:?}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["system"], system);
    assert_clean(p);
}

#[test]
fn zookeeper_elects_serves_and_survives_a_leader_kill() {
    elects_serves_and_survives_a_leader_kill("zookeeper", "yzk", "10.0.1.1:2181");
}

#[test]
fn a_zookeeper_partial_partition_run_completes() {
    a_partial_partition_run_completes("zookeeper", "yzr");
}

#[test]
fn etcd_3_5_elects_serves_and_survives_a_leader_kill() {
    elects_serves_and_survives_a_leader_kill("etcd-3.5", "y35", "http://10.0.1.1:2379");
}

#[test]
fn an_etcd_3_5_partial_partition_run_completes() {
    a_partial_partition_run_completes("etcd-3.5", "y35r");
}

#[test]
fn nats_elects_serves_and_survives_a_leader_kill() {
    elects_serves_and_survives_a_leader_kill("nats", "ynt", "nats://10.0.1.1:4222");
}

#[test]
fn a_nats_partial_partition_run_completes() {
    a_partial_partition_run_completes("nats", "yntr");
}

/// NATS replicates the bucket on every node, and JetStream on at most 5: a bigger cluster is
/// refused before anything is built.
#[test]
fn nats_refuses_more_nodes_than_jetstream_replicates() {
    let dir = std::env::temp_dir().join(format!("reckon-test-sys-n6-{}", std::process::id()));
    let o = reckon(&[
        "--prefix",
        "yn6",
        "run",
        "nats",
        "wan",
        "uniform",
        "none",
        "--number-nodes",
        "6",
        "--result-location",
        dir.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("system nats runs at most 5 nodes and the topology has 6"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("config.json").exists());
    assert_clean("yn6");
}
