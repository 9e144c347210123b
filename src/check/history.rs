//! Histories the checker reads: a reckon run's folder (its ops.csv), or a history from
//! elsewhere as CSV or JSON with these fields per operation (README, "History checker"):
//!
//! | field    | meaning                                                                  |
//! | -------- | ------------------------------------------------------------------------ |
//! | `id`     | a number naming the operation in the verdict                             |
//! | `key`    | the register                                                             |
//! | `kind`   | `read` or `write`                                                        |
//! | `value`  | what a write wrote, or what a read saw (empty: the initial value)       |
//! | `call`   | when it was invoked, seconds                                             |
//! | `return` | when it returned, seconds; empty for an unknown outcome                 |
//! | `status` | `ok`; `fail` (it did not happen); `info` (unknown: it may have happened) |
//!
//! JSON is `{"initial": "", "ops": [...]}` or just the list; every register starts at
//! `initial` (default empty). A read whose status is not `ok` says nothing and is left out.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::{read_ops, OpRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It happened, and returned.
    Ok,
    /// It did not happen.
    Fail,
    /// It may have happened (a timeout).
    Info,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryOp {
    pub id: u64,
    pub key: String,
    pub kind: Kind,
    #[serde(default)]
    pub value: String,
    pub call: f64,
    #[serde(rename = "return", default)]
    pub ret: Option<f64>,
    pub status: Status,
}

/// A history: operations, and the value every register starts with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default)]
    pub initial: String,
    pub ops: Vec<HistoryOp>,
}

impl History {
    /// Read a run folder (its ops.csv), or a history file: `.json`, or CSV otherwise.
    pub fn load(path: &Path) -> Result<History, String> {
        if path.is_dir() {
            return from_run(path);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read history {}: {e}", path.display()))?;
        let h = if path.extension().is_some_and(|e| e == "json") {
            match serde_json::from_str::<History>(&text) {
                Ok(h) => h,
                Err(_) => History {
                    initial: String::new(),
                    ops: serde_json::from_str(&text).map_err(|e| {
                        format!(
                            "{}: {e}; give {{\"initial\": \"\", \"ops\": [...]}} or a list of operations (see the README)",
                            path.display()
                        )
                    })?,
                },
            }
        } else {
            let ops: Result<Vec<HistoryOp>, _> = csv::Reader::from_reader(text.as_bytes())
                .deserialize()
                .collect();
            History {
                initial: String::new(),
                ops: ops.map_err(|e| {
                    format!(
                        "{}: {e}; the columns are id,key,kind,value,call,return,status (see the README)",
                        path.display()
                    )
                })?,
            }
        };
        h.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(h)
    }

    fn validate(&self) -> Result<(), String> {
        for op in &self.ops {
            let ok = op.call.is_finite() && op.ret.is_none_or(|r| r.is_finite() && r >= op.call);
            if !ok {
                return Err(format!(
                    "operation {}: call {} and return {:?} must be numbers, the return not before the call",
                    op.id, op.call, op.ret
                ));
            }
            if op.status == Status::Ok && op.ret.is_none() {
                return Err(format!("operation {}: status ok needs a return", op.id));
            }
        }
        Ok(())
    }
}

/// A reckon run: every key starts empty (the prerequisites write it so); an operation never
/// sent did not happen; a write that failed after it was sent may have happened.
fn from_run(dir: &Path) -> Result<History, String> {
    if let Ok(cfg) = std::fs::read(dir.join("config.json")) {
        let cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap_or_default();
        if !cfg["client_cmd"].is_null() {
            return Err(format!(
                "{}: this run used an external client, whose results carry no values; a read's value is what the check needs",
                dir.display()
            ));
        }
    }
    let path = dir.join("ops.csv");
    let ops = read_ops(&path).map_err(|e| {
        format!(
            "{}: {e}; give the folder of a `reckon run`, or a history file",
            path.display()
        )
    })?;
    let h = History {
        initial: String::new(),
        ops: ops.iter().map(from_record).collect(),
    };
    h.validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(h)
}

fn from_record(r: &OpRecord) -> HistoryOp {
    let kind = if r.kind == "write" {
        Kind::Write
    } else {
        Kind::Read
    };
    let status = match (r.ok, r.attempts, kind) {
        (true, _, _) => Status::Ok,
        (false, 0, _) => Status::Fail,
        (false, _, Kind::Write) => Status::Info,
        (false, _, Kind::Read) => Status::Fail,
    };
    HistoryOp {
        id: r.n,
        key: r.key.clone(),
        kind,
        value: r.value.clone(),
        call: r.sent,
        ret: (status == Status::Ok).then_some(r.done.max(r.sent)),
        status,
    }
}
