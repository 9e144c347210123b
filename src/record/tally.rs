//! The run's figures, computed as operations stream past: HdrHistograms and counters, never a
//! list of operations, so memory does not grow with the run's length or rate. What is kept:
//! histograms per phase and kind, per client and per 100 ms row (only the rows that can still
//! receive operations; finished rows keep four numbers), success bitmaps for gaps (1 ms
//! resolution, coarser for very long runs), the unavailability windows, and a bounded sample
//! of operations for the latency plot.
//!
//! Phases and recovery depend on when fault events were *applied*, which is known only once
//! they happen: an operation whose intended start is past a pending event's scheduled time
//! waits in a small buffer until that event is applied (a few milliseconds' worth).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::availability::{merge_windows, Gaps, Window, Windows};
use super::{
    error_kind, histogram, percentiles, phases, write_hgrm, FaultRecord, OpRecord, Percentiles,
    Phase, Recovery, Summary,
};

/// One client's (one data centre's) share of the run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClientSummary {
    pub client: String,
    pub ops: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful operations, from intended start.
    pub latency_ms: Percentiles,
    pub longest_gap: f64,
    pub longest_gap_from: f64,
    pub windows: Vec<Window>,
}

/// A phase's latency CDF: its name, its successful operations, (latency ms, fraction) points.
pub type Cdf = (String, u64, Vec<(f64, f64)>);

/// What the plots need, bounded in size whatever the run's length.
#[derive(Clone, Debug, Default)]
pub struct PlotData {
    /// (intended start s, latency ms, ok) of a sample of operations: per time slice, a random
    /// sample of successes and of failures, and the slowest success.
    pub samples: Vec<(f64, f64, bool)>,
    /// Completions per 100 ms (by completion time): (ok, errors).
    pub throughput: Vec<(u32, u32)>,
    /// Per phase: its name, operations, and (latency ms, cumulative fraction) points.
    pub cdf: Vec<Cdf>,
    pub windows: Vec<Window>,
    /// The fault's span as applied (first and last events), shaded.
    pub span: Option<(f64, f64)>,
}

/// What the tally needs to know about the run up front.
pub struct TallyConfig {
    /// Planned duration, seconds.
    pub duration: f64,
    /// Client names, in client order.
    pub clients: Vec<String>,
    /// Scheduled times of the fault events, in order.
    pub events: Vec<f64>,
    /// The fault's span, as scheduled (first and last events that bound "during").
    pub span: Option<(f64, f64)>,
    /// Successes later than this (seconds from intended start) count as delayed; also the
    /// distance that joins failures into one window.
    pub op_timeout: f64,
}

const TICK: f64 = 0.1;
const SAMPLES_PER_SLICE: usize = 24;
const PLOT_SLICES: f64 = 600.0;
const MAX_ERROR_KINDS: usize = 64;

struct ClientTally {
    ops: u64,
    ok: u64,
    latency: Histogram<u64>,
    gaps: Gaps,
    windows: Windows,
}

impl ClientTally {
    fn new(gaps: Gaps) -> ClientTally {
        ClientTally {
            ops: 0,
            ok: 0,
            latency: coarse(),
            gaps,
            windows: Windows::default(),
        }
    }
}

/// A 100 ms row of timeseries.csv.
#[derive(Clone, Copy, Default)]
struct Row {
    ok: u32,
    err: u32,
    p50: f32,
    p99: f32,
}

/// The figures of a run so far.
pub struct Tally {
    cfg: TallyConfig,
    ops: u64,
    ok: u64,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    lag: Histogram<u64>,
    errors_by_kind: BTreeMap<String, u64>,
    attempts: BTreeMap<u32, u64>,
    /// Per phase slot and kind ("read", "write").
    phase_hist: HashMap<(usize, &'static str), Histogram<u64>>,
    phase_ops: [u64; 3],
    phase_ok: [u64; 3],
    clients: Vec<ClientTally>,
    client_index: HashMap<String, usize>,
    gaps: Gaps,
    /// The seconds the success bitmaps cover.
    gap_span: f64,
    /// Indices (in `cfg.events`) of the events that bound the fault's span.
    span_events: Option<(Option<usize>, Option<usize>)>,
    /// Applied times of the events so far.
    applied: Vec<f64>,
    /// What each applied event did.
    actions: Vec<String>,
    /// Per event: the earliest completion of a success intended between it and the next one.
    first_success: Vec<Option<f64>>,
    pending: Vec<OpRecord>,
    rows: Vec<Row>,
    open_rows: BTreeMap<usize, Histogram<u64>>,
    row_pool: Vec<Histogram<u64>>,
    max_intended: f64,
    throughput: Vec<(u32, u32)>,
    slice: f64,
    sample_ok: HashMap<usize, (u64, Vec<(f64, f64)>)>,
    sample_err: HashMap<usize, (u64, Vec<(f64, f64)>)>,
    slowest: HashMap<usize, (f64, f64)>,
    rng: u64,
}

fn coarse() -> Histogram<u64> {
    // Microseconds, 2 significant digits: p50/p99 to 1 %, a few kB each.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("histogram bounds")
}

fn us(s: f64) -> u64 {
    ((s * 1e6).round().max(1.0) as u64).min(3_600_000_000)
}

impl Tally {
    pub fn new(cfg: TallyConfig) -> Tally {
        let span = cfg.duration + cfg.op_timeout + 10.0;
        // 1 ms resolution, coarser only when the bitmaps would pass ~16 MB.
        let res = (span * (cfg.clients.len() + 1) as f64 / 128e6).max(1e-3);
        let n_events = cfg.events.len();
        let clients = cfg
            .clients
            .iter()
            .map(|_| ClientTally::new(Gaps::new(span, res)))
            .collect();
        let event_at = |t: f64| cfg.events.iter().position(|e| (e - t).abs() < 1e-9);
        let span_events = cfg.span.map(|(a, b)| (event_at(a), event_at(b)));
        let client_index = cfg
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let rows = (cfg.duration / TICK).ceil() as usize + 1;
        Tally {
            slice: (cfg.duration / PLOT_SLICES).max(TICK),
            gaps: Gaps::new(span, res),
            gap_span: span,
            span_events,
            clients,
            client_index,
            ops: 0,
            ok: 0,
            latency: histogram(),
            service: histogram(),
            lag: histogram(),
            errors_by_kind: BTreeMap::new(),
            attempts: BTreeMap::new(),
            phase_hist: HashMap::new(),
            phase_ops: [0; 3],
            phase_ok: [0; 3],
            applied: Vec::new(),
            actions: Vec::new(),
            first_success: vec![None; n_events],
            pending: Vec::new(),
            rows: vec![Row::default(); rows],
            open_rows: BTreeMap::new(),
            row_pool: Vec::new(),
            max_intended: 0.0,
            throughput: vec![(0, 0); rows],
            sample_ok: HashMap::new(),
            sample_err: HashMap::new(),
            slowest: HashMap::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            cfg,
        }
    }

    /// The scheduled time of the first event not applied yet.
    fn frontier(&self) -> Option<f64> {
        self.cfg.events.get(self.applied.len()).copied()
    }

    /// A fault event was applied (events arrive in order).
    pub fn fault(&mut self, f: &FaultRecord) {
        if self.applied.len() < self.cfg.events.len() {
            self.applied.push(f.applied);
            self.actions.push(f.action.clone());
        }
        let pending = std::mem::take(&mut self.pending);
        for r in pending {
            self.add(r);
        }
    }

    /// One finished operation.
    pub fn add(&mut self, r: OpRecord) {
        if self.frontier().is_some_and(|f| r.intended >= f) && self.pending.len() < 200_000 {
            self.pending.push(r);
            return;
        }
        self.count(&r);
    }

    /// When the span's bounds were applied (scheduled while not yet known).
    fn span(&self) -> Option<(f64, f64)> {
        let (a, b) = self.cfg.span?;
        let (ka, kb) = self.span_events?;
        let applied =
            |k: Option<usize>, t: f64| k.and_then(|k| self.applied.get(k)).copied().unwrap_or(t);
        Some((applied(ka, a), applied(kb, b)))
    }

    fn slot(&self, t: f64) -> usize {
        match self.span() {
            Some((a, b)) if b > a => usize::from(t >= a) + usize::from(t >= b),
            Some((a, _)) if a > 0.0 => usize::from(t >= a),
            _ => 0,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: deterministic sampling for the plot.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn count(&mut self, r: &OpRecord) {
        let latency = r.latency();
        self.ops += 1;
        if r.attempts > 0 || r.error != super::OVERLOADED {
            let _ = self.lag.record(us((r.sent - r.intended).max(0.0)));
        }
        *self.attempts.entry(r.attempts).or_insert(0) += 1;
        let slot = self.slot(r.intended);
        self.phase_ops[slot] += 1;
        let c = match self.client_index.get(&r.client) {
            Some(&c) => Some(c),
            None if self.clients.len() < 10_000 => {
                // A client not named up front (a history read back): add it.
                self.cfg.clients.push(r.client.clone());
                self.clients
                    .push(ClientTally::new(Gaps::new(self.gap_span, self.gaps.res)));
                self.client_index
                    .insert(r.client.clone(), self.clients.len() - 1);
                Some(self.clients.len() - 1)
            }
            None => None,
        };
        if let Some(c) = c {
            self.clients[c].ops += 1;
        }
        let delayed = r.ok && latency > self.cfg.op_timeout;
        if r.ok {
            self.ok += 1;
            self.phase_ok[slot] += 1;
            let _ = self.latency.record(us(latency));
            let _ = self.service.record(us(r.service()));
            let kind: &'static str = if r.kind == "read" { "read" } else { "write" };
            let _ = self
                .phase_hist
                .entry((slot, kind))
                .or_insert_with(histogram)
                .record(us(latency));
            self.gaps.mark(r.done);
            if let Some(c) = c {
                let ct = &mut self.clients[c];
                ct.ok += 1;
                let _ = ct.latency.record(us(latency));
                ct.gaps.mark(r.done);
            }
            // Recovery: the event this operation follows.
            let k = self.applied.partition_point(|&a| a <= r.intended);
            if k > 0 {
                let e = &mut self.first_success[k - 1];
                if e.is_none_or(|d| r.done < d) {
                    *e = Some(r.done);
                }
            }
        } else {
            let mut kind = error_kind(&r.error);
            if self.errors_by_kind.len() >= MAX_ERROR_KINDS
                && !self.errors_by_kind.contains_key(&kind)
            {
                kind = "other".into();
            }
            *self.errors_by_kind.entry(kind).or_insert(0) += 1;
        }
        if let Some(c) = c {
            if !r.ok || delayed {
                let g = self.cfg.op_timeout;
                self.clients[c].windows.add(r.intended, !r.ok, g);
            }
        }
        self.timeseries(r, latency);
        // Throughput by completion time.
        let b = ((r.done.max(0.0) / TICK) as usize).min(self.throughput.len() - 1);
        if r.ok {
            self.throughput[b].0 += 1;
        } else {
            self.throughput[b].1 += 1;
        }
        self.sample(r.intended, latency * 1e3, r.ok);
    }

    fn timeseries(&mut self, r: &OpRecord, latency: f64) {
        let n = self.rows.len();
        let b = ((r.intended.max(0.0) / TICK) as usize).min(n - 1);
        if r.ok {
            self.rows[b].ok += 1;
        } else {
            self.rows[b].err += 1;
        }
        self.max_intended = self.max_intended.max(r.intended);
        // A row is final once operations intended well after it (more than the operation
        // timeout and a margin) have been seen: its operations have all finished.
        let horizon = self.cfg.op_timeout + 2.0;
        let closed: Vec<usize> = self
            .open_rows
            .keys()
            .copied()
            .take_while(|&k| (k + 1) as f64 * TICK + horizon < self.max_intended)
            .collect();
        for k in closed {
            self.close_row(k);
        }
        if r.ok {
            let pool = &mut self.row_pool;
            let h = self
                .open_rows
                .entry(b)
                .or_insert_with(|| pool.pop().unwrap_or_else(coarse));
            let _ = h.record(us(latency));
        }
    }

    fn close_row(&mut self, k: usize) {
        if let Some(mut h) = self.open_rows.remove(&k) {
            if !h.is_empty() {
                self.rows[k].p50 = (h.value_at_quantile(0.5) as f64 / 1e3) as f32;
                self.rows[k].p99 = (h.value_at_quantile(0.99) as f64 / 1e3) as f32;
            }
            h.reset();
            self.row_pool.push(h);
        }
    }

    fn sample(&mut self, t: f64, ms: f64, ok: bool) {
        let slice = (t.clamp(0.0, self.cfg.duration) / self.slice) as usize;
        let x = self.random();
        let map = if ok {
            &mut self.sample_ok
        } else {
            &mut self.sample_err
        };
        let (seen, v) = map.entry(slice).or_insert_with(|| (0, Vec::new()));
        *seen += 1;
        if v.len() < SAMPLES_PER_SLICE {
            v.push((t, ms));
        } else {
            // Reservoir sampling: every operation of the slice equally likely to be kept.
            let j = (x % *seen) as usize;
            if j < SAMPLES_PER_SLICE {
                v[j] = (t, ms);
            }
        }
        if ok {
            let s = self.slowest.entry(slice).or_insert((t, ms));
            if ms > s.1 {
                *s = (t, ms);
            }
        }
    }

    /// Finish: the summary and what the plots need; with `dir`, timeseries.csv and the
    /// histograms are written there (summary.json is the caller's, who may add to it).
    /// `covered` is the part of the run that ran (all of it unless interrupted).
    pub fn finish(
        mut self,
        dir: Option<&Path>,
        covered: f64,
        interrupted: bool,
    ) -> std::io::Result<(Summary, PlotData)> {
        // Events that never happened count at their scheduled time.
        let happened = self.applied.len();
        while self.applied.len() < self.cfg.events.len() {
            let t = self.cfg.events[self.applied.len()];
            self.applied.push(t);
        }
        for r in std::mem::take(&mut self.pending) {
            self.count(&r);
        }
        let keys: Vec<usize> = self.open_rows.keys().copied().collect();
        for k in keys {
            self.close_row(k);
        }
        let span = self.span();
        let mut phase_list = Vec::new();
        let mut cdf = Vec::new();
        for (slot, (name, from, to)) in phases(covered, span).into_iter().enumerate() {
            let mut h = histogram();
            for kind in ["read", "write"] {
                if let Some(hk) = self.phase_hist.get(&(slot, kind)) {
                    if !hk.is_empty() {
                        if let Some(dir) = dir {
                            write_hgrm(&dir.join(format!("latency-{kind}-{name}.hgrm")), hk)?;
                        }
                        let _ = h.add(hk);
                    }
                }
            }
            let ok = self.phase_ok[slot];
            let points: Vec<(f64, f64)> = h
                .iter_quantiles(1)
                .map(|v| {
                    (
                        (v.value_iterated_to() as f64 / 1e3).max(0.001),
                        v.quantile_iterated_to(),
                    )
                })
                .collect();
            cdf.push((name.clone(), h.len(), points));
            phase_list.push(Phase {
                name,
                from,
                to,
                ops: self.phase_ops[slot],
                ok,
                throughput: if to > from {
                    ok as f64 / (to - from)
                } else {
                    0.0
                },
                latency_ms: percentiles(&h),
            });
        }
        let (gap, gap_from) = self.gaps.longest(covered);
        // Recovery: the earliest success intended after each event (suffix minimum).
        let mut best: Option<f64> = None;
        let mut first = vec![None; self.first_success.len()];
        for k in (0..self.first_success.len()).rev() {
            if let Some(d) = self.first_success[k] {
                best = Some(best.map_or(d, |b: f64| b.min(d)));
            }
            first[k] = best;
        }
        let mut per_client = Vec::new();
        let mut all_windows: Vec<(String, Window)> = Vec::new();
        for (name, c) in self.cfg.clients.iter().zip(&self.clients) {
            let (g, from) = c.gaps.longest(covered);
            let windows: Vec<Window> = c.windows.list();
            all_windows.extend(windows.iter().map(|w| (name.clone(), w.clone())));
            per_client.push(ClientSummary {
                client: name.clone(),
                ops: c.ops,
                ok: c.ok,
                errors: c.ops - c.ok,
                latency_ms: percentiles(&c.latency),
                longest_gap: g,
                longest_gap_from: from,
                windows,
            });
        }
        let windows = merge_windows(all_windows, self.cfg.op_timeout);
        let s = Summary {
            duration: covered,
            interrupted,
            ops: self.ops,
            ok: self.ok,
            errors: self.ops - self.ok,
            throughput: if covered > 0.0 {
                self.ok as f64 / covered
            } else {
                0.0
            },
            latency_ms: percentiles(&self.latency),
            service_ms: percentiles(&self.service),
            phases: phase_list,
            errors_by_kind: self.errors_by_kind.clone(),
            longest_gap: gap,
            longest_gap_from: gap_from,
            recovery: self
                .applied
                .iter()
                .take(happened)
                .enumerate()
                .map(|(k, &applied)| Recovery {
                    event: k,
                    action: self.actions[k].clone(),
                    applied,
                    seconds_to_first_success: first[k].map(|d| d - applied),
                })
                .collect(),
            per_client,
            windows: windows.clone(),
            attempts: self.attempts.clone(),
            dispatch_lag_ms: percentiles(&self.lag),
            instrument: None,
            incomplete: None,
            check: None,
            stages: None,
            expect: None,
        };
        if let Some(dir) = dir {
            self.write_timeseries(&dir.join("timeseries.csv"), covered)?;
            if !self.latency.is_empty() {
                write_hgrm(&dir.join("latency-all.hgrm"), &self.latency)?;
            }
        }
        let mut samples = Vec::new();
        for (_, (_, v)) in self.sample_ok.iter() {
            samples.extend(v.iter().map(|&(t, ms)| (t, ms, true)));
        }
        for (_, &(t, ms)) in self.slowest.iter() {
            samples.push((t, ms, true));
        }
        for (_, (_, v)) in self.sample_err.iter() {
            samples.extend(v.iter().map(|&(t, ms)| (t, ms, false)));
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let plot = PlotData {
            samples,
            throughput: self.throughput.clone(),
            cdf,
            windows,
            span,
        };
        Ok((s, plot))
    }

    fn write_timeseries(&self, path: &Path, covered: f64) -> std::io::Result<()> {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(w, "time,ok,errors,throughput,p50_ms,p99_ms")?;
        let n = ((covered / TICK).ceil() as usize + 1).min(self.rows.len());
        for (i, r) in self.rows.iter().take(n).enumerate() {
            writeln!(
                w,
                "{:.1},{},{},{},{:.3},{:.3}",
                i as f64 * TICK,
                r.ok,
                r.err,
                r.ok as f64 / TICK,
                r.p50,
                r.p99
            )?;
        }
        w.flush()
    }
}
