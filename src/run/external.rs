//! External clients (`--client-cmd`): a process per client host speaking reckon's stdio
//! protocol, unchanged, so reckon's per-system clients plug in as they are.
//!
//! The protocol's results say neither which operation they answer nor its key; they carry the
//! operation's kind and `other.expected_start` (the client's start plus the operation's
//! `time`, as reckon's client libraries send it). reckon matches each result to the operation
//! it preloaded: the offset between the client's clock start and reckon's is fixed by the
//! first result, and each result then takes the unanswered operation of its kind whose time is
//! nearest. Without `expected_start`, results take the client's unanswered operations of their
//! kind in order. A matched result is recorded with the operation's schedule index, key and
//! intended start — reckon's, not the client's — so latency counts from the instant reckon
//! asked for, whatever the client did.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::messages::{Msg, Ready};
use crate::client::stdio::{Message, OpKind, Operation, Payload, StdioClient};
use crate::net::registry::Manifest;
use crate::record::OpRecord;
use crate::workload::{Op, Scheduled};

/// A client's operations, by intended start, that have no result yet.
struct Unanswered {
    /// Key: intended start in ns (unique per client); value: (schedule index, key, is write).
    by_time: BTreeMap<i64, (u64, String, bool)>,
    /// The client's start minus reckon's, seconds, once known.
    offset: Option<f64>,
}

impl Unanswered {
    fn new(ops: &[Scheduled]) -> Unanswered {
        let mut by_time = BTreeMap::new();
        for s in ops {
            let mut k = (s.time * 1e9).round() as i64;
            // Two operations at the same instant (not from reckon's schedules, but be safe).
            while by_time.contains_key(&k) {
                k += 1;
            }
            by_time.insert(
                k,
                (
                    s.n,
                    s.op.key().to_string(),
                    matches!(s.op, Op::Write { .. }),
                ),
            );
        }
        Unanswered {
            by_time,
            offset: None,
        }
    }

    /// The operation a result of kind `write` answers, given `expected` (its expected start
    /// relative to reckon's start), if it said one: (schedule index, key, intended start).
    fn take(&mut self, write: bool, expected: Option<f64>) -> Option<(u64, String, f64)> {
        let kind = |v: &(u64, String, bool)| v.2 == write;
        let key = match expected {
            Some(x) => {
                let offset = match self.offset {
                    Some(o) => o,
                    None => {
                        // The client started at or after reckon's start: the first result
                        // answers an operation at or before x.
                        let k = self
                            .by_time
                            .range(..=((x * 1e9).round() as i64 + 1_000))
                            .rev()
                            .find(|(_, v)| kind(v))
                            .map(|(k, _)| *k)?;
                        let o = x - k as f64 / 1e9;
                        self.offset = Some(o);
                        o
                    }
                };
                let target = ((x - offset) * 1e9).round() as i64;
                let after = self.by_time.range(target..).find(|(_, v)| kind(v));
                let before = self.by_time.range(..target).rev().find(|(_, v)| kind(v));
                match (before, after) {
                    (Some((b, _)), Some((a, _))) => {
                        if target - b <= a - target {
                            *b
                        } else {
                            *a
                        }
                    }
                    (Some((b, _)), None) => *b,
                    (None, Some((a, _))) => *a,
                    (None, None) => return None,
                }
            }
            None => *self.by_time.iter().find(|(_, v)| kind(v))?.0,
        };
        let (n, k, _) = self.by_time.remove(&key)?;
        Some((n, k, key as f64 / 1e9))
    }
}

/// One external client: spawned in its host with every endpoint (its own data centre's first),
/// given its operations, started at `go`'s instant; its results become records.
#[allow(clippy::too_many_arguments)]
pub fn client(
    m: &Manifest,
    host: String,
    id: u32,
    cmd: &[String],
    mut eps: Vec<String>,
    local: Option<usize>,
    ops: Vec<Scheduled>,
    log: &Path,
    silence: Duration,
    ready: mpsc::Sender<Result<Ready, String>>,
    go: mpsc::Receiver<u64>,
    tx: mpsc::Sender<Msg>,
    counters: &super::drive::Counters,
) -> Result<(), String> {
    if let Some(l) = local {
        eps.rotate_left(l);
    }
    let mut unanswered = Unanswered::new(&ops);
    let setup = (|| {
        let _ = std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")));
        let mut c =
            StdioClient::spawn(m, &host, cmd, &eps, id, false, log).map_err(|e| e.to_string())?;
        for s in ops {
            let payload = match s.op {
                Op::Write { key, value } => Payload::Write { key, value },
                Op::Read { key } => Payload::Read { key },
            };
            c.preload(
                false,
                Operation {
                    payload,
                    time: s.time,
                },
            )
            .map_err(|e| e.to_string())?;
        }
        c.finalise(Duration::from_secs(120))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(c)
    })();
    let mut c = match setup {
        Ok(c) => {
            let _ = ready.send(Ok(Default::default()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let Ok(t0_ns) = go.recv() else { return Ok(()) };
    crate::clock::sleep_until(t0_ns, Duration::from_millis(50), || false);
    let t0_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    c.start().map_err(|e| e.to_string())?;
    let mut n = 0u64;
    let mut batch = Vec::new();
    let mut last = std::time::Instant::now();
    let result = loop {
        match c.next(silence) {
            Ok(Some(Message::Result {
                t_submitted,
                t_result,
                result,
                op_kind,
                other,
                ..
            })) => {
                let write = op_kind == OpKind::Write;
                let expected = other
                    .get("expected_start")
                    .and_then(|v| v.as_f64())
                    .map(|x| x - t0_unix);
                let sent = t_submitted - t0_unix;
                let (index, key, intended) = match unanswered.take(write, expected) {
                    Some(m) => m,
                    // More results than operations: keep it, marked as unmatched.
                    None => (u64::MAX, String::new(), expected.unwrap_or(sent)),
                };
                let ok = result == "Success";
                if ok {
                    counters
                        .ok
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    counters
                        .errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                batch.push(OpRecord {
                    n: index,
                    client: host.clone(),
                    kind: if write { "write" } else { "read" }.into(),
                    key,
                    intended,
                    sent,
                    done: t_result - t0_unix,
                    ok,
                    error: if ok { String::new() } else { result },
                    target: other
                        .get("target")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    attempts: 1,
                    // The protocol's results carry no values.
                    value: String::new(),
                });
                n += 1;
                if last.elapsed() >= super::drive::BATCH {
                    let _ = tx.send(Msg::Ops(std::mem::take(&mut batch)));
                    last = std::time::Instant::now();
                }
            }
            Ok(_) => break Ok(()),
            Err(end) => {
                break Err(format!(
                    "client {id} on {host}: {end:?} after {n} results (its stderr: {})",
                    log.display()
                ))
            }
        }
    };
    if !batch.is_empty() {
        let _ = tx.send(Msg::Ops(batch));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(n: u64, time: f64, write: bool) -> Scheduled {
        Scheduled {
            n,
            time,
            client: 0,
            op: if write {
                Op::Write {
                    key: format!("{n}"),
                    value: "v".into(),
                }
            } else {
                Op::Read {
                    key: format!("{n}"),
                }
            },
        }
    }

    #[test]
    fn results_are_matched_to_the_operations_they_answer() {
        // Operations 10 ms apart; the client started 3 ms after reckon; results arrive out of
        // order.
        let ops: Vec<_> = (0..6)
            .map(|i| sched(i * 3, i as f64 * 0.01, i % 2 == 0))
            .collect();
        let mut u = Unanswered::new(&ops);
        let got = |u: &mut Unanswered, w: bool, t: f64| u.take(w, Some(t + 0.003)).unwrap();
        assert_eq!(got(&mut u, true, 0.0).0, 0);
        assert_eq!(got(&mut u, true, 0.04).0, 12);
        assert_eq!(got(&mut u, false, 0.01).0, 3);
        let (n, key, intended) = got(&mut u, false, 0.05);
        assert_eq!((n, key.as_str()), (15, "15"));
        assert!(
            (intended - 0.05).abs() < 1e-9,
            "reckon's instant, not the client's"
        );
        // Without expected_start: the earliest unanswered of the kind.
        assert_eq!(u.take(true, None).unwrap().0, 6);
        assert_eq!(u.take(false, None).unwrap().0, 9);
        assert!(u.take(false, None).is_none());
    }
}
