//! `reckon bench`: the benchmarks, each printing its figures.

use anyhow::{bail, Result};
use clap::Subcommand;

use super::Ctx;
use crate::bench;
use crate::net::{self, Datapath};

#[derive(Subcommand)]
pub(super) enum Bench {
    /// Measure the userspace impairment engine alone (two namespaces joined only through it):
    /// the error of the delay it adds and its CPU at several packet rates, and the highest rate
    /// it forwards with under 0.1 % loss.
    Engine {
        /// Packet rates to measure, packets/s.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000, 50_000])]
        rates: Vec<u64>,
        /// The delay the engine adds, ms.
        #[arg(long, default_value_t = 5.0)]
        delay: f64,
        /// Seconds per rate.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
    },
    /// The run's machinery: operations generated per second, the open loop on one thread
    /// against a client that answers at once (rate, dispatch lag, CPU per operation), and how
    /// much longer than its duration a real etcd/wan-3 run takes.
    Run {
        /// Offered rates for the dispatch test, operations/s.
        #[arg(long, value_delimiter = ',', default_values_t = [50_000.0, 100_000.0, 200_000.0])]
        rates: Vec<f64>,
        /// Duration of the real etcd/wan-3 run, seconds (0 skips it).
        #[arg(long, default_value_t = 10.0)]
        etcd_secs: f64,
    },
    /// reckon's load generator against a real etcd on simple-3 (no link latency, one client
    /// host), beside etcd's own (`etcdctl check perf --load=l`, 60 s) on the same cluster:
    /// reckon's CPU per operation, goodput, latency, dispatch lag and memory at each offered
    /// rate, at three times etcdctl's throughput, and in a long run at a high rate.
    Client {
        /// Offered rates, operations/s.
        #[arg(long, value_delimiter = ',', default_values_t = [100.0, 2_000.0, 10_000.0])]
        rates: Vec<f64>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Skip etcdctl's check (60 s): no anchor, no 3x case.
        #[arg(long)]
        no_anchor: bool,
        /// The memory case's rate, operations/s (0 skips it).
        #[arg(long, default_value_t = 20_000.0)]
        memory_rate: f64,
        /// The memory case's duration, seconds.
        #[arg(long, default_value_t = 60.0)]
        memory_secs: f64,
    },
    /// The history checker (`reckon check`) on a synthetic linearizable history of overlapping
    /// operations (1 % of writes timing out), then on the same history with one stale read.
    Check {
        /// Operations in the history.
        #[arg(long, default_value_t = 100_000)]
        ops: usize,
        /// Registers (keys).
        #[arg(long, default_value_t = 10)]
        keys: usize,
        /// Clients issuing operations (how many overlap).
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
    /// A real sweep's overhead: etcd on wan-3 (uniform, no fault), `--runs` runs of `--secs`
    /// seconds, each its own `reckon run` as `reckon sweep` runs them (consecutive runs on one
    /// network), then again with a network built and torn down by every run; prints the
    /// seconds per run beyond its duration and where they went (the runs' stage times).
    Sweep {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Only the sweep as `reckon sweep` runs it (no pass with a network per run).
        #[arg(long)]
        no_fresh: bool,
    },
    /// Time building and tearing down wan-3..33 and simple-33, beside Mininet where it is
    /// installed, and the kernel's bound on the teardown (removing as many bare ports).
    Net {
        /// Repetitions per case (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        #[arg(long, value_enum, default_value_t = Datapath::Auto)]
        datapath: Datapath,
    },
}

pub(super) fn exec(ctx: &Ctx, cmd: Bench) -> Result<u8> {
    match cmd {
        Bench::Sweep {
            runs,
            secs,
            no_fresh,
        } => {
            if !(1..=1000).contains(&runs) || !(secs > 0.0 && secs <= 3600.0) {
                bail!("--runs 1 to 1000, --secs more than 0 and at most 3600");
            }
            crate::net::require_root()?;
            let out =
                std::env::temp_dir().join(format!("reckon-bench-sweep-{}", std::process::id()));
            out!("sweep of {runs} runs x {secs} s: etcd, wan-3, uniform, no fault, each run its own process");
            let mut passes = vec![true];
            if !no_fresh {
                passes.push(false);
            }
            let mut overheads = Vec::new();
            for reuse in passes {
                let how = if reuse {
                    "as `reckon sweep` runs it (consecutive runs on one network)"
                } else {
                    "with a network built and torn down by every run (reuse_network = false)"
                };
                out!("{how}:");
                let b =
                    bench::sweep::run(&ctx.prefix, runs, secs, reuse, &out, |k, n, p, status| {
                        eprintln!("[{k}/{n}] {}: {status}", p.id);
                    });
                let _ = std::fs::remove_dir_all(&out);
                let b = b.map_err(anyhow::Error::msg)?;
                if b.failed > 0 {
                    bail!("{} of {runs} runs did not finish; no figure", b.failed);
                }
                out!(
                    "  wall {:.1} s: {:.2} s per run beyond its {secs} s{}",
                    b.wall.as_secs_f64(),
                    b.overhead(),
                    if reuse { " (target 1 s)" } else { "" }
                );
                out!("  per run (mean s): {}", b.describe());
                out!(
                    "  beyond the cluster's own start and readiness (etcd's bootstrap, one member after another, and its election): {:.2} s per run",
                    b.overhead() - b.mean(|s| s.cluster_s)
                );
                overheads.push(b.overhead());
            }
            if let [reused, fresh] = overheads[..] {
                out!(
                    "reusing the network saves {:.2} s per run ({:.2} -> {:.2})",
                    fresh - reused,
                    fresh,
                    reused
                );
            }
        }
        Bench::Check { ops, keys, clients } => {
            if ops == 0 || keys == 0 || clients == 0 || ops > 50_000_000 {
                bail!("--ops (at most 50,000,000), --keys and --clients must be at least 1");
            }
            let b = bench::check::run(ops, keys, clients);
            let verdict = |v: Option<bool>| match v {
                Some(true) => "linearizable",
                Some(false) => "not linearizable",
                None => "undecided",
            };
            out!(
                "history checker: {} operations, {} keys, {} clients, 1% of writes timed out",
                b.ops,
                b.keys,
                b.clients
            );
            out!(
                "  linearizable history: {:.2} s ({:.0} operations/s): {}",
                b.clean.0,
                b.ops as f64 / b.clean.0.max(1e-9),
                verdict(b.clean.1)
            );
            out!(
                "  one stale read planted: {:.2} s: {}, {} operations shown",
                b.planted.0,
                verdict(b.planted.1),
                b.planted.2
            );
        }
        Bench::Engine { rates, delay, secs } => {
            let bin = crate::SelfCommand::current();
            out!("userspace engine alone, {delay} ms added on one direction, 32-byte UDP, kernel-to-kernel timestamps");
            out!(
                "{:>9} {:>9} {:>10} {:>12} {:>12} {:>10}",
                "pps",
                "offered",
                "delivered",
                "err p50 ms",
                "err p99 ms",
                "CPU %"
            );
            let (_, best, best_cpu) = bench::engine::engine(&bin, &rates, delay, secs, |r| {
                out!(
                    "{:>9} {:>9} {:>10} {:>12.3} {:>12.3} {:>10.1}",
                    r.rate,
                    r.offered,
                    r.delivered,
                    r.err_p50_us / 1e3,
                    r.err_p99_us / 1e3,
                    r.cpu_pct
                );
            })?;
            out!("highest rate forwarded with < 0.1% loss (1 ms delay, steps of 50k-100k): {best} pps, engine CPU {best_cpu:.0}% of a core");
            out!("error: |one-way delay - {delay} ms - the same stream's median one-way delay with no delay added|");
        }
        Bench::Run { rates, etcd_secs } => {
            let prefix = if ctx.prefix == net::DEFAULT_PREFIX {
                "rkbr"
            } else {
                ctx.prefix.as_str()
            };
            let b =
                bench::run::run_machinery(&rates, (etcd_secs > 0.0).then_some(etcd_secs), prefix)?;
            out!(
                "schedule generation: {:.2} M operations/s (uniform keys, 3 clients)",
                b.generated_per_s / 1e6
            );
            out!("open-loop dispatch on one thread against a client that answers at once:");
            out!(
                "{:>12} {:>14} {:>12} {:>12} {:>12} {:>14}",
                "offered/s",
                "dispatched/s",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "CPU µs/op"
            );
            for d in &b.dispatch {
                out!(
                    "{:>12.0} {:>14.0} {:>12.3} {:>12.3} {:>12.3} {:>14.2}",
                    d.offered,
                    d.dispatched_per_s,
                    d.lag_p50_ms,
                    d.lag_p99_ms,
                    d.lag_max_ms,
                    d.cpu_us_per_op
                );
            }
            if let Some((secs, wall)) = b.overhead {
                out!("a {secs} s etcd/wan-3 run took {:.1} s in all: {:.1} s beyond its duration (build, cluster, prerequisites, summary, teardown)", wall.as_secs_f64(), wall.as_secs_f64() - secs);
            }
        }
        Bench::Client {
            rates,
            secs,
            no_anchor,
            memory_rate,
            memory_secs,
        } => {
            if !(2.0..=3600.0).contains(&secs) {
                bail!("--secs {secs}: give seconds, 2 to 3600");
            }
            let prefix = if ctx.prefix == net::DEFAULT_PREFIX {
                "rkbc"
            } else {
                ctx.prefix.as_str()
            };
            let o = bench::client::ClientBenchOptions {
                prefix: prefix.into(),
                rates,
                secs,
                anchor: !no_anchor,
                memory: (memory_rate > 0.0).then_some((memory_rate, memory_secs)),
            };
            out!("reckon's load generator against etcd on simple-3: no link latency, one client host, the default (sticky) client, writes");
            if o.anchor {
                out!("anchor: etcdctl check perf --load=l in the client host, 60 s…");
            }
            let header = || {
                out!(
                    "{:>10} {:>6} {:>10} {:>9} {:>9} {:>11} {:>10} {:>8} {:>8}  {}",
                    "offered/s",
                    "secs",
                    "goodput/s",
                    "p50 ms",
                    "p99 ms",
                    "lag p99 ms",
                    "CPU µs/op",
                    "RSS MB",
                    "peak MB",
                    "errors"
                )
            };
            let mut printed = false;
            let (anchor, cases) = bench::client::client(
                &o,
                |a| {
                    out!(
                        "etcdctl check perf --load=l: {:.0} writes/s, {:.1} µs of CPU per write (its process, user+sys)",
                        a.writes_per_s,
                        a.cpu_us_per_write
                    );
                },
                |c| {
                    if !printed {
                        header();
                        printed = true;
                    }
                    let s = &c.summary;
                    let i = s.instrument.clone().unwrap_or_default();
                    let kinds: Vec<String> = s
                        .errors_by_kind
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect();
                    out!(
                        "{:>10.0} {:>6.0} {:>10.0} {:>9.2} {:>9.2} {:>11.3} {:>10.1} {:>8.1} {:>8.1}  {}",
                        c.offered,
                        c.secs,
                        c.goodput(),
                        s.latency_ms.p50,
                        s.latency_ms.p99,
                        s.dispatch_lag_ms.p99,
                        i.cpu_us_per_op,
                        i.rss_mb,
                        i.rss_peak_mb,
                        if kinds.is_empty() { "0".to_string() } else { kinds.join(", ") }
                    );
                },
            )?;
            if let Some(a) = &anchor {
                if let Some(c) = cases.iter().find(|c| c.vs_anchor) {
                    out!(
                        "goodput at 3x etcdctl's throughput ({:.0}/s offered): {:.0}/s = {:.2}x etcdctl's {:.0}/s",
                        c.offered,
                        c.goodput(),
                        c.goodput() / a.writes_per_s,
                        a.writes_per_s
                    );
                }
                if let Some(c) = cases.iter().find(|c| c.offered == 2000.0) {
                    let i = c.summary.instrument.clone().unwrap_or_default();
                    out!(
                        "CPU per operation at 2000/s: reckon {:.1} µs, etcdctl {:.1} µs ({:.2}x)",
                        i.cpu_us_per_op,
                        a.cpu_us_per_write,
                        i.cpu_us_per_op / a.cpu_us_per_write.max(1e-9)
                    );
                }
            }
            out!("CPU µs/op: reckon's process (user+sys) over the middle 80 % of each case, per operation offered; RSS at its end and the process's peak so far");
        }
        Bench::Net { repeat, datapath } => {
            out!(
                "{:<10} {:>5} {:>9} {:>9} {:>9} {:>11} {:>9} {:>8} {:>6} {:>9} {:>7}",
                "case",
                "hosts",
                "up ms",
                "down ms",
                "total ms",
                "mininet ms",
                "speedup",
                "check ms",
                "ports",
                "bound ms",
                "down/bd"
            );
            let mut why_not = None;
            bench::net(&ctx.opts(datapath, false), repeat, |b| {
                let total = b.up + b.down;
                let (mn, speed) = match &b.mininet {
                    Ok((up, down)) => {
                        let m = *up + *down;
                        (
                            format!("{:.0}", m.as_secs_f64() * 1e3),
                            format!("{:.1}x", m.as_secs_f64() / total.as_secs_f64()),
                        )
                    }
                    Err(e) => {
                        why_not.get_or_insert_with(|| e.clone());
                        ("".into(), "".into())
                    }
                };
                out!(
                    "{:<10} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>11} {:>9} {:>8.1} {:>6} {:>9.1} {:>7.2}",
                    b.case,
                    b.hosts,
                    b.up.as_secs_f64() * 1e3,
                    b.down.as_secs_f64() * 1e3,
                    total.as_secs_f64() * 1e3,
                    mn,
                    speed,
                    b.check.as_secs_f64() * 1e3,
                    b.ports,
                    b.bound.as_secs_f64() * 1e3,
                    b.down.as_secs_f64() / b.bound.as_secs_f64().max(1e-9)
                );
            })?;
            out!("up/down: medians of {repeat} without the connectivity check; check: all host pairs over ICMP and TCP");
            out!("bound: the kernel's and ovs-vswitchd's part of any teardown, measured here: as many bare veth ports as the network has on one bridge, the bridge and the veths removed (median of {repeat}); down/bd = reckon's teardown over it");
            match why_not {
                None => out!("mininet: the same topologies built and torn down by Mininet {} in this run ({repeat} each, median up+down; OVSBridge, datapath=user, no controller); speedup = Mininet's total / reckon's", bench::mininet::version()),
                Some(e) => out!("mininet: not measured: {e}"),
            }
            let rcu = std::fs::read_to_string("/sys/kernel/rcu_expedited")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            out!("kernel: rcu_expedited={rcu} (teardown is mostly ovs-vswitchd waiting one RCU grace period per port it removes; see `reckon doctor`)");
        }
    }
    Ok(0)
}
