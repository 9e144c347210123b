//! `reckon bench …`: benchmarks that print figures. `net` (this file): how long building and
//! tearing down topologies takes; [`engine`]: the userspace impairment engine alone; [`run`]:
//! the run's own machinery (schedule, open loop); [`client`]: reckon's load generator against
//! a real cluster, beside etcd's own.

pub mod check;
pub mod client;
pub mod engine;
pub mod mininet;
pub mod run;

use std::time::{Duration, Instant};

use crate::net::{Network, NetworkOptions};
use crate::topology::{self, Size};

/// One measured case.
pub struct NetBench {
    pub case: String,
    pub hosts: usize,
    pub up: Duration,
    pub down: Duration,
    pub check: Duration,
    pub pairs: usize,
    /// Mininet's median up and down of the same topology, measured in this run (user
    /// datapath, standalone switches), or why it was not.
    pub mininet: Result<(Duration, Duration), String>,
}

/// The cases: wan with 3..33 data centres and simple with 33 nodes.
pub const CASES: &[(&str, usize)] = &[
    ("wan", 3),
    ("wan", 5),
    ("wan", 9),
    ("wan", 17),
    ("wan", 33),
    ("simple", 33),
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Build and tear down each case `repeat` times (without the connectivity check, as Mininet's
/// figures are), then once more with the check to time it. Reports medians.
pub fn net(
    base: &NetworkOptions,
    repeat: usize,
    mut progress: impl FnMut(&NetBench),
) -> anyhow::Result<Vec<NetBench>> {
    let mut out = Vec::new();
    let with_mininet = mininet::available();
    let scratch = std::env::temp_dir().join(format!("reckon-bench-mininet-{}", std::process::id()));
    for &(name, n) in CASES {
        let size = Size {
            nodes: n,
            clients: if name == "simple" { Some(1) } else { None },
        };
        let topo = topology::builtin(name, size)?;
        let mut ups = Vec::new();
        let mut downs = Vec::new();
        let opts = NetworkOptions {
            check: false,
            ..base.clone()
        };
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            let net = Network::up(&topo, &opts)?;
            ups.push(t.elapsed());
            let t = Instant::now();
            net.down()?;
            downs.push(t.elapsed());
        }
        let checked = Network::up(
            &topo,
            &NetworkOptions {
                check: true,
                ..base.clone()
            },
        )?;
        let (check, pairs) = (checked.timings.check, checked.timings.pairs_checked);
        checked.down()?;
        let mininet = with_mininet
            .clone()
            .and_then(|_| mininet::measure(&topo, repeat, &scratch));
        let b = NetBench {
            case: format!("{name}-{n}"),
            hosts: topo.hosts.len(),
            up: median(ups),
            down: median(downs),
            check,
            pairs,
            mininet,
        };
        progress(&b);
        out.push(b);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

/// A run of etcd on `topology` with the uniform workload at `rate` for `secs` and no fault,
/// reckon's defaults otherwise: what the benchmarks that run etcd measure.
pub(crate) fn etcd_run(
    topology: &crate::topology::Topology,
    rate: f64,
    secs: f64,
    prefix: &str,
    latency_ms: f64,
    dir: std::path::PathBuf,
) -> anyhow::Result<crate::run::RunSpec> {
    Ok(crate::run::RunSpec {
        system: crate::system::builtin("etcd")?,
        topology: topology.clone(),
        workload: crate::workload::builtin(
            "uniform",
            &crate::workload::Overrides {
                rate: Some(rate),
                duration: Some(secs),
                ..Default::default()
            },
        )?,
        fault: crate::fault::builtin(
            "none",
            crate::fault::Params {
                duration: secs,
                mtbf: 1.0,
            },
        )?,
        net: NetworkOptions {
            prefix: prefix.into(),
            impair: crate::net::impair::ImpairOptions {
                latency_ms,
                ..Default::default()
            },
            ..Default::default()
        },
        failure_timeout: Duration::from_secs(1),
        kill_n: 0,
        allow_no_quorum: false,
        mtbf: 1.0,
        client_target: crate::client::Target::Sticky,
        op_timeout: Duration::from_secs(1),
        max_in_flight: crate::run::DEFAULT_MAX_IN_FLIGHT,
        result_dir: dir,
        progress: false,
        client_cmd: None,
        expect: Vec::new(),
    })
}
