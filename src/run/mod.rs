//! A run: `reckon run <system> <topology> <workload> <fault>`. The pipeline, in order (see
//! [`run`]): check every input (nothing is built before that), claim the result folder, build
//! the network, start the cluster, write the prerequisites, then [`measure`]: drive the
//! open-loop workload from every client host while the fault timeline plays, recording as it
//! goes; summarise; tear down.
//!
//! Division of labour: `folder` claims the result folder, `clients` starts the clients (the
//! built-in open loop of [`drive`] on a thread per client host, or [`external`] clients of
//! reckon's stdio protocol) and writes the prerequisites, [`faults`] resolves and applies fault
//! events, `messages` is what client threads send, `shell` is `-d`'s debug shell; this module
//! wires them to the recorder (`record::Tally` on a thread of its own, fed in batches).

mod clients;
pub mod drive;
pub mod external;
pub mod faults;
mod folder;
mod messages;
mod shell;

use messages::Msg;

pub use clients::prerequisites;
pub use shell::debug_shell;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde::Serialize;

use crate::client::Target;
use crate::clock::{self, now_ns};
use crate::fault::{Action, Fault};
use crate::net::{Network, NetworkOptions};
use crate::record::{self, FaultRecord, Summary};
use crate::system::{Cluster, ClusterOptions, SystemDef};
use crate::topology::Topology;
use crate::workload::Workload;

/// Everything a run needs, resolved.
pub struct RunSpec {
    pub system: SystemDef,
    pub topology: Topology,
    pub workload: Workload,
    pub fault: Fault,
    pub net: NetworkOptions,
    pub failure_timeout: Duration,
    pub kill_n: usize,
    pub allow_no_quorum: bool,
    pub mtbf: f64,
    pub client_target: Target,
    pub op_timeout: Duration,
    /// Operations outstanding per client host at most (built-in client).
    pub max_in_flight: usize,
    pub result_dir: PathBuf,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// An external client (program and arguments) speaking reckon's stdio protocol, instead of
    /// the system's built-in client.
    pub client_cmd: Option<Vec<String>>,
    /// `--expect`: judged on the summary at the end (see `record::expect`).
    pub expect: Vec<crate::record::expect::Expectation>,
    /// `--reuse-network`: run on the network kept by the run before, if it fits, and keep
    /// this run's network at the end (see `net::reuse`).
    pub reuse_network: bool,
}

/// The most operations a run checks for linearizability at its end.
pub const CHECK_AT_MOST: u64 = 5_000_000;

/// `reckon run`'s exit status when a `--expect` expectation did not hold.
pub const EXPECTATION_FAILED: u8 = 3;

/// The default of `--max-in-flight`: see the README ("Overload").
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;

/// What `config.json` records: every resolved parameter and the versions. What reckon did not
/// control (an external client's endpoint choice and timeout) is null.
#[derive(Serialize)]
struct Config<'a> {
    reckon_version: &'static str,
    system: &'a str,
    system_version: String,
    system_binary: String,
    topology: &'a Topology,
    workload: &'a Workload,
    fault: &'a Fault,
    prefix: &'a str,
    link_latency_ms: f64,
    link_jitter: f64,
    link_loss_pct: f64,
    impair_backend: String,
    seed: u64,
    failure_timeout_s: f64,
    kill_n: usize,
    mtbf_s: f64,
    /// The built-in client's model; null with an external client.
    client_target: Option<Target>,
    /// The built-in client's timeout per operation; null with an external client.
    op_timeout_s: Option<f64>,
    max_in_flight: Option<usize>,
    /// The external client's command, if one ran.
    client_cmd: Option<&'a [String]>,
    /// Operations slower than this count as unavailability (the windows in the summary).
    unavailable_after_s: f64,
    dispatch_slack_us: Option<u128>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
    #[error("result location {path}: {error}")]
    Results { path: String, error: String },
    #[error("interrupted before the run started measuring: nothing was measured")]
    Interrupted,
}

/// Check what can be checked before anything is built.
pub fn validate(spec: &RunSpec) -> Result<(), RunError> {
    let n = spec.topology.nodes().count();
    let majority = n / 2 + 1;
    if spec.kill_n > n {
        return Err(RunError::Bad(format!(
            "--kill-n {}: the cluster has only {n} nodes",
            spec.kill_n
        )));
    }
    let kills = spec.fault.kills(spec.kill_n);
    if kills >= majority && !spec.allow_no_quorum {
        return Err(RunError::Bad(format!(
            "fault {} kills {kills} of {n} nodes, a majority ({majority}): the cluster loses quorum; pass --allow-no-quorum if that is the experiment",
            spec.fault.name
        )));
    }
    if let Some(w) = spec.fault.nodes.filter(|w| *w != n) {
        return Err(RunError::Bad(format!(
            "fault {} is written for {w} nodes; the topology has {n}: give --number-nodes {w}",
            spec.fault.name
        )));
    }
    if spec.fault.impairs_between() && spec.net.impair.backend == crate::net::impair::Backend::Netem
    {
        return Err(RunError::Bad(format!(
            "fault {} impairs the packets between two hosts, which takes the userspace engine: drop --impair-backend netem (or give userspace)",
            spec.fault.name
        )));
    }
    spec.system.check_nodes(n).map_err(RunError::Bad)?;
    if spec.topology.clients().count() == 0 {
        return Err(RunError::Bad(format!(
            "topology {} has no client host",
            spec.topology.name
        )));
    }
    if !(spec.mtbf > 0.0) {
        return Err(RunError::Bad(format!(
            "--mtbf {}: give seconds, more than 0",
            spec.mtbf
        )));
    }
    if spec.op_timeout.is_zero() {
        return Err(RunError::Bad("--op-timeout must be more than 0".into()));
    }
    if spec.max_in_flight == 0 {
        return Err(RunError::Bad(
            "--max-in-flight 0: give at least 1 operation per client".into(),
        ));
    }
    Ok(())
}

/// The outcome: the summary and where the results are.
pub struct RunOutcome {
    pub summary: Summary,
    pub dir: PathBuf,
    pub faults: Vec<FaultRecord>,
    /// Clients that died or fell silent (their results up to then are recorded).
    pub client_errors: Vec<String>,
}

/// Run the experiment. Everything built is torn down on every exit path.
pub fn run(spec: &RunSpec) -> Result<RunOutcome, RunError> {
    validate(spec)?;
    // Held until the run ends: no other run writes into this folder meanwhile.
    let _folder = folder::claim(&spec.result_dir, &spec.workload)?;
    write_config(spec)?;
    let clock = std::time::Instant::now();
    let lap = |since: &mut std::time::Instant| {
        let s = since.elapsed().as_secs_f64();
        *since = std::time::Instant::now();
        s
    };
    let mut since = clock;
    let (mut net, network_reused) = network(spec)?;
    let network_s = lap(&mut since);
    let mut cluster = cluster(spec, &mut net)?;
    let cluster_s = lap(&mut since);
    write_prerequisites(spec, &mut net, &cluster)?;
    let stages = record::Stages {
        network_s,
        network_reused,
        cluster_s,
        prerequisites_s: lap(&mut since),
        ..Default::default()
    };
    let mut outcome = measure_staged(spec, &mut net, &mut cluster, Some(stages));
    // The nodes stop before their network goes.
    since = std::time::Instant::now();
    drop(cluster);
    // Kept for the next run only after a run that went well (a failed keep tears it down).
    let keep = spec.reuse_network
        && !crate::signals::interrupted()
        && outcome
            .as_ref()
            .is_ok_and(|o| !o.summary.interrupted && o.client_errors.is_empty());
    let kept = if keep {
        net.keep()
            .map_err(|e| eprintln!("reckon: keeping the network for the next run: {e}; torn down"))
            .is_ok()
    } else {
        drop(net);
        false
    };
    let teardown_s = lap(&mut since);
    if let Ok(o) = &mut outcome {
        if let Some(st) = &mut o.summary.stages {
            st.teardown_s = Some(teardown_s);
            st.network_kept = kept;
            st.total_s = Some(clock.elapsed().as_secs_f64());
            eprintln!("reckon: where the time went: {}", st.describe());
            if let Err(e) = record::write_summary(&o.dir, &o.summary) {
                eprintln!("reckon: summary.json (stage times): {e}");
            }
        }
    }
    outcome
}

/// Build the topology (every link impairable if a fault impairs one later), or with
/// `--reuse-network` take over the network the run before kept, if it fits; the flag says
/// which.
fn network(spec: &RunSpec) -> Result<(Network, bool), RunError> {
    eprintln!(
        "reckon: {} {} ({} hosts)…",
        if spec.reuse_network {
            "building or reusing"
        } else {
            "building"
        },
        spec.topology.name,
        spec.topology.hosts.len()
    );
    let mut opts = spec.net.clone();
    let between = spec.fault.impairs_between();
    opts.impairable_all |= between
        || spec
            .fault
            .events
            .iter()
            .any(|e| matches!(e.action, Action::Impair { .. }));
    // The packets between two hosts only: that takes the userspace engine.
    if between && opts.impair.backend == crate::net::impair::Backend::Auto {
        opts.impair.backend = crate::net::impair::Backend::Userspace;
    }
    if spec.reuse_network {
        return Ok(Network::reuse_or_up(&spec.topology, &opts)?);
    }
    Ok((Network::up(&spec.topology, &opts)?, false))
}

/// Start the system on the node hosts and wait until it has a leader. Node logs go to the
/// result folder, data to a scratch folder removed with the network.
fn cluster(spec: &RunSpec, net: &mut Network) -> Result<Cluster, RunError> {
    let opts = ClusterOptions {
        failure_timeout: spec.failure_timeout,
        log_dir: spec.result_dir.join("logs"),
        data_root: std::env::temp_dir().join(format!(
            "reckon-{}-{}-data",
            spec.net.prefix,
            std::process::id()
        )),
    };
    eprintln!(
        "reckon: starting {} on {} nodes…",
        spec.system.name,
        spec.topology.nodes().count()
    );
    let cluster = Cluster::start(net, &spec.system, &opts)?;
    let leader = cluster.wait_ready(Duration::from_secs(30))?;
    eprintln!(
        "reckon: {} is up, leader {leader}; writing {} prerequisite keys…",
        spec.system.name,
        spec.workload.max_key + 1
    );
    Ok(cluster)
}

/// Write every key once from the first client host, through the system's own client; open the
/// switches' OpenFlow connections first, so the fault timeline's first cut is not delayed.
fn write_prerequisites(
    spec: &RunSpec,
    net: &mut Network,
    cluster: &Cluster,
) -> Result<(), RunError> {
    net.connect_switches()?;
    let first_client = spec
        .topology
        .clients()
        .next()
        .map(|h| h.name.clone())
        .unwrap_or_default();
    prerequisites(
        net,
        &first_client,
        &spec.system,
        &cluster.endpoints(),
        &spec.workload,
        spec.op_timeout,
    )
}

/// Write `config.json` into the result folder.
pub fn write_config(spec: &RunSpec) -> Result<(), RunError> {
    let dir = &spec.result_dir;
    let builtin = spec.client_cmd.is_none();
    let cfg = Config {
        reckon_version: env!("CARGO_PKG_VERSION"),
        system: &spec.system.name,
        system_version: spec.system.version(),
        system_binary: spec.system.binary.display().to_string(),
        topology: &spec.topology,
        workload: &spec.workload,
        fault: &spec.fault,
        prefix: &spec.net.prefix,
        link_latency_ms: spec.net.impair.latency_ms,
        link_jitter: spec.net.impair.jitter,
        link_loss_pct: spec.net.impair.loss_pct,
        impair_backend: format!("{:?}", spec.net.impair.backend).to_lowercase(),
        seed: spec.workload.seed,
        failure_timeout_s: spec.failure_timeout.as_secs_f64(),
        kill_n: spec.kill_n,
        mtbf_s: spec.mtbf,
        client_target: builtin.then_some(spec.client_target),
        op_timeout_s: builtin.then_some(spec.op_timeout.as_secs_f64()),
        max_in_flight: builtin.then_some(spec.max_in_flight),
        client_cmd: spec.client_cmd.as_deref(),
        unavailable_after_s: spec.op_timeout.as_secs_f64(),
        dispatch_slack_us: builtin.then_some(drive::DISPATCH_SLACK.as_micros()),
    };
    let results = |e: String| RunError::Results {
        path: dir.display().to_string(),
        error: e,
    };
    let body = serde_json::to_vec_pretty(&cfg).map_err(|e| results(e.to_string()))?;
    std::fs::write(dir.join("config.json"), body).map_err(|e| results(e.to_string()))?;
    // The timeline as a fault file, times in seconds: `--fault-file fault.toml` replays it.
    let replay = format!(
        "# The fault of this run ({}), as played: `reckon run … --fault-file fault.toml` plays it again.\n{}",
        spec.fault.name,
        spec.fault.to_toml()
    );
    std::fs::write(dir.join("fault.toml"), replay).map_err(|e| results(e.to_string()))
}

/// The measured part of a run, on a network and cluster that are up and hold the
/// prerequisites: clients and fault timeline from t0 for the workload's duration, recorded into
/// the result folder. `reckon bench client` calls it several times on one cluster.
pub fn measure(
    spec: &RunSpec,
    net: &mut Network,
    cluster: &mut Cluster,
) -> Result<RunOutcome, RunError> {
    measure_staged(spec, net, cluster, None)
}

/// [`measure`], adding the measured part's and the end's times to `stages` (the stages before
/// it, timed by [`run`]) in the summary.
fn measure_staged(
    spec: &RunSpec,
    net: &mut Network,
    cluster: &mut Cluster,
    stages: Option<record::Stages>,
) -> Result<RunOutcome, RunError> {
    let measure_start = std::time::Instant::now();
    let dir = spec.result_dir.clone();
    let results = |e: std::io::Error| RunError::Results {
        path: dir.display().to_string(),
        error: e.to_string(),
    };
    let endpoints = cluster.endpoints();
    let clients: Vec<String> = spec.topology.clients().map(|h| h.name.clone()).collect();
    let duration = spec.workload.duration;
    let steady = (0.1 * duration, 0.9 * duration);

    // The recorder: ops.csv and the figures, fed in batches.
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut writer = record::OpWriter::create(&dir).map_err(results)?;
    let mut tally = record::Tally::new(record::TallyConfig {
        duration,
        clients: clients.clone(),
        events: spec.fault.events.iter().map(|e| e.at).collect(),
        span: spec.fault.span(),
        op_timeout: spec.op_timeout.as_secs_f64(),
    });
    let recorder = std::thread::spawn(move || {
        let (mut steady_ops, mut ops) = (0u64, 0u64);
        for m in rx {
            match m {
                Msg::Ops(batch) => {
                    for r in batch {
                        writer.write(&r);
                        ops += 1;
                        if r.intended >= steady.0 && r.intended < steady.1 {
                            steady_ops += 1;
                        }
                        tally.add(r);
                    }
                }
                Msg::Fault(f) => tally.fault(&f),
            }
        }
        let incomplete = writer.finish(ops);
        (tally, steady_ops, incomplete)
    });

    // Every client gets ready (connected; an external one has its operations), then all start
    // at t0.
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(drive::Counters::default());
    let started = clients::start(spec, net, &endpoints, &clients, &tx, &stop, &counters);
    let clients::Started {
        go,
        threads,
        realtime,
    } = match started {
        Ok(s) => s,
        Err(e) => {
            drop(tx);
            let _ = recorder.join();
            return Err(e);
        }
    };
    // Every client is ready and waits for its go: a built-in client's thread wakes within a
    // millisecond; an external client's process reads its go from a pipe.
    let lead = match spec.client_cmd {
        None => 20_000_000,
        Some(_) => 100_000_000,
    };
    let t0 = now_ns() + lead;
    for g in &go {
        let _ = g.send(t0);
    }
    let total = spec.workload.expected_ops();
    let progress = spec
        .progress
        .then(|| clients::progress_bar(total, duration, t0, counters.clone(), stop.clone()));
    let stopping = || stop.load(Ordering::Relaxed) || crate::signals::interrupted();
    // reckon's own cost over the steady part of the run, measured on a thread of its own.
    let meter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let wake = || stop.load(Ordering::Relaxed) || crate::signals::interrupted();
            clock::sleep_until(clock::at(t0, steady.0), Duration::from_millis(100), wake);
            let cpu0 = clock::process_cpu();
            clock::sleep_until(clock::at(t0, steady.1), Duration::from_millis(100), wake);
            if wake() {
                return None;
            }
            Some((clock::process_cpu() - cpu0, clock::rss()))
        })
    };

    // The fault timeline, on this thread.
    let mut faults = Vec::new();
    let mut fault_error = None;
    let mut bound = faults::Bindings::new();
    for (k, ev) in spec.fault.events.iter().enumerate() {
        let at = clock::at(t0, ev.at);
        // Resolve who is concerned a little before, so the action itself is all that is left.
        clock::sleep_until(
            at.saturating_sub(400_000_000),
            Duration::from_millis(50),
            stopping,
        );
        if stopping() {
            break;
        }
        let targets = faults::resolve(ev, &*cluster, &spec.topology, spec.kill_n, &mut bound);
        clock::sleep_until(at, Duration::from_millis(50), stopping);
        if stopping() {
            break;
        }
        let outcome = targets
            .clone()
            .and_then(|t| faults::apply(ev, &t, net, cluster).map(|_| t));
        let applied = clock::secs_since(t0, now_ns());
        let (targets, error) = match outcome {
            Ok(t) => (t.describe(), String::new()),
            Err(e) => (String::new(), e),
        };
        let f = FaultRecord {
            event: k,
            action: ev.action.name().to_string(),
            targets,
            scheduled: ev.at,
            applied,
            error,
        };
        let _ = tx.send(Msg::Fault(f.clone()));
        faults.push(f);
        if let Err(e) = record::write_faults(&dir, &faults) {
            fault_error = Some(e);
            break;
        }
    }
    let faults_written = match fault_error {
        Some(e) => Err(e),
        None if spec.fault.events.is_empty() => record::write_faults(&dir, &faults),
        None => Ok(()),
    };
    clock::sleep_until(clock::at(t0, duration), Duration::from_millis(50), stopping);
    // Stopped early (Ctrl-C, SIGTERM): the results cover the run up to now.
    let interrupted = crate::signals::interrupted();
    let covered = if interrupted {
        clock::secs_since(t0, now_ns()).clamp(0.0, duration)
    } else {
        duration
    };
    stop.store(true, Ordering::SeqCst);
    let mut client_errors = Vec::new();
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            client_errors.push(e);
        }
    }
    drop(tx);
    if let Some(p) = progress {
        let _ = p.join();
    }
    let metered = meter.join().ok().flatten();
    let (tally, steady_ops, incomplete) = recorder
        .join()
        .map_err(|_| RunError::Bad("the recorder panicked".into()))?;
    let end_start = std::time::Instant::now();
    let measured_s = (end_start - measure_start).as_secs_f64();
    faults_written.map_err(results)?;
    let (mut summary, plot) = tally
        .finish(Some(&dir), covered, interrupted)
        .map_err(results)?;
    if spec.client_cmd.is_none() {
        // Memory at the end of the steady part, or now if the run did not get that far.
        let (rss, peak) = metered.map(|m| m.1).unwrap_or_else(clock::rss);
        let cpu = metered.map(|m| m.0.as_secs_f64()).unwrap_or(0.0);
        summary.instrument = Some(record::Instrument {
            cpu_s: cpu,
            steady_from: steady.0,
            steady_to: steady.1,
            steady_ops,
            cpu_us_per_op: cpu * 1e6 / steady_ops.max(1) as f64,
            rss_mb: rss as f64 / 1e6,
            rss_peak_mb: peak as f64 / 1e6,
            max_in_flight: spec.max_in_flight,
            realtime,
        });
    }
    summary.incomplete = incomplete;
    // The history checker, on what the built-in client recorded (each write's value and what
    // each read saw); an external client's records need not carry values.
    // It holds the history in memory (about 100 bytes an operation): a very long run is left
    // to `reckon check`.
    if spec.client_cmd.is_none() && summary.ops > CHECK_AT_MOST {
        eprintln!(
            "reckon: history check skipped: {} operations, more than the {CHECK_AT_MOST} checked at the end of a run; `reckon check {}` checks it",
            summary.ops,
            dir.display()
        );
    } else if spec.client_cmd.is_none() {
        match crate::check::History::load(&dir) {
            Ok(h) => summary.check = Some(crate::check::check(&h)),
            Err(e) => eprintln!("reckon: history check: {e}"),
        }
    }
    if !spec.expect.is_empty() {
        summary.expect = Some(record::expect::judge(&spec.expect, &summary));
    }
    summary.stages = stages.map(|s| record::Stages { measured_s, ..s });
    record::write_summary(&dir, &summary).map_err(results)?;
    let title = format!(
        "{} / {} / {} / {}",
        spec.system.name, spec.topology.name, spec.workload.name, spec.fault.name
    );
    let input = crate::report::PlotInput {
        title: &title,
        duration: covered,
        data: &plot,
        faults: &faults,
        violation: summary.check.as_ref().and_then(|c| c.violation.as_ref()),
    };
    if let Err(e) = crate::report::plot_run(&dir, &input) {
        // The numbers are written; a plot that fails is reported, not fatal.
        eprintln!("reckon: plots: {e}");
    }
    if let Some(s) = &mut summary.stages {
        s.end_s = Some(end_start.elapsed().as_secs_f64());
    }
    Ok(RunOutcome {
        summary,
        dir,
        faults,
        client_errors,
    })
}
