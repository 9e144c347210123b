//! The report of a sweep folder: for each figure (longest gap, throughput, p99 latency,
//! errors), a plot against the first varying parameter, one line per value of the second (the
//! mean of the repeats, every repeat shown as a point, min to max as a bar), then every run's
//! row. One self-contained `report.html`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine;
use plotters::prelude::*;

const FIGURES: &[(&str, &str)] = &[
    ("longest_gap_s", "longest gap between successes (s)"),
    ("throughput", "throughput (ok/s)"),
    ("p99_ms", "p99 latency (ms)"),
    ("errors", "errors"),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Write `<dir>/report.html` for a sweep folder (one with results.csv).
pub fn report(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("results.csv");
    let mut r = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(String::from)
        .collect();
    let rows: Vec<Vec<String>> = r
        .records()
        .filter_map(Result::ok)
        .map(|x| x.iter().map(String::from).collect())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let first_figure = col("ops").ok_or("results.csv has no figures; is this a sweep folder?")?;
    let params: Vec<usize> = (3..first_figure).collect();
    let varying: Vec<usize> = params
        .iter()
        .copied()
        .filter(|&c| {
            rows.iter()
                .map(|r| &r[c])
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();
    let ok_rows: Vec<&Vec<String>> = rows.iter().filter(|r| r[2] == "ok").collect();
    let mut h = String::new();
    let _ = write!(h, "<!doctype html><html lang=en><head><meta charset=utf-8><title>reckon sweep: {t}</title><style>body{{font-family:sans-serif;max-width:1240px;margin:2em auto}} table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:3px 8px}} th{{background:#f3f3f3}} img{{max-width:100%;border:1px solid #ddd;margin:.5em 0}}</style></head><body><h1>sweep {t}</h1><p>{} runs, {} ok, {} failed or not run.</p>", rows.len(), ok_rows.len(), rows.len() - ok_rows.len(), t = esc(&dir.display().to_string()));
    // Plot against a numeric parameter if one varies (link loss, say), one line per value of
    // another (the system, say).
    let numeric = |c: usize| rows.iter().all(|r| r[c].parse::<f64>().is_ok());
    let mut varying = varying;
    if let Some(i) = varying.iter().position(|&c| numeric(c)) {
        let c = varying.remove(i);
        varying.insert(0, c);
    }
    if let Some(&x) = varying.first() {
        let series = varying.get(1).copied();
        super::register_font_pub();
        for (fig, label) in FIGURES {
            let Some(fc) = col(fig) else { continue };
            let png = dir.join(format!("sweep-{fig}.png"));
            plot(
                &png,
                &header[x],
                series.map(|s| header[s].as_str()),
                label,
                &ok_rows,
                x,
                series,
                fc,
            )
            .map_err(|e| format!("{}: {e}", png.display()))?;
            let b = std::fs::read(&png).map_err(|e| e.to_string())?;
            let _ = write!(
                h,
                "<img alt=\"{label} against {}\" src=\"data:image/png;base64,{}\">",
                esc(&header[x]),
                base64::engine::general_purpose::STANDARD.encode(b)
            );
        }
    } else {
        h += "<p>No parameter varies between runs: nothing to plot against.</p>";
    }
    h += &by_configuration(&header, &rows, &varying);
    h += "<h2>Runs</h2><table><tr>";
    for c in &header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h += "</tr>";
    for row in &rows {
        h += "<tr>";
        for (i, v) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(h, "<td><a href=\"runs/{0}/\">{0}</a></td>", esc(v));
            } else {
                let _ = write!(h, "<td>{}</td>", esc(v));
            }
        }
        h += "</tr>";
    }
    h += "</table></body></html>";
    let out = dir.join("report.html");
    std::fs::write(&out, h).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn plot(
    png: &Path,
    x_name: &str,
    series_name: Option<&str>,
    label: &str,
    rows: &[&Vec<String>],
    x: usize,
    series: Option<usize>,
    fc: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // x values: numbers if they all parse, otherwise categories in order of appearance.
    let xs: Vec<String> = {
        let mut v: Vec<String> = rows.iter().map(|r| r[x].clone()).collect();
        v.sort_by(|a, b| {
            a.parse::<f64>()
                .ok()
                .zip(b.parse::<f64>().ok())
                .map(|(a, b)| a.partial_cmp(&b).unwrap())
                .unwrap_or_else(|| a.cmp(b))
        });
        v.dedup();
        v
    };
    let numeric = xs.iter().all(|v| v.parse::<f64>().is_ok());
    let xpos = |v: &str| {
        if numeric {
            v.parse::<f64>().unwrap_or(0.0)
        } else {
            xs.iter().position(|s| s == v).unwrap_or(0) as f64
        }
    };
    let mut groups: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for r in rows {
        let s = series.map(|c| r[c].clone()).unwrap_or_else(|| "all".into());
        if let Ok(y) = r[fc].parse::<f64>() {
            groups
                .entry(s)
                .or_default()
                .entry(r[x].clone())
                .or_default()
                .push(y);
        }
    }
    let (xmin, xmax) = xs
        .iter()
        .map(|v| xpos(v))
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((xmax - xmin) * 0.05).max(0.5);
    let ymax = groups
        .values()
        .flat_map(|g| g.values().flatten())
        .cloned()
        .fold(0.0, f64::max)
        * 1.15
        + 1e-9;
    let root = BitMapBackend::new(png, (1100, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(format!("{label} against {x_name}"), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((xmin - pad)..(xmax + pad), 0f64..ymax.max(1e-6))?;
    let labels = xs.clone();
    c.configure_mesh()
        .x_desc(x_name)
        .y_desc(label)
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| {
            if numeric {
                let t = format!("{v:.3}");
                t.trim_end_matches('0').trim_end_matches('.').to_string()
            } else if (v - v.round()).abs() < 1e-6 && *v >= 0.0 {
                labels.get(v.round() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
    ];
    for (i, (name, by_x)) in groups.iter().enumerate() {
        let col = palette[i % palette.len()];
        let means: Vec<(f64, f64)> = by_x
            .iter()
            .map(|(xv, ys)| (xpos(xv), ys.iter().sum::<f64>() / ys.len() as f64))
            .collect();
        let mut means = means;
        means.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        let legend = match series_name {
            Some(s) => format!("{s} = {name}"),
            None => "mean of repeats".into(),
        };
        c.draw_series(LineSeries::new(means.clone(), col.stroke_width(2)))?
            .label(legend)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], col.stroke_width(2)));
        for (xv, ys) in by_x {
            let xp = xpos(xv);
            let (lo, hi) = ys
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            c.draw_series(std::iter::once(PathElement::new(
                [(xp, lo), (xp, hi)],
                col.stroke_width(1),
            )))?;
            c.draw_series(ys.iter().map(|y| Circle::new((xp, *y), 3, col.filled())))?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// One row per configuration (the varying parameters but the seed; its repeats and seeds
/// together): how unavailable it was (longest gap, errors), its p99 latency, and what the
/// history checker and `--expect` said, over its runs. The table a paper comparing systems
/// under scenarios builds by hand.
fn by_configuration(header: &[String], rows: &[Vec<String>], varying: &[usize]) -> String {
    let col = |name: &str| header.iter().position(|h| h == name);
    let keys: Vec<usize> = varying
        .iter()
        .copied()
        .filter(|&c| header[c] != "seed")
        .collect();
    let (Some(gap), Some(errors), Some(ops), Some(p99)) = (
        col("longest_gap_s"),
        col("errors"),
        col("ops"),
        col("p99_ms"),
    ) else {
        return String::new();
    };
    let mut groups: BTreeMap<Vec<&str>, Vec<&Vec<String>>> = BTreeMap::new();
    for r in rows {
        groups
            .entry(keys.iter().map(|&c| r[c].as_str()).collect())
            .or_default()
            .push(r);
    }
    let num = |r: &Vec<String>, c: usize| r[c].parse::<f64>().ok();
    let spread = |v: &[f64], digits: usize| -> String {
        if v.is_empty() {
            return "–".into();
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        if v.len() == 1 {
            format!("{mean:.digits$}")
        } else {
            format!("{mean:.digits$} ({lo:.digits$}–{hi:.digits$})")
        }
    };
    let mut h = String::from("<h2>By configuration</h2><p>Mean over the runs that finished (min–max); errors as a share of operations. Linearizable: runs the history checker passed, of those it checked.</p><table><tr>");
    for &k in &keys {
        let _ = write!(h, "<th>{}</th>", esc(&header[k]));
    }
    h += "<th>runs ok</th><th>longest gap s</th><th>errors %</th><th>p99 ms</th><th>linearizable</th><th>expectations held</th></tr>";
    for (key, runs) in &groups {
        let done: Vec<&&Vec<String>> = runs.iter().filter(|r| r[2] == "ok").collect();
        let gaps: Vec<f64> = done.iter().filter_map(|r| num(r, gap)).collect();
        let errs: Vec<f64> = done
            .iter()
            .filter_map(|r| Some(num(r, errors)? * 100.0 / num(r, ops)?.max(1.0)))
            .collect();
        let p99s: Vec<f64> = done.iter().filter_map(|r| num(r, p99)).collect();
        let count = |c: Option<usize>, yes: &dyn Fn(&str) -> bool| -> String {
            let Some(c) = c else { return "–".into() };
            let seen: Vec<&str> = done
                .iter()
                .map(|r| r[c].as_str())
                .filter(|v| !v.is_empty())
                .collect();
            if seen.is_empty() {
                "–".into()
            } else {
                let n = seen.iter().filter(|v| yes(v)).count();
                let text = format!("{n}/{}", seen.len());
                if n < seen.len() {
                    format!("<strong>{text}</strong>")
                } else {
                    text
                }
            }
        };
        h += "<tr>";
        for v in key {
            let _ = write!(h, "<td>{}</td>", esc(v));
        }
        let _ = write!(
            h,
            "<td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            done.len(),
            runs.len(),
            spread(&gaps, 3),
            spread(&errs, 2),
            spread(&p99s, 1),
            count(col("linearizable"), &|v| v == "yes"),
            count(col("expectations"), &|v| v == "held"),
        );
    }
    h += "</table>";
    h
}
