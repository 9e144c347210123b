//! The check of one key (see the module above): values interned, unknown writes dropped or
//! bounded, stale reads looked for, then the zones of the writes' clusters compared — exact
//! and O(n log n) because every write's value is unique, so each read names the write it saw
//! (Gibbons and Korach's register test; the form here is Golab, Li and Shah's, PODC 2011).
//! The Wing–Gong/Lowe search it replaced stays, in the tests, as the oracle it is checked
//! against.

use std::collections::HashMap;

use super::history::{HistoryOp, Kind, Status};
use super::{Violation, ViolationOp};

pub(super) enum KeyVerdict {
    Ok { checked: usize },
    Violation(Violation),
    Undecided(String),
}

/// An operation as the check sees it.
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
    let list = match prepare(key, ops, initial) {
        Ok(l) => l,
        Err(v) => return v,
    };
    let checked = list.len();
    if let Some(v) = stale_read(&list) {
        return KeyVerdict::Violation(violation(key, &v));
    }
    match zones(&list) {
        Ok(()) => KeyVerdict::Ok { checked },
        Err(ops) => KeyVerdict::Violation(violation(key, &ops)),
    }
}

/// The operations that count, by call: values interned (0: the initial one), failed reads and
/// writes that did not happen left out, an unknown write dropped if no read saw it, else
/// bounded by the first read that did. Or the verdict, if that already decides.
fn prepare<'a>(
    key: &str,
    ops: &[&'a HistoryOp],
    initial: &'a str,
) -> Result<Vec<Op<'a>>, KeyVerdict> {
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
            return Err(KeyVerdict::Undecided(format!(
                "two writes (or a write and the initial value) hold '{}': a read must tell which write it saw, so values must be unique",
                w.value
            )));
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
            return Err(KeyVerdict::Violation(violation(
                key,
                &[op_of(r, 0, f64::INFINITY)],
            )));
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
    Ok(list)
}

/// A write with the reads that saw it (value 0: the initial value, written before anything).
/// Some operation of it returns at `f` (the least return), another is called at `s` (the
/// greatest call). If `f < s` the value must be held from `f` to `s` (a forward zone);
/// otherwise every one of its operations spans `[s, f]`, and the cluster can take effect at
/// any instant in it (a backward zone).
struct Cluster<'a> {
    write: Option<Op<'a>>,
    f: f64,
    f_op: Option<Op<'a>>,
    s: f64,
    s_op: Option<Op<'a>>,
}

impl<'a> Cluster<'a> {
    fn ops(&self) -> Vec<Op<'a>> {
        let mut v: Vec<Op> = Vec::new();
        for o in [self.write, self.f_op, self.s_op].into_iter().flatten() {
            if !v.iter().any(|x| x.h.id == o.h.id) {
                v.push(o);
            }
        }
        v
    }
}

/// Unique values make a register's history linearizable exactly when no read returns before
/// its write is called, no two forward zones overlap, and no backward zone lies inside a
/// forward one. Otherwise returns the operations that show it: a read and its write, or the
/// two clusters' writes and the operations bounding their zones.
fn zones<'a>(list: &[Op<'a>]) -> Result<(), Vec<Op<'a>>> {
    let mut clusters: HashMap<u32, Cluster<'a>> = HashMap::from([(
        0,
        Cluster {
            write: None,
            f: f64::NEG_INFINITY,
            f_op: None,
            s: f64::NEG_INFINITY,
            s_op: None,
        },
    )]);
    for w in list.iter().filter(|o| o.write) {
        clusters.insert(
            w.value,
            Cluster {
                write: Some(*w),
                f: w.ret,
                f_op: Some(*w),
                s: w.call,
                s_op: Some(*w),
            },
        );
    }
    for r in list.iter().filter(|o| !o.write) {
        let c = clusters
            .get_mut(&r.value)
            .expect("reads of unwritten values are refused before");
        if let Some(w) = c.write {
            if r.ret < w.call {
                return Err(vec![w, *r]);
            }
        }
        if r.ret < c.f {
            (c.f, c.f_op) = (r.ret, Some(*r));
        }
        if r.call > c.s {
            (c.s, c.s_op) = (r.call, Some(*r));
        }
    }
    let by_call = |mut v: Vec<Op<'a>>| {
        v.sort_by(|a, b| a.call.total_cmp(&b.call));
        v
    };
    let mut forward: Vec<&Cluster> = clusters.values().filter(|c| c.f < c.s).collect();
    forward.sort_by(|a, b| a.f.total_cmp(&b.f));
    // Sorted by start, they are disjoint if each starts after every earlier one ended.
    let mut widest: Option<&Cluster> = None;
    for c in &forward {
        if let Some(w) = widest {
            if c.f < w.s {
                return Err(by_call([w.ops(), c.ops()].concat()));
            }
        }
        if widest.is_none_or(|w| c.s > w.s) {
            widest = Some(c);
        }
    }
    for b in clusters.values().filter(|c| c.f >= c.s) {
        // The forward zone that starts last before this one starts (they are disjoint now).
        let k = forward.partition_point(|z| z.f < b.s);
        if let Some(z) = k.checked_sub(1).map(|k| forward[k]) {
            if b.f < z.s {
                return Err(by_call([z.ops(), b.ops()].concat()));
            }
        }
    }
    Ok(())
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

/// The Wing–Gong/Lowe search, depth first over compact states: the oracle the zones are
/// checked against (it decides any register history, in time exponential in the operations
/// in flight together).
#[cfg(test)]
mod oracle {
    use super::*;
    use std::collections::HashSet;

    /// The most states searched before giving up.
    const BUDGET: usize = 2_000_000;

    pub(super) enum Found {
        Yes,
        /// No order.
        No,
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
    pub(super) fn search(ops: &[Op], start: u32) -> Result<Found, String> {
        let n = ops.len();
        let mut memo: HashSet<State> = HashSet::new();
        let mut stack = vec![State {
            prefix: 0,
            ahead: Vec::new(),
            value: start,
        }];
        while let Some(st) = stack.pop() {
            let p = st.prefix as usize;
            if p == n {
                return Ok(Found::Yes);
            }
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
                if let Some(pos) = wanted.and_then(|v| next.iter().position(|&i| ops[i].value == v))
                {
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
        Ok(Found::No)
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
    fn a_violation_that_is_no_stale_read_is_shown_by_its_clusters() {
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

    /// The zones decide exactly what the search decides, on thousands of small random
    /// histories of overlapping writes, reads of any value and unknown outcomes.
    #[test]
    fn the_zones_agree_with_the_search_on_random_histories() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let (mut yes, mut no) = (0, 0);
        for case in 0..20_000 {
            let n = rng.random_range(1..=8);
            let mut ops = Vec::new();
            let mut written = vec![String::new()];
            for id in 0..n {
                let call = rng.random_range(0..20) as f64;
                let ret = call + rng.random_range(0..6) as f64 + 0.5;
                let status = match rng.random_range(0..10) {
                    0 => Status::Fail,
                    1 => Status::Info,
                    _ => Status::Ok,
                };
                let ret = (status != Status::Info).then_some(ret);
                if rng.random_bool(0.5) {
                    let v = format!("v{id}");
                    written.push(v.clone());
                    ops.push(op(id, Kind::Write, &v, call, ret, status));
                } else {
                    let v = written[rng.random_range(0..written.len())].clone();
                    ops.push(op(id, Kind::Read, &v, call, ret, status));
                }
            }
            let refs: Vec<&HistoryOp> = ops.iter().collect();
            let Ok(list) = super::prepare("k", &refs, "") else {
                continue;
            };
            let fast = super::stale_read(&list).is_none() && super::zones(&list).is_ok();
            let slow = matches!(
                super::oracle::search(&list, 0),
                Ok(super::oracle::Found::Yes)
            );
            assert_eq!(
                fast, slow,
                "case {case}: zones say {fast}, the search {slow}: {ops:#?}"
            );
            if slow {
                yes += 1
            } else {
                no += 1
            }
        }
        assert!(
            yes > 1000 && no > 1000,
            "{yes} linearizable, {no} not: the cases say too little"
        );
    }

    #[test]
    fn values_that_are_not_unique_leave_the_key_undecided() {
        let v = verdict(vec![w(1, "a", 0.0, 1.0), w(2, "a", 2.0, 3.0)]);
        assert_eq!(v.linearizable, None);
        assert!(v.reason.unwrap().contains("unique"));
    }
}
