//! `reckon report <dir>`: one self-contained `report.html` for a run's result folder — plots
//! embedded as data URIs, the summary as tables, the faults applied and the resolved
//! configuration — that opens in a browser with no server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::record::{self, FaultRecord, Summary};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Write `<dir>/report.html`; returns its path.
pub fn report(dir: &Path) -> Result<PathBuf, String> {
    if dir.join("results.csv").exists() && !dir.join("summary.json").exists() {
        return super::sweep::report(dir);
    }
    let (s, config, faults, title) = load(dir)?;
    // Plots: made by the run; made again from ops.csv if missing (streamed: no size limit).
    if !dir.join("latency.png").exists() {
        plot_again(dir, &s, &config, &faults, &title)?;
    }
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>reckon: {t}</title><style>\
         body{{font-family:sans-serif;max-width:1240px;margin:2em auto;color:#222}} table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}} th{{background:#f3f3f3}} td:first-child,th:first-child{{text-align:left}}\
         img{{max-width:100%;border:1px solid #ddd;margin:.5em 0}} pre{{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}}</style></head><body>\
         <h1>{t}</h1>",
        t = esc(&title)
    );
    if s.interrupted {
        let _ = write!(
            h,
            "<p><strong>Interrupted</strong> after {:.1} s of {} s: the figures cover that part only.</p>",
            s.duration,
            config["workload"]["duration"].as_f64().map(|d| d.to_string()).unwrap_or_else(|| "?".into())
        );
    }
    if let Some(why) = &s.incomplete {
        let _ = write!(
            h,
            "<p><strong>Incomplete results</strong>: {}. The figures count every operation; ops.csv lacks some.</p>",
            esc(why)
        );
    }
    let _ = write!(
        h,
        "<table><tr><th>operations</th><th>ok</th><th>errors</th><th>ok/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>longest gap s</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.3} (from {:.2})</td></tr></table>",
        s.ops, s.ok, s.errors, s.throughput, s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.p999, s.latency_ms.max, s.longest_gap, s.longest_gap_from
    );
    h += "<h2>Phases</h2><table><tr><th>phase</th><th>from s</th><th>to s</th><th>ops</th><th>ok</th><th>ok/s</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>";
    for p in &s.phases {
        let _ = write!(h, "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>", esc(&p.name), p.from, p.to, p.ops, p.ok, p.throughput, p.latency_ms.p50, p.latency_ms.p99, p.latency_ms.max);
    }
    h += "</table>";
    if !s.per_client.is_empty() {
        h += "<h2>Clients</h2><p>Each client host's share: who suffered. Latency of successful operations, from their intended start.</p>\
              <table><tr><th>client</th><th>ops</th><th>ok</th><th>errors</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>longest gap s</th><th>unavailable windows</th></tr>";
        for c in &s.per_client {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.3} (from {:.2})</td><td>{}</td></tr>",
                esc(&c.client), c.ops, c.ok, c.errors, c.latency_ms.p50, c.latency_ms.p99, c.latency_ms.max, c.longest_gap, c.longest_gap_from, c.windows.len());
        }
        h += "</table>";
    }
    let threshold = config["op_timeout_s"]
        .as_f64()
        .map(|t| format!("{t} s"))
        .unwrap_or_else(|| "the operation timeout".into());
    if s.windows.is_empty() {
        let _ = write!(
            h,
            "<h2>Unavailability</h2><p>No operation failed or took longer than {threshold}.</p>"
        );
    } else {
        let _ = write!(h, "<h2>Unavailability</h2><p>Windows in which operations failed or took longer than {threshold} (from the intended start of the first to that of the last; failures closer than that apart are one window). Shaded red on the latency plot.</p>\
              <table><tr><th>from s</th><th>to s</th><th>length s</th><th>failed</th><th>delayed</th><th>clients</th></tr>");
        let mut ws: Vec<&record::Window> = s.windows.iter().collect();
        let shown = 50;
        if ws.len() > shown {
            ws.sort_by(|a, b| (b.end - b.start).total_cmp(&(a.end - a.start)));
            ws.truncate(shown);
            ws.sort_by(|a, b| a.start.total_cmp(&b.start));
            let _ = write!(
                h,
                "<caption>the {shown} longest of {}</caption>",
                s.windows.len()
            );
        }
        for w in ws {
            let _ = write!(h, "<tr><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>", w.start, w.end, w.end - w.start, w.failed, w.delayed, esc(&w.clients.join(" ")));
        }
        h += "</table>";
    }
    if !faults.is_empty() {
        h += "<h2>Fault events</h2><table><tr><th>event</th><th>action</th><th>targets</th><th>scheduled s</th><th>applied s</th><th>first success after, s</th><th>error</th></tr>";
        for f in &faults {
            let rec = s
                .recovery
                .iter()
                .find(|r| r.event == f.event)
                .and_then(|r| r.seconds_to_first_success)
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "-".into());
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{rec}</td><td>{}</td></tr>", f.event, esc(&f.action), esc(&f.targets), f.scheduled, f.applied, esc(&f.error));
        }
        h += "</table>";
    }
    if !s.errors_by_kind.is_empty() {
        h += "<h2>Errors by kind</h2><table><tr><th>kind</th><th>count</th></tr>";
        for (k, n) in &s.errors_by_kind {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
        }
        h += "</table>";
    }
    if let Some(i) = &s.instrument {
        let _ = write!(h, "<h2>reckon's own cost</h2><p>reckon shares the machine with the system it measures; this is what it used.</p>\
            <table><tr><th>CPU per op µs</th><th>CPU s</th><th>over s</th><th>ops</th><th>RSS MB</th><th>peak RSS MB</th><th>dispatch lag p50 ms</th><th>p99 ms</th><th>max ms</th><th>max in flight</th></tr>\
            <tr><td>{:.1}</td><td>{:.3}</td><td>{:.1}-{:.1}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr></table>",
            i.cpu_us_per_op, i.cpu_s, i.steady_from, i.steady_to, i.steady_ops, i.rss_mb, i.rss_peak_mb, s.dispatch_lag_ms.p50, s.dispatch_lag_ms.p99, s.dispatch_lag_ms.max, i.max_in_flight);
    }
    if let Some(ex) = &s.expect {
        let failed = ex.iter().filter(|e| !e.ok).count();
        let _ = write!(
            h,
            "<h2>Expectations</h2><p>{}</p><table><tr><th>expectation</th><th>measured</th><th>verdict</th></tr>",
            if failed == 0 {
                "Every expectation held.".to_string()
            } else {
                format!("<strong>{failed} of {} expectations failed.</strong>", ex.len())
            }
        );
        for e in ex {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.expectation),
                esc(&e.measured),
                if e.ok {
                    "held"
                } else {
                    "<strong>failed</strong>"
                }
            );
        }
        h += "</table>";
    }
    if let Some(v) = &s.check {
        let verdict = match v.linearizable {
            Some(true) => "linearizable",
            Some(false) => "<strong>not linearizable</strong>",
            None => "undecided",
        };
        let _ = write!(
            h,
            "<h2>Linearizability</h2><p>{verdict}: {} operations on {} keys checked as registers ({:.3} s).{}</p>",
            v.ops,
            v.keys,
            v.seconds,
            v.reason.as_deref().map(|r| format!(" {}", esc(r))).unwrap_or_default()
        );
        if let Some(x) = &v.violation {
            let _ = write!(
                h,
                "<p>Key {}, {:.3}-{:.3} s: no order of these operations explains what the reads saw.</p>\
                 <table><tr><th>operation</th><th>kind</th><th>value</th><th>call s</th><th>return s</th></tr>",
                esc(&x.key),
                x.from,
                x.to
            );
            for o in &x.ops {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.6}</td><td>{}</td></tr>",
                    o.id,
                    o.kind,
                    if o.value.is_empty() {
                        "(initial)".to_string()
                    } else {
                        esc(&o.value)
                    },
                    o.call,
                    o.ret.map_or("unknown".to_string(), |r| format!("{r:.6}"))
                );
            }
            h += "</table>";
        }
    }
    h += "<h2>Plots</h2>";
    for (name, alt) in [
        ("latency", "latency over time"),
        ("throughput", "throughput over time"),
        ("cdf", "latency CDF per phase"),
    ] {
        let png = dir.join(format!("{name}.png"));
        match std::fs::read(&png) {
            Ok(b) => {
                let _ = write!(
                    h,
                    "<img alt=\"{alt}\" src=\"data:image/png;base64,{}\">",
                    base64::engine::general_purpose::STANDARD.encode(b)
                );
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<p>{}: {}</p>",
                    esc(&png.display().to_string()),
                    esc(&e.to_string())
                );
            }
        }
    }
    let _ = write!(
        h,
        "<h2>Configuration</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&config).unwrap_or_default())
    );
    let out = dir.join("report.html");
    std::fs::write(&out, h).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Draw a run folder's plots again from its ops.csv (streamed: no size limit), with the fault
/// events and the history checker's violation (summary.json) marked.
fn plot_again(
    dir: &Path,
    s: &Summary,
    config: &serde_json::Value,
    faults: &[FaultRecord],
    title: &str,
) -> Result<(), String> {
    if let Ok(mut reader) = csv::Reader::from_path(dir.join("ops.csv")) {
        let span = match (faults.first(), faults.last()) {
            (Some(a), Some(b)) => Some((a.scheduled, b.scheduled)),
            _ => None,
        };
        let cfg = record::TallyConfig {
            duration: s.duration,
            clients: s.per_client.iter().map(|c| c.client.clone()).collect(),
            events: faults.iter().map(|f| f.scheduled).collect(),
            span,
            op_timeout: config["op_timeout_s"].as_f64().unwrap_or(1.0),
        };
        let ops = reader
            .deserialize::<record::OpRecord>()
            .filter_map(Result::ok);
        let (_, data) = record::summarise(None, cfg, s.duration, s.interrupted, ops, faults)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let input = super::PlotInput {
            title,
            duration: s.duration,
            data: &data,
            faults,
            violation: s.check.as_ref().and_then(|c| c.violation.as_ref()),
        };
        super::plot_run(dir, &input)?;
    }
    Ok(())
}

/// A run folder's summary, configuration, fault records and title.
fn load(dir: &Path) -> Result<(Summary, serde_json::Value, Vec<FaultRecord>, String), String> {
    let summary_path = dir.join("summary.json");
    if !summary_path.exists() {
        return Err(format!("{}: no results here (no summary.json or results.csv); give the result folder of a finished `reckon run` or `reckon sweep`", dir.display()));
    }
    let s: Summary = serde_json::from_slice(
        &std::fs::read(&summary_path).map_err(|e| format!("{}: {e}", summary_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", summary_path.display()))?;
    let config: serde_json::Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let faults: Vec<FaultRecord> = csv::Reader::from_path(dir.join("faults.csv"))
        .ok()
        .map(|mut r| r.deserialize().filter_map(Result::ok).collect())
        .unwrap_or_default();
    let title = format!(
        "{} / {} / {} / {}",
        config["system"].as_str().unwrap_or("?"),
        config["topology"]["name"].as_str().unwrap_or("?"),
        config["workload"]["name"].as_str().unwrap_or("?"),
        config["fault"]["name"].as_str().unwrap_or("?")
    );
    Ok((s, config, faults, title))
}

/// Draw a run folder's plots again, the history checker's violation marked (`reckon check`).
pub fn replot(dir: &Path) -> Result<(), String> {
    let (s, config, faults, title) = load(dir)?;
    plot_again(dir, &s, &config, &faults, &title)
}
