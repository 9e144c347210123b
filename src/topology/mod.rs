//! Topologies: which hosts and switches an emulated network has and how they are linked.
//! Defined as data (TOML templates in `topologies/`, or a user's own file) and resolved here,
//! for a given number of nodes and clients, into a concrete [`Topology`] that `net` builds.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::catalog::{Catalog, CatalogError};
use serde::{Deserialize, Serialize};

/// The built-in topologies: name and template. Adding one = a file in `topologies/` + a line here.
pub static CATALOG: Catalog = Catalog {
    kind: "topology",
    plural: "topologies",
    dir: "topologies",
    flag: "--topology-file",
    builtin: BUILTIN,
};

const BUILTIN: &[(&str, &str)] = &[
    ("simple", include_str!("../../topologies/simple.toml")),
    ("wan", include_str!("../../topologies/wan.toml")),
];

/// Largest `--number-nodes` accepted (a consensus cluster beyond this is not an experiment).
pub const MAX_NODES: usize = 100;
/// Largest `--number-clients` accepted.
pub const MAX_CLIENTS: usize = 250;

/// What a host is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs a member of the system under test.
    Node,
    /// Runs a workload client.
    Client,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Client => "client",
        })
    }
}

/// A host: a network namespace with one interface, linked to one switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub role: Role,
    /// The data centre it belongs to, if the topology has data centres.
    pub dc: Option<u32>,
    pub switch: String,
    pub ip: Ipv4Addr,
    /// Impairment of the host's link to its switch.
    #[serde(default)]
    pub link: LinkProps,
}

/// How a link is impaired, as a topology file says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkProps {
    /// The link carries its share of `--link-latency`, `--link-jitter` and `--link-loss`.
    pub impaired: bool,
    /// Fixed one-way delay in ms, whatever the command line says.
    pub latency: Option<f64>,
    /// Fixed delay standard deviation in ms.
    pub jitter: Option<f64>,
    /// Fixed loss in percent.
    pub loss: Option<f64>,
}

/// Impairment of one direction of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// Added one-way delay, ms.
    pub latency_ms: f64,
    /// Standard deviation of the delay, ms.
    pub jitter_ms: f64,
    /// Chance a packet is dropped, percent.
    pub loss_pct: f64,
    /// Let jitter reorder packets (as netem does); off by default.
    #[serde(default)]
    pub reorder: bool,
}

impl Impairment {
    pub fn is_none(&self) -> bool {
        self.latency_ms == 0.0 && self.jitter_ms == 0.0 && self.loss_pct == 0.0
    }

    /// What to apply so that the link, plus the emulated network's own latency `compensation_ms`,
    /// delays by `latency_ms`: the latency less the compensation (never below 0), jitter no
    /// larger than that.
    pub fn compensated(&self, compensation_ms: f64) -> Impairment {
        if self.latency_ms == 0.0 {
            return *self;
        }
        let latency_ms = (self.latency_ms - compensation_ms).max(0.0);
        Impairment {
            latency_ms,
            jitter_ms: self.jitter_ms.min(latency_ms),
            ..*self
        }
    }

    /// Refuse what cannot be applied exactly.
    pub fn validate(&self) -> Result<(), String> {
        if !self.latency_ms.is_finite() || self.latency_ms < 0.0 {
            return Err(format!(
                "latency_ms {} must be a number of milliseconds, 0 or more",
                self.latency_ms
            ));
        }
        if self.latency_ms > 60_000.0 {
            return Err(format!("latency_ms {} is over a minute", self.latency_ms));
        }
        if !self.loss_pct.is_finite() || !(0.0..=100.0).contains(&self.loss_pct) {
            return Err(format!(
                "loss_pct {} must be a percentage between 0 and 100",
                self.loss_pct
            ));
        }
        if !self.jitter_ms.is_finite() || self.jitter_ms < 0.0 {
            return Err(format!("jitter_ms {} must be 0 or more", self.jitter_ms));
        }
        if self.jitter_ms > self.latency_ms {
            return Err(format!(
                "jitter_ms {} is larger than latency_ms {}: delays are drawn around the latency and clamped to [0, 2 x latency], so jitter may not exceed it",
                self.jitter_ms, self.latency_ms
            ));
        }
        Ok(())
    }
}

/// A number with at most three decimals and no trailing zeros.
fn short(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} ms", short(self.latency_ms))?;
        if self.jitter_ms > 0.0 {
            write!(f, " ± {} ms", short(self.jitter_ms))?;
        }
        write!(f, ", {}% loss", short(self.loss_pct))?;
        if self.reorder {
            write!(f, ", reordering")?;
        }
        Ok(())
    }
}

/// A switch (an OVS bridge).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    pub name: String,
    pub dc: Option<u32>,
}

/// A link between two switches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchLink {
    pub a: String,
    pub b: String,
    #[serde(default)]
    pub props: LinkProps,
}

impl SwitchLink {
    /// The link's name: `a-b`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.a, self.b)
    }
}

/// A resolved topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub name: String,
    pub description: String,
    pub subnet: Ipv4Addr,
    pub prefix_len: u8,
    pub switches: Vec<Switch>,
    pub hosts: Vec<Host>,
    pub links: Vec<SwitchLink>,
    /// How many impaired links a host-to-host path crosses: the `--link-*` figures are
    /// end-to-end and are split over this many links.
    #[serde(default = "one")]
    pub path_links: u32,
}

fn one() -> u32 {
    1
}

impl Topology {
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
    pub fn nodes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Node)
    }
    pub fn clients(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Client)
    }

    /// The links a packet from host `a` to host `b` crosses, by name: `a`'s link, the links
    /// between switches, `b`'s link. `None` if either host is unknown or no path exists.
    pub fn path(&self, a: &str, b: &str) -> Option<Vec<String>> {
        let (ha, hb) = (self.host(a)?, self.host(b)?);
        // Breadth-first over switches, remembering the link that reached each.
        let mut via: HashMap<&str, Option<&SwitchLink>> =
            HashMap::from([(ha.switch.as_str(), None)]);
        let mut queue = std::collections::VecDeque::from([ha.switch.as_str()]);
        while let Some(s) = queue.pop_front() {
            for l in &self.links {
                let next = if l.a == s {
                    &l.b
                } else if l.b == s {
                    &l.a
                } else {
                    continue;
                };
                if !via.contains_key(next.as_str()) {
                    via.insert(next, Some(l));
                    queue.push_back(next);
                }
            }
        }
        let mut links = Vec::new();
        let mut s = hb.switch.as_str();
        while let Some(l) = via.get(s)? {
            links.push(l.name());
            s = if l.a == s { &l.b } else { &l.a };
        }
        links.reverse();
        let mut path = vec![ha.name.clone()];
        path.extend(links);
        path.push(hb.name.clone());
        Some(path)
    }
}

/// How big to make a topology: `--number-nodes` and `--number-clients`.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub nodes: usize,
    /// `None` when the user did not say (default 1 where the topology uses it).
    pub clients: Option<usize>,
}

impl Default for Size {
    fn default() -> Self {
        Size {
            nodes: 3,
            clients: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("--number-nodes {0}: must be between 1 and {MAX_NODES}")]
    Nodes(usize),
    #[error("--number-clients {0}: must be between 1 and {MAX_CLIENTS}")]
    Clients(usize),
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

mod template;
use template::parse;

/// Resolve a built-in topology by name.
pub fn builtin(name: &str, size: Size) -> Result<Topology, TopologyError> {
    let src = CATALOG.builtin(name)?;
    parse(&src.name, &src.file, &src.text, size)
}

/// Read a user's topology file; its name is the file's stem.
pub fn from_file(path: &Path, size: Size) -> Result<Topology, TopologyError> {
    let src = CATALOG.file(path)?;
    parse(&src.name, &src.file, &src.text, size)
}

#[cfg(test)]
mod tests;
