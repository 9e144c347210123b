//! Availability as a run streams past: the longest stretch without a success (a bitmap of
//! instants that had one) and the windows in which a client's operations failed or were late,
//! independent of the order operations finish in, in memory bounded by the run's length.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A time interval in which a client's operations failed or were delayed past the operation
/// timeout. Start and end are intended starts of the first and last such operation; such
/// operations closer than the operation timeout to each other belong to one window.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Window {
    pub start: f64,
    pub end: f64,
    /// Operations that failed (errors, timeouts, not sent).
    pub failed: u64,
    /// Operations that succeeded only after more than the operation timeout.
    pub delayed: u64,
    /// The clients that suffered (run-level windows only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
}

/// A bitmap of instants with a success, for the longest gap.
pub struct Gaps {
    pub res: f64,
    bits: Vec<u64>,
}

impl Gaps {
    pub fn new(span: f64, res: f64) -> Gaps {
        let n = (span / res).ceil() as usize + 1;
        Gaps {
            res,
            bits: vec![0; n.div_ceil(64)],
        }
    }
    pub fn mark(&mut self, t: f64) {
        let max = self.bits.len() * 64 - 1;
        let i = ((t.max(0.0) / self.res) as usize).min(max);
        self.bits[i / 64] |= 1 << (i % 64);
    }
    /// The longest stretch without a success from 0 to `end`, and where it starts.
    pub fn longest(&self, end: f64) -> (f64, f64) {
        let (mut best, mut from, mut prev) = (0usize, 0usize, 0usize);
        let end_i = ((end / self.res).round() as usize).min(self.bits.len() * 64);
        let mut last = 0;
        for (w, &word) in self.bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                if i - prev > best {
                    (best, from) = (i - prev, prev);
                }
                prev = i;
                last = i;
            }
        }
        let tail = end_i.max(last);
        if tail - prev > best {
            (best, from) = (tail - prev, prev);
        }
        (best as f64 * self.res, from as f64 * self.res)
    }
}

/// A client's windows, keyed by their start (µs).
#[derive(Default)]
pub struct Windows(BTreeMap<i64, Window>);

/// A client keeps at most this many windows (a run that fails and succeeds in turn forever
/// would otherwise grow them without end).
const MAX_WINDOWS: usize = 2000;

impl Windows {
    /// A failed (or delayed) operation intended at `t`; `g` joins windows closer than it.
    pub fn add(&mut self, t: f64, failed: bool, g: f64) {
        let ws = &mut self.0;
        let key = (t * 1e6).round() as i64;
        // The window that starts at or before t and reaches near it grows to t; else the one
        // that starts a little after t grows back to it; else t starts a window of its own.
        let before = ws
            .range(..=key)
            .next_back()
            .filter(|(_, w)| t <= w.end + g)
            .map(|(&k, _)| k);
        let after = ws
            .range(key..)
            .next()
            .filter(|(_, w)| w.start - t <= g)
            .map(|(&k, _)| k);
        let (k, mut w) = match (before, after) {
            (Some(k), _) => (k, ws.remove(&k).expect("found")),
            (None, Some(k)) => (key, ws.remove(&k).expect("found")),
            (None, None) if ws.len() < MAX_WINDOWS => (
                key,
                Window {
                    start: t,
                    end: t,
                    failed: 0,
                    delayed: 0,
                    clients: Vec::new(),
                },
            ),
            (None, None) => return,
        };
        w.start = w.start.min(t);
        w.end = w.end.max(t);
        if failed {
            w.failed += 1
        } else {
            w.delayed += 1
        }
        // Grown, it may reach the next window: join them.
        if let Some(k2) = ws
            .range((k + 1)..)
            .next()
            .filter(|(_, w2)| w2.start <= w.end + g)
            .map(|(&k2, _)| k2)
        {
            let w2 = ws.remove(&k2).expect("found");
            w.end = w.end.max(w2.end);
            w.failed += w2.failed;
            w.delayed += w2.delayed;
        }
        ws.insert(k, w);
    }

    /// The windows, in time order.
    pub fn list(&self) -> Vec<Window> {
        self.0.values().cloned().collect()
    }
}

/// The run's windows: every client's, joined where they overlap or lie closer than `gap`.
pub fn merge_windows(mut all: Vec<(String, Window)>, gap: f64) -> Vec<Window> {
    all.sort_by(|a, b| a.1.start.total_cmp(&b.1.start));
    let mut out: Vec<Window> = Vec::new();
    for (client, w) in all {
        match out.last_mut() {
            Some(last) if w.start <= last.end + gap => {
                last.end = last.end.max(w.end);
                last.failed += w.failed;
                last.delayed += w.delayed;
                if !last.clients.contains(&client) {
                    last.clients.push(client);
                }
            }
            _ => out.push(Window {
                clients: vec![client],
                ..w
            }),
        }
    }
    for w in &mut out {
        w.clients.sort();
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_found_to_the_resolution() {
        let mut g = Gaps::new(10.0, 1e-3);
        for t in [0.1, 0.2, 3.0, 3.1] {
            g.mark(t);
        }
        let (len, from) = g.longest(10.0);
        assert!((len - 6.9).abs() < 2e-3, "{len}");
        assert!((from - 3.1).abs() < 2e-3, "{from}");
        let (len, from) = g.longest(4.0);
        assert!(
            (len - 2.8).abs() < 2e-3 && (from - 0.2).abs() < 2e-3,
            "{len} {from}"
        );
        let empty = Gaps::new(5.0, 1e-3);
        assert_eq!(empty.longest(5.0), (5.0, 0.0));
    }

    #[test]
    fn windows_join_failures_closer_than_the_timeout() {
        let mut ws = Windows::default();
        // Out of order on purpose: the windows do not depend on arrival order.
        for (i, time) in [5.0, 3.0, 3.5, 4.4, 10.0, 12.5, 12.0].iter().enumerate() {
            ws.add(*time, i % 2 == 0, 1.0);
        }
        let w = ws.list();
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(
            (w[0].start, w[0].end, w[0].failed + w[0].delayed),
            (3.0, 5.0, 4)
        );
        assert_eq!((w[1].start, w[1].end), (10.0, 10.0));
        assert_eq!((w[2].start, w[2].end), (12.0, 12.5));
        let all = merge_windows(
            vec![
                ("mc1".into(), w[0].clone()),
                (
                    "mc2".into(),
                    Window {
                        start: 5.5,
                        end: 6.0,
                        failed: 1,
                        delayed: 0,
                        clients: vec![],
                    },
                ),
            ],
            1.0,
        );
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].clients, ["mc1", "mc2"]);
        assert_eq!(all[0].end, 6.0);
    }
}
