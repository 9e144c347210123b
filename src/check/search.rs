//! The search for one key (see the module above): values interned, unknown writes dropped or
//! bounded, the history cut where nothing is in flight, each piece searched from every value
//! the register may hold when it begins.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::history::{HistoryOp, Kind, Status};
use super::{Violation, ViolationOp, BUDGET};

pub(super) enum KeyVerdict {
    Ok { checked: usize },
    Violation(Violation),
    Undecided(String),
}

/// An operation as the search sees it.
#[derive(Clone, Copy)]
struct Op<'a> {
    h: &'a HistoryOp,
    call: f64,
    /// Its return, or the latest instant it can have taken effect (+inf: unbounded).
    ret: f64,
    write: bool,
    /// The value written or read, interned (0: the initial value).
    value: u32,
}

pub(super) fn key(key: &str, ops: &[&HistoryOp], initial: &str) -> KeyVerdict {
    // Values: the initial one is 0, each write's its own.
    let mut values: HashMap<&str, u32> = HashMap::from([(initial, 0)]);
    let writes: Vec<&HistoryOp> = ops
        .iter()
        .copied()
        .filter(|o| o.kind == Kind::Write && o.status != Status::Fail)
        .collect();
    for w in &writes {
        let next = values.len() as u32;
        if values.insert(w.value.as_str(), next).is_some() {
            return KeyVerdict::Undecided(format!(
                "two writes (or a write and the initial value) hold '{}': a read must tell which write it saw, so values must be unique",
                w.value
            ));
        }
    }
    let reads: Vec<&HistoryOp> = ops
        .iter()
        .copied()
        .filter(|o| o.kind == Kind::Read && o.status == Status::Ok)
        .collect();
    // When each value was first seen returned by a read.
    let mut seen: HashMap<u32, f64> = HashMap::new();
    for r in &reads {
        let Some(&v) = values.get(r.value.as_str()) else {
            return KeyVerdict::Violation(violation(key, &[op_of(r, 0, f64::INFINITY)]));
        };
        let ret = r.ret.unwrap_or(f64::INFINITY);
        let e = seen.entry(v).or_insert(ret);
        *e = e.min(ret);
    }
    let mut list: Vec<Op> = Vec::with_capacity(writes.len() + reads.len());
    for w in &writes {
        let v = values[w.value.as_str()];
        let ret = match (w.status, seen.get(&v)) {
            (Status::Ok, _) => w.ret.unwrap_or(f64::INFINITY),
            // Unknown, and read: it happened before that read returned.
            (_, Some(&first)) => w.ret.unwrap_or(f64::INFINITY).min(first),
            // Unknown and never read: leaving it out is always a valid choice.
            (_, None) => continue,
        };
        list.push(Op {
            h: w,
            call: w.call,
            ret: ret.max(w.call),
            write: true,
            value: v,
        });
    }
    for r in &reads {
        list.push(op_of(
            r,
            values[r.value.as_str()],
            r.ret.unwrap_or(f64::INFINITY),
        ));
    }
    list.sort_by(|a, b| a.call.total_cmp(&b.call).then(a.h.id.cmp(&b.h.id)));
    let checked = list.len();
    let mut starts: BTreeSet<u32> = BTreeSet::from([0]);
    for piece in pieces(&list) {
        match ends(piece, &starts) {
            Err(e) => return KeyVerdict::Undecided(e),
            Ok(e) if e.is_empty() => {
                let least = smallest(piece, &starts);
                return KeyVerdict::Violation(violation(key, &with_context(&list, least)));
            }
            Ok(e) => starts = e,
        }
    }
    KeyVerdict::Ok { checked }
}

/// A violation found in a piece (`least`, its fewest operations) with the operations that
/// explain it: for a read of a value that the piece's start rules out, the write of that value
/// and a write that came wholly between it and the read (or, for the initial value, any write
/// wholly before the read) — three operations (two) that no order explains on their own.
fn with_context<'a>(list: &[Op<'a>], least: Vec<Op<'a>>) -> Vec<Op<'a>> {
    for r in least.iter().filter(|o| !o.write) {
        let wrote = list.iter().find(|o| o.write && o.value == r.value);
        let after = wrote.map_or(f64::NEG_INFINITY, |w| w.ret);
        let between = list
            .iter()
            .find(|o| o.write && o.value != r.value && o.call > after && o.ret < r.call);
        if let Some(b) = between {
            let mut set: Vec<Op> = wrote.into_iter().copied().chain([*b, *r]).collect();
            set.sort_by(|a, b| a.call.total_cmp(&b.call));
            let start = BTreeSet::from([0]);
            if ends(&set, &start).is_ok_and(|e| e.is_empty()) {
                return set;
            }
        }
    }
    least
}

fn op_of(r: &HistoryOp, value: u32, ret: f64) -> Op<'_> {
    Op {
        h: r,
        call: r.call,
        ret,
        write: false,
        value,
    }
}

/// Cut `ops` (by call) where nothing is in flight: every earlier operation returned before the
/// next one was called.
fn pieces<'a, 'b>(ops: &'b [Op<'a>]) -> Vec<&'b [Op<'a>]> {
    let mut out = Vec::new();
    let (mut start, mut last_ret) = (0, f64::NEG_INFINITY);
    for (i, o) in ops.iter().enumerate() {
        if i > start && o.call > last_ret {
            out.push(&ops[start..i]);
            start = i;
            last_ret = f64::NEG_INFINITY;
        }
        last_ret = last_ret.max(o.ret);
    }
    if start < ops.len() {
        out.push(&ops[start..]);
    }
    out
}

/// Every value the register can hold after `piece`, linearized from any of `starts`; empty if
/// no order explains it. Err if the search outgrows its budget.
fn ends(piece: &[Op], starts: &BTreeSet<u32>) -> Result<BTreeSet<u32>, String> {
    let m = piece.len();
    let words = m.div_ceil(64);
    let mut out = BTreeSet::new();
    let mut memo: HashSet<(Vec<u64>, u32)> = HashSet::new();
    let mut stack: Vec<(Vec<u64>, u32, usize)> =
        starts.iter().map(|&s| (vec![0u64; words], s, 0)).collect();
    let done = |bits: &[u64], i: usize| bits[i / 64] >> (i % 64) & 1 == 1;
    while let Some((bits, state, count)) = stack.pop() {
        if count == m {
            out.insert(state);
            continue;
        }
        // An operation can go next if no other one left returned before it was called.
        let first = (0..m).find(|&i| !done(&bits, i)).expect("one is left");
        let min_ret = (first..m)
            .filter(|&i| !done(&bits, i))
            .map(|i| piece[i].ret)
            .fold(f64::INFINITY, f64::min);
        for i in first..m {
            let o = &piece[i];
            if o.call > min_ret {
                break;
            }
            if done(&bits, i) {
                continue;
            }
            let next = if o.write {
                o.value
            } else if o.value == state {
                state
            } else {
                continue;
            };
            let mut b = bits.clone();
            b[i / 64] |= 1 << (i % 64);
            if memo.insert((b.clone(), next)) {
                if memo.len() > BUDGET {
                    return Err(format!(
                        "{m} operations in flight together took more than {BUDGET} search states"
                    ));
                }
                stack.push((b, next, count + 1));
            }
        }
    }
    Ok(out)
}

/// The fewest operations of `piece` that still no order explains: leave out one at a time
/// while it stays a violation (never a write whose value a remaining read saw), until no
/// operation can go.
fn smallest<'a>(piece: &[Op<'a>], starts: &BTreeSet<u32>) -> Vec<Op<'a>> {
    let mut keep: Vec<Op> = piece.to_vec();
    loop {
        let before = keep.len();
        let mut i = 0;
        while i < keep.len() {
            let o = keep[i];
            let needed = o.write && keep.iter().any(|r| !r.write && r.value == o.value);
            if !needed && keep.len() > 1 {
                let mut without = keep.clone();
                without.remove(i);
                if ends(&without, starts).is_ok_and(|e| e.is_empty()) {
                    keep = without;
                    continue;
                }
            }
            i += 1;
        }
        if keep.len() == before {
            return keep;
        }
    }
}

fn violation(key: &str, ops: &[Op]) -> Violation {
    let vops: Vec<ViolationOp> = ops
        .iter()
        .map(|o| ViolationOp {
            id: o.h.id,
            kind: if o.write { "write" } else { "read" }.into(),
            value: o.h.value.clone(),
            call: o.h.call,
            ret: o.h.ret,
        })
        .collect();
    Violation {
        key: key.to_string(),
        from: vops.iter().map(|o| o.call).fold(f64::INFINITY, f64::min),
        to: vops
            .iter()
            .map(|o| o.ret.unwrap_or(o.call))
            .fold(f64::NEG_INFINITY, f64::max),
        ops: vops,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check, History, HistoryOp, Status};
    use super::Kind;

    fn op(
        id: u64,
        kind: Kind,
        value: &str,
        call: f64,
        ret: Option<f64>,
        status: Status,
    ) -> HistoryOp {
        HistoryOp {
            id,
            key: "k".into(),
            kind,
            value: value.into(),
            call,
            ret,
            status,
        }
    }
    fn w(id: u64, v: &str, call: f64, ret: f64) -> HistoryOp {
        op(id, Kind::Write, v, call, Some(ret), Status::Ok)
    }
    fn r(id: u64, v: &str, call: f64, ret: f64) -> HistoryOp {
        op(id, Kind::Read, v, call, Some(ret), Status::Ok)
    }
    fn verdict(ops: Vec<HistoryOp>) -> super::super::Verdict {
        check(&History {
            initial: String::new(),
            ops,
        })
    }

    #[test]
    fn sequential_and_concurrent_histories_that_can_be_ordered_pass() {
        let v = verdict(vec![
            w(1, "a", 0.0, 1.0),
            r(2, "a", 2.0, 3.0),
            w(3, "b", 4.0, 5.0),
        ]);
        assert_eq!(v.linearizable, Some(true), "{v:?}");
        // A read concurrent with a write may see either value.
        for seen in ["", "a"] {
            let v = verdict(vec![w(1, "a", 0.0, 2.0), r(2, seen, 1.0, 3.0)]);
            assert_eq!(v.linearizable, Some(true), "{seen}: {v:?}");
        }
        // A write that timed out may have happened: a later read may see it, or not.
        for seen in ["", "a"] {
            let v = verdict(vec![
                op(1, Kind::Write, "a", 0.0, None, Status::Info),
                r(2, seen, 5.0, 6.0),
            ]);
            assert_eq!(v.linearizable, Some(true), "{seen}: {v:?}");
        }
    }

    #[test]
    fn a_stale_read_is_caught_as_the_fewest_operations() {
        let v = verdict(vec![
            w(1, "a", 0.0, 1.0),
            w(2, "b", 2.0, 3.0),
            r(9, "x-unrelated", 2.5, 2.6),
            r(3, "a", 4.0, 5.0),
        ]);
        // "x-unrelated" was never written: that read alone is the violation.
        assert_eq!(v.linearizable, Some(false));
        let ids: Vec<u64> = v.violation.unwrap().ops.iter().map(|o| o.id).collect();
        assert_eq!(ids, [9]);
        let v = verdict(vec![
            w(1, "a", 0.0, 1.0),
            r(4, "a", 1.5, 1.8),
            w(2, "b", 2.0, 3.0),
            r(3, "a", 4.0, 5.0),
        ]);
        assert_eq!(v.linearizable, Some(false), "{v:?}");
        let ids: Vec<u64> = v.violation.unwrap().ops.iter().map(|o| o.id).collect();
        assert_eq!(
            ids,
            [1, 2, 3],
            "the read, the write it saw and the one that overwrote it"
        );
        // A read of a value whose write never happened.
        let v = verdict(vec![
            op(1, Kind::Write, "a", 0.0, None, Status::Fail),
            r(2, "a", 1.0, 2.0),
        ]);
        assert_eq!(v.linearizable, Some(false));
    }

    #[test]
    fn values_that_are_not_unique_leave_the_key_undecided() {
        let v = verdict(vec![w(1, "a", 0.0, 1.0), w(2, "a", 2.0, 3.0)]);
        assert_eq!(v.linearizable, None);
        assert!(v.reason.unwrap().contains("unique"));
    }
}
