//! A run: `reckon run <system> <topology> <workload> <fault>`. The pipeline, in order:
//! check every input (nothing is built before that), build the network, start the cluster,
//! write the prerequisites, then drive the open-loop workload from every client host while the
//! fault timeline plays, recording as it goes; summarise; tear down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::etcd::{in_host, local_node, EtcdKv, Target};
use crate::fault::{Action, Event, Fault};
use crate::net::{Network, NetworkOptions};
use crate::record::{self, FaultRecord, OpRecord, Summary};
use crate::system::{Cluster, ClusterOptions, SystemDef};
use crate::topology::Topology;
use crate::workload::{Op, Scheduled, Workload};

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
    pub result_dir: PathBuf,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// An external client (program and arguments) speaking reckon's stdio protocol, instead of
    /// the built-in etcd client.
    pub client_cmd: Option<Vec<String>>,
}

/// What `config.json` records: every resolved parameter and the versions.
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
    client_target: Target,
    op_timeout_s: f64,
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
    let dir = &spec.result_dir;
    let results = |error: String| RunError::Results {
        path: dir.display().to_string(),
        error,
    };
    if dir.join("ops.csv").exists() {
        return Err(results(
            "already holds a run's results (ops.csv); choose another --result-location".into(),
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| results(format!("{e}; choose a writable --result-location")))?;
    let probe = dir.join(".reckon-write-test");
    std::fs::write(&probe, b"").map_err(|e| {
        results(format!(
            "not writable: {e}; choose another --result-location"
        ))
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn secs(t0: Instant) -> f64 {
    Instant::now().saturating_duration_since(t0).as_secs_f64()
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
    let dir = spec.result_dir.clone();
    let results = |e: std::io::Error| RunError::Results {
        path: dir.display().to_string(),
        error: e.to_string(),
    };
    let system_version = std::process::Command::new(&spec.system.binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(String::from)
        })
        .unwrap_or_default();
    let cfg = Config {
        reckon_version: env!("CARGO_PKG_VERSION"),
        system: &spec.system.name,
        system_version,
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
        client_target: spec.client_target,
        op_timeout_s: spec.op_timeout.as_secs_f64(),
    };
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg).map_err(|e| results(std::io::Error::other(e)))?,
    )
    .map_err(results)?;

    // The network, the cluster, the prerequisites.
    eprintln!(
        "reckon: building {} ({} hosts)…",
        spec.topology.name,
        spec.topology.hosts.len()
    );
    let mut net_opts = spec.net.clone();
    net_opts.impairable_all |= spec.fault.events.iter().any(|e| e.action == Action::Impair);
    let mut net = Network::up(&spec.topology, &net_opts)?;
    let data_root = std::env::temp_dir().join(format!(
        "reckon-{}-{}-data",
        spec.net.prefix,
        std::process::id()
    ));
    let copts = ClusterOptions {
        failure_timeout: spec.failure_timeout,
        log_dir: dir.join("logs"),
        data_root,
    };
    eprintln!(
        "reckon: starting {} on {} nodes…",
        spec.system.name,
        spec.topology.nodes().count()
    );
    let mut cluster = Cluster::start(&mut net, &spec.system, &copts)?;
    let leader = cluster.wait_ready(Duration::from_secs(30))?;
    eprintln!(
        "reckon: {} is up, leader {leader}; writing {} prerequisite keys…",
        spec.system.name,
        spec.workload.max_key + 1
    );
    net.connect_switches()?;
    let endpoints = cluster.endpoints();
    let clients: Vec<String> = spec.topology.clients().map(|h| h.name.clone()).collect();
    prerequisites(
        &net,
        &clients[0],
        &endpoints,
        &spec.workload,
        spec.op_timeout,
    )?;

    // The schedule, per client.
    let mut per_client: Vec<Vec<Scheduled>> = vec![Vec::new(); clients.len()];
    for s in spec.workload.schedule(clients.len()) {
        per_client[s.client].push(s);
    }
    let total: u64 = per_client.iter().map(|v| v.len() as u64).sum();

    // Recorder: ops.csv as the run goes.
    let (tx, rx) = mpsc::channel::<OpRecord>();
    let (ok_count, err_count) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut writer = record::OpWriter::create(&dir).map_err(results)?;
    let (okc, errc) = (ok_count.clone(), err_count.clone());
    let recorder = std::thread::spawn(move || {
        let mut all = Vec::new();
        for r in rx {
            if r.ok {
                okc.fetch_add(1, Ordering::Relaxed)
            } else {
                errc.fetch_add(1, Ordering::Relaxed)
            };
            let _ = writer.write(&r);
            all.push(r);
        }
        let _ = writer.flush();
        all
    });

    // Every client gets ready (an external one takes its operations first), then all start at t0.
    let stop = Arc::new(AtomicBool::new(false));
    let duration = spec.workload.duration;
    let manifest = net.manifest().clone();
    let mut threads = Vec::new();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut go = Vec::new();
    for (i, ops) in per_client.into_iter().enumerate() {
        let (tx, stop, eps, m, ready_tx) = (
            tx.clone(),
            stop.clone(),
            endpoints.clone(),
            manifest.clone(),
            ready_tx.clone(),
        );
        let (go_tx, go_rx) = mpsc::channel::<Instant>();
        go.push(go_tx);
        let host = clients[i].clone();
        let local = local_node(&spec.topology, &host);
        let (target, timeout) = (spec.client_target, spec.op_timeout);
        match &spec.client_cmd {
            None => threads.push(std::thread::spawn(move || -> Result<(), String> {
                let _ = ready_tx.send(Ok(()));
                let Ok(t0) = go_rx.recv() else { return Ok(()) };
                in_host(&m, &host.clone(), move || {
                    drive(host, ops, eps, local, target, timeout, t0, tx, stop)
                })
                .map_err(|e| e.to_string())
            })),
            Some(cmd) => {
                let (cmd, log) = (
                    cmd.clone(),
                    dir.join("logs").join(format!("client-{}.stderr", i + 1)),
                );
                let silence = Duration::from_secs_f64(duration) + Duration::from_secs(60);
                threads.push(std::thread::spawn(move || {
                    external(
                        &m,
                        host,
                        i as u32 + 1,
                        &cmd,
                        eps,
                        local,
                        ops,
                        &log,
                        silence,
                        ready_tx,
                        go_rx,
                        tx,
                    )
                }));
            }
        }
    }
    drop(tx);
    drop(ready_tx);
    let mut not_ready = Vec::new();
    for r in ready_rx.iter().take(clients.len()) {
        if let Err(e) = r {
            not_ready.push(e);
        }
    }
    if !not_ready.is_empty() {
        drop(go);
        for t in threads {
            let _ = t.join();
        }
        return Err(RunError::Bad(format!(
            "clients did not get ready:\n{}",
            not_ready.join("\n")
        )));
    }
    let t0 = Instant::now() + Duration::from_millis(100);
    for g in &go {
        let _ = g.send(t0);
    }
    let progress = spec.progress.then(|| {
        progress_bar(
            total,
            duration,
            t0,
            ok_count.clone(),
            err_count.clone(),
            stop.clone(),
        )
    });

    // The fault timeline, on this thread.
    let mut faults = Vec::new();
    for (k, ev) in spec.fault.events.iter().enumerate() {
        let at = t0 + Duration::from_secs_f64(ev.at);
        // Resolve who is concerned a little before, so the action itself is all that is left.
        sleep_until(
            at.checked_sub(Duration::from_millis(400)).unwrap_or(at),
            &stop,
        );
        if crate::signals::interrupted() {
            break;
        }
        let targets = resolve(ev, &cluster, &spec.topology, spec.kill_n);
        sleep_until(at, &stop);
        let outcome = targets
            .clone()
            .and_then(|t| apply(ev, &t, &mut net, &mut cluster).map(|_| t));
        let applied = secs(t0);
        let (targets, error) = match outcome {
            Ok(t) => (t.describe(), String::new()),
            Err(e) => (String::new(), e),
        };
        faults.push(FaultRecord {
            event: k,
            action: format!("{:?}", ev.action).to_lowercase(),
            targets,
            scheduled: ev.at,
            applied,
            error,
        });
        if let Err(e) = record::write_faults(&dir, &faults) {
            // Stop the clients (their threads live in the hosts) before anything is torn down.
            stop.store(true, Ordering::SeqCst);
            for t in threads {
                let _ = t.join();
            }
            return Err(results(e));
        }
    }
    let faults_written = if spec.fault.events.is_empty() {
        record::write_faults(&dir, &faults)
    } else {
        Ok(())
    };
    sleep_until(t0 + Duration::from_secs_f64(duration), &stop);
    // Stopped early (Ctrl-C, SIGTERM): the results cover the run up to now.
    let interrupted = crate::signals::interrupted();
    let covered = if interrupted {
        secs(t0).min(duration)
    } else {
        duration
    };
    if interrupted || faults_written.is_err() {
        stop.store(true, Ordering::SeqCst);
    }
    let mut client_errors = Vec::new();
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            client_errors.push(e);
        }
    }
    stop.store(true, Ordering::SeqCst);
    if let Some(p) = progress {
        let _ = p.join();
    }
    let ops = recorder.join().unwrap_or_default();
    faults_written.map_err(results)?;
    let span = spec.fault.span().map(|(a, b)| {
        let applied = |t: f64| {
            faults
                .iter()
                .find(|f| (f.scheduled - t).abs() < 1e-9)
                .map(|f| f.applied)
                .unwrap_or(t)
        };
        (applied(a), applied(b))
    });
    let summary =
        record::summarise(&dir, covered, interrupted, &ops, &faults, span).map_err(results)?;
    let title = format!(
        "{} / {} / {} / {}",
        spec.system.name, spec.topology.name, spec.workload.name, spec.fault.name
    );
    let phases = record::phases(covered, span);
    let input = crate::report::PlotInput {
        title: &title,
        duration: covered,
        ops: &ops,
        faults: &faults,
        span,
        phases: &phases,
    };
    if let Err(e) = crate::report::plot_run(&dir, &input) {
        // The numbers are written; a plot that fails is reported, not fatal.
        eprintln!("reckon: plots: {e}");
    }
    drop(cluster);
    drop(net);
    Ok(RunOutcome {
        summary,
        dir,
        faults,
        client_errors,
    })
}

/// One external client: spawned in its host with every endpoint (its own data centre's first),
/// given its operations, started at t0; its results become records.
#[allow(clippy::too_many_arguments)]
fn external(
    m: &crate::net::registry::Manifest,
    host: String,
    id: u32,
    cmd: &[String],
    mut eps: Vec<String>,
    local: Option<usize>,
    ops: Vec<Scheduled>,
    log: &std::path::Path,
    silence: Duration,
    ready: mpsc::Sender<Result<(), String>>,
    go: mpsc::Receiver<Instant>,
    tx: mpsc::Sender<OpRecord>,
) -> Result<(), String> {
    use crate::client::stdio::{Message, Operation, Payload, StdioClient};
    if let Some(l) = local {
        eps.rotate_left(l);
    }
    let setup = (|| {
        let _ = std::fs::create_dir_all(log.parent().unwrap_or(std::path::Path::new(".")));
        let mut c =
            StdioClient::spawn(m, &host, cmd, &eps, id, false, log).map_err(|e| e.to_string())?;
        for s in &ops {
            let payload = match &s.op {
                Op::Write { key, value } => Payload::Write {
                    key: key.clone(),
                    value: value.clone(),
                },
                Op::Read { key } => Payload::Read { key: key.clone() },
            };
            c.preload(
                false,
                Operation {
                    payload,
                    time: s.time,
                },
            )
            .map_err(|e| e.to_string())?;
        }
        c.finalise(Duration::from_secs(120))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(c)
    })();
    let mut c = match setup {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let Ok(t0) = go.recv() else { return Ok(()) };
    std::thread::sleep(t0.saturating_duration_since(Instant::now()));
    let t0_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    c.start().map_err(|e| e.to_string())?;
    let mut n = 0u64;
    loop {
        match c.next(silence) {
            Ok(Some(Message::Result {
                t_submitted,
                t_result,
                result,
                op_kind,
                other,
                ..
            })) => {
                let intended = other
                    .get("expected_start")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(t_submitted)
                    - t0_unix;
                let ok = result == "Success";
                let _ = tx.send(OpRecord {
                    n,
                    client: host.clone(),
                    kind: format!("{op_kind:?}").to_lowercase(),
                    key: String::new(),
                    intended,
                    sent: t_submitted - t0_unix,
                    done: t_result - t0_unix,
                    ok,
                    error: if ok { String::new() } else { result },
                    target: other
                        .get("target")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                });
                n += 1;
            }
            Ok(_) => return Ok(()),
            Err(end) => {
                return Err(format!(
                    "client {id} on {host}: {end:?} after {n} results (its stderr: {})",
                    log.display()
                ))
            }
        }
    }
}

/// Sleep until `t` (the last 2 ms spinning, for precision), or until a stop is asked for.
fn sleep_until(t: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= t || stop.load(Ordering::Relaxed) || crate::signals::interrupted() {
            return;
        }
        let left = t - now;
        if left > Duration::from_millis(2) {
            std::thread::sleep((left - Duration::from_millis(2)).min(Duration::from_millis(50)));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn prerequisites(
    net: &Network,
    host: &str,
    endpoints: &[String],
    w: &Workload,
    timeout: Duration,
) -> Result<(), RunError> {
    let keys: Vec<String> = w.prerequisites().collect();
    let eps = endpoints.to_vec();
    let failed = in_host(net.manifest(), host, || async move {
        let kv = EtcdKv::new(eps, None, Target::All);
        let mut failed = Vec::new();
        for chunk in keys.chunks(64) {
            let results = futures_join(chunk.iter().map(|k| {
                let kv = kv.clone();
                let k = k.clone();
                async move { (k.clone(), kv.put(&k, b"", timeout).await) }
            }))
            .await;
            failed.extend(
                results
                    .into_iter()
                    .filter_map(|(k, r)| r.err().map(|e| format!("{k}: {e}"))),
            );
        }
        failed
    })?;
    if let Some(first) = failed.first() {
        return Err(RunError::Bad(format!(
            "{} of the prerequisite writes failed, first: {first}",
            failed.len()
        )));
    }
    Ok(())
}

/// Await every future (they run concurrently on the current runtime).
async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: 'static,
    F::Output: 'static,
{
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let handles: Vec<_> = fs.map(tokio::task::spawn_local).collect();
            let mut out = Vec::new();
            for h in handles {
                if let Ok(v) = h.await {
                    out.push(v);
                }
            }
            out
        })
        .await
}

/// One client host's open loop against etcd.
#[allow(clippy::too_many_arguments)]
async fn drive(
    host: String,
    ops: Vec<Scheduled>,
    eps: Vec<String>,
    local: Option<usize>,
    target: Target,
    timeout: Duration,
    t0: Instant,
    tx: mpsc::Sender<OpRecord>,
    stop: Arc<AtomicBool>,
) {
    let kv = EtcdKv::new(eps, local, target);
    open_loop(host, ops, t0, tx, stop, move |op| {
        let kv = kv.clone();
        async move {
            let r = match &op {
                Op::Write { key, value } => kv.put(key, value.as_bytes(), timeout).await,
                Op::Read { key } => kv.get(key, timeout).await,
            };
            r.map(|served| served.endpoint)
        }
    })
    .await
}

/// The open loop: each operation is sent at its scheduled instant, whether or not earlier ones
/// have returned (no coordinated omission), by `perform` (which answers the endpoint that
/// served it, or the error), and recorded into `tx`.
pub async fn open_loop<F, Fut>(
    host: String,
    ops: Vec<Scheduled>,
    t0: Instant,
    tx: mpsc::Sender<OpRecord>,
    stop: Arc<AtomicBool>,
    perform: F,
) where
    F: Fn(Op) -> Fut + 'static,
    Fut: std::future::Future<Output = Result<String, String>> + 'static,
{
    let set = tokio::task::LocalSet::new();
    set.run_until(async move {
        let start = tokio::time::Instant::from_std(t0);
        let mut inflight = tokio::task::JoinSet::new();
        for s in ops {
            // tokio's timer has millisecond resolution: sleep to within 2 ms of the instant, then
            // yield (letting replies be handled) until it comes.
            let due = start + Duration::from_secs_f64(s.time);
            if due > tokio::time::Instant::now() + Duration::from_millis(2) {
                tokio::time::sleep_until(due - Duration::from_millis(2)).await;
            }
            while tokio::time::Instant::now() < due {
                tokio::task::yield_now().await;
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (tx, host) = (tx.clone(), host.clone());
            let fut = perform(s.op.clone());
            inflight.spawn_local(async move {
                let sent = secs(t0);
                let r = fut.await;
                let done = secs(t0);
                let (ok, error, target) = match r {
                    Ok(endpoint) => (true, String::new(), endpoint),
                    Err(e) => (false, e, String::new()),
                };
                let _ = tx.send(OpRecord {
                    n: s.n,
                    client: host,
                    kind: s.op.kind().into(),
                    key: s.op.key().into(),
                    intended: s.time,
                    sent,
                    done,
                    ok,
                    error,
                    target,
                });
            });
            // Reap what finished, so the set stays small on long runs.
            while inflight.try_join_next().is_some() {}
        }
        while inflight.join_next().await.is_some() {}
    })
    .await;
}

/// The hosts (or nodes) an event acts on.
#[derive(Clone, Debug)]
struct Targets {
    a: Vec<String>,
    b: Vec<String>,
}

impl Targets {
    fn describe(&self) -> String {
        if self.b.is_empty() {
            self.a.join(" ")
        } else {
            format!("{} | {}", self.a.join(" "), self.b.join(" "))
        }
    }
}

fn resolve(ev: &Event, c: &Cluster, t: &Topology, kill_n: usize) -> Result<Targets, String> {
    let needs_leader = [&ev.a, &ev.b, &ev.node].iter().any(|s| {
        s.as_deref()
            .is_some_and(|s| s == "leader" || s.starts_with("follower"))
    });
    let leader = if needs_leader {
        Some(
            c.leader()
                .ok_or("no leader to select (none is agreed on)")?,
        )
    } else {
        None
    };
    let running: Vec<&str> = c
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| n.name.as_str())
        .collect();
    let followers: Vec<String> = running
        .iter()
        .filter(|n| Some(**n) != leader.as_deref())
        .map(|s| s.to_string())
        .collect();
    let one = |sel: &str, other: &[String]| -> Result<Vec<String>, String> {
        Ok(match sel {
            "leader" => vec![leader.clone().unwrap_or_default()],
            "follower" => vec![followers.first().cloned().ok_or("no follower is running")?],
            "killed" => c
                .nodes
                .iter()
                .filter(|n| !n.is_running())
                .map(|n| n.name.clone())
                .collect(),
            "paused" => c
                .nodes
                .iter()
                .filter(|n| n.is_paused())
                .map(|n| n.name.clone())
                .collect(),
            "others" => t
                .hosts
                .iter()
                .map(|h| h.name.clone())
                .filter(|h| !other.contains(h))
                .collect(),
            s if s.starts_with("followers:") => {
                let n = match &s["followers:".len()..] {
                    "kill-n" => kill_n,
                    k => k.parse().unwrap_or(0),
                };
                followers.iter().take(n).cloned().collect()
            }
            s if s.starts_with("node:") => vec![t
                .nodes()
                .nth(s[5..].parse::<usize>().unwrap_or(1) - 1)
                .ok_or(format!("{s}: no such node"))?
                .name
                .clone()],
            s if s.starts_with("client:") => vec![t
                .clients()
                .nth(s[7..].parse::<usize>().unwrap_or(1) - 1)
                .ok_or(format!("{s}: no such client"))?
                .name
                .clone()],
            s if s.starts_with("dc:") => {
                let dc: u32 = s[3..].parse().unwrap_or(0);
                t.hosts
                    .iter()
                    .filter(|h| h.dc == Some(dc))
                    .map(|h| h.name.clone())
                    .collect()
            }
            s => return Err(format!("selector {s}")),
        })
    };
    let a = match (&ev.a, &ev.node, &ev.link) {
        (Some(s), _, _) | (None, Some(s), _) => one(s, &[])?,
        (None, None, Some(link)) => vec![link.clone()],
        _ => Vec::new(),
    };
    let b = match &ev.b {
        Some(s) => one(s, &a)?,
        None => Vec::new(),
    };
    Ok(Targets { a, b })
}

fn apply(ev: &Event, t: &Targets, net: &mut Network, c: &mut Cluster) -> Result<(), String> {
    let each = |c: &mut Cluster,
                f: fn(&mut Cluster, &str) -> Result<(), crate::system::SystemError>|
     -> Result<(), String> {
        for n in &t.a {
            f(c, n).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    match ev.action {
        Action::Partition => net
            .partition(&t.a, &t.b, ev.oneway)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Action::Heal => net.heal().map(|_| ()).map_err(|e| e.to_string()),
        Action::Kill => each(c, Cluster::stop),
        Action::Restart => each(c, Cluster::restart),
        Action::Pause => each(c, Cluster::pause),
        Action::Resume => each(c, Cluster::resume),
        Action::Impair => {
            let link = ev.link.clone().unwrap_or_default();
            net.set_impairment(&link, ev.impair, ev.impair)
                .map_err(|e| e.to_string())
        }
    }
}

fn progress_bar(
    total: u64,
    duration: f64,
    t0: Instant,
    ok: Arc<AtomicU64>,
    err: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let pb = indicatif::ProgressBar::new((duration * 10.0) as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut last = (0u64, Instant::now());
        while !stop.load(Ordering::Relaxed) {
            let t = secs(t0);
            let (o, e) = (ok.load(Ordering::Relaxed), err.load(Ordering::Relaxed));
            let rate = (o - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
            last = (o, Instant::now());
            pb.set_position(((t * 10.0) as u64).min((duration * 10.0) as u64));
            pb.set_message(format!("{o}/{total} ok, {e} errors, {rate:.0} ok/s"));
            std::thread::sleep(Duration::from_millis(250));
        }
        pb.finish_and_clear();
    })
}

/// `reckon run -d`: build the network and start the system as a run would, then read commands
/// from `input` until `exit` or its end, and tear everything down.
///
/// Commands: `<host> <command…>` runs a command inside a host; `partition A B` (hosts or
/// selectors: leader, follower, node:I, dc:I, client:I, others), `oneway A B`, `heal`, `kill N`,
/// `restart N`, `pause N`, `resume N` (a node or a selector), `leader`, `status`, `hosts`,
/// `help`, `exit`.
pub fn debug_shell(
    spec: &RunSpec,
    input: impl std::io::BufRead,
    mut out: impl std::io::Write,
) -> Result<(), RunError> {
    let mut net = Network::up(&spec.topology, &spec.net)?;
    let dir = &spec.result_dir;
    std::fs::create_dir_all(dir).map_err(|e| RunError::Results {
        path: dir.display().to_string(),
        error: e.to_string(),
    })?;
    let data_root = std::env::temp_dir().join(format!(
        "reckon-{}-{}-data",
        spec.net.prefix,
        std::process::id()
    ));
    let copts = ClusterOptions {
        failure_timeout: spec.failure_timeout,
        log_dir: dir.join("logs"),
        data_root,
    };
    let mut cluster = Cluster::start(&mut net, &spec.system, &copts)?;
    let leader = cluster.wait_ready(Duration::from_secs(30))?;
    let _ = writeln!(
        out,
        "{} is up on {} (leader {leader}); endpoints {}",
        spec.system.name,
        spec.topology.name,
        cluster.endpoints().join(",")
    );
    let _ = writeln!(
        out,
        "type `help` for the commands; `exit` (or end of input) tears everything down"
    );
    let event = |action: Action, a: Option<&str>, b: Option<&str>, oneway: bool| Event {
        at: 0.0,
        action: action.clone(),
        a: if matches!(action, Action::Partition) {
            a.map(String::from)
        } else {
            None
        },
        b: b.map(String::from),
        oneway,
        node: if matches!(action, Action::Partition) {
            None
        } else {
            a.map(String::from)
        },
        link: None,
        impair: None,
    };
    for line in input.lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => continue,
            ["exit"] | ["quit"] => break,
            ["help"] => "<host> <command...> | partition A B | oneway A B | heal | kill N | restart N | pause N | resume N | leader | status | hosts | exit".to_string(),
            ["hosts"] => crate::net::describe(net.manifest()).trim_end().to_string(),
            ["leader"] => cluster.leader().unwrap_or_else(|| "no leader agreed on".into()),
            ["status"] => cluster
                .status()
                .iter()
                .map(|s| match &s.answer {
                    Some(a) => format!("{}: member {:x}, leader {:x}, term {}, index {}", s.node, a.member_id, a.leader_id, a.raft_term, a.raft_index),
                    None => format!("{}: no answer", s.node),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            [cmd @ ("partition" | "oneway"), a, b] => {
                let ev = event(Action::Partition, Some(a), Some(b), *cmd == "oneway");
                match resolve(&ev, &cluster, &spec.topology, spec.kill_n).and_then(|t| apply(&ev, &t, &mut net, &mut cluster).map(|_| t)) {
                    Ok(t) => format!("cut {}", t.describe()),
                    Err(e) => format!("error: {e}"),
                }
            }
            ["heal"] => match net.heal() {
                Ok(n) => format!("healed {n} directed pairs"),
                Err(e) => format!("error: {e}"),
            },
            [cmd @ ("kill" | "restart" | "pause" | "resume"), n] => {
                let action = match *cmd {
                    "kill" => Action::Kill,
                    "restart" => Action::Restart,
                    "pause" => Action::Pause,
                    _ => Action::Resume,
                };
                let ev = event(action, Some(n), None, false);
                match resolve(&ev, &cluster, &spec.topology, spec.kill_n).and_then(|t| apply(&ev, &t, &mut net, &mut cluster).map(|_| t)) {
                    Ok(t) => format!("{cmd}: {}", t.describe()),
                    Err(e) => format!("error: {e}"),
                }
            }
            [host, cmd @ ..] if spec.topology.host(host).is_some() => match net.command(host, cmd[0]) {
                Ok(mut c) => match c.args(&cmd[1..]).output() {
                    Ok(o) => format!("{}{}[exit {}]", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr), o.status.code().unwrap_or(-1)),
                    Err(e) => format!("error: {e}"),
                },
                Err(e) => format!("error: {e}"),
            },
            _ => format!("unknown command '{line}'; type `help`"),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    drop(cluster);
    drop(net);
    let _ = writeln!(out, "torn down");
    Ok(())
}
