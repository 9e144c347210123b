//! `reckon topo`: build, inspect, impair and remove emulated networks by hand; and the
//! arguments that say which topology, system and impairment (shared with `reckon run`'s
//! network options).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::{prefix_flag, Ctx};
use crate::net::{self, impair, Datapath, Network, NetworkOptions};
use crate::topology::{self, Size};
use crate::{signals, system};

#[derive(Subcommand)]
pub(super) enum Topo {
    /// Build a topology, check every pair of hosts reaches every other over ICMP and TCP, print
    /// the hosts and their addresses, and leave it up (remove it with `reckon topo down`).
    Up {
        #[command(flatten)]
        topo: TopoArgs,
        /// Stay in the foreground and tear the network down on Ctrl-C or SIGTERM.
        #[arg(long)]
        hold: bool,
    },
    /// Run a command inside a host of the network, e.g. `reckon topo exec h1 -- ip addr`.
    Exec {
        /// The host (e.g. h1, mc2).
        host: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Tear down the network left up by `reckon topo up` (or kept by a run with
    /// `--reuse-network`).
    Down,
    /// Change a link's impairment while the network is up, e.g.
    /// `reckon topo impair s2-s1 --latency 50 --loss 5`. Links are named by host (its link to
    /// its switch) or `a-b` between switches. Values are per link and direction, not end-to-end.
    Impair {
        /// The link: a host name, or `a-b` for a link between switches.
        link: String,
        /// One-way delay in ms.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        latency: f64,
        /// Delay standard deviation in ms (at most the latency).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        jitter: f64,
        /// Loss in percent.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        loss: f64,
        /// Let jitter reorder packets.
        #[arg(long)]
        reorder: bool,
        /// Which direction: forward (host -> switch, or a -> b), back, or both.
        #[arg(long, value_enum, default_value_t = Direction::Both)]
        direction: Direction,
    },
    /// Show every link's impairment and, with the userspace engine, its packet counters.
    Links,
    /// List the reckon networks on this machine.
    List,
}

#[derive(Args, Clone)]
pub(super) struct TopoArgs {
    /// A built-in topology: simple or wan.
    #[arg(
        required_unless_present = "topology_file",
        conflicts_with = "topology_file"
    )]
    topology: Option<String>,
    /// Your own topology file (TOML; see topologies/simple.toml for the format).
    #[arg(long, value_name = "FILE")]
    topology_file: Option<PathBuf>,
    /// Number of node hosts (for wan: data centres).
    #[arg(long, default_value_t = 3)]
    number_nodes: usize,
    /// Number of client hosts (simple; wan has one per data centre). Default 1.
    #[arg(long)]
    number_clients: Option<usize>,
    /// Open vSwitch datapath: auto picks kernel if the openvswitch module is present.
    #[arg(long, value_enum, default_value_t = Datapath::Auto)]
    datapath: Datapath,
    /// Skip the all-pairs ICMP+TCP connectivity check.
    #[arg(long)]
    no_check: bool,
    #[command(flatten)]
    impair: ImpairArgs,
    #[command(flatten)]
    system: SystemArgs,
}

/// The system under test, for `topo up` to start on the node hosts.
#[derive(Args, Clone)]
pub(super) struct SystemArgs {
    /// Start this system on the node hosts: etcd, etcd-pre-vote, etcd-3.5, zookeeper or nats.
    #[arg(long, conflicts_with = "system_file")]
    system: Option<String>,
    /// Your own system definition (TOML; see systems/etcd.toml).
    #[arg(long, value_name = "FILE")]
    system_file: Option<PathBuf>,
    /// Failure detector timeout in seconds (etcd: election timeout; heartbeat a tenth of it).
    #[arg(long, default_value_t = 1.0)]
    failure_timeout: f64,
    /// Where node logs go (default: /var/tmp/reckon/<prefix>-<time>/logs).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// How long the cluster may take to elect a leader, seconds.
    #[arg(long, default_value_t = 30.0)]
    ready_timeout: f64,
}

impl SystemArgs {
    fn def(&self) -> Result<Option<system::SystemDef>> {
        if !(self.failure_timeout > 0.0 && self.failure_timeout <= 60.0) {
            bail!(
                "--failure-timeout {}: give seconds, more than 0 and at most 60",
                self.failure_timeout
            );
        }
        Ok(match (&self.system, &self.system_file) {
            (_, Some(f)) => Some(system::from_file(f)?),
            (Some(n), None) => Some(system::builtin(n)?),
            (None, None) => None,
        })
    }
}

/// reckon's link flags: end-to-end figures between two hosts (see README, "Link impairment").
#[derive(Args, Clone)]
pub(super) struct ImpairArgs {
    /// One-way host-to-host delay in ms (wan: between data centres; none inside one).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    link_latency: f64,
    /// Delay standard deviation as a fraction of --link-latency (reckon's meaning), 0 to 1.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    link_jitter: f64,
    /// One-way host-to-host packet loss in percent, 0 to 100.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    link_loss: f64,
    /// Seed of the jitter and loss draws: the same seed drops the same packets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What applies impairment: auto picks netem when the kernel has sch_netem.
    #[arg(long, value_enum, default_value_t = impair::Backend::Auto)]
    impair_backend: impair::Backend,
    /// Give every link an impairment engine so any link can be impaired later with
    /// `reckon topo impair` (userspace backend; netem can always).
    #[arg(long)]
    impairable_all_links: bool,
}

impl ImpairArgs {
    fn options(&self) -> impair::ImpairOptions {
        impair::ImpairOptions {
            latency_ms: self.link_latency,
            jitter: self.link_jitter,
            loss_pct: self.link_loss,
            seed: self.seed,
            backend: self.impair_backend,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum Direction {
    Forward,
    Back,
    Both,
}

pub(super) fn resolve(t: &TopoArgs) -> Result<topology::Topology> {
    let size = Size {
        nodes: t.number_nodes,
        clients: t.number_clients,
    };
    Ok(match (&t.topology, &t.topology_file) {
        (_, Some(f)) => topology::from_file(f, size)?,
        (Some(name), None) => topology::builtin(name, size)?,
        (None, None) => bail!(
            "give a topology name ({}) or --topology-file",
            topology::CATALOG.known()
        ),
    })
}

pub(super) fn exec(ctx: &Ctx, cmd: Topo) -> Result<u8> {
    match cmd {
        Topo::Up { topo, hold } => {
            let t = resolve(&topo)?;
            let sys = topo.system.def()?;
            if let Some(def) = &sys {
                def.check_nodes(t.nodes().count())
                    .map_err(anyhow::Error::msg)?;
            }
            eprintln!(
                "reckon: bringing up {} as '{}': {} hosts, {} switches{}…",
                t.name,
                ctx.prefix,
                t.hosts.len(),
                t.switches.len(),
                if topo.no_check {
                    ""
                } else {
                    ", then checking every pair of hosts over ICMP and TCP"
                }
            );
            let started = std::time::Instant::now();
            let options = NetworkOptions {
                impair: topo.impair.options(),
                impairable_all: topo.impair.impairable_all_links,
                ..ctx.opts(topo.datapath, !topo.no_check)
            };
            let mut network = Network::up(&t, &options)
                .with_context(|| format!("bringing up topology {}", t.name))?;
            let cluster = match &sys {
                None => None,
                Some(def) => {
                    let stamp = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    let base = PathBuf::from(format!("/var/tmp/reckon/{}-{stamp}", ctx.prefix));
                    let copts = system::ClusterOptions {
                        failure_timeout: std::time::Duration::from_secs_f64(
                            topo.system.failure_timeout,
                        ),
                        log_dir: topo
                            .system
                            .log_dir
                            .clone()
                            .unwrap_or_else(|| base.join("logs")),
                        data_root: base.join("data"),
                    };
                    eprintln!(
                        "reckon: starting {} on {} node hosts…",
                        def.name,
                        t.nodes().count()
                    );
                    let c = system::Cluster::start(&mut network, def, &copts)?;
                    let leader = c.wait_ready(std::time::Duration::from_secs_f64(
                        topo.system.ready_timeout,
                    ))?;
                    out!(
                        "{} is up: leader {leader}; endpoints {}; logs in {}",
                        def.name,
                        c.endpoints().join(","),
                        copts.log_dir.display()
                    );
                    Some(c)
                }
            };
            let tm = &network.timings;
            out_raw!("{}", net::describe(network.manifest()));
            let check = if topo.no_check {
                "connectivity not checked".to_string()
            } else {
                format!(
                    "{} host pairs reach each other over ICMP and TCP ({:.0} ms)",
                    tm.pairs_checked,
                    tm.check.as_secs_f64() * 1e3
                )
            };
            let m = network.manifest();
            if let Some(b) = m.impair_backend {
                let impaired: Vec<String> = m
                    .impairments
                    .iter()
                    .filter(|l| !l.forward.is_none() || !l.back.is_none())
                    .map(|l| {
                        if l.forward == l.back {
                            format!("{} {}", l.link, l.forward)
                        } else {
                            format!("{} {} / back {}", l.link, l.forward, l.back)
                        }
                    })
                    .collect();
                let shown = impaired
                    .iter()
                    .take(4)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                let more = if impaired.len() > 4 {
                    format!("; and {} more (`reckon topo links`)", impaired.len() - 4)
                } else {
                    String::new()
                };
                out!(
                    "impaired by {} per link and direction: {shown}{more}",
                    match b {
                        impair::Backend::Netem => "netem",
                        _ => "the userspace engine",
                    }
                );
                if m.latency_compensation_ms > 0.0 {
                    out!("the network's own latency, {:.3} ms per delayed link, is taken off those links", m.latency_compensation_ms);
                }
            }
            out!(
                "network '{}' ({}) up in {:.0} ms; {check}",
                network.prefix(),
                t.name,
                started.elapsed().as_secs_f64() * 1e3
            );
            if hold {
                out!("ready; holding the network until Ctrl-C or SIGTERM");
                signals::wait();
                drop(cluster);
                let removed = network.down()?;
                out!("network '{}' torn down: removed {removed}", ctx.prefix);
            } else {
                if let Some(c) = cluster {
                    c.detach();
                }
                network.detach()?;
                out!(
                    "left up: `reckon{} topo exec <host> -- <cmd>` runs in a host; `reckon{} topo down` removes it",
                    prefix_flag(&ctx.prefix),
                    prefix_flag(&ctx.prefix)
                );
            }
        }
        Topo::Exec { host, command } => {
            net::require_root()?;
            let m = net::registry::read(&ctx.prefix)
                .context("reading the run registry")?
                .ok_or_else(|| net::NetError::NoNetwork(ctx.prefix.clone()))?;
            let mut cmd = net::command_in(&m, &host, &command[0])?;
            let status = cmd
                .args(&command[1..])
                .status()
                .with_context(|| format!("running {} in host {host}", command[0]))?;
            // The command's own exit code, or 128 + signal like a shell.
            let code = status.code().or_else(|| {
                std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s)
            });
            return Ok(code.unwrap_or(1).clamp(0, 255) as u8);
        }
        Topo::Impair {
            link,
            latency,
            jitter,
            loss,
            reorder,
            direction,
        } => {
            net::require_root()?;
            let mut m = net::registry::read(&ctx.prefix)
                .context("reading the run registry")?
                .ok_or_else(|| net::NetError::NoNetwork(ctx.prefix.clone()))?;
            let i = impair::Impairment {
                latency_ms: latency,
                jitter_ms: jitter,
                loss_pct: loss,
                reorder,
            };
            let (f, b) = match direction {
                Direction::Forward => (Some(i), None),
                Direction::Back => (None, Some(i)),
                Direction::Both => (Some(i), Some(i)),
            };
            net::set_impairment(&mut m, &link, f, b)?;
            net::registry::rewrite(&m).context("recording the change")?;
            out!(
                "link {link}: {i} ({})",
                match direction {
                    Direction::Forward => "forward",
                    Direction::Back => "back",
                    Direction::Both => "both directions",
                }
            );
        }
        Topo::Links => {
            net::require_root()?;
            let m = net::registry::read(&ctx.prefix)
                .context("reading the run registry")?
                .ok_or_else(|| net::NetError::NoNetwork(ctx.prefix.clone()))?;
            let stats = net::impairment_stats(&m)?;
            out!(
                "backend: {}",
                match m.impair_backend {
                    None => "none (no link impaired)".to_string(),
                    Some(b) => format!("{b:?}").to_lowercase(),
                }
            );
            if m.latency_compensation_ms > 0.0 {
                out!("(delays below are as asked; {:.3} ms, the network's own latency per delayed link, is taken off each when applied)", m.latency_compensation_ms);
            }
            for li in &m.impairments {
                out!(
                    "{:<10} forward {:<28} back {}",
                    li.link,
                    li.forward.to_string(),
                    li.back
                );
                for d in stats.iter().filter(|d| d.link == li.link) {
                    out!(
                        "{:<10}   {:<7} received {:>9}  dropped {:>8}  sent {:>9}",
                        "",
                        if d.forward { "forward" } else { "back" },
                        d.received,
                        d.dropped,
                        d.sent
                    );
                }
            }
        }
        Topo::Down => {
            let removed = net::down(&ctx.prefix, &ctx.ovs)?;
            out!("network '{}' torn down: removed {removed}", ctx.prefix);
        }
        Topo::List => {
            let prefixes = net::registry::prefixes();
            if prefixes.is_empty() {
                out!("no reckon networks");
            }
            for p in prefixes {
                match net::registry::read(&p) {
                    Ok(Some(m)) => out!(
                        "{p}: {} with {} hosts, {}",
                        m.topology.name,
                        m.topology.hosts.len(),
                        match m.owner {
                            Some(pid) => format!(
                                "owned by pid {pid} (if it is gone, `reckon clean` removes it)"
                            ),
                            None if m.kept => {
                                "kept for the next run with --reuse-network".into()
                            }
                            None => "left up by `reckon topo up`".into(),
                        }
                    ),
                    _ => out!("{p}: unreadable manifest"),
                }
            }
        }
    }
    Ok(0)
}
