//! Impairment on a live network: starting the userspace engine for the links it carries,
//! measuring the network's own latency (taken off delayed links), and setting or changing a
//! link's impairment through its backend — netem qdiscs, or a request to the engine over its
//! control socket.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{engine, Backend, Impairment, LinkImpairment};
use crate::net::build::{host_port, inner_host_ends, inner_switch_ends, switch_ports};
use crate::net::registry::{self, Manifest};
use crate::net::{check, check_interrupt, netns, NetError, Network, NetworkOptions, HOST_IFNAME};
use crate::topology::Host;

impl Network {
    /// Start the userspace engine, if the network uses it, with every link clear: the network is
    /// checked and measured unimpaired (so the check's packets draw nothing from the links' loss
    /// generators), then [`Network::impair`] sets the impairment.
    pub(crate) fn start_engine(&mut self, opts: &NetworkOptions) -> Result<(), NetError> {
        if self.manifest.impair_backend == Some(Backend::Userspace) {
            check_interrupt()?;
            tracing::info!(
                "starting the userspace impairment engine for {} links",
                self.manifest.split.len()
            );
            self.engine = Some(start_engine(&self.manifest, opts)?);
        }
        Ok(())
    }

    /// Set every link to what `opts` asks, its links clear before (just built, or cleared by
    /// [`Network::clear_impairment`]): first measure the network's own latency (see
    /// [`calibrate`]) unless it was measured for the links delayed now.
    pub(crate) fn impair(&mut self, opts: &NetworkOptions) -> Result<(), NetError> {
        if self.manifest.impair_backend.is_none() {
            return Ok(());
        }
        check_interrupt()?;
        self.manifest.impairments = super::plan(&self.manifest.topology, &opts.impair);
        if opts.calibrate && delayed_links(&self.manifest) != self.manifest.calibrated {
            self.manifest.latency_compensation_ms = calibrate(&self.manifest)?;
            self.manifest.calibrated = delayed_links(&self.manifest);
        }
        for li in self.manifest.impairments.clone() {
            if !li.forward.is_none() || !li.back.is_none() {
                apply(&self.manifest, &li)?;
            }
        }
        self.claim.write(&self.manifest).map_err(NetError::Registry)
    }

    /// Clear every link of a kept network, as if it had just been built: the userspace engine
    /// reset (pair rules and counters gone) and seeded with `seed`, or the netem qdiscs removed.
    pub(crate) fn clear_impairment(&mut self, seed: u64) -> Result<(), NetError> {
        match self.manifest.impair_backend {
            None => Ok(()),
            Some(Backend::Userspace) => {
                let (_, control, _) = registry::engine_paths(&self.manifest.prefix);
                let r =
                    engine::request(&control, &engine::Request::Reset { seed }).map_err(|e| {
                        NetError::Impair(format!("impairment engine at {}: {e}", control.display()))
                    })?;
                match r.ok {
                    true => Ok(()),
                    false => Err(NetError::Impair(r.error.unwrap_or_default())),
                }
            }
            Some(_) => {
                for li in &self.manifest.impairments {
                    let clear = LinkImpairment {
                        link: li.link.clone(),
                        forward: Impairment::default(),
                        back: Impairment::default(),
                    };
                    apply(&self.manifest, &clear)?;
                }
                Ok(())
            }
        }
    }

    /// Change a link's impairment while the network runs (either direction left `None` stays).
    pub fn set_impairment(
        &mut self,
        link: &str,
        forward: Option<Impairment>,
        back: Option<Impairment>,
    ) -> Result<(), NetError> {
        set_impairment(&mut self.manifest, link, forward, back)?;
        self.claim.write(&self.manifest).map_err(NetError::Registry)
    }

    /// Impair the packets between two hosts only, both ways (`None` clears it): loss and
    /// delay added on each host's own link as its packets to the other leave it, so every
    /// other pair stays as it was. Needs the userspace engine on the hosts' links.
    pub fn impair_between(
        &mut self,
        a: &str,
        b: &str,
        imp: Option<Impairment>,
    ) -> Result<(), NetError> {
        if let Some(i) = imp {
            i.validate().map_err(NetError::Impair)?;
        }
        let m = &self.manifest;
        let host = |n: &str| {
            m.topology
                .host(n)
                .ok_or_else(|| NetError::Impair(format!("no host named '{n}'")))
        };
        let (ha, hb) = (host(a)?, host(b)?);
        if m.impair_backend != Some(Backend::Userspace) {
            return Err(NetError::Impair(format!(
                "impairing the packets between {a} and {b} needs the userspace impairment engine on the hosts' links (network '{}' has {}); build it with --impair-backend userspace and --impairable-all-links",
                m.prefix,
                match m.impair_backend {
                    Some(Backend::Netem) => "netem",
                    _ => "no impairment",
                }
            )));
        }
        let (_, control, _) = registry::engine_paths(&m.prefix);
        for (from, to) in [(ha, hb), (hb, ha)] {
            if !m.split.contains(&from.name) {
                return Err(NetError::Impair(format!(
                    "host {}'s link has no impairment engine; build the network with --impairable-all-links",
                    from.name
                )));
            }
            let req = engine::Request::Pair {
                link: from.name.clone(),
                forward: true,
                src: from.ip,
                dst: to.ip,
                impairment: imp,
            };
            let r = engine::request(&control, &req).map_err(|e| {
                NetError::Impair(format!("impairment engine at {}: {e}", control.display()))
            })?;
            if !r.ok {
                return Err(NetError::Impair(r.error.unwrap_or_default()));
            }
        }
        Ok(())
    }

    /// The userspace engine's counters per link direction (empty with netem or no impairment).
    pub fn impairment_stats(&self) -> Result<Vec<engine::DirStats>, NetError> {
        impairment_stats(&self.manifest)
    }
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
fn apply_netem(m: &Manifest, li: &LinkImpairment) -> Result<(), NetError> {
    let devs = netem_devices(m, &li.link)
        .ok_or_else(|| NetError::Impair(format!("no link named '{}'", li.link)))?;
    for ((dev, ns), imp) in devs.iter().zip([li.forward, li.back]) {
        let args = super::netem_args(dev, &imp);
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
    forward: Option<Impairment>,
    back: Option<Impairment>,
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
fn apply(m: &Manifest, li: &LinkImpairment) -> Result<(), NetError> {
    let c = m.latency_compensation_ms;
    let applied = LinkImpairment {
        link: li.link.clone(),
        forward: li.forward.compensated(c),
        back: li.back.compensated(c),
    };
    match m.impair_backend {
        Some(Backend::Userspace) => {
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

/// Pings of the calibration, 20 ms apart (the median of all but the first four is taken): 0.3 s
/// of every network's build (a reused network measures again only if other links are delayed).
const CALIBRATION_PINGS: usize = 16;

/// The emulated network has a latency of its own (software switches, the engine's hops): in a
/// VM with the userspace datapath, a few hundred microseconds per switch. So that delayed links
/// add up to exactly the latency asked for, measure it once, with every link clear, on the pair
/// of hosts whose path crosses the most delayed links, and spread it over those links: returns
/// the one-way latency to take off each delayed link, in ms (0 if no link is delayed). The
/// pings are 20 ms apart, as a workload's packets are at reckon's rates; under much heavier
/// traffic the switches answer faster and the round trip comes out a little short.
fn calibrate(m: &Manifest) -> Result<f64, NetError> {
    let delayed = delayed_links(m);
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
                .map(|p| p.iter().filter(|l| delayed.contains(l)).count())
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
    let mut rtts = check::rtts(&fd, b.ip, CALIBRATION_PINGS, Duration::from_millis(20))
        .map_err(|e| NetError::Impair(format!("calibration ping {} -> {}: {e}", a.name, b.name)))?;
    if rtts.len() < CALIBRATION_PINGS - 4 {
        return Err(NetError::Impair(format!(
            "calibration: {} -> {} answered {} of {CALIBRATION_PINGS} pings",
            a.name,
            b.name,
            rtts.len()
        )));
    }
    let mut rtts = rtts.split_off(4); // the first ones warm up flows and caches
    rtts.sort();
    let median = rtts[rtts.len() / 2].as_secs_f64() * 1e3;
    let per_link = median / (2 * k) as f64;
    tracing::info!("calibration: {} -> {} round trip {median:.3} ms over {k} delayed links: {per_link:.3} ms taken off each", a.name, b.name);
    Ok(per_link)
}

/// The links the manifest's impairments delay.
fn delayed_links(m: &Manifest) -> Vec<String> {
    m.impairments
        .iter()
        .filter(|l| l.forward.latency_ms > 0.0 || l.back.latency_ms > 0.0)
        .map(|l| l.link.clone())
        .collect()
}

/// The userspace engine's counters of a live network.
pub fn impairment_stats(m: &Manifest) -> Result<Vec<engine::DirStats>, NetError> {
    if m.impair_backend != Some(Backend::Userspace) {
        return Ok(Vec::new());
    }
    let (_, control, _) = registry::engine_paths(&m.prefix);
    let r = engine::request(&control, &engine::Request::Stats)
        .map_err(|e| NetError::Impair(format!("impairment engine: {e}")))?;
    Ok(r.stats)
}
