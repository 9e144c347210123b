//! The emulated network. Division of labour: namespaces are hosts (`netns`); veth pairs are
//! links, created and addressed over rtnetlink (`rtnl`) with tx checksum offload off on both ends
//! (`ethtool`); Open vSwitch bridges are switches, configured over OVSDB (`ovs`); `check` proves
//! every pair of hosts talks over ICMP and TCP; `registry` records what a network created so it
//! can always be removed by exact name. [`Network`] owns one built network and tears it down when
//! dropped — on normal return, on error, on panic, and after Ctrl-C/SIGTERM (see `crate::signals`).

pub mod check;
pub mod engine;
pub mod ethtool;
pub mod impair;
pub mod netns;
pub mod openflow;
pub mod ovs;
pub mod registry;
pub mod rtnl;

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
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

/// The names a topology gets under a prefix.
fn plan(prefix: &str, topo: &Topology, opts: &NetworkOptions) -> Result<Manifest, NetError> {
    opts.impair.validate().map_err(NetError::Impair)?;
    let fits = |name: String, what: String| {
        if name.len() > IFNAMSIZ_MAX {
            Err(NetError::NameTooLong { name, what })
        } else {
            Ok(name)
        }
    };
    let namespaces = topo
        .hosts
        .iter()
        .map(|h| (h.name.clone(), format!("{prefix}-{}", h.name)))
        .collect();
    let mut veths = Vec::new();
    for h in &topo.hosts {
        veths.push(fits(
            host_port(prefix, h),
            format!("link of host {}", h.name),
        )?);
    }
    let impairments = impair::plan(topo, &opts.impair);
    let impaired = impairments
        .iter()
        .any(|l| !l.forward.is_none() || !l.back.is_none());
    let impair_backend = match (impaired || opts.impairable_all, opts.impair.backend) {
        (false, _) => None,
        (true, impair::Backend::Auto) => Some(if impair::netem_available() { impair::Backend::Netem } else { impair::Backend::Userspace }),
        (true, impair::Backend::Netem) if !impair::netem_available() => {
            return Err(NetError::Impair(format!(
                "--impair-backend netem: this kernel has no sch_netem (tc said: {}); use --impair-backend userspace or auto",
                impair::netem_probe().1
            )))
        }
        (true, b) => Some(b),
    };
    let split: Vec<String> = match impair_backend {
        Some(impair::Backend::Userspace) => impairments
            .iter()
            .filter(|l| opts.impairable_all || !l.forward.is_none() || !l.back.is_none())
            .map(|l| l.link.clone())
            .collect(),
        _ => Vec::new(),
    };
    for (k, l) in topo.links.iter().enumerate() {
        let (a, b) = switch_ports(prefix, k, &l.a, &l.b);
        let b = fits(b, format!("link {} - {}", l.b, l.a))?;
        veths.push(fits(a, format!("link {} - {}", l.a, l.b))?);
        if split.contains(&l.name()) {
            // Split: the far end is its own pair's root end.
            veths.push(b);
        }
    }
    let bridges = topo
        .switches
        .iter()
        .map(|s| fits(format!("{prefix}-{}", s.name), format!("switch {}", s.name)))
        .collect::<Result<_, _>>()?;
    let created_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Ok(Manifest {
        prefix: prefix.into(),
        owner: Some(std::process::id()),
        created_unix_ms,
        topology: topo.clone(),
        namespaces,
        veths,
        bridges,
        link_netns: (!split.is_empty()).then(|| format!("{prefix}.links")),
        impair_backend,
        impairments,
        split,
        latency_compensation_ms: 0.0,
        scratch: Vec::new(),
    })
}

/// The link group of a network's root-side links: the prefix read as a base-37 number (so two
/// prefixes never share a group), offset past the small groups other software uses.
pub fn link_group(prefix: &str) -> u32 {
    let digit = |c: char| match c {
        'a'..='z' => c as u32 - 'a' as u32 + 1,
        '0'..='9' => c as u32 - '0' as u32 + 27,
        _ => 0,
    };
    prefix
        .chars()
        .fold(0u32, |acc, c| acc.wrapping_mul(37).wrapping_add(digit(c)))
        .wrapping_add(1 << 20)
}

/// The MAC address of a host's interface: locally administered, then its IPv4 address.
pub fn host_mac(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Inner ends of a split host link, in the link namespace: towards the host, towards the switch.
fn inner_host_ends(h: &Host) -> (String, String) {
    (format!("{}.h", h.name), format!("{}.s", h.name))
}

/// Inner ends of the k-th split switch link: towards switch a, towards switch b.
fn inner_switch_ends(k: usize) -> (String, String) {
    (format!("L{k}.a"), format!("L{k}.b"))
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
        let manifest = plan(&opts.prefix, topo, opts)?;
        let mut db = opts.ovs.connect_or_start()?;
        let claim = Claim::new(&opts.prefix)?;
        // Names we are about to create must be free: never adopt what someone else made.
        for ns in manifest
            .namespaces
            .iter()
            .map(|(_, ns)| ns)
            .chain(&manifest.link_netns)
        {
            if netns::exists(ns) {
                return Err(NetError::Exists(format!("network namespace {ns}")));
            }
        }
        let far_ends = topo
            .links
            .iter()
            .enumerate()
            .map(|(k, l)| switch_ports(&opts.prefix, k, &l.a, &l.b).1);
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

    fn build(&mut self, db: &mut ovs::Ovsdb, datapath: Datapath) -> Result<(), NetError> {
        let topo = self.manifest.topology.clone();
        let prefix = self.manifest.prefix.clone();

        check_interrupt()?;
        let t = Instant::now();
        tracing::info!("creating {} namespaces", self.manifest.namespaces.len());
        for (host, ns) in &self.manifest.namespaces {
            netns::create(ns).map_err(|source| NetError::Host {
                host: host.clone(),
                what: format!("create namespace {ns}"),
                source,
            })?;
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
            .map(|(host, ns)| {
                netns::open(ns).map_err(|source| NetError::Host {
                    host: host.clone(),
                    what: format!("open namespace {ns}"),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let group = link_group(&prefix);
        let split = |name: &str| self.manifest.split.iter().any(|s| s == name);
        // A split link's inner ends live in the link namespace, with the engine between them.
        let links_fd = match &self.manifest.link_netns {
            Some(ns) => {
                netns::create(ns).map_err(|source| NetError::Host {
                    host: "links".into(),
                    what: format!("create namespace {ns}"),
                    source,
                })?;
                Some(netns::open(ns).map_err(|source| NetError::Host {
                    host: "links".into(),
                    what: format!("open namespace {ns}"),
                    source,
                })?)
            }
            None => None,
        };
        let lfd = links_fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let mut reqs = Vec::new();
        let mut inner_reqs = Vec::new();
        let mut root_ends = Vec::new();
        let mut inner_ends = Vec::new();
        for (h, fd) in topo.hosts.iter().zip(&fds) {
            let port = host_port(&prefix, h);
            let ns_fd = Some(std::os::fd::AsRawFd::as_raw_fd(fd));
            if split(&h.name) {
                let (to_host, to_switch) = inner_host_ends(h);
                reqs.push(rtnl::Request::add_veth(&port, group, &to_switch, lfd, None));
                inner_reqs.push(rtnl::Request::add_veth(
                    &to_host,
                    0,
                    HOST_IFNAME,
                    ns_fd,
                    Some(host_mac(h.ip)),
                ));
                inner_ends.extend([to_host, to_switch]);
            } else {
                reqs.push(rtnl::Request::add_veth(
                    &port,
                    group,
                    HOST_IFNAME,
                    ns_fd,
                    Some(host_mac(h.ip)),
                ));
            }
            root_ends.push(port);
        }
        for (k, l) in topo.links.iter().enumerate() {
            let (a, b) = switch_ports(&prefix, k, &l.a, &l.b);
            if split(&l.name()) {
                let (ia, ib) = inner_switch_ends(k);
                reqs.push(rtnl::Request::add_veth(&a, group, &ia, lfd, None));
                reqs.push(rtnl::Request::add_veth(&b, group, &ib, lfd, None));
                inner_ends.extend([ia, ib]);
            } else {
                reqs.push(rtnl::Request::add_veth(&a, group, &b, None, None));
            }
            root_ends.push(a);
            root_ends.push(b);
        }
        let mut rt = rtnl::Rtnl::open().map_err(|source| NetError::Host {
            host: "root".into(),
            what: "open rtnetlink".into(),
            source,
        })?;
        rt.run_all(reqs)
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
        // Root-side ends: no IPv6 (no stray solicitations into the switches), no checksum
        // offload, then up.
        let eth = ethtool::Ethtool::open().map_err(|source| NetError::Host {
            host: "root".into(),
            what: "open ethtool socket".into(),
            source,
        })?;
        for end in &root_ends {
            netns::disable_ipv6(end);
            eth.tx_checksum_off(end).map_err(|source| NetError::Host {
                host: "root".into(),
                what: format!("configure {end}"),
                source,
            })?;
        }
        rt.run_all(
            root_ends
                .iter()
                .map(|e| rtnl::Request::link_up(e))
                .collect(),
        )
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
        if let Some(fd) = &links_fd {
            let err = |what: String, source: io::Error| NetError::Host {
                host: "links".into(),
                what,
                source,
            };
            netns::in_netns(fd, || -> Result<(), NetError> {
                let mut rt = rtnl::Rtnl::open().map_err(|e| err("open rtnetlink".into(), e))?;
                inner_reqs.extend(inner_ends.iter().map(|e| rtnl::Request::link_up(e)));
                for r in rt.run_all(inner_reqs) {
                    r?;
                }
                let eth =
                    ethtool::Ethtool::open().map_err(|e| err("open ethtool socket".into(), e))?;
                for end in &inner_ends {
                    eth.tx_checksum_off(end)
                        .map_err(|e| err(format!("configure {end}"), e))?;
                }
                Ok(())
            })
            .map_err(|e| err("enter namespace".into(), e))??;
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
            handles
                .into_iter()
                .map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.timings.hosts = t.elapsed();

        // Switches: every bridge and port in one OVSDB transaction.
        check_interrupt()?;
        tracing::info!(
            "creating {} switches ({} datapath)",
            topo.switches.len(),
            match datapath.resolve() {
                Datapath::Kernel => "kernel",
                _ => "userspace",
            }
        );
        let t = Instant::now();
        let mut bridges: Vec<ovs::BridgeSpec> = topo
            .switches
            .iter()
            .map(|s| ovs::BridgeSpec {
                name: format!("{prefix}-{}", s.name),
                ports: Vec::new(),
            })
            .collect();
        let idx = |name: &str| {
            topo.switches
                .iter()
                .position(|s| s.name == name)
                .expect("validated switch name")
        };
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

    /// Start the userspace engine, if the network uses it, with every link clear: the network is
    /// checked and measured unimpaired (so the check's packets draw nothing from the links' loss
    /// generators), then [`Network::impair`] sets the impairment.
    fn start_engine(&mut self, opts: &NetworkOptions) -> Result<(), NetError> {
        if self.manifest.impair_backend == Some(impair::Backend::Userspace) {
            check_interrupt()?;
            tracing::info!(
                "starting the userspace impairment engine for {} links",
                self.manifest.split.len()
            );
            self.engine = Some(start_engine(&self.manifest, opts)?);
        }
        Ok(())
    }

    /// Measure the network's own latency if any link is delayed (see [`calibrate`]), then set
    /// every impaired link.
    fn impair(&mut self, opts: &NetworkOptions) -> Result<(), NetError> {
        if self.manifest.impair_backend.is_none() {
            return Ok(());
        }
        check_interrupt()?;
        if opts.calibrate {
            self.manifest.latency_compensation_ms = calibrate(&self.manifest)?;
        }
        for li in self.manifest.impairments.clone() {
            if !li.forward.is_none() || !li.back.is_none() {
                apply(&self.manifest, &li)?;
            }
        }
        self.claim.write(&self.manifest).map_err(NetError::Registry)
    }

    /// Change a link's impairment while the network runs (either direction left `None` stays).
    pub fn set_impairment(
        &mut self,
        link: &str,
        forward: Option<impair::Impairment>,
        back: Option<impair::Impairment>,
    ) -> Result<(), NetError> {
        set_impairment(&mut self.manifest, link, forward, back)?;
        self.claim.write(&self.manifest).map_err(NetError::Registry)
    }

    /// The userspace engine's counters per link direction (empty with netem or no impairment).
    pub fn impairment_stats(&self) -> Result<Vec<engine::DirStats>, NetError> {
        impairment_stats(&self.manifest)
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

    /// Open OpenFlow connections to every switch now, so that later cuts take effect at once.
    pub fn connect_switches(&mut self) -> Result<(), NetError> {
        let rundir = self
            .ovs
            .socket
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| "/var/run/openvswitch".into());
        for b in self.manifest.bridges.clone() {
            if !self.switches.contains_key(&b) {
                let c = openflow::OfConn::connect(&rundir, &b)
                    .map_err(|e| NetError::Impair(format!("OpenFlow connection to {b}: {e}")))?;
                self.switches.insert(b, c);
            }
        }
        Ok(())
    }

    /// Cut hosts `a` from hosts `b` (both ways, or only a -> b when `oneway`): drop rules on the
    /// switch where each source's packets enter. Returns the number of directed pairs cut.
    pub fn partition(
        &mut self,
        a: &[String],
        b: &[String],
        oneway: bool,
    ) -> Result<usize, NetError> {
        self.connect_switches()?;
        let topo = &self.manifest.topology;
        let host = |n: &String| {
            topo.host(n).ok_or_else(|| NetError::NoSuchHost {
                host: n.clone(),
                prefix: self.manifest.prefix.clone(),
                known: topo
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        };
        let mut by_bridge: std::collections::BTreeMap<
            String,
            Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
        > = Default::default();
        for x in a {
            for y in b {
                let (hx, hy) = (host(x)?, host(y)?);
                if hx.name == hy.name {
                    continue;
                }
                by_bridge
                    .entry(format!("{}-{}", self.manifest.prefix, hx.switch))
                    .or_default()
                    .push((hx.ip, hy.ip));
                if !oneway {
                    by_bridge
                        .entry(format!("{}-{}", self.manifest.prefix, hy.switch))
                        .or_default()
                        .push((hy.ip, hx.ip));
                }
            }
        }
        let mut n = 0;
        for (bridge, pairs) in by_bridge {
            let conn = self.switches.get_mut(&bridge).expect("connected above");
            conn.drops(&pairs, true)
                .map_err(|e| NetError::Impair(format!("partition on {bridge}: {e}")))?;
            n += pairs.len();
            self.cuts.push((bridge, pairs));
        }
        self.purge_datapath()?;
        Ok(n)
    }

    /// The switches' rules are in place once the barrier returns, but the datapath keeps
    /// forwarding cached flows until ovs-vswitchd's revalidators catch up (up to half a second):
    /// purge the cache, so the next packets are switched under the new rules at once.
    fn purge_datapath(&self) -> Result<(), NetError> {
        self.ovs
            .vswitchd_command("revalidator/purge", &[])
            .map(|_| ())
            .map_err(NetError::Ovs)
    }

    /// Remove every cut made by [`Network::partition`]; returns how many directed pairs healed.
    pub fn heal(&mut self) -> Result<usize, NetError> {
        let mut n = 0;
        for (bridge, pairs) in std::mem::take(&mut self.cuts) {
            let conn = self
                .switches
                .get_mut(&bridge)
                .expect("cut through this connection");
            conn.drops(&pairs, false)
                .map_err(|e| NetError::Impair(format!("heal on {bridge}: {e}")))?;
            n += pairs.len();
        }
        if n > 0 {
            self.purge_datapath()?;
        }
        Ok(n)
    }

    /// Record a directory the run created (for its processes) so that teardown, or `reckon
    /// clean` after a crash, removes it once those processes are gone.
    pub fn add_scratch(&mut self, dir: &std::path::Path) -> Result<(), NetError> {
        self.manifest.scratch.push(dir.to_path_buf());
        self.claim.write(&self.manifest).map_err(NetError::Registry)
    }

    /// Leave the network up after this process exits; `reckon topo down` (or `clean`) removes it.
    pub fn detach(mut self) -> Result<Manifest, NetError> {
        self.manifest.owner = None;
        self.claim
            .write(&self.manifest)
            .map_err(NetError::Registry)?;
        self.owned = false;
        self.engine = None;
        Ok(self.manifest.clone())
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

/// Inside the host: checksum offload off, address on, link up, and a permanent ARP entry for
/// every other host (no ARP storms when many hosts first talk at once, and a healed partition
/// carries traffic at once instead of waiting for ARP to recover).
fn configure_host(h: &Host, fd: &std::os::fd::OwnedFd, topo: &Topology) -> Result<(), NetError> {
    let err = |what: &str, source: io::Error| NetError::Host {
        host: h.name.clone(),
        what: what.into(),
        source,
    };
    netns::in_netns(fd, || -> Result<(), NetError> {
        ethtool::Ethtool::open()
            .and_then(|e| e.tx_checksum_off(HOST_IFNAME))
            .map_err(|e| err("turn off tx checksum offload", e))?;
        let index =
            nix::net::if_::if_nametoindex(HOST_IFNAME).map_err(|e| err("find eth0", e.into()))?;
        let mut rt = rtnl::Rtnl::open().map_err(|e| err("open rtnetlink", e))?;
        let mut reqs = vec![
            rtnl::Request::add_ipv4(index, h.ip, topo.prefix_len),
            rtnl::Request::link_up(HOST_IFNAME),
        ];
        for other in topo.hosts.iter().filter(|o| o.name != h.name) {
            reqs.push(rtnl::Request::add_neighbour(
                index,
                other.ip,
                host_mac(other.ip),
            ));
        }
        for r in rt.run_all(reqs) {
            r.map_err(|e| err(&e.what, e.error))?;
        }
        Ok(())
    })
    .map_err(|e| err("enter namespace", e))?
}

/// How to run the engine: the options' `engine_bin`, else [`crate::SelfCommand::current`].
pub fn engine_bin(opts: &NetworkOptions) -> crate::SelfCommand {
    match &opts.engine_bin {
        Some(b) => crate::SelfCommand::binary(b),
        None => crate::SelfCommand::current(),
    }
}

/// Start `reckon __impair-engine` inside the link namespace, detached from our session, and wait
/// for its `ready`.
fn start_engine(m: &Manifest, opts: &NetworkOptions) -> Result<std::process::Child, NetError> {
    let (_, control, _) = registry::engine_paths(&m.prefix);
    let links = m
        .impairments
        .iter()
        .filter(|li| m.split.contains(&li.link))
        .map(|li| {
            let ends = match m.topology.host(&li.link) {
                Some(h) => inner_host_ends(h),
                None => {
                    let k = m
                        .topology
                        .links
                        .iter()
                        .position(|l| l.name() == li.link)
                        .expect("planned link");
                    inner_switch_ends(k)
                }
            };
            // Clear at first: impairment is set once the network's own latency is measured.
            engine::EngineLink {
                link: li.link.clone(),
                ends: [ends.0, ends.1],
                forward: Default::default(),
                back: Default::default(),
            }
        })
        .collect();
    let spec = engine::EngineSpec {
        seed: opts.impair.seed,
        control,
        links,
    };
    spawn_engine(
        &spec,
        &m.prefix,
        m.link_netns.as_deref().unwrap_or_default(),
        &engine_bin(opts),
    )
}

/// Run `bin __impair-engine` for `spec` inside namespace `link_netns`, in a session of its own
/// (a Ctrl-C in the terminal does not reach it; teardown stops it), and wait for its `ready`.
/// Its spec and log go to the network's engine files.
pub fn spawn_engine(
    spec: &engine::EngineSpec,
    prefix: &str,
    link_netns: &str,
    bin: &crate::SelfCommand,
) -> Result<std::process::Child, NetError> {
    let (spec_path, _, log_path) = registry::engine_paths(prefix);
    let fail = |e: String| NetError::Engine(e);
    std::fs::write(
        &spec_path,
        serde_json::to_vec_pretty(spec).map_err(|e| fail(e.to_string()))?,
    )
    .map_err(|e| fail(format!("{}: {e}", spec_path.display())))?;
    let log = std::fs::File::create(&log_path)
        .map_err(|e| fail(format!("{}: {e}", log_path.display())))?;
    let ns = netns::open(link_netns)
        .map_err(|e| fail(format!("open link namespace {link_netns}: {e}")))?;
    let mut cmd = bin.command();
    cmd.arg("__impair-engine")
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    unsafe {
        cmd.pre_exec(move || {
            netns::enter(&ns)?;
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("could not run {bin}: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.trim() == "ready" => Ok(child),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = if other.is_err() {
                "no answer within 10 s".to_string()
            } else {
                "it exited".to_string()
            };
            Err(fail(format!(
                "{why}; its log ({}):\n{}",
                log_path.display(),
                log.trim()
            )))
        }
    }
}

/// The devices whose egress carries a link's forward and back directions with netem, and the
/// namespace of each (`None`: root).
fn netem_devices(m: &Manifest, link: &str) -> Option<[(String, Option<String>); 2]> {
    if let Some(h) = m.topology.host(link) {
        let ns = m.netns_of(&h.name).map(String::from);
        return Some([
            (HOST_IFNAME.to_string(), ns),
            (host_port(&m.prefix, h), None),
        ]);
    }
    let k = m.topology.links.iter().position(|l| l.name() == link)?;
    let l = &m.topology.links[k];
    let (a, b) = switch_ports(&m.prefix, k, &l.a, &l.b);
    Some([(a, None), (b, None)])
}

/// Set `li` (as given, already compensated) with netem qdiscs.
fn apply_netem(m: &Manifest, li: &impair::LinkImpairment) -> Result<(), NetError> {
    let devs = netem_devices(m, &li.link)
        .ok_or_else(|| NetError::Impair(format!("no link named '{}'", li.link)))?;
    for ((dev, ns), imp) in devs.iter().zip([li.forward, li.back]) {
        let args = impair::netem_args(dev, &imp);
        let mut cmd = Command::new("tc");
        cmd.args(&args);
        if let Some(ns) = ns {
            let fd = netns::open(ns)
                .map_err(|e| NetError::Impair(format!("open namespace {ns}: {e}")))?;
            unsafe {
                cmd.pre_exec(move || netns::enter(&fd));
            }
        }
        let o = cmd
            .output()
            .map_err(|e| NetError::Impair(format!("could not run tc: {e}")))?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        // Removing a qdisc that is not there is fine.
        if !o.status.success() && !(imp.is_none() && stderr.contains("No such file")) {
            return Err(NetError::Impair(format!(
                "tc {}: {}",
                args.join(" "),
                stderr.trim()
            )));
        }
    }
    Ok(())
}

/// Change a link's impairment in a live network described by `m` (and record it in `m`).
pub fn set_impairment(
    m: &mut Manifest,
    link: &str,
    forward: Option<impair::Impairment>,
    back: Option<impair::Impairment>,
) -> Result<(), NetError> {
    for i in [forward, back].iter().flatten() {
        i.validate().map_err(NetError::Impair)?;
    }
    let known = || {
        m.impairments
            .iter()
            .map(|l| l.link.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(idx) = m.impairments.iter().position(|l| l.link == link) else {
        return Err(NetError::Impair(format!(
            "no link named '{link}'; links: {}",
            known()
        )));
    };
    let mut li = m.impairments[idx].clone();
    li.forward = forward.unwrap_or(li.forward);
    li.back = back.unwrap_or(li.back);
    apply(m, &li)?;
    m.impairments[idx] = li;
    Ok(())
}

/// Set a link's impairment (less the network's latency compensation) through its backend.
fn apply(m: &Manifest, li: &impair::LinkImpairment) -> Result<(), NetError> {
    let c = m.latency_compensation_ms;
    let applied = impair::LinkImpairment {
        link: li.link.clone(),
        forward: li.forward.compensated(c),
        back: li.back.compensated(c),
    };
    match m.impair_backend {
        Some(impair::Backend::Userspace) => {
            if !m.split.contains(&li.link) {
                return Err(NetError::Impair(format!(
                    "link '{}' has no impairment engine (impairable: {}); build the network with --impairable-all-links to impair any link later",
                    li.link,
                    m.split.join(", ")
                )));
            }
            let (_, control, _) = registry::engine_paths(&m.prefix);
            let req = engine::Request::Set { link: li.link.clone(), forward: Some(applied.forward), back: Some(applied.back) };
            let r = engine::request(&control, &req).map_err(|e| NetError::Impair(format!("impairment engine at {}: {e}", control.display())))?;
            if r.ok { Ok(()) } else { Err(NetError::Impair(r.error.unwrap_or_default())) }
        }
        Some(_) => apply_netem(m, &applied),
        None => Err(NetError::Impair(format!(
            "network '{}' was built without impairment; build it with a --link-* flag (or --impairable-all-links) to change link {} later",
            m.prefix, li.link
        ))),
    }
}

/// The emulated network has a latency of its own (software switches, the engine's hops): in a
/// VM with the userspace datapath, a few hundred microseconds per switch. So that delayed links
/// add up to exactly the latency asked for, measure it once, with every link clear, on the pair
/// of hosts whose path crosses the most delayed links, and spread it over those links: returns
/// the one-way latency to take off each delayed link, in ms (0 if no link is delayed). The
/// pings are 20 ms apart, as a workload's packets are at reckon's rates; under much heavier
/// traffic the switches answer faster and the round trip comes out a little short.
fn calibrate(m: &Manifest) -> Result<f64, NetError> {
    let delayed: Vec<&str> = m
        .impairments
        .iter()
        .filter(|l| l.forward.latency_ms > 0.0 || l.back.latency_ms > 0.0)
        .map(|l| l.link.as_str())
        .collect();
    if delayed.is_empty() {
        return Ok(0.0);
    }
    let hosts = &m.topology.hosts;
    let mut best: Option<(usize, &Host, &Host)> = None;
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let k = m
                .topology
                .path(&a.name, &b.name)
                .map(|p| p.iter().filter(|l| delayed.contains(&l.as_str())).count())
                .unwrap_or(0);
            if k > best.map_or(0, |(bk, _, _)| bk) {
                best = Some((k, a, b));
            }
        }
    }
    let Some((k, a, b)) = best else {
        return Ok(0.0);
    };
    let fd = netns::open(m.netns_of(&a.name).unwrap_or_default())
        .map_err(|e| NetError::Impair(format!("calibration: {e}")))?;
    // Spaced like a workload's packets, so the switches' wake-up from idle is counted too.
    let mut rtts = check::rtts(&fd, b.ip, 25, Duration::from_millis(20))
        .map_err(|e| NetError::Impair(format!("calibration ping {} -> {}: {e}", a.name, b.name)))?;
    if rtts.len() < 15 {
        return Err(NetError::Impair(format!(
            "calibration: {} -> {} answered {} of 25 pings",
            a.name,
            b.name,
            rtts.len()
        )));
    }
    let mut rtts = rtts.split_off(5); // the first ones warm up flows and caches
    rtts.sort();
    let median = rtts[rtts.len() / 2].as_secs_f64() * 1e3;
    let per_link = median / (2 * k) as f64;
    tracing::info!("calibration: {} -> {} round trip {median:.3} ms over {k} delayed links: {per_link:.3} ms taken off each", a.name, b.name);
    Ok(per_link)
}

/// The userspace engine's counters of a live network.
pub fn impairment_stats(m: &Manifest) -> Result<Vec<engine::DirStats>, NetError> {
    if m.impair_backend != Some(impair::Backend::Userspace) {
        return Ok(Vec::new());
    }
    let (_, control, _) = registry::engine_paths(&m.prefix);
    let r = engine::request(&control, &engine::Request::Stats)
        .map_err(|e| NetError::Impair(format!("impairment engine: {e}")))?;
    Ok(r.stats)
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

/// Remove everything in `m`, by exact name, and confirm it is gone. The caller holds the claim.
pub(crate) fn teardown(claim: &Claim, m: &Manifest, ovs: &OvsConfig) -> Result<Removed, NetError> {
    let mut removed = Removed::default();
    let mut problems = Vec::new();
    let t0 = Instant::now();
    removed.veths = m.veths.iter().filter(|v| link_exists(v)).count();
    // 1. Processes: a namespace is only freed (and its veths with it) once nothing holds it.
    let all_ns: Vec<(&str, &str)> = m
        .namespaces
        .iter()
        .map(|(h, ns)| (h.as_str(), ns.as_str()))
        .chain(m.link_netns.as_deref().map(|ns| ("(links)", ns)))
        .collect();
    for (host, ns) in &all_ns {
        match netns::kill_processes(ns, Duration::from_secs(2)) {
            Ok(p) => removed.processes += p.len(),
            Err(e) => problems.push(format!("host {host}: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // Scratch directories, now that no process of the run uses them.
    for d in &m.scratch {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                problems.push(format!("remove {}: {e}", d.display()))
            }
            _ => {}
        }
    }
    // 3. Namespaces: the kernel then removes every host link in one batch.
    for (host, ns) in &all_ns {
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
            Ok(m.bridges
                .iter()
                .filter(|b| after.contains(b))
                .cloned()
                .collect::<Vec<_>>())
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
        None => Err(NetError::Owned {
            prefix: prefix.into(),
            pid: registry::read(prefix).ok().flatten().and_then(|m| m.owner),
        }),
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
                done.push(Cleaned {
                    prefix: p,
                    result,
                    crashed: m.owner.is_some(),
                });
            }
        }
    }
    Ok((done, skipped))
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

    #[test]
    fn link_groups_differ_between_prefixes() {
        let all = [
            "rk", "rk1", "rka", "a", "b", "aa", "zzzzzz", "a00000", "tcy", "tcya",
        ];
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
        let t = crate::topology::builtin(
            "wan",
            crate::topology::Size {
                nodes: 3,
                clients: None,
            },
        )
        .unwrap();
        let m = plan("rk", &t, &NetworkOptions::default()).unwrap();
        assert_eq!(m.netns_of("h1"), Some("rk-h1"));
        assert!(
            m.veths.contains(&"rk-mc3".to_string()) && m.veths.contains(&"rk-s2-s1".to_string())
        );
        assert_eq!(m.bridges, ["rk-s1", "rk-s2", "rk-s3", "rk-s4"]);
        assert_eq!(
            switch_ports("abcdef", 7, "longname", "other"),
            ("abcdef-L7a".into(), "abcdef-L7b".into())
        );
    }
}
