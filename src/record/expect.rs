//! `--expect`: pass/fail for CI. An expectation is a comparison of a figure of summary.json
//! with a bound (`longest_gap < 2s`, `latency_ms.p99 <= 300ms`, `errors < 1%`), or
//! `linearizable` (the history checker's verdict). Expectations are read and their names
//! checked before anything is built, and judged on the summary at the end of the run.

use serde::{Deserialize, Serialize};

use super::Summary;

/// One expectation, as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// `path op bound`: the figure at `path` (dotted, as in summary.json), compared.
    Compare {
        text: String,
        path: String,
        op: Op,
        /// In the figure's own unit (seconds, ms, or a count/ratio).
        bound: f64,
        /// The bound is a share of all operations (`errors < 1%`): the figure is divided by
        /// `ops` first.
        share: bool,
    },
    /// The history checker found the run linearizable (not "undecided").
    Linearizable,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, x: f64, b: f64) -> bool {
        match self {
            Op::Lt => x < b,
            Op::Le => x <= b,
            Op::Gt => x > b,
            Op::Ge => x >= b,
            Op::Eq => x == b,
            Op::Ne => x != b,
        }
    }
}

/// An expectation's verdict, as summary.json and the report give it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub expectation: String,
    pub ok: bool,
    /// What the run measured, in the expectation's terms ("2.507 s", "0.4 %", "undecided").
    pub measured: String,
}

/// The figures an expectation may name: summary.json's numbers, by dotted path.
pub fn names() -> Vec<String> {
    let mut out = Vec::new();
    let v = serde_json::to_value(Summary::default()).unwrap_or_default();
    leaves("", &v, &mut out);
    out
}

fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(_) => out.push(prefix.to_string()),
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => {}
    }
}

/// Whether a figure is in milliseconds (its path says so) rather than seconds.
fn in_ms(path: &str) -> bool {
    path.split('.').any(|p| p.ends_with("_ms"))
}

/// Read `--expect`'s text: expectations separated by commas.
pub fn parse(text: &str) -> Result<Vec<Expectation>, String> {
    let names = names();
    let mut out = Vec::new();
    for clause in text.split(',').map(str::trim) {
        if clause.is_empty() {
            return Err(format!(
                "--expect \"{text}\": an empty expectation (two commas, or one at the end)"
            ));
        }
        if clause == "linearizable" {
            out.push(Expectation::Linearizable);
            continue;
        }
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let Some((sym, op)) = ops.iter().find(|(s, _)| clause.contains(s)) else {
            return Err(format!(
                "--expect: '{clause}': write <figure> <op> <bound> (ops < <= > >= == !=, e.g. \"longest_gap < 2s\") or linearizable"
            ));
        };
        let (path, bound) = clause.split_once(sym).expect("found above");
        let path = path.trim();
        if !names.iter().any(|n| n == path) {
            let near: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| !n.starts_with("instrument.") && !n.starts_with("dispatch_lag"))
                .collect();
            return Err(format!(
                "--expect: '{clause}': summary.json has no figure '{path}'; figures: {}",
                near.join(", ")
            ));
        }
        let b = bound.trim();
        let (num, unit) = match b.find(|c: char| c.is_ascii_alphabetic() || c == '%') {
            Some(i) => (&b[..i], b[i..].trim()),
            None => (b, ""),
        };
        let n: f64 = num
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| {
                format!("--expect: '{clause}': the bound '{b}' is not a number (units: s, ms, %)")
            })?;
        let ms = in_ms(path);
        let (bound, share) = match unit {
            "" => (n, false),
            "%" => (n / 100.0, true),
            "s" => (if ms { n * 1000.0 } else { n }, false),
            "ms" => (if ms { n } else { n / 1000.0 }, false),
            u => {
                return Err(format!(
                    "--expect: '{clause}': unknown unit '{u}' (s, ms or %)"
                ))
            }
        };
        out.push(Expectation::Compare {
            text: clause.to_string(),
            path: path.to_string(),
            op: *op,
            bound,
            share,
        });
    }
    Ok(out)
}

impl Expectation {
    pub fn text(&self) -> &str {
        match self {
            Expectation::Compare { text, .. } => text,
            Expectation::Linearizable => "linearizable",
        }
    }
}

/// Judge every expectation on the run's summary.
pub fn judge(expect: &[Expectation], s: &Summary) -> Vec<Verdict> {
    let v = serde_json::to_value(s).unwrap_or_default();
    expect
        .iter()
        .map(|e| match e {
            Expectation::Linearizable => {
                let (ok, measured) = match s.check.as_ref().map(|c| c.linearizable) {
                    Some(Some(true)) => (true, "linearizable"),
                    Some(Some(false)) => (false, "not linearizable"),
                    Some(None) => (false, "undecided"),
                    None => (false, "not checked"),
                };
                Verdict {
                    expectation: e.text().into(),
                    ok,
                    measured: measured.into(),
                }
            }
            Expectation::Compare {
                path,
                op,
                bound,
                share,
                ..
            } => {
                let x = path
                    .split('.')
                    .fold(&v, |v, k| &v[k])
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let (x, measured) = if *share {
                    let r = x / s.ops.max(1) as f64;
                    (r, format!("{:.3} % of {} operations", r * 100.0, s.ops))
                } else if in_ms(path) {
                    (x, format!("{x:.3} ms"))
                } else if path.contains("gap") || path == "duration" {
                    (x, format!("{x:.3} s"))
                } else {
                    (x, format!("{x}"))
                };
                Verdict {
                    expectation: e.text().into(),
                    ok: op.holds(x, *bound),
                    measured,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_read_with_units_and_judge_the_summary() {
        let e =
            parse("longest_gap < 2s, errors < 1%, latency_ms.p99 <= 0.3s, linearizable").unwrap();
        assert_eq!(e.len(), 4);
        assert!(
            matches!(&e[2], Expectation::Compare { bound, .. } if (*bound - 300.0).abs() < 1e-9)
        );
        let mut s = Summary {
            ops: 1000,
            errors: 5,
            longest_gap: 2.5,
            ..Default::default()
        };
        s.latency_ms.p99 = 120.0;
        let v = judge(&e, &s);
        let ok: Vec<bool> = v.iter().map(|v| v.ok).collect();
        assert_eq!(ok, [false, true, true, false]);
        assert_eq!(v[0].measured, "2.500 s");
        assert_eq!(v[1].measured, "0.500 % of 1000 operations");
        assert_eq!(v[3].measured, "not checked");
        let bound = |t: &str| match &parse(t).unwrap()[0] {
            Expectation::Compare { bound, .. } => *bound,
            _ => unreachable!(),
        };
        assert_eq!(bound("longest_gap <= 1500ms"), bound("longest_gap <= 1.5"));
        assert_eq!(bound("latency_ms.p50 > 1s"), 1000.0);
    }

    #[test]
    fn bad_expectations_say_what_is_wrong() {
        for (text, says) in [
            ("longest_gapp < 2s", "no figure 'longest_gapp'"),
            ("longest_gap < soon", "not a number"),
            ("longest_gap < 2h", "unknown unit"),
            ("longest_gap", "write <figure> <op> <bound>"),
            ("errors < 1%,", "empty expectation"),
            ("linearisable", "write <figure>"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(names().iter().any(|n| n == "latency_ms.p99"));
    }
}
