//! `reckon sweep <plan.toml>`: a grid over run parameters, with repeats, in a shuffled order;
//! one folder per run under `<out>/runs/`, and `<out>/results.csv` with a row per run
//! (parameters + summary figures). A run's id comes from its parameters and repeat, and its
//! folder holds them (`params.json`), so a plan can grow: on resume a run whose folder holds a
//! summary of the same parameters is not run again, whatever else the plan gained. A run that
//! fails is recorded and the sweep goes on. `--shard i/n` runs the i-th of n disjoint slices,
//! and `reckon sweep merge` joins the slices' results.
//!
//! Each run is `reckon run` in a process of its own, so a run that crashes cannot take the
//! sweep with it, and every run is cleaned up by the same code as a single run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;

use crate::record::Summary;

/// Parameters a plan may set, and the `reckon run` argument each becomes (positional ones first).
pub const POSITIONAL: &[&str] = &["system", "topology", "workload", "fault"];
pub const FLAGS: &[&str] = &[
    "number_nodes",
    "number_clients",
    "link_latency",
    "link_loss",
    "link_jitter",
    "impair_backend",
    "rate",
    "write_ratio",
    "max_key",
    "payload_size",
    "arrival_process",
    "duration",
    "mtbf",
    "kill_n",
    "failure_timeout",
    "client_target",
    "op_timeout",
    "max_in_flight",
    "seed",
    "random_interval",
    "random_mix",
    "expect",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default = "one")]
    repeats: u32,
    #[serde(default = "yes")]
    shuffle: bool,
    /// Seed of the shuffle.
    #[serde(default)]
    order_seed: u64,
    #[serde(default)]
    fixed: BTreeMap<String, toml::Value>,
    #[serde(default)]
    grid: BTreeMap<String, Vec<toml::Value>>,
    /// Consecutive runs on the same network reuse it (`reckon run --reuse-network`); false:
    /// every run builds its own.
    #[serde(default = "yes")]
    reuse_network: bool,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Its position in the plan before shuffling: shards are `index % n`.
    pub index: usize,
    /// From its parameters and repeat ([`point_id`]): the name of its folder.
    pub id: String,
    pub repeat: u32,
    pub params: BTreeMap<String, String>,
}

/// What a run's folder says it ran (`params.json`), and how its process ended.
#[derive(Debug, PartialEq, serde::Serialize, Deserialize)]
struct Ran {
    params: BTreeMap<String, String>,
    repeat: u32,
    /// The run's exit status (130: interrupted; -1: killed by a signal).
    exit: i32,
}

/// `reckon run`'s exit status when it was interrupted (Ctrl-C, SIGTERM).
const INTERRUPTED: i32 = 130;
use crate::run::EXPECTATION_FAILED;

/// A run's id: a hash (64-bit FNV-1a, stable across versions and machines) of its parameters
/// and repeat, so the same run keeps its id when the plan gains or loses others.
pub fn point_id(params: &BTreeMap<String, String>, repeat: u32) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in params {
        for b in k.bytes().chain([b'=']).chain(v.bytes()).chain([b'\n']) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}-r{repeat}", h >> 16)
}

/// The `reckon run` arguments of a point (after `run`): positional ones, then flags.
pub fn run_args(p: &Point) -> Vec<String> {
    let mut args: Vec<String> = POSITIONAL.iter().map(|k| p.params[*k].clone()).collect();
    for (key, v) in &p.params {
        if !POSITIONAL.contains(&key.as_str()) {
            args.push(format!("--{}", key.replace('_', "-")));
            args.push(v.clone());
        }
    }
    args
}

/// A plan, expanded.
#[derive(Clone, Debug)]
pub struct Plan {
    pub points: Vec<Point>,
    /// The grid's parameter names (for the results' columns), fixed ones after.
    pub columns: Vec<String>,
    /// Consecutive runs that build the same network run on one (see `net::reuse`).
    pub reuse_network: bool,
}

fn text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Read and expand a plan.
pub fn load(path: &Path) -> Result<Plan, String> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read sweep plan {}: {e}", path.display()))?;
    let f: PlanFile = toml::from_str(&src).map_err(|e| {
        let (line, message) = crate::toml_error(&src, &e);
        format!("{}:{line}: {message}", path.display())
    })?;
    expand(f, &path.display().to_string())
}

/// Expand a plan given as JSON (the Python module's dicts), with the TOML file's fields;
/// `origin` names it in errors.
pub fn from_json(json: &str, origin: &str) -> Result<Plan, String> {
    let f: PlanFile = serde_json::from_str(json).map_err(|e| format!("{origin}: {e}"))?;
    expand(f, origin)
}

fn expand(f: PlanFile, origin: &str) -> Result<Plan, String> {
    let known = || format!("{}, {}", POSITIONAL.join(", "), FLAGS.join(", "));
    for k in f.fixed.keys().chain(f.grid.keys()) {
        if !POSITIONAL.contains(&k.as_str()) && !FLAGS.contains(&k.as_str()) {
            return Err(format!(
                "{origin}: unknown parameter '{k}'; known: {}",
                known()
            ));
        }
    }
    if f.grid.is_empty() {
        return Err(format!(
            "{origin}: the grid is empty; give [grid] at least one parameter with a list of values"
        ));
    }
    if let Some((k, _)) = f.grid.iter().find(|(_, v)| v.is_empty()) {
        return Err(format!("{origin}: grid parameter '{k}' has no values"));
    }
    if let Some(k) = f.fixed.keys().find(|k| f.grid.contains_key(*k)) {
        return Err(format!("{origin}: '{k}' is both fixed and in the grid"));
    }
    for p in POSITIONAL {
        if !f.fixed.contains_key(*p) && !f.grid.contains_key(*p) {
            return Err(format!(
                "{origin}: say which {p} to run (in [fixed] or [grid])"
            ));
        }
    }
    if f.repeats == 0 {
        return Err(format!("{origin}: repeats must be at least 1"));
    }
    // The grid's cross product.
    let mut combos: Vec<BTreeMap<String, String>> =
        vec![f.fixed.iter().map(|(k, v)| (k.clone(), text(v))).collect()];
    for (k, values) in &f.grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(k.clone(), text(v));
                    c
                })
            })
            .collect();
    }
    let mut points = Vec::new();
    for params in &combos {
        for r in 0..f.repeats {
            points.push(Point {
                index: points.len(),
                id: point_id(params, r),
                repeat: r,
                params: params.clone(),
            });
        }
    }
    if f.shuffle {
        points.shuffle(&mut rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(
            f.order_seed,
        ));
    }
    let mut columns: Vec<String> = f.grid.keys().cloned().collect();
    columns.extend(f.fixed.keys().cloned());
    Ok(Plan {
        points,
        columns,
        reuse_network: f.reuse_network,
    })
}

/// `i/n` (1-based) -> (i, n).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {s}: write i/n with 1 <= i <= n, e.g. 2/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// What happened to one run.
pub struct Done {
    pub point: Point,
    pub status: String,
}

/// Run the plan's points (of shard `shard`) into `out`, skipping finished ones. `bin` runs
/// reckon; `prefix` the prefix each run uses. `progress` hears of each run.
pub fn run(
    plan: &Plan,
    out: &Path,
    shard: Option<(usize, usize)>,
    bin: &crate::SelfCommand,
    prefix: &str,
    mut progress: impl FnMut(usize, usize, &Point, &str),
) -> Result<Vec<Done>, String> {
    std::fs::create_dir_all(out.join("runs")).map_err(|e| format!("{}: {e}", out.display()))?;
    let mine: Vec<&Point> = plan.points.iter().filter(|p| in_shard(p, shard)).collect();
    let mut done = Vec::new();
    for (k, p) in mine.iter().enumerate() {
        if crate::signals::interrupted() {
            break;
        }
        let dir = out.join("runs").join(&p.id);
        let status = if finished(&dir, p) {
            "done before".to_string()
        } else {
            make_room(&dir, p)?;
            let mut args: Vec<String> = vec!["--prefix".into(), prefix.into(), "run".into()];
            args.extend(run_args(p));
            if plan.reuse_network {
                args.push("--reuse-network".into());
            }
            args.extend(["--result-location".into(), dir.display().to_string()]);
            let child = bin
                .command()
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("could not run {bin}: {e}"))?;
            let pid = child.id();
            let o = child
                .wait_with_output()
                .map_err(|e| format!("{bin}: {e}"))?;
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join("run.log"), [&o.stdout[..], &o.stderr[..]].concat());
            // Killed by a signal: no code; -1 says it ended all the same.
            write_ran(&dir, p, o.status.code().unwrap_or(-1));
            let last_line = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("reckon: ")
                    .to_string()
            };
            if o.status.success() {
                "ok".to_string()
            } else if o.status.code() == Some(EXPECTATION_FAILED.into()) && finished(&dir, p) {
                // It ran and measured; it missed its --expect budget (results.csv says which).
                format!("ok, {}", last_line(&o.stderr))
            } else if o.status.code() == Some(INTERRUPTED) {
                "interrupted".to_string()
            } else {
                // Whatever that run's own process left (it cleans up after itself; this is
                // for a crash): never a network someone left up under the same prefix.
                let _ = bin
                    .command()
                    .args(["--prefix", prefix, "clean", "--only", prefix])
                    .args(["--owner", &pid.to_string()])
                    .output();
                format!("failed: {}", last_line(&o.stderr))
            }
        };
        progress(k + 1, mine.len(), p, &status);
        done.push(Done {
            point: (*p).clone(),
            status,
        });
    }
    // The network the last run kept for the next one (none if it failed: it tore it down).
    if plan.reuse_network {
        if let Err(e) = crate::net::down_kept(prefix, &crate::net::OvsConfig::default()) {
            eprintln!(
                "reckon: the sweep's network (prefix {prefix}): {e}; `reckon clean` removes it"
            );
        }
    }
    write_results(plan, out, shard)?;
    Ok(done)
}

/// Whether a run's folder holds this point's finished run: its parameters, and a summary of a
/// run that was not interrupted.
fn finished(dir: &Path, p: &Point) -> bool {
    ran_for(dir, p).is_some()
        && read_summary(dir).is_some_and(|s| !s.interrupted && s.incomplete.is_none())
}

/// What `dir` says it ran, if that was `p`.
fn ran_for(dir: &Path, p: &Point) -> Option<Ran> {
    let r: Ran = serde_json::from_slice(&std::fs::read(dir.join("params.json")).ok()?).ok()?;
    (r.params == p.params && r.repeat == p.repeat).then_some(r)
}

fn write_ran(dir: &Path, p: &Point, exit: i32) {
    let r = Ran {
        params: p.params.clone(),
        repeat: p.repeat,
        exit,
    };
    if let Ok(b) = serde_json::to_vec_pretty(&r) {
        let _ = std::fs::write(dir.join("params.json"), b);
    }
}

/// Clear `dir` for a run of `p`: what an unfinished run of `p` left goes; a folder of other
/// parameters (ids are hashes: a hand-made folder, or a collision) is moved aside, not lost.
fn make_room(dir: &Path, p: &Point) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    if ran_for(dir, p).is_some() || std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
    {
        let _ = std::fs::remove_dir_all(dir);
        return Ok(());
    }
    let aside = (1..)
        .map(|k| dir.with_extension(format!("other-{k}")))
        .find(|d| !d.exists())
        .expect("a free name");
    std::fs::rename(dir, &aside).map_err(|e| format!("{}: {e}", dir.display()))
}

fn read_summary(dir: &Path) -> Option<Summary> {
    std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn in_shard(p: &Point, shard: Option<(usize, usize)>) -> bool {
    match shard {
        None => true,
        Some((i, n)) => p.index % n == i - 1,
    }
}

/// Summary figures that go into results.csv.
const FIGURES: &[&str] = &[
    "ops",
    "ok",
    "errors",
    "throughput",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "longest_gap_s",
    "linearizable",
    "expectations",
];

fn figures(s: &Summary) -> Vec<String> {
    let check = match s.check.as_ref().map(|c| c.linearizable) {
        Some(Some(true)) => "yes",
        Some(Some(false)) => "no",
        Some(None) => "undecided",
        None => "",
    };
    let expect = match &s.expect {
        Some(v) if v.iter().all(|e| e.ok) => "held".to_string(),
        Some(v) => {
            let failed: Vec<&str> = v
                .iter()
                .filter(|e| !e.ok)
                .map(|e| e.expectation.as_str())
                .collect();
            format!("failed: {}", failed.join("; "))
        }
        None => String::new(),
    };
    vec![
        s.ops.to_string(),
        s.ok.to_string(),
        s.errors.to_string(),
        format!("{:.3}", s.throughput),
        format!("{:.3}", s.latency_ms.p50),
        format!("{:.3}", s.latency_ms.p99),
        format!("{:.3}", s.latency_ms.max),
        format!("{:.3}", s.longest_gap),
        check.to_string(),
        expect,
    ]
}

/// (Re)write `<out>/results.csv` from the run folders: one row per point of the shard.
pub fn write_results(
    plan: &Plan,
    out: &Path,
    shard: Option<(usize, usize)>,
) -> Result<PathBuf, String> {
    let path = out.join("results.csv");
    let mut w = csv::Writer::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut header = vec!["id".to_string(), "repeat".into(), "status".into()];
    header.extend(plan.columns.iter().cloned());
    header.extend(FIGURES.iter().map(|s| s.to_string()));
    w.write_record(&header).map_err(|e| e.to_string())?;
    let mut points: Vec<&Point> = plan.points.iter().filter(|p| in_shard(p, shard)).collect();
    points.sort_by_key(|p| p.index);
    for p in points {
        let dir = out.join("runs").join(&p.id);
        let said = ran_for(&dir, p);
        let summary = read_summary(&dir).filter(|_| said.is_some());
        let status = match (&summary, said.map(|r| r.exit)) {
            (Some(s), _) if s.interrupted => "interrupted",
            (Some(s), _) if s.incomplete.is_some() => "incomplete",
            (Some(_), _) => "ok",
            (None, Some(INTERRUPTED)) => "interrupted",
            (None, Some(_)) => "failed",
            (None, None) => "not run",
        }
        .to_string();
        let mut row = vec![p.id.clone(), p.repeat.to_string(), status];
        row.extend(
            plan.columns
                .iter()
                .map(|c| p.params.get(c).cloned().unwrap_or_default()),
        );
        row.extend(
            summary
                .as_ref()
                .map(figures)
                .unwrap_or_else(|| vec![String::new(); FIGURES.len()]),
        );
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(path)
}

/// Join the results.csv of several shards' folders into `out/results.csv` (rows by id; a run
/// that succeeded in any shard wins over a failed or missing one).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<(PathBuf, usize), String> {
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: BTreeMap<String, csv::StringRecord> = BTreeMap::new();
    for d in dirs {
        let path = d.join("results.csv");
        let mut r = csv::Reader::from_path(&path).map_err(|e| {
            format!(
                "{}: {e}; give folders written by `reckon sweep`",
                path.display()
            )
        })?;
        let h = r.headers().map_err(|e| e.to_string())?.clone();
        match &header {
            None => header = Some(h),
            Some(prev) if *prev != h => {
                return Err(format!(
                    "{}: its columns differ from the other shards' (a different plan?)",
                    path.display()
                ))
            }
            _ => {}
        }
        for rec in r.records() {
            let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
            let id = rec.get(0).unwrap_or("").to_string();
            let better = rows.get(&id).is_none_or(|old| old.get(2) != Some("ok"));
            if better && (rec.get(2) != Some("not run") || !rows.contains_key(&id)) {
                rows.insert(id, rec);
            }
        }
    }
    let header = header.ok_or("nothing to merge: give the shards' folders")?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("results.csv");
    let mut w = csv::Writer::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    w.write_record(&header).map_err(|e| e.to_string())?;
    for r in rows.values() {
        w.write_record(r).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok((path, rows.len()))
}
