//! Results of a run, written as the run goes so a crash keeps what completed: one row per
//! operation in `ops.csv` (flushed every 100 ms), one per fault event in `faults.csv`; at the
//! end `summary.json`, `timeseries.csv` (per 100 ms) and HdrHistogram percentile files per
//! operation kind and phase. The figures are computed as operations stream past ([`tally`]):
//! memory does not grow with the number of operations.

pub mod availability;
pub mod expect;
pub mod tally;

pub use availability::Window;
pub use tally::{ClientSummary, PlotData, Tally, TallyConfig};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One finished operation. Times are seconds from the run's start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// Its index in the schedule.
    pub n: u64,
    pub client: String,
    pub kind: String,
    pub key: String,
    /// When it was scheduled to start.
    pub intended: f64,
    /// When it was actually sent.
    pub sent: f64,
    pub done: f64,
    pub ok: bool,
    pub error: String,
    /// The endpoint that answered, if any.
    pub target: String,
    /// Requests sent for it (a client may try several endpoints); 0 if none was sent.
    #[serde(default)]
    pub attempts: u32,
    /// A write's value; the value a successful read saw (empty for an empty or absent key).
    /// Writes' values are unique within a run, so `reckon check` can tell which write a read
    /// saw.
    #[serde(default)]
    pub value: String,
}

impl OpRecord {
    /// From the intended start: what a user of the system would have waited (no coordinated
    /// omission).
    pub fn latency(&self) -> f64 {
        self.done - self.intended
    }
    /// From the actual send.
    pub fn service(&self) -> f64 {
        self.done - self.sent
    }
}

/// One applied fault event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub event: usize,
    pub action: String,
    /// The hosts or link it acted on, resolved.
    pub targets: String,
    pub scheduled: f64,
    /// When it took effect (the action completed).
    pub applied: f64,
    pub error: String,
}

/// Streams operations to `ops.csv`, flushing at most every 100 ms.
pub struct OpWriter {
    w: csv::Writer<BufWriter<File>>,
    path: std::path::PathBuf,
    last_flush: std::time::Instant,
    /// Writes that failed, and the first failure.
    failures: u64,
    first_failure: Option<String>,
}

impl OpWriter {
    pub fn create(dir: &Path) -> std::io::Result<OpWriter> {
        let path = dir.join("ops.csv");
        let f = File::create(&path)?;
        Ok(OpWriter {
            w: csv::Writer::from_writer(BufWriter::new(f)),
            path,
            last_flush: std::time::Instant::now(),
            failures: 0,
            first_failure: None,
        })
    }

    /// Add a record (flushed every 100 ms). A failure is kept for [`OpWriter::finish`] and the
    /// run goes on: the figures still count the operation.
    pub fn write(&mut self, r: &OpRecord) {
        if let Err(e) = self.w.serialize(r) {
            self.failed(e.to_string());
        }
        if self.last_flush.elapsed() > Duration::from_millis(100) {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = std::time::Instant::now();
        if let Err(e) = self.w.flush() {
            self.failed(e.to_string());
        }
    }

    fn failed(&mut self, e: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(e);
    }

    /// Flush, and say whether ops.csv holds all `ops` operations: `None` if every write
    /// succeeded, else what went wrong. After a failed write the file may lack rows, or hold a
    /// row twice or cut short (a buffer written again after a partial write), so any failure
    /// marks it; its rows are counted for the message.
    pub fn finish(mut self, ops: u64) -> Option<String> {
        self.flush();
        let first = self.first_failure.take()?;
        let (failures, path) = (self.failures, self.path.clone());
        drop(self);
        let rows = csv::Reader::from_path(path)
            .map(|mut r| r.records().filter(|r| r.is_ok()).count() as u64)
            .unwrap_or(0);
        Some(format!(
            "ops.csv holds {rows} rows for the {ops} operations and may lack or garble some: writing it failed {failures} times (first: {first})"
        ))
    }
}

pub fn write_faults(dir: &Path, faults: &[FaultRecord]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(dir.join("faults.csv")).map_err(std::io::Error::other)?;
    for f in faults {
        w.serialize(f).map_err(std::io::Error::other)?;
    }
    w.flush()
}

/// Read `ops.csv` back (what a crashed run left is readable too).
pub fn read_ops(path: &Path) -> Result<Vec<OpRecord>, csv::Error> {
    csv::Reader::from_path(path)?.deserialize().collect()
}

/// Latency percentiles in ms.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

pub(crate) fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Percentiles {
        count: h.len(),
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        p999: ms(0.999),
        max: h.max() as f64 / 1e3,
    }
}

/// A phase of the run: before the fault, during it, after it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    pub name: String,
    pub from: f64,
    pub to: f64,
    pub ops: u64,
    pub ok: u64,
    pub throughput: f64,
    pub latency_ms: Percentiles,
}

/// Recovery after one fault event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Recovery {
    pub event: usize,
    pub action: String,
    pub applied: f64,
    /// From the event to the first success of an operation issued after it, seconds.
    pub seconds_to_first_success: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Seconds the figures cover: the run's duration, or less if it was interrupted.
    pub duration: f64,
    /// The run was stopped before its duration (Ctrl-C, SIGTERM); a sweep runs it again.
    #[serde(default)]
    pub interrupted: bool,
    pub ops: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful operations per second.
    pub throughput: f64,
    pub latency_ms: Percentiles,
    pub service_ms: Percentiles,
    pub phases: Vec<Phase>,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The longest time without a successful completion, seconds, and when it began.
    pub longest_gap: f64,
    pub longest_gap_from: f64,
    pub recovery: Vec<Recovery>,
    /// Each client's (each data centre's) share: who suffered.
    #[serde(default)]
    pub per_client: Vec<ClientSummary>,
    /// When operations failed or were delayed past the operation timeout, and for whom.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// How many operations needed how many requests (a client may try several endpoints).
    #[serde(default)]
    pub attempts: BTreeMap<u32, u64>,
    /// Send minus intended start: how late the load generator was.
    #[serde(default)]
    pub dispatch_lag_ms: Percentiles,
    /// What the run cost reckon itself (built-in clients).
    #[serde(default)]
    pub instrument: Option<Instrument>,
    /// Set when ops.csv could not be written in full (a full disk, say): what went wrong. The
    /// figures here count every operation; ops.csv may lack some of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// The history checker's verdict, once `reckon check` has looked at the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::check::Verdict>,
    /// Where the run's wall time went (`reckon run`; not when a benchmark drives the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Stages>,
    /// `--expect`'s verdicts, one per expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Vec<expect::Verdict>>,
}

/// Where a run's wall time went, seconds: building the network (with its check and the
/// impairment's calibration), starting the cluster until it has a leader (and whatever the
/// system prepares), writing the prerequisite keys, the measured part (clients getting ready,
/// the workload's duration, the last operations' return), the end (summary, history check,
/// plots) and the teardown; `total_s` from the network's build to the end of the teardown.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stages {
    pub network_s: f64,
    /// The network was the one the run before kept (`--reuse-network`), reset, not built.
    #[serde(default)]
    pub network_reused: bool,
    pub cluster_s: f64,
    pub prerequisites_s: f64,
    pub measured_s: f64,
    #[serde(default)]
    pub end_s: Option<f64>,
    #[serde(default)]
    pub teardown_s: Option<f64>,
    #[serde(default)]
    pub total_s: Option<f64>,
    /// The network was kept for the next run instead of torn down (`teardown_s` is then the
    /// time that took).
    #[serde(default)]
    pub network_kept: bool,
}

impl Stages {
    /// One line: each stage's seconds.
    pub fn describe(&self) -> String {
        let opt = |x: Option<f64>| x.map_or("?".to_string(), |x| format!("{x:.2}"));
        format!(
            "network {:.2} s{}, cluster start and readiness {:.2} s, prerequisites {:.2} s, measured {:.2} s, end (summary, check, plots) {} s, {} {} s; total {} s",
            self.network_s,
            if self.network_reused { " (reused)" } else { "" },
            self.cluster_s,
            self.prerequisites_s,
            self.measured_s,
            opt(self.end_s),
            if self.network_kept { "kept for the next run" } else { "teardown" },
            opt(self.teardown_s),
            opt(self.total_s)
        )
    }
}

/// reckon's own cost during a run: it shares the machine with the system it measures.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Instrument {
    /// CPU time (user + system) of the reckon process over the steady part of the run.
    pub cpu_s: f64,
    /// The steady part: from and to, seconds (the middle of the run, away from start-up and
    /// the end).
    pub steady_from: f64,
    pub steady_to: f64,
    /// Operations intended in the steady part.
    pub steady_ops: u64,
    /// reckon's CPU per operation in the steady part, microseconds.
    pub cpu_us_per_op: f64,
    /// reckon's resident memory at the end of the steady part, and its peak so far, MB.
    pub rss_mb: f64,
    pub rss_peak_mb: f64,
    /// The bound on operations in flight per client host.
    pub max_in_flight: usize,
    /// The open loop ran at real-time priority (exact send and completion instants).
    #[serde(default)]
    pub realtime: bool,
}

/// The error of an operation not sent because its client was at `--max-in-flight`: recorded at
/// its intended instant, with no attempt, and left out of the dispatch lag.
pub const OVERLOADED: &str =
    "overloaded: not sent, the client had --max-in-flight operations outstanding";

/// The kind of an error, for counting: its first clause, without addresses.
pub fn error_kind(e: &str) -> String {
    let e = e.to_lowercase();
    for k in [
        "overloaded",
        "timed out",
        "no leader",
        "proposal dropped",
        "unavailable",
        "connection refused",
        "deadline",
        "leader",
        "not running",
    ] {
        if e.contains(k) {
            return k.into();
        }
    }
    e.split([';', ':'])
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(60)
        .collect()
}

/// Phases: before, during and after the fault's span (or the whole run without one), up to
/// `duration` (a run interrupted early has fewer, or shorter, phases).
pub fn phases(duration: f64, span: Option<(f64, f64)>) -> Vec<(String, f64, f64)> {
    let all: Vec<(String, f64, f64)> = match span {
        Some((a, b)) if b > a => vec![
            ("before".into(), 0.0, a),
            ("during".into(), a, b),
            ("after".into(), b, duration),
        ],
        Some((a, _)) if a > 0.0 => vec![("before".into(), 0.0, a), ("after".into(), a, duration)],
        _ => vec![("all".into(), 0.0, duration)],
    };
    all.into_iter()
        .filter(|(_, from, _)| *from < duration)
        .map(|(name, from, to)| (name, from, to.min(duration)))
        .collect()
}

/// Summarise a list of operations (a run read back, a test): the same figures as a run's.
/// With `dir`, the files a run writes (summary.json, timeseries.csv, histograms) go there.
pub fn summarise(
    dir: Option<&Path>,
    cfg: TallyConfig,
    covered: f64,
    interrupted: bool,
    ops: impl IntoIterator<Item = OpRecord>,
    faults: &[FaultRecord],
) -> std::io::Result<(Summary, PlotData)> {
    let mut t = Tally::new(cfg);
    for f in faults {
        t.fault(f);
    }
    for o in ops {
        t.add(o);
    }
    let (s, plot) = t.finish(dir, covered, interrupted)?;
    if let Some(dir) = dir {
        write_summary(dir, &s)?;
    }
    Ok((s, plot))
}

/// Write `summary.json`.
pub fn write_summary(dir: &Path, s: &Summary) -> std::io::Result<()> {
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?,
    )
}

/// HdrHistogram's percentile distribution text (values in ms), as its tools read it.
pub(crate) fn write_hgrm(path: &Path, h: &Histogram<u64>) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    for v in h.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            format!("{:>14}", "inf")
        };
        writeln!(
            w,
            "{:>12.3} {:>14.12} {:>10} {inv}",
            v.value_iterated_to() as f64 / 1e3,
            q,
            v.count_since_last_iteration()
        )?;
    }
    writeln!(
        w,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1e3,
        h.stdev() / 1e3
    )?;
    writeln!(
        w,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1e3,
        h.len()
    )?;
    w.flush()
}

/// The type of a column of a results CSV, for readers that want typed values (the Python
/// module): every non-empty cell of the column reads as it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Column {
    Int,
    Float,
    Bool,
    Text,
}

/// Whether `s` reads as a number without losing anything: `007` is a name (reckon's keys are
/// zero-padded), not 7.
fn numeric(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !(digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."))
}

/// The narrowest type every non-empty cell reads as: int, float, bool, else text.
pub fn column_type<'a>(cells: impl Iterator<Item = &'a str> + Clone) -> Column {
    let mut cells = cells.filter(|c| !c.is_empty());
    if cells.clone().next().is_none() {
        return Column::Text;
    }
    if cells
        .clone()
        .all(|c| numeric(c) && c.parse::<i64>().is_ok())
    {
        Column::Int
    } else if cells
        .clone()
        .all(|c| numeric(c) && c.parse::<f64>().is_ok())
    {
        Column::Float
    } else if cells.all(|c| c == "true" || c == "false") {
        Column::Bool
    } else {
        Column::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(n: u64, intended: f64, done: f64, ok: bool) -> OpRecord {
        OpRecord {
            value: String::new(),
            n,
            client: "mc1".into(),
            kind: "write".into(),
            key: "1".into(),
            intended,
            sent: intended,
            done,
            ok,
            error: if ok {
                String::new()
            } else {
                "h1: timed out".into()
            },
            target: String::new(),
            attempts: 1,
        }
    }

    #[test]
    fn summary_has_phases_gaps_and_recovery() {
        let dir = std::env::temp_dir().join(format!("reckon-sum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ops = Vec::new();
        for i in 0..90 {
            let t = i as f64 * 0.1;
            // 3.0..4.5 s: everything fails.
            let ok = !(3.0..4.5).contains(&t);
            ops.push(op(i, t, t + 0.01, ok));
        }
        let faults = vec![FaultRecord {
            event: 0,
            action: "kill".into(),
            targets: "h1".into(),
            scheduled: 3.0,
            applied: 3.001,
            error: String::new(),
        }];
        let cfg = TallyConfig {
            duration: 9.0,
            clients: vec!["mc1".into()],
            events: vec![3.0],
            span: Some((3.0, 6.0)),
            op_timeout: 1.0,
        };
        let (s, _) = summarise(Some(&dir), cfg, 9.0, false, ops, &faults).unwrap();
        assert_eq!(s.ops, 90);
        assert_eq!(s.errors, 15);
        assert_eq!(s.errors_by_kind.get("timed out"), Some(&15));
        assert!((s.longest_gap - 1.6).abs() < 2e-3, "{}", s.longest_gap);
        assert_eq!(
            s.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["before", "during", "after"]
        );
        assert_eq!(s.phases[1].ok, 15);
        let r = s.recovery[0].seconds_to_first_success.unwrap();
        assert!((r - (4.51 - 3.001)).abs() < 1e-6, "{r}");
        assert!((s.latency_ms.p50 - 10.0).abs() < 0.05);
        // Who suffered: the one client, one window of the 15 failures.
        assert_eq!(s.per_client.len(), 1);
        assert_eq!(s.windows.len(), 1);
        let w = &s.windows[0];
        assert_eq!((w.failed, w.clients.clone()), (15, vec!["mc1".to_string()]));
        assert!(
            (w.start - 3.0).abs() < 1e-9 && (w.end - 4.4).abs() < 1e-9,
            "{w:?}"
        );
        for f in [
            "summary.json",
            "timeseries.csv",
            "latency-all.hgrm",
            "latency-write-before.hgrm",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let ts = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
        assert!(ts.lines().nth(31).unwrap().starts_with("3.0,0,1,"), "{ts}");
    }

    #[test]
    fn ops_csv_round_trips() {
        let dir = std::env::temp_dir().join(format!("reckon-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = OpWriter::create(&dir).unwrap();
        let rows = vec![op(0, 0.0, 0.5, true), op(1, 0.1, 0.2, false)];
        for r in &rows {
            w.write(r);
        }
        assert_eq!(w.finish(2), None, "written in full");
        assert_eq!(read_ops(&dir.join("ops.csv")).unwrap(), rows);
    }

    #[test]
    fn columns_keep_names_and_type_numbers() {
        let t = |cells: &[&str]| column_type(cells.iter().copied());
        assert_eq!(t(&["1", "2", ""]), Column::Int);
        assert_eq!(t(&["1", "2.5"]), Column::Float);
        assert_eq!(t(&["0.25", "-0.5", "0"]), Column::Float);
        assert_eq!(t(&["0001", "0002"]), Column::Text);
        assert_eq!(t(&["true", "false"]), Column::Bool);
        assert_eq!(t(&["", ""]), Column::Text);
        assert_eq!(t(&["mc1", "2"]), Column::Text);
    }

    #[test]
    fn an_interrupted_run_has_only_the_phases_it_reached() {
        let span = Some((3.0, 6.0));
        let names = |d: f64| -> Vec<(String, f64, f64)> { phases(d, span) };
        assert_eq!(names(9.0).len(), 3);
        assert_eq!(
            names(4.0),
            vec![("before".into(), 0.0, 3.0), ("during".into(), 3.0, 4.0)]
        );
        assert_eq!(names(2.0), vec![("before".into(), 0.0, 2.0)]);
    }
}
