//! Fault events during a run: who an event concerns (its selectors, resolved against the
//! cluster just before the event) and carrying it out on the network or the cluster.
//!
//! Resolution needs only the nodes' roles and states ([`Roles`]), and carrying out a network
//! event only the network, so a fault's effect on who reaches whom can be checked without a
//! running system (see the scenario tests).

use std::collections::HashMap;

use crate::fault::{Action, Count, Event, Selector};
use crate::net::Network;
use crate::system::{Cluster, SystemError};
use crate::topology::Topology;

#[derive(Clone, Debug)]
pub struct Targets {
    pub a: Vec<String>,
    pub b: Vec<String>,
}

impl Targets {
    pub fn describe(&self) -> String {
        if self.b.is_empty() {
            self.a.join(" ")
        } else {
            format!("{} | {}", self.a.join(" "), self.b.join(" "))
        }
    }
}

/// What selectors are resolved against: who leads, and each node's state.
pub trait Roles {
    /// The node the members agree leads, if any.
    fn leader(&self) -> Option<String>;
    /// Every node in node order: (name, running, paused).
    fn states(&self) -> Vec<(String, bool, bool)>;
}

impl Roles for Cluster {
    fn leader(&self) -> Option<String> {
        Cluster::leader(self)
    }
    fn states(&self) -> Vec<(String, bool, bool)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.is_running(), n.is_paused()))
            .collect()
    }
}

/// What node events act on: kill, restart, pause, resume one node by name.
pub trait Nodes {
    fn stop(&mut self, node: &str) -> Result<(), SystemError>;
    fn restart(&mut self, node: &str) -> Result<(), SystemError>;
    fn pause(&mut self, node: &str) -> Result<(), SystemError>;
    fn resume(&mut self, node: &str) -> Result<(), SystemError>;
}

impl Nodes for Cluster {
    fn stop(&mut self, node: &str) -> Result<(), SystemError> {
        Cluster::stop(self, node)
    }
    fn restart(&mut self, node: &str) -> Result<(), SystemError> {
        Cluster::restart(self, node)
    }
    fn pause(&mut self, node: &str) -> Result<(), SystemError> {
        Cluster::pause(self, node)
    }
    fn resume(&mut self, node: &str) -> Result<(), SystemError> {
        Cluster::resume(self, node)
    }
}

/// The hosts earlier events remembered by name (`X as NAME`, used as `@NAME`).
pub type Bindings = HashMap<String, Vec<String>>;

/// Who the event concerns, now. Names given with `as` are remembered in `bound`.
pub fn resolve(
    ev: &Event,
    roles: &dyn Roles,
    t: &Topology,
    kill_n: usize,
    bound: &mut Bindings,
) -> Result<Targets, String> {
    let needs_leader = ev.action.selectors().iter().any(|s| s.needs_leader());
    let leader = if needs_leader {
        Some(
            roles
                .leader()
                .ok_or("no leader to select (none is agreed on)")?,
        )
    } else {
        None
    };
    let states = roles.states();
    let r = Resolver {
        states: &states,
        followers: states
            .iter()
            .filter(|(n, running, _)| *running && Some(n) != leader.as_ref())
            .map(|(n, ..)| n.clone())
            .collect(),
        leader,
        t,
        kill_n,
    };
    Ok(match &ev.action {
        Action::Partition { a, b, .. }
        | Action::HealBetween { a, b }
        | Action::ImpairBetween { a, b, .. } => {
            let a = r.one(a, &[], bound)?;
            let b = r.one(b, &a, bound)?;
            Targets { a, b }
        }
        Action::Kill { node }
        | Action::Restart { node }
        | Action::Pause { node }
        | Action::Resume { node } => Targets {
            a: r.one(node, &[], bound)?,
            b: Vec::new(),
        },
        Action::Impair { link, .. } => Targets {
            a: vec![link.clone()],
            b: Vec::new(),
        },
        Action::Heal => Targets {
            a: Vec::new(),
            b: Vec::new(),
        },
    })
}

struct Resolver<'a> {
    states: &'a [(String, bool, bool)],
    leader: Option<String>,
    followers: Vec<String>,
    t: &'a Topology,
    kill_n: usize,
}

impl Resolver<'_> {
    /// The hosts `sel` picks; `other` is the other side of a partition (for `others`).
    fn one(
        &self,
        sel: &Selector,
        other: &[String],
        bound: &mut Bindings,
    ) -> Result<Vec<String>, String> {
        let t = self.t;
        Ok(match sel {
            Selector::Leader => vec![self.leader.clone().unwrap_or_default()],
            Selector::Follower(i) => vec![self.followers.get(i - 1).cloned().ok_or(format!(
                "{sel}: only {} followers are running",
                self.followers.len()
            ))?],
            Selector::Followers(n) => {
                let n = match n {
                    Count::KillN => self.kill_n,
                    Count::N(n) => *n,
                };
                self.followers.iter().take(n).cloned().collect()
            }
            Selector::Killed => self
                .states
                .iter()
                .filter(|(_, running, _)| !running)
                .map(|(n, ..)| n.clone())
                .collect(),
            Selector::Paused => self
                .states
                .iter()
                .filter(|(.., paused)| *paused)
                .map(|(n, ..)| n.clone())
                .collect(),
            Selector::Others => t
                .hosts
                .iter()
                .map(|h| h.name.clone())
                .filter(|h| !other.contains(h))
                .collect(),
            Selector::Node(i) => vec![t
                .nodes()
                .nth(i - 1)
                .ok_or(format!("{sel}: no such node"))?
                .name
                .clone()],
            Selector::Client(i) => vec![t
                .clients()
                .nth(i - 1)
                .ok_or(format!("{sel}: no such client"))?
                .name
                .clone()],
            Selector::Dc(dc) => t
                .hosts
                .iter()
                .filter(|h| h.dc == Some(*dc))
                .map(|h| h.name.clone())
                .collect(),
            Selector::Host(h) => vec![h.clone()],
            Selector::Bind(inner, name) => {
                let hosts = self.one(inner, other, bound)?;
                bound.insert(name.clone(), hosts.clone());
                hosts
            }
            Selector::Union(v) => {
                let mut hosts: Vec<String> = Vec::new();
                for s in v {
                    for h in self.one(s, other, bound)? {
                        if !hosts.contains(&h) {
                            hosts.push(h);
                        }
                    }
                }
                hosts
            }
            Selector::Bound(name) => bound
                .get(name)
                .cloned()
                .ok_or(format!("@{name}: no earlier event named it"))?,
        })
    }
}

/// Carry the event out on `t`: network events on the network, node events on `nodes`.
pub fn apply(
    ev: &Event,
    t: &Targets,
    net: &mut Network,
    nodes: &mut dyn Nodes,
) -> Result<(), String> {
    let each = |nodes: &mut dyn Nodes,
                f: fn(&mut dyn Nodes, &str) -> Result<(), SystemError>|
     -> Result<(), String> {
        for n in &t.a {
            f(nodes, n).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let net_err = |e: crate::net::NetError| e.to_string();
    match &ev.action {
        Action::Partition { oneway, .. } => net
            .partition(&t.a, &t.b, *oneway)
            .map(|_| ())
            .map_err(net_err),
        Action::Heal => net.heal().map(|_| ()).map_err(net_err),
        Action::HealBetween { .. } => net.heal_between(&t.a, &t.b).map(|_| ()).map_err(net_err),
        Action::Kill { .. } => each(nodes, |n, x| n.stop(x)),
        Action::Restart { .. } => each(nodes, |n, x| n.restart(x)),
        Action::Pause { .. } => each(nodes, |n, x| n.pause(x)),
        Action::Resume { .. } => each(nodes, |n, x| n.resume(x)),
        Action::Impair { link, impairment } => net
            .set_impairment(link, Some(*impairment), Some(*impairment))
            .map_err(net_err),
        Action::ImpairBetween { impairment, .. } => {
            let imp = (!impairment.is_none()).then_some(*impairment);
            for x in &t.a {
                for y in t.b.iter().filter(|y| *y != x) {
                    net.impair_between(x, y, imp).map_err(net_err)?;
                }
            }
            Ok(())
        }
    }
}
