//! `reckon sweep`: run a plan (a grid of runs), or merge the results of its shards.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Ctx;
use crate::net;

#[derive(Args)]
pub(super) struct SweepArgs {
    #[command(subcommand)]
    merge: Option<SweepCmd>,
    /// The plan (TOML: repeats, shuffle, [fixed] and [grid] of run parameters; see
    /// scripts/lossy-etcd.toml).
    plan: Option<PathBuf>,
    /// The sweep's folder (default: results/sweep-<plan name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only the i-th of n disjoint slices (for a Slurm job array or a Kubernetes Indexed Job).
    #[arg(long, value_name = "i/n")]
    shard: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum SweepCmd {
    /// Join the results.csv of several shards' folders.
    Merge {
        /// The shards' folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the joined results.csv goes.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) fn exec(ctx: &Ctx, a: SweepArgs) -> Result<u8> {
    if let Some(SweepCmd::Merge { dirs, out }) = a.merge {
        let (path, n) = crate::sweep::merge(&dirs, &out).map_err(anyhow::Error::msg)?;
        out!("merged {n} runs into {}", path.display());
        return Ok(0);
    }
    let plan_path = a
        .plan
        .ok_or_else(|| anyhow::anyhow!("give a sweep plan (TOML), or `reckon sweep merge`"))?;
    let plan = crate::sweep::load(&plan_path).map_err(anyhow::Error::msg)?;
    let shard = a
        .shard
        .as_deref()
        .map(crate::sweep::parse_shard)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    net::require_root()?;
    let name = plan_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("results/sweep-{name}")));
    let bin = crate::SelfCommand::current();
    out!(
        "sweep {}: {} runs{} into {}",
        plan_path.display(),
        plan.points.len(),
        shard
            .map(|(i, n)| format!(", shard {i}/{n}"))
            .unwrap_or_default(),
        out.display()
    );
    // How long the runs run now take, for an estimate of the time left.
    let started = std::time::Instant::now();
    let mut last = started;
    let mut ran = 0u32;
    let done = crate::sweep::run(&plan, &out, shard, &bin, &ctx.prefix, |k, n, p, status| {
        let params: Vec<String> = plan
            .columns
            .iter()
            .take(4)
            .map(|c| format!("{c}={}", p.params.get(c).cloned().unwrap_or_default()))
            .collect();
        let took = last.elapsed().as_secs_f64();
        last = std::time::Instant::now();
        let timing = if status == "done before" {
            String::new()
        } else {
            ran += 1;
            let left = started.elapsed().as_secs_f64() / ran as f64 * (n - k) as f64;
            format!(" ({took:.1} s; about {} left)", human(left))
        };
        out!("[{k}/{n}] {} {}: {status}{timing}", p.id, params.join(" "));
    })
    .map_err(anyhow::Error::msg)?;
    let failed = done
        .iter()
        .filter(|d| d.status.starts_with("failed"))
        .count();
    let missed = done
        .iter()
        .filter(|d| d.status.starts_with("ok, expectation failed"))
        .count();
    out!(
        "{} runs: {} done before, {} run now, {failed} failed{}; results in {}",
        done.len(),
        done.iter().filter(|d| d.status == "done before").count(),
        done.iter().filter(|d| d.status.starts_with("ok")).count(),
        if missed > 0 {
            format!(", {missed} missed an expectation")
        } else {
            String::new()
        },
        out.join("results.csv").display()
    );
    if crate::signals::interrupted() {
        eprintln!(
            "reckon: sweep interrupted; the same command resumes it (finished runs are not run again)"
        );
        return Ok(130);
    }
    Ok(0)
}

/// Seconds as a person reads them: 45 s, 12 min, 3.5 h.
fn human(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}
