//! `reckon bench sweep`: what a sweep costs beyond the runs' own durations. A real sweep (etcd
//! on wan-3, the uniform workload, no fault, `runs` runs of `secs` seconds, each its own
//! `reckon run` process, as `reckon sweep` runs them) is timed from start to end, and each
//! run's stage times (summary.json's `stages`) say where the overhead went.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::record::Stages;

pub struct SweepBench {
    pub runs: usize,
    pub secs: f64,
    pub wall: Duration,
    /// Mean of the runs' stages (missing ones count 0).
    pub stages: Stages,
    /// Runs that did not finish.
    pub failed: usize,
}

impl SweepBench {
    /// Seconds per run beyond its duration.
    pub fn overhead(&self) -> f64 {
        self.wall.as_secs_f64() / self.runs as f64 - self.secs
    }
}

/// Run the sweep into `out` (a scratch folder).
pub fn run(
    prefix: &str,
    runs: usize,
    secs: f64,
    out: &Path,
    progress: impl FnMut(usize, usize, &crate::sweep::Point, &str),
) -> Result<SweepBench, String> {
    let seeds: Vec<usize> = (1..=runs).collect();
    let plan = crate::sweep::from_json(
        &serde_json::json!({
            "repeats": 1,
            "shuffle": false,
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
    let mut sum = Stages::default();
    let (mut end, mut teardown, mut total) = (0.0, 0.0, 0.0);
    for p in &plan.points {
        let path = out.join("runs").join(&p.id).join("summary.json");
        let s: Option<crate::record::Summary> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(st) = s.and_then(|s| s.stages) {
            sum.network_s += st.network_s;
            sum.cluster_s += st.cluster_s;
            sum.prerequisites_s += st.prerequisites_s;
            sum.measured_s += st.measured_s;
            end += st.end_s.unwrap_or(0.0);
            teardown += st.teardown_s.unwrap_or(0.0);
            total += st.total_s.unwrap_or(0.0);
        }
    }
    let n = runs as f64;
    let stages = Stages {
        network_s: sum.network_s / n,
        cluster_s: sum.cluster_s / n,
        prerequisites_s: sum.prerequisites_s / n,
        measured_s: sum.measured_s / n,
        end_s: Some(end / n),
        teardown_s: Some(teardown / n),
        total_s: Some(total / n),
    };
    Ok(SweepBench {
        runs,
        secs,
        wall,
        stages,
        failed: done.iter().filter(|d| !d.status.starts_with("ok")).count(),
    })
}
