//! `reckon bench …`: benchmarks that print figures. `net` (this file): how long building and
//! tearing down topologies takes; [`engine`]: the userspace impairment engine alone; [`run`]:
//! the run's own machinery (schedule, open loop); [`client`]: reckon's load generator against
//! a real cluster, beside etcd's own.

pub mod check;
pub mod client;
pub mod engine;
pub mod mininet;
pub mod run;
pub mod sweep;

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
    /// Ports the network has on its switches, and the time removing as many bare ports takes.
    pub ports: usize,
    pub bound: Duration,
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
        let ports = topo.hosts.len() + 2 * topo.links.len();
        let mut bounds = Vec::new();
        for _ in 0..repeat.max(1) {
            bounds.push(port_bound(base, ports)?);
        }
        let b = NetBench {
            case: format!("{name}-{n}"),
            hosts: topo.hosts.len(),
            up: median(ups),
            down: median(downs),
            check,
            pairs,
            mininet,
            ports,
            bound: median(bounds),
        };
        progress(&b);
        out.push(b);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

/// The part of a teardown no network code can avoid: `ports` bare veth pairs (named
/// `<prefix>-kbN`, in a link group of their own) as ports of one standalone bridge
/// (`<prefix>-kb`, on the networks' datapath), then the bridge and the veths removed; returns
/// how long the removal took. ovs-vswitchd closes each port's socket (one RCU grace period
/// each) and the kernel destroys the veths, as in a teardown, with nothing else to do.
pub fn port_bound(base: &NetworkOptions, ports: usize) -> anyhow::Result<Duration> {
    use crate::net::rtnl::{Request, Rtnl};
    let prefix = &base.prefix;
    let group = crate::net::link_group(&format!("{prefix}kb"));
    let names: Vec<String> = (0..ports).map(|i| format!("{prefix}-kb{i}")).collect();
    let bridge = format!("{prefix}-kb");
    let mut rt = Rtnl::open()?;
    let gone = |rt: &mut Rtnl| {
        rt.links_in_group(group)
            .map(|l| l.is_empty())
            .unwrap_or(true)
    };
    // Whatever an earlier, interrupted measurement left of its own names.
    let mut db = base.ovs.connect_or_start()?;
    db.del_bridges(std::slice::from_ref(&bridge))?;
    let _ = rt.run(Request::del_group(group));
    let mut reqs = Vec::new();
    for n in &names {
        reqs.push(Request::add_veth(n, group, &format!("{n}p"), None, None));
        reqs.push(Request::link_up(n));
        reqs.push(Request::link_up(&format!("{n}p")));
    }
    let made: Result<Vec<()>, _> = rt.run_all(reqs).into_iter().collect();
    let added = made.map_err(anyhow::Error::from).and_then(|_| {
        db.add_bridges(
            &[crate::net::ovs::BridgeSpec {
                name: bridge.clone(),
                ports: names.clone(),
            }],
            base.datapath.resolve(),
            prefix,
        )
        .map_err(anyhow::Error::from)
    });
    let t = Instant::now();
    let removed = db.del_bridges(std::slice::from_ref(&bridge));
    let _ = rt.run(Request::del_group(group));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(&mut rt) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t.elapsed();
    added?;
    removed?;
    if !gone(&mut rt) {
        anyhow::bail!("the bound's veths ({prefix}-kb*) were still there after 10 s");
    }
    Ok(took)
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
        reuse_network: false,
    })
}
