//! `reckon bench run`: the run's own machinery — schedule generation, the open loop against a
//! client that answers at once — and a real run's overhead beyond its duration.

use std::time::Duration;

/// What `reckon bench run` measured.
pub struct RunBench {
    pub generated_per_s: f64,
    pub dispatch: Vec<Dispatch>,
    /// Wall time of a real etcd/wan-3 run beyond its duration, if measured.
    pub overhead: Option<(f64, Duration)>,
}

/// The open loop alone, against a client that answers at once.
pub struct Dispatch {
    pub offered: f64,
    pub dispatched_per_s: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// CPU of the whole process per operation, µs.
    pub cpu_us_per_op: f64,
}

/// A client that answers every operation at once: what is left is the open loop's own cost.
#[derive(Clone)]
struct NoOp;

impl crate::client::KvClient for NoOp {
    fn perform<'a>(
        &'a self,
        _: &'a crate::workload::Op,
        _: Duration,
    ) -> crate::client::BoxFuture<'a, crate::client::Outcome> {
        Box::pin(async {
            crate::client::Outcome {
                result: Ok(None),
                endpoint: Some(0),
                attempts: 1,
            }
        })
    }

    fn warm_up(&self, _: Duration) -> crate::client::BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

/// Generation speed, open-loop dispatch against a no-op client on one thread, and (with
/// `etcd_secs`) the overhead of a real run.
pub fn run_machinery(
    rates: &[f64],
    etcd_secs: Option<f64>,
    prefix: &str,
) -> anyhow::Result<RunBench> {
    use crate::run::drive;
    use crate::workload::{builtin as workload, Overrides};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let w = workload(
        "uniform",
        &Overrides {
            rate: Some(1e6),
            duration: Some(2.0),
            write_ratio: Some(0.5),
            max_key: Some(1000),
            ..Default::default()
        },
    )?;
    let t = std::time::Instant::now();
    let n = w.schedule(3).count();
    let generated_per_s = n as f64 / t.elapsed().as_secs_f64();

    let mut dispatch = Vec::new();
    for &rate in rates {
        let w = workload(
            "uniform",
            &Overrides {
                rate: Some(rate),
                duration: Some(2.0),
                write_ratio: Some(0.5),
                ..Default::default()
            },
        )?;
        // On a thread of its own, at the priority a run's open loop has.
        let (lag, first, last, cpu) = std::thread::scope(|sc| {
            sc.spawn(|| -> anyhow::Result<_> {
                drive::realtime();
                let rt = crate::client::runtime()?;
                let mut lag = Vec::new();
                let (mut first, mut last) = (f64::MAX, 0f64);
                let cpu0 = crate::clock::process_cpu();
                rt.block_on(async {
                    let o = drive::DriveOptions {
                        op_timeout: Duration::from_secs(1),
                        max_in_flight: crate::run::DEFAULT_MAX_IN_FLIGHT,
                        t0_ns: crate::clock::now_ns() + 50_000_000,
                    };
                    let slot = drive::Slot {
                        name: "bench".into(),
                        endpoints: vec!["none".into()],
                        client: std::sync::Arc::new(NoOp)
                            as std::sync::Arc<dyn crate::client::KvClient>,
                    };
                    let sink = |b: drive::Batch| {
                        for r in b {
                            lag.push((r.sent - r.intended).max(0.0));
                            first = first.min(r.sent);
                            last = last.max(r.sent);
                        }
                        true
                    };
                    let stop = AtomicBool::new(false);
                    drive::open_loop(
                        slot,
                        w.schedule(1),
                        &o,
                        &stop,
                        Arc::new(drive::Counters::default()),
                        sink,
                    )
                    .await
                })?;
                Ok((lag, first, last, crate::clock::process_cpu() - cpu0))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the open loop panicked"))?
        })?;
        let mut lag = lag;
        lag.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| {
            lag.get(((lag.len().max(1) - 1) as f64 * p) as usize)
                .copied()
                .unwrap_or(0.0)
                * 1e3
        };
        dispatch.push(Dispatch {
            offered: rate,
            dispatched_per_s: lag.len() as f64 / (last - first).max(1e-9),
            lag_p50_ms: q(0.5),
            lag_p99_ms: q(0.99),
            lag_max_ms: q(1.0),
            cpu_us_per_op: cpu.as_secs_f64() * 1e6 / lag.len().max(1) as f64,
        });
    }

    let overhead = match etcd_secs {
        None => None,
        Some(secs) => {
            let dir = std::env::temp_dir().join(format!("reckon-bench-run-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let wan3 = crate::topology::builtin(
                "wan",
                crate::topology::Size {
                    nodes: 3,
                    clients: None,
                },
            )?;
            let spec = super::etcd_run(&wan3, 100.0, secs, prefix, 20.0, dir.clone())?;
            let t = std::time::Instant::now();
            crate::run::run(&spec)?;
            let wall = t.elapsed();
            let _ = std::fs::remove_dir_all(&dir);
            Some((secs, wall))
        }
    };
    Ok(RunBench {
        generated_per_s,
        dispatch,
        overhead,
    })
}
