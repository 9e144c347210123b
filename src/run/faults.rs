//! Fault events during a run: who an event concerns (its selectors, resolved against the
//! cluster just before the event) and carrying it out on the network or the cluster.

use crate::fault::{Action, Count, Event, Selector};
use crate::net::Network;
use crate::system::Cluster;
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

pub fn resolve(ev: &Event, c: &Cluster, t: &Topology, kill_n: usize) -> Result<Targets, String> {
    let needs_leader = ev.action.selectors().iter().any(|s| s.needs_leader());
    let leader = if needs_leader {
        Some(
            c.leader()
                .ok_or("no leader to select (none is agreed on)")?,
        )
    } else {
        None
    };
    let running: Vec<&str> = c
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| n.name.as_str())
        .collect();
    let followers: Vec<String> = running
        .iter()
        .filter(|n| Some(**n) != leader.as_deref())
        .map(|s| s.to_string())
        .collect();
    let one = |sel: &Selector, other: &[String]| -> Result<Vec<String>, String> {
        Ok(match sel {
            Selector::Leader => vec![leader.clone().unwrap_or_default()],
            Selector::Follower => {
                vec![followers.first().cloned().ok_or("no follower is running")?]
            }
            Selector::Followers(n) => {
                let n = match n {
                    Count::KillN => kill_n,
                    Count::N(n) => *n,
                };
                followers.iter().take(n).cloned().collect()
            }
            Selector::Killed => c
                .nodes
                .iter()
                .filter(|n| !n.is_running())
                .map(|n| n.name.clone())
                .collect(),
            Selector::Paused => c
                .nodes
                .iter()
                .filter(|n| n.is_paused())
                .map(|n| n.name.clone())
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
        })
    };
    Ok(match &ev.action {
        Action::Partition { a, b, .. } => {
            let a = one(a, &[])?;
            let b = one(b, &a)?;
            Targets { a, b }
        }
        Action::Kill { node }
        | Action::Restart { node }
        | Action::Pause { node }
        | Action::Resume { node } => Targets {
            a: one(node, &[])?,
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

pub fn apply(ev: &Event, t: &Targets, net: &mut Network, c: &mut Cluster) -> Result<(), String> {
    let each = |c: &mut Cluster,
                f: fn(&mut Cluster, &str) -> Result<(), crate::system::SystemError>|
     -> Result<(), String> {
        for n in &t.a {
            f(c, n).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    match &ev.action {
        Action::Partition { oneway, .. } => net
            .partition(&t.a, &t.b, *oneway)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Action::Heal => net.heal().map(|_| ()).map_err(|e| e.to_string()),
        Action::Kill { .. } => each(c, Cluster::stop),
        Action::Restart { .. } => each(c, Cluster::restart),
        Action::Pause { .. } => each(c, Cluster::pause),
        Action::Resume { .. } => each(c, Cluster::resume),
        Action::Impair { link, impairment } => net
            .set_impairment(link, Some(*impairment), Some(*impairment))
            .map_err(|e| e.to_string()),
    }
}
