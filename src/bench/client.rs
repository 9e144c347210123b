//! `reckon bench client`: reckon's load generator against a real cluster, beside etcd's own.
//!
//! One etcd cluster on simple-3 (no link latency, one client host) serves every case, so the
//! figures compare: first etcd's Go load generator (`etcdctl check perf --load=l`, 60 s, run
//! in the client host: its throughput and the CPU its process used per write), then reckon's
//! open loop at each offered rate (its own CPU per operation over the steady part of the run,
//! goodput, latency, dispatch lag and memory), then reckon at three times etcdctl's
//! throughput, and last a long run at a high rate for memory.

use std::path::PathBuf;
use std::time::Duration;

use crate::net::Network;
use crate::record::Summary;
use crate::run::{self, RunSpec};
use crate::topology::{self, Size};

/// How the benchmark runs.
pub struct ClientBenchOptions {
    pub prefix: String,
    /// Offered rates, operations/s (three times etcdctl's throughput is added).
    pub rates: Vec<f64>,
    /// Seconds per rate.
    pub secs: f64,
    /// Skip etcdctl (then there is no anchor and no 3x case).
    pub anchor: bool,
    /// The memory case: rate and seconds (None skips it).
    pub memory: Option<(f64, f64)>,
}

/// etcd's own load generator, measured.
pub struct Anchor {
    pub writes_per_s: f64,
    pub cpu_us_per_write: f64,
    pub output: String,
}

/// One of reckon's cases.
pub struct Case {
    pub offered: f64,
    pub secs: f64,
    /// The case at three times etcdctl's throughput.
    pub vs_anchor: bool,
    pub summary: Summary,
}

impl Case {
    pub fn goodput(&self) -> f64 {
        self.summary.ok as f64 / self.secs
    }
}

/// Run etcdctl's check in `host` against `endpoints`; its throughput and CPU per write.
fn etcdctl_check_perf(net: &Network, host: &str, endpoints: &[String]) -> anyhow::Result<Anchor> {
    let mut cmd = net.command(host, "etcdctl")?;
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["check", "perf", "--load=l"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut text = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut text);
        }
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut text);
        }
        text
    });
    // Reap it ourselves to get its resource usage (the CPU it used).
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        anyhow::bail!("etcdctl: wait: {}", std::io::Error::last_os_error());
    }
    let text = reader.join().unwrap_or_default();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
    let writes_per_s = text
        .lines()
        .find(|l| l.contains("Throughput"))
        .and_then(|l| {
            l.split_whitespace()
                .rev()
                .nth(1)
                .and_then(|n| n.parse::<f64>().ok())
        })
        .ok_or_else(|| anyhow::anyhow!("etcdctl check perf printed no throughput:\n{text}"))?;
    // It runs for 60 s at its throughput.
    let writes = writes_per_s * 60.0;
    Ok(Anchor {
        writes_per_s,
        cpu_us_per_write: cpu * 1e6 / writes.max(1.0),
        output: text,
    })
}

/// Build simple-3 with etcd, measure etcdctl, then reckon at each rate; `progress` gets each
/// figure as it is measured.
pub fn client(
    o: &ClientBenchOptions,
    mut anchor_done: impl FnMut(&Anchor),
    mut progress: impl FnMut(&Case),
) -> anyhow::Result<(Option<Anchor>, Vec<Case>)> {
    let topology = topology::builtin(
        "simple",
        Size {
            nodes: 3,
            clients: Some(1),
        },
    )?;
    let base = std::env::temp_dir().join(format!("reckon-bench-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let spec = |rate: f64, secs: f64, dir: PathBuf| -> anyhow::Result<RunSpec> {
        super::etcd_run(&topology, rate, secs, &o.prefix, 0.0, dir)
    };
    let first = spec(100.0, 1.0, base.join("setup"))?;
    let mut net = Network::up(&topology, &first.net)?;
    let copts = crate::system::ClusterOptions {
        failure_timeout: first.failure_timeout,
        log_dir: base.join("logs"),
        data_root: base.join("data"),
    };
    let mut cluster = crate::system::Cluster::start(&mut net, &first.system, &copts)?;
    cluster.wait_ready(Duration::from_secs(30))?;
    net.connect_switches()?;
    let endpoints = cluster.endpoints();
    run::prerequisites(
        &net,
        "mc1",
        &first.system,
        &endpoints,
        &first.workload,
        first.op_timeout,
    )?;
    let anchor = if o.anchor {
        let a = etcdctl_check_perf(&net, "mc1", &endpoints)?;
        anchor_done(&a);
        Some(a)
    } else {
        None
    };
    let mut rates: Vec<(f64, f64, bool)> = o.rates.iter().map(|&r| (r, o.secs, false)).collect();
    if let Some(a) = &anchor {
        rates.push(((3.0 * a.writes_per_s).round(), o.secs, true));
    }
    if let Some((rate, secs)) = o.memory {
        rates.push((rate, secs, false));
    }
    let mut cases = Vec::new();
    for (i, (rate, secs, vs_anchor)) in rates.into_iter().enumerate() {
        let dir = base.join(format!("case-{i}"));
        std::fs::create_dir_all(&dir)?;
        let s = spec(rate, secs, dir.clone())?;
        let out = run::measure(&s, &mut net, &mut cluster)?;
        let case = Case {
            offered: rate,
            secs,
            vs_anchor,
            summary: out.summary,
        };
        progress(&case);
        cases.push(case);
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(cluster);
    drop(net);
    let _ = std::fs::remove_dir_all(&base);
    Ok((anchor, cases))
}
