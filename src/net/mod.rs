//! The emulated network. Division of labour: namespaces are hosts (`netns`); veth pairs are
//! links, created and addressed over rtnetlink (`rtnl`) with tx checksum offload off on both ends
//! (`ethtool`); Open vSwitch bridges are switches, configured over OVSDB (`ovs`). By concern:
//! `build` plans every name and builds the network, `check` proves every pair of hosts talks
//! over ICMP and TCP, `partition` cuts and heals over OpenFlow (`openflow`), `impair` models
//! link impairment and `impair::control` applies it (netem, or the userspace `impair::engine`),
//! `teardown` removes a network by exact name, and `registry` records what a network created so
//! it can always be removed. This module is the facade: [`Network`] owns one built network and
//! tears it down when dropped — on normal return, on error, on panic, and after
//! Ctrl-C/SIGTERM (see `crate::signals`).

mod build;
pub mod check;
pub mod ethtool;
pub mod impair;
pub mod netns;
pub mod openflow;
pub mod ovs;
mod partition;
pub mod registry;
mod reuse;
pub mod rtnl;
mod teardown;

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub use build::{host_mac, link_group};
pub use impair::control::{engine_bin, impairment_stats, set_impairment, spawn_engine};
pub use ovs::{Datapath, OvsConfig};
use registry::{Claim, Manifest};
pub use reuse::down_kept;
pub use teardown::{clean, down, teardown, CleanScope, Cleaned, Removed};

use crate::topology::Topology;

/// Name of a host's interface inside its namespace.
pub const HOST_IFNAME: &str = "eth0";
use build::IFNAMSIZ_MAX;
/// The default run prefix.
pub const DEFAULT_PREFIX: &str = "rk";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("reckon must run as root to create network namespaces, links and switches; run it with sudo")]
    NotRoot,
    #[error("prefix '{0}': use 1 to 6 lowercase letters or digits, starting with a letter")]
    BadPrefix(String),
    #[error("interface name '{name}' ({what}) is longer than {IFNAMSIZ_MAX} characters; use a shorter --prefix or shorter names in the topology")]
    NameTooLong { name: String, what: String },
    #[error(transparent)]
    Ovs(#[from] ovs::OvsError),
    #[error(transparent)]
    Claim(#[from] registry::ClaimError),
    #[error("{0} already exists but no reckon run of this prefix owns it; remove it by hand or choose another --prefix")]
    Exists(String),
    #[error("Open vSwitch bridge {0} was made by a reckon network whose record is gone (the registry in /run/reckon does not survive a reboot); `reckon clean` removes it")]
    Unrecorded(String),
    #[error("host {host}: {what}: {source}")]
    Host {
        host: String,
        what: String,
        source: io::Error,
    },
    #[error(transparent)]
    Link(#[from] rtnl::RtnlError),
    #[error(transparent)]
    Check(#[from] check::CheckError),
    #[error("interrupted")]
    Interrupted,
    #[error("no host named '{host}' in network '{prefix}'; hosts: {known}")]
    NoSuchHost {
        host: String,
        prefix: String,
        known: String,
    },
    #[error("no reckon network with prefix '{0}' (bring one up with `reckon topo up`)")]
    NoNetwork(String),
    #[error("network '{prefix}' belongs to a running reckon process{}; stop that process instead", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Owned { prefix: String, pid: Option<u32> },
    #[error("run registry: {0}")]
    Registry(io::Error),
    #[error("{0}")]
    Impair(String),
    #[error("the impairment engine did not start: {0}")]
    Engine(String),
    #[error("teardown left things behind:\n  {}", .0.join("\n  "))]
    Teardown(Vec<String>),
    #[error("could not clear the network for the next run:\n  {}", .0.join("\n  "))]
    Keep(Vec<String>),
}

/// How to build a network.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// Prefix of every name the network creates; two networks with different prefixes coexist.
    pub prefix: String,
    pub datapath: Datapath,
    /// Run the all-pairs ICMP+TCP check before handing the network out.
    pub check: bool,
    pub ovs: OvsConfig,
    /// Link impairment (the `--link-*` flags, `--seed`, `--impair-backend`).
    pub impair: impair::ImpairOptions,
    /// Give every link an impairment engine, impaired or not, so any can be impaired later
    /// (userspace backend; netem can impair any link anyway).
    pub impairable_all: bool,
    /// The `reckon` binary that runs the userspace engine (default: this program, or the
    /// `reckon` beside it; `RECKON_BIN` overrides).
    pub engine_bin: Option<PathBuf>,
    /// Measure the network's own latency and take it off delayed links (see `calibrate`).
    pub calibrate: bool,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            prefix: DEFAULT_PREFIX.into(),
            datapath: Datapath::Auto,
            check: true,
            ovs: OvsConfig::default(),
            impair: impair::ImpairOptions::default(),
            impairable_all: false,
            engine_bin: None,
            calibrate: true,
        }
    }
}

/// How long each step of building took.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub namespaces: Duration,
    pub links: Duration,
    pub hosts: Duration,
    pub switches: Duration,
    pub check: Duration,
    pub pairs_checked: usize,
}

impl Timings {
    pub fn build(&self) -> Duration {
        self.namespaces + self.links + self.hosts + self.switches
    }
}

pub fn require_root() -> Result<(), NetError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(NetError::NotRoot)
    }
}

pub fn validate_prefix(p: &str) -> Result<(), NetError> {
    let ok = (1..=6).contains(&p.len())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(NetError::BadPrefix(p.into()))
    }
}

pub(crate) fn check_interrupt() -> Result<(), NetError> {
    if crate::signals::interrupted() {
        Err(NetError::Interrupted)
    } else {
        Ok(())
    }
}

/// A built network. Dropping it tears everything down.
pub struct Network {
    claim: Claim,
    manifest: Manifest,
    ovs: OvsConfig,
    /// Tear down on drop (false once detached or torn down).
    owned: bool,
    pub timings: Timings,
    /// The userspace impairment engine, if this process started one.
    engine: Option<std::process::Child>,
    /// OpenFlow connections to the bridges, opened on first use.
    switches: std::collections::HashMap<String, openflow::OfConn>,
    /// Drop rules in place: bridge and directed (source, destination) pairs.
    cuts: Vec<(String, Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>)>,
}

impl Network {
    /// Build `topo` and (unless `opts.check` is off) check all pairs of hosts. Nothing is left
    /// behind on error.
    pub fn up(topo: &Topology, opts: &NetworkOptions) -> Result<Network, NetError> {
        require_root()?;
        validate_prefix(&opts.prefix)?;
        let manifest = build::plan(&opts.prefix, topo, opts)?;
        let mut db = opts.ovs.connect_or_start()?;
        let claim = Claim::new(&opts.prefix)?;
        build::ensure_free(&manifest, &mut db)?;
        claim.write(&manifest).map_err(NetError::Registry)?;
        let mut net = Network {
            claim,
            manifest,
            ovs: opts.ovs.clone(),
            owned: true,
            timings: Timings::default(),
            engine: None,
            switches: Default::default(),
            cuts: Vec::new(),
        };
        net.build(&mut db, opts.datapath)?;
        net.start_engine(opts)?;
        if opts.check {
            check_interrupt()?;
            tracing::info!(
                "checking {} host pairs over ICMP and TCP",
                topo.hosts.len() * (topo.hosts.len() - 1) / 2
            );
            let t = Instant::now();
            net.timings.pairs_checked = net.check()?;
            net.timings.check = t.elapsed();
        }
        net.impair(opts)?;
        check_interrupt()?;
        Ok(net)
    }

    /// Check that every pair of hosts reaches each other over ICMP and TCP; returns the number
    /// of pairs checked.
    pub fn check(&self) -> Result<usize, NetError> {
        Ok(check::all_pairs(&self.endpoints()?)?)
    }

    fn endpoints(&self) -> Result<Vec<check::Endpoint>, NetError> {
        self.manifest
            .topology
            .hosts
            .iter()
            .map(|h| {
                let ns = self.manifest.netns_of(&h.name).unwrap_or_default();
                let netns = netns::open(ns).map_err(|source| NetError::Host {
                    host: h.name.clone(),
                    what: "open namespace".into(),
                    source,
                })?;
                Ok(check::Endpoint {
                    name: h.name.clone(),
                    netns,
                    ip: h.ip,
                })
            })
            .collect()
    }

    pub fn prefix(&self) -> &str {
        &self.manifest.prefix
    }

    pub fn topology(&self) -> &Topology {
        &self.manifest.topology
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A command that will run inside `host`'s namespace.
    pub fn command(
        &self,
        host: &str,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, NetError> {
        command_in(&self.manifest, host, program)
    }

    /// Record a directory the run created (for its processes) so that teardown, or `reckon
    /// clean` after a crash, removes it once those processes are gone.
    pub fn add_scratch(&mut self, dir: &std::path::Path) -> Result<(), NetError> {
        self.manifest.scratch.push(dir.to_path_buf());
        self.claim.write(&self.manifest).map_err(NetError::Registry)
    }

    /// Leave the network up after this process exits; `reckon topo down` (or `clean`) removes it.
    pub fn detach(mut self) -> Result<Manifest, NetError> {
        self.leave_up()?;
        Ok(self.manifest.clone())
    }

    /// Record the network as owned by no process and stop owning it here: it outlives this
    /// process, and so does its impairment engine.
    fn leave_up(&mut self) -> Result<(), NetError> {
        self.manifest.owner = None;
        self.claim
            .write(&self.manifest)
            .map_err(NetError::Registry)?;
        self.owned = false;
        self.engine = None;
        Ok(())
    }

    /// Tear down now, reporting what was removed and any failure.
    pub fn down(mut self) -> Result<Removed, NetError> {
        self.owned = false;
        let r = teardown(&self.claim, &self.manifest, &self.ovs);
        self.reap_engine();
        r
    }

    /// Collect the engine's exit status (teardown stopped it).
    fn reap_engine(&mut self) {
        if let Some(mut c) = self.engine.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.owned {
            self.owned = false;
            if let Err(e) = teardown(&self.claim, &self.manifest, &self.ovs) {
                eprintln!(
                    "reckon: tearing down network '{}': {e}",
                    self.manifest.prefix
                );
            }
            self.reap_engine();
        }
    }
}

/// The network namespace of `host` in the network `m` describes, opened.
pub fn open_host(m: &Manifest, host: &str) -> Result<std::os::fd::OwnedFd, NetError> {
    let ns = m.netns_of(host).ok_or_else(|| NetError::NoSuchHost {
        host: host.into(),
        prefix: m.prefix.clone(),
        known: m
            .namespaces
            .iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    netns::open(ns).map_err(|source| NetError::Host {
        host: host.into(),
        what: format!("open namespace {ns}"),
        source,
    })
}

/// A command that will run inside `host`'s namespace of the network `m`.
pub fn command_in(
    m: &Manifest,
    host: &str,
    program: impl AsRef<std::ffi::OsStr>,
) -> Result<Command, NetError> {
    let fd = open_host(m, host)?;
    let mut cmd = Command::new(program);
    unsafe {
        cmd.pre_exec(move || netns::enter(&fd));
    }
    Ok(cmd)
}

/// Shown by `reckon topo up`: one line per host.
pub fn describe(m: &Manifest) -> String {
    let mut s = format!(
        "{:<8} {:<7} {:<4} {:<15} {:<8} {}\n",
        "HOST", "ROLE", "DC", "ADDRESS", "SWITCH", "NAMESPACE"
    );
    for h in &m.topology.hosts {
        s += &format!(
            "{:<8} {:<7} {:<4} {:<15} {:<8} {}\n",
            h.name,
            h.role.to_string(),
            h.dc.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            format!("{}/{}", h.ip, m.topology.prefix_len),
            h.switch,
            m.netns_of(&h.name).unwrap_or("")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for ok in ["rk", "a", "abc123", "z9"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Rk", "1rk", "abcdefg", "r-k", "rk!"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }
}
