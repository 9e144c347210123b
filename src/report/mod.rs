//! Plots of a run, PNG and SVG, written with every run: latency over time (a bounded sample of
//! operations per time slice, the slowest success of each slice always among them; by outcome,
//! log scale, fault events as lines, the fault's span and the unavailability windows shaded),
//! throughput over time, and the latency CDF per phase. The font is built in (DejaVu Sans), so
//! text renders on a machine with no fonts.

pub mod html;
pub mod sweep;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::record::{FaultRecord, PlotData};

static FONT: &[u8] = include_bytes!("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type Res = Result<(), Box<dyn std::error::Error>>;

/// Make the built-in font available to plotters (for other plots of this crate).
pub(crate) fn register_font_pub() {
    register_font();
}

/// What the plots show.
pub struct PlotInput<'a> {
    /// "system / topology / workload / fault".
    pub title: &'a str,
    pub duration: f64,
    pub data: &'a PlotData,
    pub faults: &'a [FaultRecord],
    /// The history checker's violation, marked on the latency plot.
    pub violation: Option<&'a crate::check::Violation>,
}

/// Write `latency`, `throughput` and `cdf`, each as PNG and SVG, into `dir`.
pub fn plot_run(dir: &Path, p: &PlotInput) -> Result<Vec<PathBuf>, String> {
    register_font();
    let mut out = Vec::new();
    macro_rules! both {
        ($name:literal, $f:ident) => {{
            let png = dir.join(concat!($name, ".png"));
            $f(BitMapBackend::new(&png, (1200, 700)).into_drawing_area(), p)
                .map_err(|e| format!("{}: {e}", png.display()))?;
            let svg = dir.join(concat!($name, ".svg"));
            $f(SVGBackend::new(&svg, (1200, 700)).into_drawing_area(), p)
                .map_err(|e| format!("{}: {e}", svg.display()))?;
            out.push(png);
            out.push(svg);
        }};
    }
    both!("latency", latency);
    both!("throughput", throughput);
    both!("cdf", cdf);
    Ok(out)
}

const OK: RGBColor = RGBColor(31, 119, 180);
const ERR: RGBColor = RGBColor(214, 39, 40);
const FAULT: RGBColor = RGBColor(90, 90, 90);
const SPAN: RGBColor = RGBColor(255, 200, 120);
const WINDOW: RGBColor = RGBColor(214, 39, 40);
const VIOLATION: RGBColor = RGBColor(148, 0, 211);

fn latency<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, p: &PlotInput) -> Res
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let pts = &p.data.samples;
    let hi = pts.iter().map(|x| x.1).fold(1.0, f64::max) * 1.5;
    let lo = pts
        .iter()
        .map(|x| x.1.max(0.01))
        .fold(hi, f64::min)
        .max(0.01)
        / 1.5;
    let mut c = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency over time", p.title),
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..p.duration, (lo..hi).log_scale())?;
    c.configure_mesh()
        .x_desc("intended start since the run's start (s)")
        .y_desc("latency from intended start (ms, log)")
        .label_style(("sans-serif", 15))
        .draw()?;
    if let Some((a, b)) = p.data.span {
        c.draw_series(std::iter::once(Rectangle::new(
            [(a, lo), (b, hi)],
            SPAN.mix(0.3).filled(),
        )))?
        .label("fault span")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], SPAN.mix(0.5).filled()));
    }
    if !p.data.windows.is_empty() {
        // At least a few pixels wide, so a short window still shows.
        let min_w = p.duration / 400.0;
        c.draw_series(p.data.windows.iter().map(|w| {
            Rectangle::new(
                [(w.start, lo), (w.end.max(w.start + min_w), hi / 1.6)],
                WINDOW.mix(0.25).filled(),
            )
        }))?
        .label("unavailable (failed or past the op timeout)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], WINDOW.mix(0.4).filled()));
    }
    if let Some(v) = p.violation {
        // The operations no order explains: their span, at least a few pixels wide, and each
        // one's call-to-return as a bar at the top.
        let min_w = p.duration / 300.0;
        c.draw_series(std::iter::once(Rectangle::new(
            [(v.from, lo), (v.to.max(v.from + min_w), hi)],
            VIOLATION.mix(0.25).filled(),
        )))?
        .label(format!(
            "not linearizable: key {}, {} operations",
            v.key,
            v.ops.len()
        ))
        .legend(|(x, y)| {
            Rectangle::new([(x, y - 5), (x + 15, y + 5)], VIOLATION.mix(0.6).filled())
        });
        for (k, o) in v.ops.iter().enumerate() {
            let y = hi / (1.1 + 0.15 * k as f64);
            let end = o.ret.unwrap_or(v.to).max(o.call + min_w);
            c.draw_series(LineSeries::new(
                [(o.call, y), (end, y)],
                VIOLATION.stroke_width(3),
            ))?;
        }
    }
    for f in p.faults {
        c.draw_series(LineSeries::new(
            [(f.applied, lo), (f.applied, hi)],
            FAULT.stroke_width(1),
        ))?;
        c.draw_series(std::iter::once(Text::new(
            format!("{} {}", f.action, f.targets),
            (f.applied, hi / 1.3),
            ("sans-serif", 13),
        )))?;
    }
    let pts = |ok: bool| {
        pts.iter()
            .filter(move |x| x.2 == ok)
            .map(|x| (x.0, x.1.max(lo)))
    };
    c.draw_series(pts(true).map(|xy| Circle::new(xy, 2, OK.filled())))?
        .label("ok")
        .legend(|(x, y)| Circle::new((x + 7, y), 4, OK.filled()));
    c.draw_series(pts(false).map(|xy| Cross::new(xy, 3, ERR)))?
        .label("error")
        .legend(|(x, y)| Cross::new((x + 7, y), 4, ERR));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn throughput<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, p: &PlotInput) -> Res
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let bucket = 0.1;
    let ok: Vec<u64> = p.data.throughput.iter().map(|x| x.0 as u64).collect();
    let err: Vec<u64> = p.data.throughput.iter().map(|x| x.1 as u64).collect();
    let rate = |v: &[u64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, c)| (i as f64 * bucket, *c as f64 / bucket))
            .collect()
    };
    let top = ok.iter().chain(&err).cloned().max().unwrap_or(1) as f64 / bucket * 1.15 + 1.0;
    let mut c = ChartBuilder::on(&root)
        .caption(format!("{}: throughput", p.title), ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..p.duration, 0f64..top)?;
    c.configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("operations per second (100 ms buckets)")
        .label_style(("sans-serif", 15))
        .draw()?;
    if let Some((a, b)) = p.data.span {
        c.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b, top)],
            SPAN.mix(0.3).filled(),
        )))?;
    }
    for f in p.faults {
        c.draw_series(LineSeries::new(
            [(f.applied, 0.0), (f.applied, top)],
            FAULT.stroke_width(1),
        ))?;
    }
    c.draw_series(LineSeries::new(rate(&ok), OK.stroke_width(2)))?
        .label("completed ok")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], OK.stroke_width(2)));
    c.draw_series(LineSeries::new(rate(&err), ERR.stroke_width(2)))?
        .label("errors")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], ERR.stroke_width(2)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn cdf<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, p: &PlotInput) -> Res
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let per_phase = &p.data.cdf;
    let all = per_phase.iter().flat_map(|(_, _, v)| v.iter().map(|x| x.0));
    let hi = all.clone().fold(1.0, f64::max) * 1.5;
    let lo = all.fold(hi, f64::min).max(0.01) / 1.5;
    let mut c = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency CDF per phase (successful operations)", p.title),
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)?;
    c.configure_mesh()
        .x_desc("latency from intended start (ms, log)")
        .y_desc("fraction of operations")
        .label_style(("sans-serif", 15))
        .draw()?;
    let colours = [RGBColor(44, 160, 44), ERR, OK, RGBColor(148, 103, 189)];
    for (i, (name, n, v)) in per_phase.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let col = colours[i % colours.len()];
        c.draw_series(LineSeries::new(
            v.iter().map(|&(x, q)| (x.max(lo), q)),
            col.stroke_width(2),
        ))?
        .label(format!("{name} ({n} ops)"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], col.stroke_width(2)));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
