//! `reckon bench check`: the history checker on a synthetic history of a register that is
//! linearizable by construction — clients issuing overlapping operations, each taking effect
//! at a random instant inside its own interval, some writes timing out (taking effect or not) —
//! and on the same history with one read made stale.

use rand::{Rng, SeedableRng};

use crate::check::{self, History, HistoryOp, Status};

pub struct CheckBench {
    pub ops: usize,
    pub keys: usize,
    pub clients: usize,
    /// Seconds to check the linearizable history, and its verdict.
    pub clean: (f64, Option<bool>),
    /// Seconds to find the planted stale read, its verdict and the violation's size.
    pub planted: (f64, Option<bool>, usize),
}

/// A history of `ops` operations on `keys` registers by `clients` clients, 1 % of writes
/// timing out, half the operations writes.
pub fn history(ops: usize, keys: usize, clients: usize, seed: u64) -> History {
    let mut r = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    // Each client issues its next operation when the last returned; an operation lasts 1-20
    // ms and takes effect at a random instant inside it.
    let mut free = vec![0.0f64; clients];
    let mut planned = Vec::with_capacity(ops);
    for id in 0..ops {
        let c = r.random_range(0..clients);
        let call = free[c] + r.random_range(0.0..0.002);
        let ret = call + r.random_range(0.001..0.020);
        let at = r.random_range(call..ret);
        free[c] = ret;
        let key = format!("{:03}", r.random_range(0..keys));
        let write = r.random::<bool>();
        let lost = write && r.random::<f64>() < 0.01;
        let happens = !lost || r.random::<bool>();
        planned.push((at, id as u64, key, write, call, ret, lost, happens));
    }
    // Apply the effects in order to find what each read saw.
    planned.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut value: std::collections::HashMap<String, String> = Default::default();
    let mut out = Vec::with_capacity(ops);
    for (_, id, key, write, call, ret, lost, happens) in planned {
        let v = if write {
            let v = format!("v{id}");
            if happens {
                value.insert(key.clone(), v.clone());
            }
            v
        } else {
            value.get(&key).cloned().unwrap_or_default()
        };
        out.push(HistoryOp {
            id,
            key,
            kind: if write {
                check::history::Kind::Write
            } else {
                check::history::Kind::Read
            },
            value: v,
            call,
            ret: (!lost).then_some(ret),
            status: if lost { Status::Info } else { Status::Ok },
        });
    }
    out.sort_by_key(|o| o.id);
    History {
        initial: String::new(),
        ops: out,
    }
}

pub fn run(ops: usize, keys: usize, clients: usize) -> CheckBench {
    let h = history(ops, keys, clients, 1);
    let v = check::check(&h);
    let clean = (v.seconds, v.linearizable);
    // Plant a stale read: a read late in the history sees a value written long before it and
    // overwritten since.
    let mut bad = h.clone();
    let reads: Vec<usize> = (0..bad.ops.len())
        .filter(|&i| {
            bad.ops[i].kind == check::history::Kind::Read && bad.ops[i].status == Status::Ok
        })
        .collect();
    let victim = reads[reads.len() * 3 / 4];
    let key = bad.ops[victim].key.clone();
    let call = bad.ops[victim].call;
    let old = bad
        .ops
        .iter()
        .filter(|o| {
            o.key == key
                && o.kind == check::history::Kind::Write
                && o.status == Status::Ok
                && o.ret.is_some_and(|r| r < call - 0.5)
        })
        .map(|o| o.value.clone())
        .next();
    if let Some(old) = old {
        bad.ops[victim].value = old;
    }
    let v = check::check(&bad);
    let size = v.violation.as_ref().map_or(0, |x| x.ops.len());
    CheckBench {
        ops,
        keys,
        clients,
        clean,
        planted: (v.seconds, v.linearizable, size),
    }
}
