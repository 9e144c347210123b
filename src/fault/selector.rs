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
    /// The first running node that does not lead.
    Follower,
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
}

/// Where a selector may stand: what a kill, pause… acts on (nodes), or a side of a partition
/// (any hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Nodes,
    Hosts,
}

const NODE_SELECTORS: &str =
    "leader, follower, node:I, followers:N, followers:kill-n, killed, paused";

impl Selector {
    /// Read a selector written in a fault file.
    pub fn parse(s: &str, scope: Scope) -> Result<Selector, String> {
        let num = |p: &str| s.strip_prefix(p).and_then(|i| i.parse::<usize>().ok());
        let sel = match s {
            "leader" => Some(Selector::Leader),
            "follower" => Some(Selector::Follower),
            "killed" => Some(Selector::Killed),
            "paused" => Some(Selector::Paused),
            "followers:kill-n" => Some(Selector::Followers(Count::KillN)),
            "others" if scope == Scope::Hosts => Some(Selector::Others),
            _ => {
                if let Some(i) = num("node:").filter(|i| *i >= 1) {
                    Some(Selector::Node(i))
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
        matches!(
            self,
            Selector::Leader | Selector::Follower | Selector::Followers(_)
        )
    }

    /// How many nodes a kill of it kills at most (for the quorum check).
    pub fn kills(&self, kill_n: usize) -> usize {
        match self {
            Selector::Followers(Count::KillN) => kill_n,
            Selector::Followers(Count::N(n)) => *n,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Leader => write!(f, "leader"),
            Selector::Follower => write!(f, "follower"),
            Selector::Followers(Count::KillN) => write!(f, "followers:kill-n"),
            Selector::Followers(Count::N(n)) => write!(f, "followers:{n}"),
            Selector::Node(i) => write!(f, "node:{i}"),
            Selector::Killed => write!(f, "killed"),
            Selector::Paused => write!(f, "paused"),
            Selector::Client(i) => write!(f, "client:{i}"),
            Selector::Dc(i) => write!(f, "dc:{i}"),
            Selector::Others => write!(f, "others"),
            Selector::Host(h) => write!(f, "{h}"),
        }
    }
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
            "followers:2",
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
        assert!(Selector::Follower.needs_leader() && !Selector::Node(1).needs_leader());
    }
}
