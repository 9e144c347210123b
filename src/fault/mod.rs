//! Faults: a timeline of events, as data (`faults/*.toml`, reckon's names and meanings), each
//! an action on hosts picked by selectors that are resolved when the event happens (the leader
//! at T/3 is whoever leads then). `flap` events expand into cut/heal pairs that stop at `until`.

pub mod random;
pub mod selector;

use std::path::Path;

pub use selector::{Count, Scope, Selector};

use crate::catalog::{Catalog, CatalogError};
use crate::topology::Impairment;
use serde::{Deserialize, Serialize};

pub static CATALOG: Catalog = Catalog {
    kind: "fault",
    plural: "faults",
    dir: "faults",
    flag: "--fault-file",
    builtin: BUILTIN,
};

const BUILTIN: &[(&str, &str)] = &[
    ("none", include_str!("../../faults/none.toml")),
    ("leader", include_str!("../../faults/leader.toml")),
    ("leader-only", include_str!("../../faults/leader-only.toml")),
    (
        "partial-partition",
        include_str!("../../faults/partial-partition.toml"),
    ),
    (
        "intermittent-partial",
        include_str!("../../faults/intermittent-partial.toml"),
    ),
    (
        "intermittent-full",
        include_str!("../../faults/intermittent-full.toml"),
    ),
    ("kill-n", include_str!("../../faults/kill-n.toml")),
    ("quorum-loss", include_str!("../../faults/quorum-loss.toml")),
    (
        "constrained-election",
        include_str!("../../faults/constrained-election.toml"),
    ),
    ("chained", include_str!("../../faults/chained.toml")),
    ("lossy-link", include_str!("../../faults/lossy-link.toml")),
];

/// The name of the seeded random plan (`reckon run … random --seed N`), drawn by
/// [`random::plan`] rather than read from a file.
pub const RANDOM: &str = "random";

/// What an event does. Selectors are parsed when the fault is read and resolved when the event
/// happens (see `run::faults`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Cut hosts `a` off from hosts `b`: both ways, or only packets from `a` to `b` when
    /// `oneway`. Every other path stays up.
    Partition {
        a: Selector,
        b: Selector,
        oneway: bool,
    },
    /// Remove every cut in place.
    Heal,
    /// Remove the cuts between hosts `a` and `b` (both ways), leaving every other cut.
    #[serde(rename = "heal")]
    HealBetween { a: Selector, b: Selector },
    /// Kill the node(s) (SIGKILL; the data stays).
    Kill { node: Selector },
    /// Start killed node(s) again with their data.
    Restart { node: Selector },
    /// Freeze the node(s) (SIGSTOP).
    Pause { node: Selector },
    /// Let paused node(s) go on (SIGCONT).
    Resume { node: Selector },
    /// Set a link's impairment, both directions (`reckon topo links` names the links).
    Impair {
        link: String,
        impairment: Impairment,
    },
    /// Impair only the packets between each host of `a` and each of `b`, both ways, on top of
    /// the links' own impairment (a lossy path, not a lossy link: every other pair stays as it
    /// was); a zero impairment clears it.
    #[serde(rename = "impair")]
    ImpairBetween {
        a: Selector,
        b: Selector,
        impairment: Impairment,
    },
}

impl Action {
    /// Its name in fault files and faults.csv.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Partition { .. } => "partition",
            Action::Heal | Action::HealBetween { .. } => "heal",
            Action::Kill { .. } => "kill",
            Action::Restart { .. } => "restart",
            Action::Pause { .. } => "pause",
            Action::Resume { .. } => "resume",
            Action::Impair { .. } | Action::ImpairBetween { .. } => "impair",
        }
    }

    /// The selectors it resolves when it happens.
    pub fn selectors(&self) -> Vec<&Selector> {
        match self {
            Action::Partition { a, b, .. }
            | Action::HealBetween { a, b }
            | Action::ImpairBetween { a, b, .. } => vec![a, b],
            Action::Kill { node }
            | Action::Restart { node }
            | Action::Pause { node }
            | Action::Resume { node } => vec![node],
            Action::Heal | Action::Impair { .. } => Vec::new(),
        }
    }
}

/// An action's name as a fault file gives it.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ActionT {
    Partition,
    Heal,
    Kill,
    Restart,
    Pause,
    Resume,
    Impair,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventT {
    at: String,
    action: ActionT,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    flap: Option<String>,
    #[serde(default)]
    a: Option<String>,
    #[serde(default)]
    b: Option<String>,
    #[serde(default)]
    oneway: bool,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    latency: Option<f64>,
    #[serde(default)]
    jitter: Option<f64>,
    #[serde(default)]
    loss: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    nodes: Option<usize>,
    #[serde(default)]
    events: Vec<toml::Spanned<EventT>>,
}

/// One event of a timeline, its selectors parsed and not yet resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Seconds from the start of the run.
    pub at: f64,
    #[serde(flatten)]
    pub action: Action,
}

/// A resolved fault: events in time order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fault {
    pub name: String,
    pub description: String,
    /// The number of nodes the fault is written for (`nodes = 5`): the run's default, and any
    /// other number is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    pub events: Vec<Event>,
}

/// The shortest period a flapping partition may have, seconds: every cut and heal is applied
/// over OpenFlow and followed by a purge of the switches' flow caches, a few milliseconds each.
pub const MIN_FLAP_S: f64 = 0.01;

/// What the timeline depends on from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub duration: f64,
    pub mtbf: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Bad(String),
}

/// Resolve a built-in fault by name.
pub fn builtin(name: &str, p: Params) -> Result<Fault, FaultError> {
    let src = CATALOG.builtin(name)?;
    parse(&src.name, &src.file, &src.text, p)
}

/// Read a user's fault file; its name is the file's stem.
pub fn from_file(path: &Path, p: Params) -> Result<Fault, FaultError> {
    let src = CATALOG.file(path)?;
    parse(&src.name, &src.file, &src.text, p)
}

/// "1/3" of the duration, "5s", "mtbf", "0", or a sum of those ("1/3 + 2s").
fn time_of(s: &str, p: Params, what: &str) -> Result<f64, String> {
    if s.contains('+') {
        let mut t = 0.0;
        for term in s.split('+') {
            t += time_of(term, p, what).map_err(|e| format!("{e} (in \"{}\")", s.trim()))?;
        }
        return Ok(t);
    }
    let s = s.trim();
    let t = if let Some(secs) = s.strip_suffix('s') {
        secs.trim()
            .parse::<f64>()
            .map_err(|_| format!("{what} = \"{s}\": write seconds as \"5s\""))?
    } else if let Some((n, d)) = s.split_once('/') {
        let (n, d): (f64, f64) = (
            n.trim().parse().map_err(|_| format!("{what} = \"{s}\""))?,
            d.trim().parse().map_err(|_| format!("{what} = \"{s}\""))?,
        );
        if d == 0.0 {
            return Err(format!("{what} = \"{s}\": division by zero"));
        }
        p.duration * n / d
    } else if s == "mtbf" {
        p.mtbf
    } else {
        s.parse::<f64>().map(|f| f * p.duration).map_err(|_| format!("{what} = \"{s}\": a fraction of the duration (\"1/3\"), seconds (\"5s\") or \"mtbf\""))?
    };
    if !(t.is_finite() && t >= 0.0) {
        return Err(format!("{what} = \"{s}\" is negative"));
    }
    Ok(t)
}

fn parse(name: &str, file: &str, src: &str, p: Params) -> Result<Fault, FaultError> {
    let line_of = |off: usize| crate::line_at(src, off);
    let f: FaultFile = toml::from_str(src).map_err(|e| {
        let (line, message) = crate::toml_error(src, &e);
        FaultError::Invalid {
            file: file.into(),
            line,
            message,
        }
    })?;
    let mut events = Vec::new();
    for e in &f.events {
        let line = line_of(e.span().start);
        let bad = |m: String| FaultError::Invalid {
            file: file.into(),
            line,
            message: m,
        };
        let e = e.get_ref();
        let at = time_of(&e.at, p, "at").map_err(bad)?;
        let need = |v: &Option<String>, what: &str, scope: Scope| -> Result<Selector, FaultError> {
            let s = v
                .as_deref()
                .ok_or_else(|| bad(format!("{:?} needs `{what}`", e.action).to_lowercase()))?;
            Selector::parse(s, scope).map_err(bad)
        };
        let action = match e.action {
            ActionT::Partition => Action::Partition {
                a: need(&e.a, "a", Scope::Hosts)?,
                b: need(&e.b, "b", Scope::Hosts)?,
                oneway: e.oneway,
            },
            ActionT::Heal => match (&e.a, &e.b) {
                (None, None) => Action::Heal,
                _ => Action::HealBetween {
                    a: need(&e.a, "a", Scope::Hosts)?,
                    b: need(&e.b, "b", Scope::Hosts)?,
                },
            },
            ActionT::Kill => Action::Kill {
                node: need(&e.node, "node", Scope::Nodes)?,
            },
            ActionT::Restart => Action::Restart {
                node: need(&e.node, "node", Scope::Nodes)?,
            },
            ActionT::Pause => Action::Pause {
                node: need(&e.node, "node", Scope::Nodes)?,
            },
            ActionT::Resume => Action::Resume {
                node: need(&e.node, "node", Scope::Nodes)?,
            },
            ActionT::Impair => {
                let impairment = Impairment {
                    latency_ms: e.latency.unwrap_or(0.0),
                    jitter_ms: e.jitter.unwrap_or(0.0),
                    loss_pct: e.loss.unwrap_or(0.0),
                    reorder: false,
                };
                impairment
                    .validate()
                    .map_err(|m| bad(m.replace("_ms", "").replace("_pct", "")))?;
                match (&e.link, &e.a, &e.b) {
                    (Some(link), None, None) => Action::Impair {
                        link: link.clone(),
                        impairment,
                    },
                    (None, Some(_), Some(_)) => Action::ImpairBetween {
                        a: need(&e.a, "a", Scope::Hosts)?,
                        b: need(&e.b, "b", Scope::Hosts)?,
                        impairment,
                    },
                    _ => {
                        return Err(bad(
                            "impair needs either `link` (a link's name, `reckon topo links`) or `a` and `b` (the packets between two sets of hosts)".into(),
                        ))
                    }
                }
            }
        };
        let ev = Event { at, action };
        match (&e.flap, &e.until) {
            (None, None) => events.push(ev),
            (Some(flap), Some(until)) => {
                if e.action != ActionT::Partition {
                    return Err(bad("only a partition can flap".into()));
                }
                let period = time_of(flap, p, "flap").map_err(bad)?;
                let until = time_of(until, p, "until").map_err(bad)?;
                if until > p.duration + 1e-9 {
                    return Err(bad(format!(
                        "until = {until:.3} s is after the end of the run (--duration {})",
                        p.duration
                    )));
                }
                if !(period >= MIN_FLAP_S) {
                    return Err(bad(format!(
                        "flap period {period} s (--mtbf when flap = \"mtbf\"): give at least {MIN_FLAP_S} s; a cut or a heal takes milliseconds to apply (OpenFlow rules, then the switches' flow caches), so a shorter period is not a fault reckon can play"
                    )));
                }
                let mut t = at;
                let mut cut = true;
                while t < until - 1e-9 {
                    events.push(if cut {
                        Event {
                            at: t,
                            ..ev.clone()
                        }
                    } else {
                        heal(t)
                    });
                    cut = !cut;
                    t += period;
                }
                if !cut {
                    events.push(heal(until));
                }
            }
            _ => return Err(bad("`flap` and `until` go together".into())),
        }
    }
    events.sort_by(|x, y| x.at.partial_cmp(&y.at).unwrap_or(std::cmp::Ordering::Equal));
    if let Some(e) = events.iter().find(|e| e.at > p.duration) {
        return Err(FaultError::Bad(format!(
            "fault {name}: an event at {:.3} s is after the end of the run (--duration {})",
            e.at, p.duration
        )));
    }
    // A name used with '@' must have been given with 'as' by an earlier event (or by side a
    // of the same one).
    let mut bound: Vec<&str> = Vec::new();
    for e in &events {
        for sel in e.action.selectors() {
            for n in sel.refers() {
                if !bound.contains(&n) {
                    return Err(FaultError::Bad(format!(
                        "fault {name}: @{n} at {:.3} s is used before any earlier event names it ('<selector> as {n}')",
                        e.at
                    )));
                }
            }
            bound.extend(sel.binds());
        }
    }
    if f.nodes == Some(0) {
        return Err(FaultError::Bad(format!("fault {name}: nodes = 0")));
    }
    Ok(Fault {
        name: name.into(),
        description: f.description,
        nodes: f.nodes,
        events,
    })
}

fn heal(at: f64) -> Event {
    Event {
        at,
        action: Action::Heal,
    }
}

impl Fault {
    /// The fault as a fault file: read back with the same duration, it is this fault, event
    /// for event (times in seconds, selectors as written).
    pub fn to_toml(&self) -> String {
        // A JSON string is a TOML basic string.
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = String::new();
        out.push_str(&format!("description = {}\n", q(&self.description)));
        if let Some(n) = self.nodes {
            out.push_str(&format!("nodes = {n}\n"));
        }
        for e in &self.events {
            out.push_str(&format!(
                "\n[[events]]\nat = \"{}s\"\naction = \"{}\"\n",
                e.at,
                e.action.name()
            ));
            let sel = |k: &str, s: &Selector| format!("{k} = {}\n", q(&s.to_string()));
            let imp = |i: &Impairment| {
                format!(
                    "latency = {}\njitter = {}\nloss = {}\n",
                    i.latency_ms, i.jitter_ms, i.loss_pct
                )
            };
            out.push_str(&match &e.action {
                Action::Partition { a, b, oneway } => {
                    let mut t = sel("a", a) + &sel("b", b);
                    if *oneway {
                        t.push_str("oneway = true\n");
                    }
                    t
                }
                Action::Heal => String::new(),
                Action::HealBetween { a, b } => sel("a", a) + &sel("b", b),
                Action::Kill { node }
                | Action::Restart { node }
                | Action::Pause { node }
                | Action::Resume { node } => sel("node", node),
                Action::Impair { link, impairment } => {
                    format!("link = {}\n", q(link)) + &imp(impairment)
                }
                Action::ImpairBetween { a, b, impairment } => {
                    sel("a", a) + &sel("b", b) + &imp(impairment)
                }
            });
        }
        out
    }

    /// The most nodes down at once, counting kills until their restart (for the quorum check
    /// of --kill-n).
    pub fn kills(&self, kill_n: usize) -> usize {
        let (mut down, mut most) = (0usize, 0usize);
        for e in &self.events {
            match &e.action {
                Action::Kill { node } => down += node.kills(kill_n),
                Action::Restart {
                    node: Selector::Killed,
                } => down = 0,
                Action::Restart { node } => down = down.saturating_sub(node.kills(kill_n)),
                _ => {}
            }
            most = most.max(down);
        }
        most
    }

    /// Whether an event impairs the packets between hosts (which takes the userspace engine).
    pub fn impairs_between(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.action, Action::ImpairBetween { .. }))
    }

    /// When the fault starts and ends (the first and last events), if it has events.
    pub fn span(&self) -> Option<(f64, f64)> {
        Some((self.events.first()?.at, self.events.last()?.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params {
        duration: 30.0,
        mtbf: 2.0,
    };

    #[test]
    fn every_builtin_parses() {
        for (n, _) in BUILTIN {
            builtin(n, P).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn partial_partition_cuts_at_a_third_and_heals_at_two_thirds() {
        let f = builtin("partial-partition", P).unwrap();
        assert_eq!(f.events.len(), 2);
        assert_eq!(f.events[0].at, 10.0);
        assert_eq!(
            f.events[0].action,
            Action::Partition {
                a: Selector::Leader,
                b: Selector::Follower(1),
                oneway: false
            }
        );
        assert_eq!((f.events[1].at, &f.events[1].action), (20.0, &Action::Heal));
    }

    #[test]
    fn intermittent_faults_stop_at_two_thirds() {
        let f = builtin("intermittent-partial", P).unwrap();
        let times: Vec<(f64, &str)> = f.events.iter().map(|e| (e.at, e.action.name())).collect();
        assert_eq!(
            times,
            [
                (10.0, "partition"),
                (12.0, "heal"),
                (14.0, "partition"),
                (16.0, "heal"),
                (18.0, "partition"),
                (20.0, "heal")
            ]
        );
        let f = builtin("intermittent-full", Params { mtbf: 3.0, ..P }).unwrap();
        assert_eq!(f.events.last().unwrap().action, Action::Heal);
        assert!(f.events.last().unwrap().at <= 20.0);
        assert!(
            matches!(
                &f.events[0].action,
                Action::Partition {
                    b: Selector::Others,
                    ..
                }
            ),
            "{:?}",
            f.events[0]
        );
    }

    #[test]
    fn kill_n_counts_for_the_quorum_check() {
        assert_eq!(builtin("kill-n", P).unwrap().kills(2), 2);
        assert_eq!(builtin("leader", P).unwrap().kills(2), 1);
        assert_eq!(builtin("none", P).unwrap().kills(2), 0);
    }

    #[test]
    fn mistakes_name_file_and_line() {
        let e = parse(
            "x",
            "f.toml",
            "[[events]]\nat = \"1/3\"\naction = \"kill\"\nnode = \"the-boss\"\n",
            P,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("f.toml:1:") && e.contains("the-boss"), "{e}");
        let e = parse(
            "x",
            "f.toml",
            "\n[[events]]\nat = \"soon\"\naction = \"heal\"\n",
            P,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("f.toml:2:") && e.contains("soon"), "{e}");
        let e = parse(
            "x",
            "f.toml",
            "[[events]]\nat = \"2\"\naction = \"heal\"\n",
            P,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("after the end"), "{e}");
        assert!(builtin("earthquake", P)
            .unwrap_err()
            .to_string()
            .contains("known faults: none, leader"));
    }
}
