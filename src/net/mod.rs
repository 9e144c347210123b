//! The emulated network. Division of labour: namespaces are hosts (`netns`); veth pairs are
//! links, created and addressed over rtnetlink (`rtnl`) with tx checksum offload off on both ends
//! (`ethtool`); Open vSwitch bridges are switches, configured over OVSDB (`ovs`); `check` proves
//! every pair of hosts talks over ICMP and TCP; `registry` records what a network created so it
//! can always be removed by exact name. [`Network`] owns one built network and tears it down when
//! dropped — on normal return, on error, on panic, and after Ctrl-C/SIGTERM (see `crate::signals`).

pub mod check;
pub mod ethtool;
pub mod netns;
pub mod ovs;
pub mod registry;
pub mod rtnl;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

pub use ovs::{Datapath, OvsConfig};
use registry::{Claim, Manifest};

use crate::topology::{Host, Topology};

/// Name of a host's interface inside its namespace.
pub const HOST_IFNAME: &str = "eth0";
const IFNAMSIZ_MAX: usize = 15;
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
    #[error("host {host}: {what}: {source}")]
    Host { host: String, what: String, source: io::Error },
    #[error(transparent)]
    Link(#[from] rtnl::RtnlError),
    #[error(transparent)]
    Check(#[from] check::CheckError),
    #[error("interrupted")]
    Interrupted,
    #[error("no host named '{host}' in network '{prefix}'; hosts: {known}")]
    NoSuchHost { host: String, prefix: String, known: String },
    #[error("no reckon network with prefix '{0}' (bring one up with `reckon topo up`)")]
    NoNetwork(String),
    #[error("network '{prefix}' belongs to a running reckon process{}; stop that process instead", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Owned { prefix: String, pid: Option<u32> },
    #[error("run registry: {0}")]
    Registry(io::Error),
    #[error("teardown left things behind:\n  {}", .0.join("\n  "))]
    Teardown(Vec<String>),
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
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions { prefix: DEFAULT_PREFIX.into(), datapath: Datapath::Auto, check: true, ovs: OvsConfig::default() }
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

/// What a teardown removed.
#[derive(Clone, Debug, Default)]
pub struct Removed {
    pub processes: usize,
    pub namespaces: usize,
    pub veths: usize,
    pub bridges: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        write!(
            f,
            "{}, {}, {}, {}",
            n(self.namespaces, "namespace", "namespaces"),
            n(self.veths, "veth pair", "veth pairs"),
            n(self.bridges, "bridge", "bridges"),
            n(self.processes, "process", "processes")
        )
    }
}

pub fn require_root() -> Result<(), NetError> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err(NetError::NotRoot) }
}

pub fn validate_prefix(p: &str) -> Result<(), NetError> {
    let ok = (1..=6).contains(&p.len())
        && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.starts_with(|c: char| c.is_ascii_lowercase());
    if ok { Ok(()) } else { Err(NetError::BadPrefix(p.into())) }
}

/// The names a topology gets under a prefix.
fn plan(prefix: &str, topo: &Topology) -> Result<Manifest, NetError> {
    let fits = |name: String, what: String| {
        if name.len() > IFNAMSIZ_MAX { Err(NetError::NameTooLong { name, what }) } else { Ok(name) }
    };
    let namespaces = topo.hosts.iter().map(|h| (h.name.clone(), format!("{prefix}-{}", h.name))).collect();
    let mut veths = Vec::new();
    for h in &topo.hosts {
        veths.push(fits(host_port(prefix, h), format!("link of host {}", h.name))?);
    }
    for (k, l) in topo.links.iter().enumerate() {
        let (a, b) = switch_ports(prefix, k, &l.a, &l.b);
        fits(b, format!("link {} - {}", l.b, l.a))?;
        veths.push(fits(a, format!("link {} - {}", l.a, l.b))?);
    }
    let bridges = topo
        .switches
        .iter()
        .map(|s| fits(format!("{prefix}-{}", s.name), format!("switch {}", s.name)))
        .collect::<Result<_, _>>()?;
    let created_unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    Ok(Manifest { prefix: prefix.into(), owner: Some(std::process::id()), created_unix_ms, topology: topo.clone(), namespaces, veths, bridges })
}

/// The link group of a network's root-side links: the prefix read as a base-37 number (so two
/// prefixes never share a group), offset past the small groups other software uses.
pub fn link_group(prefix: &str) -> u32 {
    let digit = |c: char| match c {
        'a'..='z' => c as u32 - 'a' as u32 + 1,
        '0'..='9' => c as u32 - '0' as u32 + 27,
        _ => 0,
    };
    prefix.chars().fold(0u32, |acc, c| acc.wrapping_mul(37).wrapping_add(digit(c))).wrapping_add(1 << 20)
}

/// The MAC address of a host's interface: locally administered, then its IPv4 address.
pub fn host_mac(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Root-side name of a host's link (also its port name on the switch).
fn host_port(prefix: &str, h: &Host) -> String {
    format!("{prefix}-{}", h.name)
}

/// The two root-side ends of the k-th switch-to-switch link: readable when short enough.
fn switch_ports(prefix: &str, k: usize, a: &str, b: &str) -> (String, String) {
    let (x, y) = (format!("{prefix}-{a}-{b}"), format!("{prefix}-{b}-{a}"));
    if x.len() <= IFNAMSIZ_MAX && y.len() <= IFNAMSIZ_MAX {
        (x, y)
    } else {
        (format!("{prefix}-L{k}a"), format!("{prefix}-L{k}b"))
    }
}

fn link_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

fn check_interrupt() -> Result<(), NetError> {
    if crate::signals::interrupted() { Err(NetError::Interrupted) } else { Ok(()) }
}

/// A built network. Dropping it tears everything down.
pub struct Network {
    claim: Claim,
    manifest: Manifest,
    ovs: OvsConfig,
    /// Tear down on drop (false once detached or torn down).
    owned: bool,
    pub timings: Timings,
}

impl Network {
    /// Build `topo` and (unless `opts.check` is off) check all pairs of hosts. Nothing is left
    /// behind on error.
    pub fn up(topo: &Topology, opts: &NetworkOptions) -> Result<Network, NetError> {
        require_root()?;
        validate_prefix(&opts.prefix)?;
        let manifest = plan(&opts.prefix, topo)?;
        let mut db = opts.ovs.connect_or_start()?;
        let claim = Claim::new(&opts.prefix)?;
        // Names we are about to create must be free: never adopt what someone else made.
        for (_, ns) in &manifest.namespaces {
            if netns::exists(ns) {
                return Err(NetError::Exists(format!("network namespace {ns}")));
            }
        }
        let far_ends = topo.links.iter().enumerate().map(|(k, l)| switch_ports(&opts.prefix, k, &l.a, &l.b).1);
        for v in manifest.veths.iter().cloned().chain(far_ends) {
            if link_exists(&v) {
                return Err(NetError::Exists(format!("interface {v}")));
            }
        }
        let existing = db.bridges()?;
        if let Some(b) = manifest.bridges.iter().find(|b| existing.contains(b)) {
            return Err(NetError::Exists(format!("Open vSwitch bridge {b}")));
        }
        claim.write(&manifest).map_err(NetError::Registry)?;
        let mut net = Network { claim, manifest, ovs: opts.ovs.clone(), owned: true, timings: Timings::default() };
        net.build(&mut db, opts.datapath)?;
        if opts.check {
            check_interrupt()?;
            tracing::info!("checking {} host pairs over ICMP and TCP", topo.hosts.len() * (topo.hosts.len() - 1) / 2);
            let t = Instant::now();
            net.timings.pairs_checked = net.check()?;
            net.timings.check = t.elapsed();
        }
        check_interrupt()?;
        Ok(net)
    }

    fn build(&mut self, db: &mut ovs::Ovsdb, datapath: Datapath) -> Result<(), NetError> {
        let topo = self.manifest.topology.clone();
        let prefix = self.manifest.prefix.clone();

        check_interrupt()?;
        let t = Instant::now();
        tracing::info!("creating {} namespaces", self.manifest.namespaces.len());
        for (host, ns) in &self.manifest.namespaces {
            netns::create(ns).map_err(|source| NetError::Host { host: host.clone(), what: format!("create namespace {ns}"), source })?;
        }
        self.timings.namespaces = t.elapsed();

        // Links: veth pairs from the root namespace, host ends created inside their hosts.
        check_interrupt()?;
        tracing::info!("creating {} links", topo.hosts.len() + topo.links.len());
        let t = Instant::now();
        let fds = self
            .manifest
            .namespaces
            .iter()
            .map(|(host, ns)| netns::open(ns).map_err(|source| NetError::Host { host: host.clone(), what: format!("open namespace {ns}"), source }))
            .collect::<Result<Vec<_>, _>>()?;
        let group = link_group(&prefix);
        let mut reqs = Vec::new();
        let mut root_ends = Vec::new();
        for (h, fd) in topo.hosts.iter().zip(&fds) {
            let port = host_port(&prefix, h);
            let ns_fd = Some(std::os::fd::AsRawFd::as_raw_fd(fd));
            reqs.push(rtnl::Request::add_veth(&port, group, HOST_IFNAME, ns_fd, Some(host_mac(h.ip))));
            root_ends.push(port);
        }
        for (k, l) in topo.links.iter().enumerate() {
            let (a, b) = switch_ports(&prefix, k, &l.a, &l.b);
            reqs.push(rtnl::Request::add_veth(&a, group, &b, None, None));
            reqs.push(rtnl::Request::link_up(&b));
            root_ends.push(a);
            root_ends.push(b);
        }
        let mut rt = rtnl::Rtnl::open().map_err(|source| NetError::Host { host: "root".into(), what: "open rtnetlink".into(), source })?;
        rt.run_all(reqs).into_iter().collect::<Result<Vec<()>, _>>()?;
        let eth = ethtool::Ethtool::open().map_err(|source| NetError::Host { host: "root".into(), what: "open ethtool socket".into(), source })?;
        for end in &root_ends {
            eth.tx_checksum_off(end).map_err(|source| NetError::Host { host: "root".into(), what: format!("configure {end}"), source })?;
        }
        self.timings.links = t.elapsed();

        // Hosts: inside each namespace, checksum offload off and the address on.
        check_interrupt()?;
        let t = Instant::now();
        let results: Vec<Result<(), NetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = topo
                .hosts
                .iter()
                .zip(&fds)
                .map(|(h, fd)| s.spawn(|| configure_host(h, fd, &topo)))
                .collect();
            handles.into_iter().map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.timings.hosts = t.elapsed();

        // Switches: every bridge and port in one OVSDB transaction.
        check_interrupt()?;
        tracing::info!("creating {} switches ({} datapath)", topo.switches.len(), match datapath.resolve() { Datapath::Kernel => "kernel", _ => "userspace" });
        let t = Instant::now();
        let mut bridges: Vec<ovs::BridgeSpec> = topo
            .switches
            .iter()
            .map(|s| ovs::BridgeSpec { name: format!("{prefix}-{}", s.name), ports: Vec::new() })
            .collect();
        let idx = |name: &str| topo.switches.iter().position(|s| s.name == name).expect("validated switch name");
        for h in &topo.hosts {
            bridges[idx(&h.switch)].ports.push(host_port(&prefix, h));
        }
        for (k, l) in topo.links.iter().enumerate() {
            let (a, b) = switch_ports(&prefix, k, &l.a, &l.b);
            bridges[idx(&l.a)].ports.push(a);
            bridges[idx(&l.b)].ports.push(b);
        }
        db.add_bridges(&bridges, datapath)?;
        self.timings.switches = t.elapsed();
        Ok(())
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
                let netns = netns::open(ns).map_err(|source| NetError::Host { host: h.name.clone(), what: "open namespace".into(), source })?;
                Ok(check::Endpoint { name: h.name.clone(), netns, ip: h.ip })
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
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, NetError> {
        command_in(&self.manifest, host, program)
    }

    /// Leave the network up after this process exits; `reckon topo down` (or `clean`) removes it.
    pub fn detach(mut self) -> Result<Manifest, NetError> {
        self.manifest.owner = None;
        self.claim.write(&self.manifest).map_err(NetError::Registry)?;
        self.owned = false;
        Ok(self.manifest.clone())
    }

    /// Tear down now, reporting what was removed and any failure.
    pub fn down(mut self) -> Result<Removed, NetError> {
        self.owned = false;
        teardown(&self.claim, &self.manifest, &self.ovs)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.owned {
            self.owned = false;
            if let Err(e) = teardown(&self.claim, &self.manifest, &self.ovs) {
                eprintln!("reckon: tearing down network '{}': {e}", self.manifest.prefix);
            }
        }
    }
}

/// Inside the host: checksum offload off, address on, link up, and a permanent ARP entry for
/// every other host (no ARP storms when many hosts first talk at once, and a healed partition
/// carries traffic at once instead of waiting for ARP to recover).
fn configure_host(h: &Host, fd: &std::os::fd::OwnedFd, topo: &Topology) -> Result<(), NetError> {
    let err = |what: &str, source: io::Error| NetError::Host { host: h.name.clone(), what: what.into(), source };
    netns::in_netns(fd, || -> Result<(), NetError> {
        ethtool::Ethtool::open()
            .and_then(|e| e.tx_checksum_off(HOST_IFNAME))
            .map_err(|e| err("turn off tx checksum offload", e))?;
        let index = nix::net::if_::if_nametoindex(HOST_IFNAME).map_err(|e| err("find eth0", e.into()))?;
        let mut rt = rtnl::Rtnl::open().map_err(|e| err("open rtnetlink", e))?;
        let mut reqs = vec![rtnl::Request::add_ipv4(index, h.ip, topo.prefix_len), rtnl::Request::link_up(HOST_IFNAME)];
        for other in topo.hosts.iter().filter(|o| o.name != h.name) {
            reqs.push(rtnl::Request::add_neighbour(index, other.ip, host_mac(other.ip)));
        }
        for r in rt.run_all(reqs) {
            r.map_err(|e| err(&e.what, e.error))?;
        }
        Ok(())
    })
    .map_err(|e| err("enter namespace", e))?
}

/// A command that will run inside `host`'s namespace of the network `m`.
pub fn command_in(m: &Manifest, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, NetError> {
    let ns = m.netns_of(host).ok_or_else(|| NetError::NoSuchHost {
        host: host.into(),
        prefix: m.prefix.clone(),
        known: m.namespaces.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let fd = netns::open(ns).map_err(|source| NetError::Host { host: host.into(), what: format!("open namespace {ns}"), source })?;
    let mut cmd = Command::new(program);
    unsafe {
        cmd.pre_exec(move || netns::enter(&fd));
    }
    Ok(cmd)
}

/// Remove everything in `m`, by exact name, and confirm it is gone. The caller holds the claim.
fn teardown(claim: &Claim, m: &Manifest, ovs: &OvsConfig) -> Result<Removed, NetError> {
    let mut removed = Removed::default();
    let mut problems = Vec::new();
    let t0 = Instant::now();
    removed.veths = m.veths.iter().filter(|v| link_exists(v)).count();
    // 1. Processes: a namespace is only freed (and its veths with it) once nothing holds it.
    for (host, ns) in &m.namespaces {
        match netns::kill_processes(ns, Duration::from_secs(2)) {
            Ok(p) => removed.processes += p.len(),
            Err(e) => problems.push(format!("host {host}: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // 3. Namespaces: the kernel then removes every host link in one batch.
    for (host, ns) in &m.namespaces {
        if netns::exists(ns) {
            match netns::delete(ns) {
                Ok(()) => removed.namespaces += 1,
                Err(e) => problems.push(format!("host {host}: delete namespace {ns}: {e}")),
            }
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // 4. The remaining links (between switches), from the root side. They carry the network's
    // link group, so one request removes them all, provided nothing else is in that group;
    // otherwise they go one by one, by name.
    let present: Vec<&String> = m.veths.iter().filter(|v| link_exists(v)).collect();
    if !present.is_empty() {
        let group = link_group(&m.prefix);
        match rtnl::Rtnl::open() {
            Ok(mut rt) => {
                let only_ours = rt
                    .links_in_group(group)
                    .is_ok_and(|names| names.iter().all(|n| m.veths.contains(n)));
                let reqs = if only_ours {
                    vec![rtnl::Request::del_group(group)]
                } else {
                    present.iter().map(|v| rtnl::Request::del_link(v)).collect()
                };
                for r in rt.run_all(reqs) {
                    match r {
                        Err(e) if e.errno() != Some(libc::ENODEV) => problems.push(e.to_string()),
                        _ => {}
                    }
                }
            }
            Err(e) => problems.push(format!("open rtnetlink: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // Host links go when the kernel finishes destroying the namespaces: wait for that, so the
    // next network with the same names can be built as soon as this returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.veths.iter().any(|v| link_exists(v)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // 5. Switches.
    if !m.bridges.is_empty() {
        match ovs.connect_or_start().and_then(|mut db| {
            let before = db.bridges()?;
            db.del_bridges(&m.bridges)?;
            let after = db.bridges()?;
            removed.bridges = m.bridges.iter().filter(|b| before.contains(b)).count();
            Ok(m.bridges.iter().filter(|b| after.contains(b)).cloned().collect::<Vec<_>>())
        }) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => problems.push(format!("bridges still present: {}", left.join(", "))),
            Err(e) => problems.push(format!("removing bridges: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // 6. Confirm, then forget.
    for v in m.veths.iter().filter(|v| link_exists(v)) {
        problems.push(format!("interface {v} still exists"));
    }
    if problems.is_empty() {
        claim.remove().map_err(NetError::Registry)?;
        Ok(removed)
    } else {
        Err(NetError::Teardown(problems))
    }
}

/// Tear down the network `prefix` if no live process owns it (`reckon topo down`).
pub fn down(prefix: &str, ovs: &OvsConfig) -> Result<Removed, NetError> {
    require_root()?;
    match Claim::take_over(prefix).map_err(NetError::Registry)? {
        None => Err(NetError::Owned { prefix: prefix.into(), pid: registry::read(prefix).ok().flatten().and_then(|m| m.owner) }),
        Some((_, None)) => Err(NetError::NoNetwork(prefix.into())),
        Some((claim, Some(m))) => teardown(&claim, &m, ovs),
    }
}

/// What `reckon clean` did for one prefix.
pub struct Cleaned {
    pub prefix: String,
    pub result: Result<Removed, NetError>,
    /// Whether it was a crashed run (owner recorded) rather than a network left up on purpose.
    pub crashed: bool,
}

/// Remove every network no live reckon process owns (crashed runs and `topo up` leftovers).
/// With `only`, just that prefix. Networks of live runs are skipped and listed in the second value.
pub fn clean(only: Option<&str>, ovs: &OvsConfig) -> Result<(Vec<Cleaned>, Vec<String>), NetError> {
    require_root()?;
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    let prefixes = match only {
        Some(p) => vec![p.to_string()],
        None => registry::prefixes(),
    };
    for p in prefixes {
        match Claim::take_over(&p).map_err(NetError::Registry)? {
            None => skipped.push(p),
            Some((_, None)) => {}
            Some((claim, Some(m))) => {
                let result = teardown(&claim, &m, ovs);
                done.push(Cleaned { prefix: p, result, crashed: m.owner.is_some() });
            }
        }
    }
    Ok((done, skipped))
}

/// Shown by `reckon topo up`: one line per host.
pub fn describe(m: &Manifest) -> String {
    let mut s = format!("{:<8} {:<7} {:<4} {:<15} {:<8} {}\n", "HOST", "ROLE", "DC", "ADDRESS", "SWITCH", "NAMESPACE");
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

    #[test]
    fn link_groups_differ_between_prefixes() {
        let all = ["rk", "rk1", "rka", "a", "b", "aa", "zzzzzz", "a00000", "tcy", "tcya"];
        let groups: std::collections::HashSet<u32> = all.iter().map(|p| link_group(p)).collect();
        assert_eq!(groups.len(), all.len());
        assert!(all.iter().all(|p| link_group(p) > 1 << 20));
    }

    #[test]
    fn macs_are_local_and_follow_the_address() {
        assert_eq!(host_mac("10.0.1.3".parse().unwrap()), [2, 0, 10, 0, 1, 3]);
    }

    #[test]
    fn plan_names_everything_after_the_prefix() {
        let t = crate::topology::builtin("wan", crate::topology::Size { nodes: 3, clients: None }).unwrap();
        let m = plan("rk", &t).unwrap();
        assert_eq!(m.netns_of("h1"), Some("rk-h1"));
        assert!(m.veths.contains(&"rk-mc3".to_string()) && m.veths.contains(&"rk-s2-s1".to_string()));
        assert_eq!(m.bridges, ["rk-s1", "rk-s2", "rk-s3", "rk-s4"]);
        assert_eq!(switch_ports("abcdef", 7, "longname", "other"), ("abcdef-L7a".into(), "abcdef-L7b".into()));
    }
}
