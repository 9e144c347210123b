//! Seeded random fault plans (`reckon run … random --seed N`): faults one after another, each
//! healed before the next starts and the last healed before the end, of the kinds Jepsen's
//! nemeses and Raft Monkey inject — partitions of their shapes (random halves, one node
//! isolated, a bridge, a majorities ring, a one-way cut), kills and restarts, pauses, and a
//! degraded path (loss between one node and the others). The plan is an ordinary fault (node
//! selectors by number, times in seconds), so written out as a fault file it replays exactly;
//! the same seed, knobs, node count and duration give the same plan.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Action, Event, Fault, Selector};
use crate::topology::Impairment;

/// One kind of fault a plan draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The nodes shuffled and cut into two halves (Jepsen's random halves).
    Halves,
    /// One node cut off from every other node.
    Isolate,
    /// Two halves that reach each other only through one node in the middle (Jepsen's bridge).
    Bridge,
    /// Each node sees a majority, no two the same one (Jepsen's majorities ring); with fewer
    /// than 5 nodes there is no such ring and a bridge is cut instead.
    Ring,
    /// One node's packets to every other node dropped, theirs to it delivered.
    Oneway,
    /// One node killed, then restarted with its data.
    Kill,
    /// One node frozen (SIGSTOP), then let go on.
    Pause,
    /// The packets between one node and every other node lost at 20-60 %, then restored.
    Degrade,
}

pub const KINDS: &[(&str, Kind)] = &[
    ("halves", Kind::Halves),
    ("isolate", Kind::Isolate),
    ("bridge", Kind::Bridge),
    ("ring", Kind::Ring),
    ("oneway", Kind::Oneway),
    ("kill", Kind::Kill),
    ("pause", Kind::Pause),
    ("degrade", Kind::Degrade),
];

/// The default mix: every kind, equally likely.
pub const DEFAULT_MIX: &str = "halves,isolate,bridge,ring,oneway,kill,pause,degrade";

/// What a plan is drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub seed: u64,
    /// Mean length of a fault and mean gap between faults, seconds.
    pub interval: f64,
    /// Kinds with their weights.
    pub mix: Vec<(Kind, u32)>,
    pub nodes: usize,
    pub duration: f64,
}

/// Read a mix: kinds separated by commas, each with an optional weight (`kill:2`).
pub fn parse_mix(s: &str) -> Result<Vec<(Kind, u32)>, String> {
    let names = || KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let mut mix = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = match part.split_once(':') {
            Some((n, w)) => (
                n.trim(),
                w.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (1..=1000).contains(w))
                    .ok_or_else(|| {
                        format!("--random-mix '{part}': a weight is a whole number from 1 to 1000")
                    })?,
            ),
            None => (part, 1),
        };
        let kind = KINDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("--random-mix: no fault kind '{name}'; kinds: {}", names()))?;
        mix.push((kind, w));
    }
    if mix.is_empty() {
        return Err(format!("--random-mix is empty; give some of: {}", names()));
    }
    Ok(mix)
}

/// Faults start after this share of the run (the system settles) and are all healed by 1 minus
/// it (the recovery is seen).
const MARGIN: f64 = 0.1;
/// No fault or gap is shorter than this, seconds: a cut or a kill takes milliseconds to apply,
/// and a system needs a few heartbeats to notice it.
pub const MIN_INTERVAL: f64 = 0.5;

/// Draw the plan.
pub fn plan(o: &Options) -> Result<Fault, String> {
    if !(o.interval.is_finite() && o.interval >= MIN_INTERVAL) {
        return Err(format!(
            "--random-interval {}: give at least {MIN_INTERVAL} s (the mean length of a fault and of the gap after it)",
            o.interval
        ));
    }
    if o.nodes < 2 {
        return Err(format!(
            "the random fault needs at least 2 nodes; the topology has {}",
            o.nodes
        ));
    }
    let (start, end) = (MARGIN * o.duration, (1.0 - MARGIN) * o.duration);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(o.seed ^ 0x72616e646f6d);
    let total: u32 = o.mix.iter().map(|(_, w)| w).sum();
    // Exponential lengths, clamped so one draw cannot swallow the run or vanish.
    let draw = |rng: &mut Xoshiro256PlusPlus| {
        let u: f64 = rng.random::<f64>().max(1e-12);
        (-u.ln() * o.interval).clamp(MIN_INTERVAL.max(0.2 * o.interval), 3.0 * o.interval)
    };
    let mut events = Vec::new();
    let mut t = start + draw(&mut rng) * 0.5;
    loop {
        let len = draw(&mut rng);
        if t + len > end {
            break;
        }
        let mut pick = rng.random_range(0..total);
        let kind = o
            .mix
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map(|(k, _)| *k)
            .expect("weights add up to the total");
        // Milliseconds are fine enough, and the written plan reads plainly.
        let ms = |x: f64| (x * 1000.0).round() / 1000.0;
        shape(kind, o.nodes, ms(t), ms(t + len), &mut rng, &mut events);
        t += len + draw(&mut rng);
    }
    let mix: Vec<String> = o
        .mix
        .iter()
        .map(|(k, w)| {
            let n = KINDS
                .iter()
                .find(|(_, x)| x == k)
                .map(|(n, _)| *n)
                .unwrap_or("?");
            if *w == 1 {
                n.to_string()
            } else {
                format!("{n}:{w}")
            }
        })
        .collect();
    Ok(Fault {
        name: "random".into(),
        description: format!(
            "random plan: seed {}, mean interval {} s, mix {}, {} nodes, {} s",
            o.seed,
            o.interval,
            mix.join(","),
            o.nodes,
            o.duration
        ),
        nodes: Some(o.nodes),
        events,
    })
}

fn node(i: usize) -> Selector {
    Selector::Node(i + 1)
}

fn nodes(v: &[usize]) -> Selector {
    match v {
        [i] => node(*i),
        _ => Selector::Union(v.iter().map(|i| node(*i)).collect()),
    }
}

fn cut(at: f64, a: &[usize], b: &[usize], oneway: bool) -> Event {
    Event {
        at,
        action: Action::Partition {
            a: nodes(a),
            b: nodes(b),
            oneway,
        },
    }
}

/// The events of one fault from `from` to `to` (its undoing at `to`).
fn shape(
    kind: Kind,
    n: usize,
    from: f64,
    to: f64,
    rng: &mut Xoshiro256PlusPlus,
    events: &mut Vec<Event>,
) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let one = order[0];
    let rest: Vec<usize> = order[1..].to_vec();
    let heal = Event {
        at: to,
        action: Action::Heal,
    };
    match kind {
        Kind::Halves => {
            let (a, b) = order.split_at(n / 2);
            events.extend([cut(from, a, b, false), heal]);
        }
        Kind::Isolate => events.extend([cut(from, &[one], &rest, false), heal]),
        Kind::Oneway => events.extend([cut(from, &[one], &rest, true), heal]),
        Kind::Bridge => bridge(&order, from, to, events),
        Kind::Ring if n < 5 => bridge(&order, from, to, events),
        Kind::Ring => {
            // Around the ring (in shuffled order) each node keeps the nodes within `d` of it:
            // itself and 2d others, at least a majority, and no two nodes keep the same set.
            let d = (n / 2).div_ceil(2);
            for i in 0..n {
                let far: Vec<usize> = (i + 1..n)
                    .filter(|j| {
                        let k = j - i;
                        k.min(n - k) > d
                    })
                    .map(|j| order[j])
                    .collect();
                if !far.is_empty() {
                    events.push(cut(from, &[order[i]], &far, false));
                }
            }
            events.push(heal);
        }
        Kind::Kill | Kind::Pause => {
            let (down, up) = if kind == Kind::Kill {
                (
                    Action::Kill { node: node(one) },
                    Action::Restart { node: node(one) },
                )
            } else {
                (
                    Action::Pause { node: node(one) },
                    Action::Resume { node: node(one) },
                )
            };
            events.extend([
                Event {
                    at: from,
                    action: down,
                },
                Event { at: to, action: up },
            ]);
        }
        Kind::Degrade => {
            let loss = 20.0 + (rng.random_range(0..=40) as f64);
            let between = |impairment| Event {
                at: from,
                action: Action::ImpairBetween {
                    a: node(one),
                    b: nodes(&rest),
                    impairment,
                },
            };
            events.push(between(Impairment {
                loss_pct: loss,
                ..Impairment::default()
            }));
            events.push(Event {
                at: to,
                ..between(Impairment::default())
            });
        }
    }
}

/// Two halves joined only through the first node of `order`.
fn bridge(order: &[usize], from: f64, to: f64, events: &mut Vec<Event>) {
    let rest = &order[1..];
    let (a, b) = rest.split_at(rest.len() / 2);
    if !a.is_empty() && !b.is_empty() {
        events.push(cut(from, a, b, false));
    }
    events.push(Event {
        at: to,
        action: Action::Heal,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{parse, Params};

    fn opts(seed: u64) -> Options {
        Options {
            seed,
            interval: 3.0,
            mix: parse_mix(DEFAULT_MIX).unwrap(),
            nodes: 5,
            duration: 120.0,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let a = plan(&opts(7)).unwrap();
        assert_eq!(a, plan(&opts(7)).unwrap());
        assert_ne!(a.events, plan(&opts(8)).unwrap().events);
        assert!(a.events.len() >= 10, "{}", a.events.len());
    }

    #[test]
    fn every_fault_is_undone_before_the_end_and_none_overlap() {
        for seed in 0..50 {
            let f = plan(&opts(seed)).unwrap();
            let (mut cut, mut down, mut degraded) = (false, 0usize, false);
            let mut last = 0.0;
            for e in &f.events {
                assert!(
                    e.at >= last && e.at >= 12.0 && e.at <= 108.0,
                    "seed {seed}: {e:?}"
                );
                last = e.at;
                match &e.action {
                    Action::Partition { .. } => cut = true,
                    Action::Heal => cut = false,
                    Action::Kill { .. } | Action::Pause { .. } => {
                        assert!(
                            !cut && down == 0 && !degraded,
                            "seed {seed}: overlap at {}",
                            e.at
                        );
                        down += 1
                    }
                    Action::Restart { .. } | Action::Resume { .. } => down -= 1,
                    Action::ImpairBetween { impairment, .. } => degraded = !impairment.is_none(),
                    a => panic!("unexpected {a:?}"),
                }
            }
            assert!(
                !cut && down == 0 && !degraded,
                "seed {seed}: not undone by the end"
            );
        }
    }

    #[test]
    fn the_plan_written_as_a_fault_file_reads_back_the_same() {
        let p = Params {
            duration: 120.0,
            mtbf: 1.0,
        };
        for seed in 0..20 {
            let f = plan(&opts(seed)).unwrap();
            let text = f.to_toml();
            let back =
                parse("random", "fault.toml", &text, p).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, f, "{text}");
        }
    }

    #[test]
    fn a_majorities_ring_leaves_each_node_a_different_majority() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for n in [5usize, 7, 9] {
            let mut ev = Vec::new();
            shape(Kind::Ring, n, 1.0, 2.0, &mut rng, &mut ev);
            let mut sees = vec![vec![true; n]; n];
            for e in &ev {
                if let Action::Partition { a, b, .. } = &e.action {
                    let ids = |s: &Selector| -> Vec<usize> {
                        match s {
                            Selector::Node(i) => vec![i - 1],
                            Selector::Union(v) => v
                                .iter()
                                .map(|s| match s {
                                    Selector::Node(i) => i - 1,
                                    _ => unreachable!(),
                                })
                                .collect(),
                            _ => unreachable!(),
                        }
                    };
                    for x in ids(a) {
                        for y in ids(b) {
                            sees[x][y] = false;
                            sees[y][x] = false;
                        }
                    }
                }
            }
            for (i, row) in sees.iter().enumerate() {
                assert!(
                    row.iter().filter(|s| **s).count() > n / 2,
                    "n {n}: node {i} sees {row:?}"
                );
            }
            for i in 0..n {
                for j in i + 1..n {
                    assert_ne!(
                        sees[i], sees[j],
                        "n {n}: nodes {i} and {j} see the same set"
                    );
                }
            }
        }
    }

    #[test]
    fn mixes_and_knobs_are_checked() {
        assert_eq!(
            parse_mix("kill:3, pause").unwrap(),
            vec![(Kind::Kill, 3), (Kind::Pause, 1)]
        );
        assert!(parse_mix("kill,earthquake")
            .unwrap_err()
            .contains("kinds: halves"));
        assert!(parse_mix("kill:0").is_err());
        assert!(parse_mix("").is_err());
        let o = Options {
            interval: 0.01,
            ..opts(1)
        };
        assert!(plan(&o).unwrap_err().contains("--random-interval"));
        let only_kills = Options {
            mix: vec![(Kind::Kill, 1)],
            ..opts(3)
        };
        let f = plan(&only_kills).unwrap();
        assert!(f
            .events
            .iter()
            .all(|e| matches!(e.action, Action::Kill { .. } | Action::Restart { .. })));
        // A run too short for any fault gets none (and says nothing is wrong).
        let short = Options {
            duration: 2.0,
            ..opts(1)
        };
        assert!(plan(&short).unwrap().events.is_empty());
    }
}
