//! Results of a run, written as the run goes so a crash keeps what completed: one row per
//! operation in `ops.csv` (flushed every 100 ms), one per fault event in `faults.csv`; at the
//! end `summary.json`, `timeseries.csv` (per 100 ms) and HdrHistogram percentile files per
//! operation kind and phase.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
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
    last_flush: std::time::Instant,
}

impl OpWriter {
    pub fn create(dir: &Path) -> std::io::Result<OpWriter> {
        let f = File::create(dir.join("ops.csv"))?;
        Ok(OpWriter {
            w: csv::Writer::from_writer(BufWriter::new(f)),
            last_flush: std::time::Instant::now(),
        })
    }

    pub fn write(&mut self, r: &OpRecord) -> std::io::Result<()> {
        self.w.serialize(r).map_err(std::io::Error::other)?;
        if self.last_flush.elapsed() > Duration::from_millis(100) {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.last_flush = std::time::Instant::now();
        self.w.flush()
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

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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
    pub errors_by_kind: std::collections::BTreeMap<String, u64>,
    /// The longest time without a successful completion, seconds, and when it began.
    pub longest_gap: f64,
    pub longest_gap_from: f64,
    pub recovery: Vec<Recovery>,
}

/// The kind of an error, for counting: its first clause, without addresses.
pub fn error_kind(e: &str) -> String {
    let e = e.to_lowercase();
    for k in [
        "timed out",
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

/// Summarise `ops` of a run of `duration` seconds with fault events `faults`, and write
/// `summary.json`, `timeseries.csv` and the histograms into `dir`.
pub fn summarise(
    dir: &Path,
    duration: f64,
    interrupted: bool,
    ops: &[OpRecord],
    faults: &[FaultRecord],
    span: Option<(f64, f64)>,
) -> std::io::Result<Summary> {
    let us = |s: f64| ((s * 1e6).round() as u64).clamp(1, 3_600_000_000);
    let (mut lat, mut svc) = (histogram(), histogram());
    let mut errors_by_kind = std::collections::BTreeMap::new();
    for o in ops {
        if o.ok {
            let _ = lat.record(us(o.latency()));
            let _ = svc.record(us(o.service()));
        } else {
            *errors_by_kind.entry(error_kind(&o.error)).or_insert(0) += 1;
        }
    }
    let ok = ops.iter().filter(|o| o.ok).count() as u64;
    // Phases, with a histogram per operation kind.
    let mut phase_list = Vec::new();
    for (name, from, to) in phases(duration, span) {
        let in_phase: Vec<&OpRecord> = ops
            .iter()
            .filter(|o| o.intended >= from && o.intended < to)
            .collect();
        let mut h = histogram();
        for kind in ["read", "write"] {
            let mut hk = histogram();
            for o in in_phase.iter().filter(|o| o.ok && o.kind == kind) {
                let _ = hk.record(us(o.latency()));
                let _ = h.record(us(o.latency()));
            }
            if hk.len() > 0 {
                write_hgrm(&dir.join(format!("latency-{kind}-{name}.hgrm")), &hk)?;
            }
        }
        let okp = in_phase.iter().filter(|o| o.ok).count() as u64;
        phase_list.push(Phase {
            name,
            from,
            to,
            ops: in_phase.len() as u64,
            ok: okp,
            throughput: if to > from {
                okp as f64 / (to - from)
            } else {
                0.0
            },
            latency_ms: percentiles(&h),
        });
    }
    // Longest gap between successful completions (from the start, to the end).
    let mut done: Vec<f64> = ops.iter().filter(|o| o.ok).map(|o| o.done).collect();
    done.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut gap, mut gap_from, mut prev) = (0.0, 0.0, 0.0);
    for t in done
        .iter()
        .copied()
        .chain([duration.max(done.last().copied().unwrap_or(0.0))])
    {
        if t - prev > gap {
            (gap, gap_from) = (t - prev, prev);
        }
        prev = t;
    }
    let recovery = faults
        .iter()
        .map(|f| Recovery {
            event: f.event,
            action: f.action.clone(),
            applied: f.applied,
            seconds_to_first_success: ops
                .iter()
                .filter(|o| o.ok && o.intended >= f.applied)
                .map(|o| o.done - f.applied)
                .min_by(|a, b| a.partial_cmp(b).unwrap()),
        })
        .collect();
    let s = Summary {
        duration,
        interrupted,
        ops: ops.len() as u64,
        ok,
        errors: ops.len() as u64 - ok,
        throughput: ok as f64 / duration,
        latency_ms: percentiles(&lat),
        service_ms: percentiles(&svc),
        phases: phase_list,
        errors_by_kind,
        longest_gap: gap,
        longest_gap_from: gap_from,
        recovery,
    };
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(&s).map_err(std::io::Error::other)?,
    )?;
    write_timeseries(&dir.join("timeseries.csv"), duration, ops)?;
    if lat.len() > 0 {
        write_hgrm(&dir.join("latency-all.hgrm"), &lat)?;
    }
    Ok(s)
}

/// HdrHistogram's percentile distribution text (values in ms), as its tools read it.
fn write_hgrm(path: &PathBuf, h: &Histogram<u64>) -> std::io::Result<()> {
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

fn write_timeseries(path: &Path, duration: f64, ops: &[OpRecord]) -> std::io::Result<()> {
    let buckets = (duration / 0.1).ceil() as usize + 1;
    let mut rows: Vec<(u64, u64, Histogram<u64>)> =
        (0..buckets).map(|_| (0, 0, histogram())).collect();
    for o in ops {
        let b = ((o.intended / 0.1) as usize).min(buckets - 1);
        if o.ok {
            rows[b].0 += 1;
            let _ = rows[b]
                .2
                .record(((o.latency() * 1e6) as u64).clamp(1, 3_600_000_000));
        } else {
            rows[b].1 += 1;
        }
    }
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(w, "time,ok,errors,throughput,p50_ms,p99_ms")?;
    for (i, (okn, err, h)) in rows.iter().enumerate() {
        let (p50, p99) = if h.len() > 0 {
            (
                h.value_at_quantile(0.5) as f64 / 1e3,
                h.value_at_quantile(0.99) as f64 / 1e3,
            )
        } else {
            (0.0, 0.0)
        };
        writeln!(
            w,
            "{:.1},{okn},{err},{},{p50:.3},{p99:.3}",
            i as f64 * 0.1,
            *okn as f64 * 10.0
        )?;
    }
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
        let s = summarise(&dir, 9.0, false, &ops, &faults, Some((3.0, 6.0))).unwrap();
        assert_eq!(s.ops, 90);
        assert_eq!(s.errors, 15);
        assert_eq!(s.errors_by_kind.get("timed out"), Some(&15));
        assert!((s.longest_gap - 1.6).abs() < 1e-6, "{}", s.longest_gap);
        assert_eq!(
            s.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["before", "during", "after"]
        );
        assert_eq!(s.phases[1].ok, 15);
        let r = s.recovery[0].seconds_to_first_success.unwrap();
        assert!((r - (4.51 - 3.001)).abs() < 1e-6, "{r}");
        assert!((s.latency_ms.p50 - 10.0).abs() < 0.05);
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
            w.write(r).unwrap();
        }
        w.flush().unwrap();
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
