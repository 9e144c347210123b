//! `reckon check`: is a history linearizable, key by key, as a read/write register?
//!
//! The history is a run's ops.csv (or a history from elsewhere, in the CSV or JSON form of
//! [`History`]). Each key is checked on its own (linearizability is compositional, so the
//! history is linearizable iff every key's is). A write's value is unique (reckon's are), so
//! a read says which write it saw, and that makes the question a matter of intervals
//! (Gibbons and Korach, "Testing shared memories", 1997; here in the form of Golab, Li and
//! Shah, PODC 2011): a write and the reads that saw it form a cluster; where some operation of
//! the cluster returns before another is called, the value must be held from the first return
//! to the last call (a forward zone), else the cluster can take effect at any instant all its
//! operations share (a backward zone). The key is linearizable exactly when no read returns
//! before its write is called, no two forward zones overlap, and no backward zone lies inside
//! a forward one: O(n log n) per key, however many operations are in flight together.
//! - a write whose outcome is unknown (it timed out) may or may not have happened: unread, it is
//!   dropped (leaving it out is always a valid choice); read, it must have happened before the
//!   first read that saw it returned, which bounds it;
//! - failed reads say nothing, and a write that failed did not happen.
//!
//! Stale reads are looked for first (a read, the write it saw and a write wholly between the
//! two: no order explains those three) and shown as those operations; any other violation is
//! shown as the two clusters that cannot both hold (their writes and the operations bounding
//! their zones), or as a read and the write it saw, called after the read returned. With
//! values that are not unique a read does not say which write it saw, and the key is
//! "undecided", never given a false verdict. The tests check the zones against the
//! Wing–Gong/Lowe search (as in Knossos and Porcupine) on random histories.

pub mod history;
mod search;

pub use history::{History, HistoryOp, Status};

use serde::{Deserialize, Serialize};

/// What the checker found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// true: linearizable; false: a violation; null: undecided (see `reason`).
    pub linearizable: Option<bool>,
    /// Operations and keys checked (failed reads and writes that did not happen are left out).
    pub ops: usize,
    pub keys: usize,
    /// Why the verdict is undecided, or what the violation is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<Violation>,
    /// How long the check took, seconds.
    pub seconds: f64,
}

/// Operations of one key that no order explains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub key: String,
    /// The operations (their `id`: ops.csv's `n`), by call time.
    pub ops: Vec<ViolationOp>,
    /// From the first call to the last return among them, seconds.
    pub from: f64,
    pub to: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViolationOp {
    pub id: u64,
    pub kind: String,
    pub value: String,
    pub call: f64,
    /// `None`: its outcome is unknown.
    pub ret: Option<f64>,
}

/// Check `h` key by key.
pub fn check(h: &History) -> Verdict {
    let start = std::time::Instant::now();
    let mut keys: std::collections::BTreeMap<&str, Vec<&HistoryOp>> = Default::default();
    for op in &h.ops {
        keys.entry(op.key.as_str()).or_default().push(op);
    }
    let mut verdict = Verdict {
        linearizable: Some(true),
        ops: 0,
        keys: keys.len(),
        reason: None,
        violation: None,
        seconds: 0.0,
    };
    for (key, ops) in keys {
        match search::key(key, &ops, &h.initial) {
            search::KeyVerdict::Ok { checked } => verdict.ops += checked,
            search::KeyVerdict::Violation(v) => {
                verdict.linearizable = Some(false);
                verdict.reason = Some(format!(
                    "key {key}: {} operations cannot be ordered (a read saw a value the order of writes rules out)",
                    v.ops.len()
                ));
                verdict.violation = Some(v);
                break;
            }
            search::KeyVerdict::Undecided(why) => {
                verdict.linearizable = None;
                verdict.reason = Some(format!("key {key}: {why}"));
            }
        }
    }
    verdict.seconds = start.elapsed().as_secs_f64();
    verdict
}

/// Put the verdict into a run folder's summary.json (its report shows it).
pub fn record(dir: &std::path::Path, v: &Verdict) -> Result<(), String> {
    let path = dir.join("summary.json");
    let mut s: crate::record::Summary = serde_json::from_slice(
        &std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    s.check = Some(v.clone());
    crate::record::write_summary(dir, &s).map_err(|e| format!("{}: {e}", path.display()))
}

/// The verdict in a few lines.
pub fn describe(v: &Verdict) -> String {
    let mut out = match v.linearizable {
        Some(true) => format!(
            "linearizable: {} operations on {} keys ({:.3} s)",
            v.ops, v.keys, v.seconds
        ),
        Some(false) => format!("NOT linearizable ({:.3} s)", v.seconds),
        None => format!("undecided ({:.3} s)", v.seconds),
    };
    if let Some(r) = &v.reason {
        out += &format!("\n  {r}");
    }
    if let Some(x) = &v.violation {
        out += &format!(
            "\n  key {}, {:.3}-{:.3} s; no order explains these operations:",
            x.key, x.from, x.to
        );
        for o in &x.ops {
            let ret = o.ret.map_or("unknown".to_string(), |r| format!("{r:.6}"));
            out += &format!(
                "\n    {:>8} {:<5} {:<12} call {:.6}  return {ret}",
                o.id,
                o.kind,
                if o.value.is_empty() {
                    "(initial)"
                } else {
                    &o.value
                },
                o.call
            );
        }
    }
    out
}
