//! Who a fault event acts on: a selector, parsed once (from a fault file or the debug shell)
//! and resolved against the cluster just before the event (the leader at T/3 is whoever leads
//! then). Written back, a selector is the text it was read from.

use serde::Serialize;

/// How many followers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    N(usize),
    /// `--kill-n`.
    KillN,
}

/// A selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The node the members agree leads.
    Leader,
    /// The I-th running node that does not lead (1-based, in node order): `follower` is the
    /// first.
    Follower(usize),
    /// That many running followers.
    Followers(Count),
    /// The I-th node (1-based, in node order).
    Node(usize),
    /// Every node killed and not restarted.
    Killed,
    /// Every paused node.
    Paused,
    /// The I-th client host (1-based).
    Client(usize),
    /// Every host of data centre I.
    Dc(u32),
    /// Every host not on the other side of a partition.
    Others,
    /// A host by name (the debug shell).
    Host(String),
    /// What another selector picks, remembered under a name for later events (`X as NAME`).
    Bind(Box<Selector>, String),
    /// The hosts an earlier event remembered under this name (`@NAME`).
    Bound(String),
    /// Every host any of these picks (`node:1, node:3`).
    Union(Vec<Selector>),
}

/// Where a selector may stand: what a kill, pause… acts on (nodes), or a side of a partition
/// (any hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Nodes,
    Hosts,
}

const NODE_SELECTORS: &str =
    "leader, follower, follower:I, node:I, followers:N, followers:kill-n, killed, paused, @NAME (each optionally followed by 'as NAME')";

impl Selector {
    /// Read a selector written in a fault file.
    pub fn parse(s: &str, scope: Scope) -> Result<Selector, String> {
        let s = s.trim();
        if s.contains(',') {
            let parts = s
                .split(',')
                .map(|p| Selector::parse(p, scope))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Selector::Union(parts));
        }
        if let Some((inner, name)) = s.split_once(" as ") {
            let name = name.trim();
            if !valid_name(name) {
                return Err(format!(
                    "selector '{s}': a name after 'as' is letters, digits, '-' or '_'"
                ));
            }
            return Ok(Selector::Bind(
                Box::new(Selector::parse(inner, scope)?),
                name.to_string(),
            ));
        }
        if let Some(name) = s.strip_prefix('@') {
            if !valid_name(name) {
                return Err(format!(
                    "selector '{s}': '@' is followed by a name given with 'as' earlier"
                ));
            }
            return Ok(Selector::Bound(name.to_string()));
        }
        let num = |p: &str| s.strip_prefix(p).and_then(|i| i.parse::<usize>().ok());
        let sel = match s {
            "leader" => Some(Selector::Leader),
            "follower" => Some(Selector::Follower(1)),
            "killed" => Some(Selector::Killed),
            "paused" => Some(Selector::Paused),
            "followers:kill-n" => Some(Selector::Followers(Count::KillN)),
            "others" if scope == Scope::Hosts => Some(Selector::Others),
            _ => {
                if let Some(i) = num("node:").filter(|i| *i >= 1) {
                    Some(Selector::Node(i))
                } else if let Some(i) = num("follower:").filter(|i| *i >= 1) {
                    Some(Selector::Follower(i))
                } else if let Some(n) = num("followers:") {
                    Some(Selector::Followers(Count::N(n)))
                } else if scope == Scope::Hosts {
                    if let Some(i) = num("client:").filter(|i| *i >= 1) {
                        Some(Selector::Client(i))
                    } else {
                        s.strip_prefix("dc:")
                            .and_then(|i| i.parse::<u32>().ok())
                            .map(Selector::Dc)
                    }
                } else {
                    None
                }
            }
        };
        sel.ok_or_else(|| match scope {
            Scope::Hosts => {
                format!("selector '{s}': use {NODE_SELECTORS}, dc:I, client:I or others")
            }
            Scope::Nodes => format!("selector '{s}': use {NODE_SELECTORS}"),
        })
    }

    /// Read a selector typed in the debug shell: a selector, or else a host of the network.
    pub fn parse_or_host(
        s: &str,
        scope: Scope,
        is_host: impl Fn(&str) -> bool,
    ) -> Result<Selector, String> {
        Selector::parse(s, scope).or_else(|e| {
            if is_host(s) {
                Ok(Selector::Host(s.to_string()))
            } else {
                Err(format!("{e}, or a host's name"))
            }
        })
    }

    /// Whether resolving it needs to know who leads.
    pub fn needs_leader(&self) -> bool {
        match self {
            Selector::Bind(s, _) => s.needs_leader(),
            Selector::Union(v) => v.iter().any(|s| s.needs_leader()),
            s => matches!(
                s,
                Selector::Leader | Selector::Follower(_) | Selector::Followers(_)
            ),
        }
    }

    /// How many nodes a kill of it kills at most (for the quorum check).
    pub fn kills(&self, kill_n: usize) -> usize {
        match self {
            Selector::Followers(Count::KillN) => kill_n,
            Selector::Followers(Count::N(n)) => *n,
            Selector::Bind(s, _) => s.kills(kill_n),
            Selector::Union(v) => v.iter().map(|s| s.kills(kill_n)).sum(),
            _ => 1,
        }
    }

    /// The names it remembers hosts under (`X as NAME`).
    pub fn binds(&self) -> Vec<&str> {
        match self {
            Selector::Bind(_, n) => vec![n],
            Selector::Union(v) => v.iter().flat_map(|s| s.binds()).collect(),
            _ => Vec::new(),
        }
    }

    /// The names of earlier selections it refers to (`@NAME`).
    pub fn refers(&self) -> Vec<&str> {
        match self {
            Selector::Bound(n) => vec![n],
            Selector::Bind(s, _) => s.refers(),
            Selector::Union(v) => v.iter().flat_map(|s| s.refers()).collect(),
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Leader => write!(f, "leader"),
            Selector::Follower(1) => write!(f, "follower"),
            Selector::Follower(i) => write!(f, "follower:{i}"),
            Selector::Followers(Count::KillN) => write!(f, "followers:kill-n"),
            Selector::Followers(Count::N(n)) => write!(f, "followers:{n}"),
            Selector::Node(i) => write!(f, "node:{i}"),
            Selector::Killed => write!(f, "killed"),
            Selector::Paused => write!(f, "paused"),
            Selector::Client(i) => write!(f, "client:{i}"),
            Selector::Dc(i) => write!(f, "dc:{i}"),
            Selector::Others => write!(f, "others"),
            Selector::Host(h) => write!(f, "{h}"),
            Selector::Bind(s, n) => write!(f, "{s} as {n}"),
            Selector::Bound(n) => write!(f, "@{n}"),
            Selector::Union(v) => {
                let parts: Vec<String> = v.iter().map(|s| s.to_string()).collect();
                write!(f, "{}", parts.join(", "))
            }
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_once_and_write_back_as_read() {
        for s in [
            "leader",
            "follower",
            "follower:3",
            "followers:2",
            "leader as A",
            "follower:2 as hub",
            "@hub",
            "node:1, node:3",
            "node:1, @hub as pair",
            "follower:2 as C, follower:3 as D",
            "followers:kill-n",
            "node:3",
            "killed",
            "paused",
            "client:1",
            "dc:2",
            "others",
        ] {
            assert_eq!(Selector::parse(s, Scope::Hosts).unwrap().to_string(), s);
        }
        assert!(Selector::parse("node:0", Scope::Nodes).is_err());
        let e = Selector::parse("others", Scope::Nodes).unwrap_err();
        assert!(e.contains("use leader, follower"), "{e}");
        assert_eq!(
            Selector::parse_or_host("mc1", Scope::Hosts, |h| h == "mc1"),
            Ok(Selector::Host("mc1".into()))
        );
        assert!(Selector::parse_or_host("mc9", Scope::Hosts, |h| h == "mc1")
            .unwrap_err()
            .contains("or a host's name"));
        assert_eq!(Selector::Followers(Count::KillN).kills(2), 2);
        assert!(Selector::Follower(1).needs_leader() && !Selector::Node(1).needs_leader());
        assert_eq!(
            Selector::parse("follower:1", Scope::Nodes),
            Ok(Selector::Follower(1))
        );
        assert!(Selector::parse("leader as A", Scope::Nodes)
            .unwrap()
            .needs_leader());
        for bad in [
            "leader as",
            "leader as a b",
            "@",
            "@x y",
            "leader as A as B",
            "node:1,",
        ] {
            assert!(Selector::parse(bad, Scope::Hosts).is_err(), "{bad}");
        }
    }
}
