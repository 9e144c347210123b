//! Starting a run's clients — the built-in open loop on a thread per client host, inside the
//! host's namespace, or an external client process per host — and what precedes and
//! accompanies them: the prerequisite writes and the progress line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::messages::{Msg, Ready};
use super::{drive, external, RunError, RunSpec};
use crate::client::local_node;
use crate::client::Target;
use crate::clock::{self, now_ns};
use crate::net::Network;
use crate::system::ClientSpec;
use crate::workload::{Op, Scheduled, Workload};

/// Clients that are ready: each waits for its `go` (the run's t0, monotonic ns).
pub struct Started {
    pub go: Vec<mpsc::Sender<u64>>,
    pub threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
    /// The built-in open loop runs at real-time priority.
    pub realtime: bool,
}

/// Start the clients of `spec` (the built-in one, or `--client-cmd` in every client host) and
/// wait until every one is ready. Their records go to `tx`.
pub fn start(
    spec: &RunSpec,
    net: &Network,
    endpoints: &[String],
    clients: &[String],
    tx: &mpsc::Sender<Msg>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<drive::Counters>,
) -> Result<Started, RunError> {
    let dir = &spec.result_dir;
    let duration = spec.workload.duration;
    let endpoints = endpoints.to_vec();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Ready, String>>();
    let mut go = Vec::new();
    let mut threads: Vec<std::thread::JoinHandle<Result<(), String>>> = Vec::new();
    match &spec.client_cmd {
        None => {
            // One thread per client host, inside its namespace: whatever sockets a client
            // opens (now or on a reconnect, itself or through a library) belong to that host.
            let adapter = spec.system.adapter();
            for (i, h) in clients.iter().enumerate() {
                let (go_tx, go_rx) = mpsc::channel::<u64>();
                go.push(go_tx);
                let fd = crate::net::open_host(net.manifest(), h)?;
                let options = spec.system.client.clone();
                let (name, eps, local) =
                    (h.clone(), endpoints.clone(), local_node(&spec.topology, h));
                let (target, timeout, max) =
                    (spec.client_target, spec.op_timeout, spec.max_in_flight);
                let (workload, n_clients) = (spec.workload.clone(), clients.len());
                let (tx, stop, counters, ready) =
                    (tx.clone(), stop.clone(), counters.clone(), ready_tx.clone());
                threads.push(std::thread::spawn(move || {
                    let fail = |e: String| {
                        let e = format!("{name}: {e}");
                        let _ = ready.send(Err(e.clone()));
                        e
                    };
                    crate::net::netns::enter(&fd)
                        .map_err(|e| fail(format!("enter namespace: {e}")))?;
                    let rt = crate::client::runtime().map_err(|e| fail(e.to_string()))?;
                    let realtime = drive::realtime();
                    rt.block_on(async {
                        let client = adapter
                            .client(ClientSpec {
                                netns: Arc::new(fd),
                                endpoints: &eps,
                                local,
                                target,
                                options: &options,
                            })
                            .map_err(fail)?;
                        let warnings = client.warm_up(Duration::from_secs(5)).await;
                        let warnings = warnings.into_iter().map(|w| format!("{name}: {w}"));
                        let _ = ready.send(Ok(Ready {
                            warnings: warnings.collect(),
                            realtime,
                        }));
                        let Ok(t0) = go_rx.recv() else { return Ok(()) };
                        let o = drive::DriveOptions {
                            op_timeout: timeout,
                            max_in_flight: max,
                            t0_ns: t0,
                        };
                        let slot = drive::Slot {
                            name: name.clone(),
                            endpoints: eps.clone(),
                            client,
                        };
                        let schedule = workload.schedule_for(n_clients, i);
                        let sink = move |b: drive::Batch| tx.send(Msg::Ops(b)).is_ok();
                        drive::open_loop(slot, schedule, &o, &stop, counters, sink)
                            .await
                            .map_err(|e| e.to_string())
                    })
                }));
            }
        }
        Some(cmd) => {
            let mut per_client: Vec<Vec<Scheduled>> = vec![Vec::new(); clients.len()];
            for s in spec.workload.schedule(clients.len()) {
                per_client[s.client].push(s);
            }
            let manifest = net.manifest().clone();
            for (i, ops) in per_client.into_iter().enumerate() {
                let (go_tx, go_rx) = mpsc::channel::<u64>();
                go.push(go_tx);
                let host = clients[i].clone();
                let local = local_node(&spec.topology, &host);
                let (cmd, log) = (
                    cmd.clone(),
                    dir.join("logs").join(format!("client-{}.stderr", i + 1)),
                );
                let silence = Duration::from_secs_f64(duration) + Duration::from_secs(60);
                let (m, eps, tx, ready, counters) = (
                    manifest.clone(),
                    endpoints.clone(),
                    tx.clone(),
                    ready_tx.clone(),
                    counters.clone(),
                );
                threads.push(std::thread::spawn(move || {
                    external::client(
                        &m,
                        host,
                        i as u32 + 1,
                        &cmd,
                        eps,
                        local,
                        ops,
                        &log,
                        silence,
                        ready,
                        go_rx,
                        tx,
                        &counters,
                    )
                }));
            }
        }
    }
    drop(ready_tx);
    let expected = go.len();
    let mut not_ready = Vec::new();
    // Built-in clients run at real-time priority only if every one does.
    let mut realtime = spec.client_cmd.is_none();
    for r in ready_rx.iter().take(expected) {
        match r {
            Ok(ready) => {
                for w in &ready.warnings {
                    eprintln!("reckon: warning: {w}");
                }
                realtime &= ready.realtime;
            }
            Err(e) => not_ready.push(e),
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
    Ok(Started {
        go,
        threads,
        realtime,
    })
}

/// How long a prerequisite write is tried again before the run gives up.
const PREREQUISITE_PATIENCE: Duration = Duration::from_secs(10);

/// Write every key once (empty value) from `host`, 64 at a time; a Ctrl-C is seen between
/// two batches.
pub fn prerequisites(
    net: &Network,
    host: &str,
    system: &crate::system::SystemDef,
    endpoints: &[String],
    w: &Workload,
    timeout: Duration,
) -> Result<(), RunError> {
    let fd = crate::net::open_host(net.manifest(), host)?;
    // On a thread inside the host, as the run's clients.
    let written = crate::net::netns::in_netns(&fd, || -> Result<(u64, Option<String>), String> {
        let rt = crate::client::runtime().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let kv = system.adapter().client(ClientSpec {
                netns: Arc::new(fd.try_clone().map_err(|e| e.to_string())?),
                endpoints,
                local: None,
                target: Target::Sticky,
                options: &system.client,
            })?;
            let mut keys = w.prerequisites();
            let (mut count, mut first) = (0u64, None);
            loop {
                if crate::signals::interrupted() {
                    return Err("interrupted".to_string());
                }
                let chunk: Vec<String> = keys.by_ref().take(64).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut set = tokio::task::JoinSet::new();
                for k in chunk {
                    let kv = kv.clone();
                    set.spawn(async move {
                        let op = Op::Write {
                            key: k.clone(),
                            value: String::new(),
                        };
                        // Before measuring, a member that has just joined may not serve yet:
                        // each write is tried again for a while, as a client starting up would.
                        let start = std::time::Instant::now();
                        loop {
                            match kv.perform(&op, timeout).await.result {
                                Ok(_) => return Ok(()),
                                Err(e)
                                    if start.elapsed() >= PREREQUISITE_PATIENCE
                                        || crate::signals::interrupted() =>
                                {
                                    return Err(format!("{k}: {e}"))
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                            }
                        }
                    });
                }
                while let Some(r) = set.join_next().await {
                    if let Ok(Err(e)) = r {
                        count += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            Ok((count, first))
        })
    })
    .map_err(|e| RunError::Bad(format!("{host}: enter namespace: {e}")))?;
    let (count, first) = written.map_err(|e| match crate::signals::interrupted() {
        true => RunError::Interrupted,
        false => RunError::Bad(e),
    })?;
    if let Some(first) = first {
        return Err(RunError::Bad(format!(
            "{count} of the prerequisite writes failed, first: {first}"
        )));
    }
    Ok(())
}

pub fn progress_bar(
    total: u64,
    duration: f64,
    t0: u64,
    counters: Arc<drive::Counters>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let pb = indicatif::ProgressBar::new((duration * 10.0) as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut last = (0u64, now_ns());
        while !stop.load(Ordering::Relaxed) {
            let t = clock::secs_since(t0, now_ns()).max(0.0);
            let (o, e) = (
                counters.ok.load(Ordering::Relaxed),
                counters.errors.load(Ordering::Relaxed),
            );
            let rate = (o - last.0) as f64 / clock::secs_since(last.1, now_ns()).max(1e-3);
            last = (o, now_ns());
            pb.set_position(((t * 10.0) as u64).min((duration * 10.0) as u64));
            pb.set_message(format!("{o}/{total} ok, {e} errors, {rate:.0} ok/s"));
            std::thread::sleep(Duration::from_millis(250));
        }
        pb.finish_and_clear();
    })
}
