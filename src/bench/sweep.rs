//! `reckon bench sweep`: what a sweep costs beyond the runs' own durations. A real sweep (etcd
//! on wan-3, the uniform workload, no fault, `runs` runs of `secs` seconds, each its own
//! `reckon run` process, as `reckon sweep` runs them) is timed from start to end, and each
//! run's stage times (summary.json's `stages`) say where the overhead went. It runs as
//! `reckon sweep` does (consecutive runs on one network), and then, for comparison, with a
//! network built and torn down by every run (a plan's `reuse_network = false`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::record::Stages;

pub struct SweepBench {
    pub runs: usize,
    pub secs: f64,
    /// Consecutive runs shared a network.
    pub reuse_network: bool,
    pub wall: Duration,
    /// Every finished run's stages, in the order they ran.
    pub stages: Vec<Stages>,
    /// Runs that did not finish.
    pub failed: usize,
}

impl SweepBench {
    /// Seconds per run beyond its duration.
    pub fn overhead(&self) -> f64 {
        self.wall.as_secs_f64() / self.runs as f64 - self.secs
    }

    /// The mean of one stage over the runs (a missing one counts 0).
    pub fn mean(&self, stage: impl Fn(&Stages) -> f64) -> f64 {
        self.stages.iter().map(stage).sum::<f64>() / self.runs as f64
    }

    /// The least and the most one stage took.
    pub fn range(&self, stage: impl Fn(&Stages) -> f64) -> (f64, f64) {
        self.stages
            .iter()
            .map(stage)
            .fold((f64::MAX, 0.0), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }

    /// One line: the mean of each stage, in seconds.
    pub fn describe(&self) -> String {
        let (lo, hi) = self.range(|s| s.cluster_s);
        let total = self.mean(|s| s.total_s.unwrap_or(0.0));
        format!(
            "network {:.2} ({} of {} reused), cluster start and readiness {:.2} ({lo:.2}-{hi:.2}), prerequisites {:.2}, measured {:.2} ({:.2} beyond the duration), end {:.2}, {} {:.2}; outside these (process start, checks, config, the sweep's bookkeeping and last teardown) {:.2}",
            self.mean(|s| s.network_s),
            self.stages.iter().filter(|s| s.network_reused).count(),
            self.runs,
            self.mean(|s| s.cluster_s),
            self.mean(|s| s.prerequisites_s),
            self.mean(|s| s.measured_s),
            self.mean(|s| s.measured_s) - self.secs,
            self.mean(|s| s.end_s.unwrap_or(0.0)),
            if self.reuse_network {
                "teardown or keep"
            } else {
                "teardown"
            },
            self.mean(|s| s.teardown_s.unwrap_or(0.0)),
            self.wall.as_secs_f64() / self.runs as f64 - total
        )
    }
}

/// Run the sweep into `out` (a scratch folder, emptied first).
pub fn run(
    prefix: &str,
    runs: usize,
    secs: f64,
    reuse_network: bool,
    out: &Path,
    progress: impl FnMut(usize, usize, &crate::sweep::Point, &str),
) -> Result<SweepBench, String> {
    let seeds: Vec<usize> = (1..=runs).collect();
    let plan = crate::sweep::from_json(
        &serde_json::json!({
            "repeats": 1,
            "shuffle": false,
            "reuse_network": reuse_network,
            "fixed": {
                "system": "etcd",
                "topology": "wan",
                "workload": "uniform",
                "fault": "none",
                "duration": secs,
            },
            "grid": { "seed": seeds },
        })
        .to_string(),
        "reckon bench sweep",
    )?;
    let _ = std::fs::remove_dir_all(out);
    let t = Instant::now();
    let done = crate::sweep::run(
        &plan,
        out,
        None,
        &crate::SelfCommand::current(),
        prefix,
        progress,
    )?;
    let wall = t.elapsed();
    let stages = plan
        .points
        .iter()
        .filter_map(|p| {
            let path = out.join("runs").join(&p.id).join("summary.json");
            let s: crate::record::Summary =
                serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
            s.stages
        })
        .collect();
    Ok(SweepBench {
        runs,
        secs,
        reuse_network,
        wall,
        stages,
        failed: done.iter().filter(|d| !d.status.starts_with("ok")).count(),
    })
}
