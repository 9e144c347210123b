//! The search for one key (see the module above): values interned, unknown writes dropped or
//! bounded, then a depth-first search over compact states.

use std::collections::{HashMap, HashSet};

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
    if let Some(v) = stale_read(&list) {
        return KeyVerdict::Violation(violation(key, &v));
    }
    match search(&list, 0) {
        Err(e) => KeyVerdict::Undecided(e),
        Ok(Found::Yes) => KeyVerdict::Ok { checked },
        Ok(Found::No { deepest }) => {
            KeyVerdict::Violation(violation(key, &explain(&list, deepest)))
        }
    }
}

enum Found {
    Yes,
    /// No order: the longest prefix (by call) the search put in order.
    No {
        deepest: usize,
    },
}

/// Where the search stands: every operation before `prefix` (by call) is in order, and so are
/// those in `ahead` (beyond it); the register holds `value`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    prefix: u32,
    ahead: Vec<u32>,
    value: u32,
}

/// Can `ops` (by call) be put in an order that respects real time and explains every read,
/// the register starting at `start`? Depth first, memoized, stopping at the first order.
fn search(ops: &[Op], start: u32) -> Result<Found, String> {
    let n = ops.len();
    let mut memo: HashSet<State> = HashSet::new();
    let mut stack = vec![State {
        prefix: 0,
        ahead: Vec::new(),
        value: start,
    }];
    let mut deepest = 0;
    while let Some(st) = stack.pop() {
        let p = st.prefix as usize;
        if p == n {
            return Ok(Found::Yes);
        }
        deepest = deepest.max(p);
        // What can go next: operations no other unordered one returned before (by call, an
        // operation called after the earliest return left cannot lower it).
        let mut min_ret = f64::INFINITY;
        let mut next = Vec::new();
        for i in p..n {
            if st.ahead.binary_search(&(i as u32)).is_ok() {
                continue;
            }
            if ops[i].call > min_ret {
                break;
            }
            min_ret = min_ret.min(ops[i].ret);
            next.push(i);
        }
        next.retain(|&i| ops[i].call <= min_ret);
        // A read that sees the value held now goes first and alone: it changes nothing, and
        // placing it only lifts the bound its return put on the others.
        if let Some(&i) = next
            .iter()
            .find(|&&i| !ops[i].write && ops[i].value == st.value)
        {
            next = vec![i];
        }
        // Otherwise writes branch; the one whose value the earliest read still to come saw
        // is tried first (in a linearizable history it is usually the one).
        if next.len() > 1 {
            let wanted = (p..n)
                .find(|&i| !ops[i].write && st.ahead.binary_search(&(i as u32)).is_err())
                .map(|i| ops[i].value);
            if let Some(pos) = wanted.and_then(|v| next.iter().position(|&i| ops[i].value == v)) {
                let i = next.remove(pos);
                next.insert(0, i);
            }
        }
        for &i in next.iter().rev() {
            let o = &ops[i];
            let value = if o.write {
                o.value
            } else if o.value == st.value {
                st.value
            } else {
                continue;
            };
            let mut s2 = State {
                prefix: st.prefix,
                ahead: st.ahead.clone(),
                value,
            };
            let at = s2.ahead.binary_search(&(i as u32)).unwrap_err();
            s2.ahead.insert(at, i as u32);
            while s2.ahead.first() == Some(&s2.prefix) {
                s2.ahead.remove(0);
                s2.prefix += 1;
            }
            if memo.insert(s2.clone()) {
                if memo.len() > BUDGET {
                    return Err(format!(
                        "more than {BUDGET} search states ({n} operations, the most in flight together near {:.3} s)",
                        ops[p].call
                    ));
                }
                stack.push(s2);
            }
        }
    }
    Ok(Found::No { deepest })
}

/// A read that saw a value overwritten before it began: the write of that value (or the
/// initial value), a write wholly after it and wholly before the read, and the read. Found in
/// O(n log n) from the writes by call with the least return of every suffix.
fn stale_read<'a>(list: &[Op<'a>]) -> Option<Vec<Op<'a>>> {
    // By call, as `list` is.
    let writes: Vec<Op> = list.iter().filter(|o| o.write).copied().collect();
    // least[k]: the write of least return among writes[k..].
    let mut least: Vec<usize> = (0..writes.len()).collect();
    for k in (0..writes.len().saturating_sub(1)).rev() {
        if writes[least[k + 1]].ret < writes[k].ret {
            least[k] = least[k + 1];
        }
    }
    let by_value: HashMap<u32, Op> = writes.iter().map(|w| (w.value, *w)).collect();
    for r in list.iter().filter(|o| !o.write) {
        let w = by_value.get(&r.value);
        let after = w.map_or(f64::NEG_INFINITY, |w| w.ret);
        let k = writes.partition_point(|b| b.call <= after);
        let Some(&j) = least.get(k) else { continue };
        let b = writes[j];
        if b.ret < r.call && b.value != r.value {
            let mut set: Vec<Op> = w.into_iter().copied().chain([b, *r]).collect();
            set.sort_by(|a, b| a.call.total_cmp(&b.call));
            return Some(set);
        }
    }
    None
}

/// The operations shown for a violation no stale read explains (`stale_read` has looked for
/// those few already): the ones in flight where the search got furthest.
fn explain<'a>(list: &[Op<'a>], deepest: usize) -> Vec<Op<'a>> {
    let from = deepest.saturating_sub(2);
    list[from..].iter().take(WINDOW).copied().collect()
}

/// The most operations shown for a violation.
const WINDOW: usize = 20;

fn op_of(r: &HistoryOp, value: u32, ret: f64) -> Op<'_> {
    Op {
        h: r,
        call: r.call,
        ret,
        write: false,
        value,
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
    fn a_violation_only_the_search_finds_is_shown_where_it_stopped() {
        // Two writes at once, then reads that see b and, later, a: no order of the writes
        // explains both (no write lies wholly between a's write and its read, so it is not a
        // stale read of the simple kind).
        let v = verdict(vec![
            w(1, "a", 0.0, 1.0),
            w(2, "b", 0.0, 1.0),
            r(3, "b", 2.0, 3.0),
            r(4, "a", 4.0, 5.0),
        ]);
        assert_eq!(v.linearizable, Some(false), "{v:?}");
        let ids: Vec<u64> = v.violation.unwrap().ops.iter().map(|o| o.id).collect();
        assert!(ids.contains(&4), "{ids:?}");
    }

    #[test]
    fn values_that_are_not_unique_leave_the_key_undecided() {
        let v = verdict(vec![w(1, "a", 0.0, 1.0), w(2, "a", 2.0, 3.0)]);
        assert_eq!(v.linearizable, None);
        assert!(v.reason.unwrap().contains("unique"));
    }
}
