//! The `reckon` command line: its arguments (clap) and what each command does. The `reckon`
//! binary and `python -m reckon` both call [`main`]; the Python module also parses `reckon run`
//! arguments here ([`parse_run`]) so its keyword arguments and the flags cannot drift apart.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::net::{self, impair, Datapath, Network, NetworkOptions, OvsConfig};
use crate::topology::{self, Size};
use crate::{bench, doctor, signals, system};

/// Benchmark consensus systems for availability and latency under partial network failures,
/// on an emulated network of namespaces and Open vSwitch switches.
#[derive(Parser)]
#[command(name = "reckon", version, propagate_version = true)]
struct Cli {
    /// Prefix of every namespace, link and switch a network creates (1-6 lowercase letters or
    /// digits). Networks with different prefixes coexist.
    #[arg(long, global = true, env = "RECKON_PREFIX", default_value = net::DEFAULT_PREFIX)]
    prefix: String,
    /// Log more (repeat for more still).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build, inspect and remove emulated networks by hand.
    #[command(subcommand)]
    Topo(Topo),
    /// Run an experiment: build <topology>, start <system> on its node hosts, drive <workload>
    /// from its client hosts (open loop) while <fault> plays, and write the results
    /// (config.json, ops.csv, faults.csv, summary.json, timeseries.csv, histograms, node logs).
    Run(Box<RunArgs>),
    /// Run a sweep plan: a grid over run parameters with repeats, one folder per run and a
    /// results.csv; resumable; `--shard i/n` runs one of n slices; `reckon sweep merge` joins them.
    #[command(args_conflicts_with_subcommands = true)]
    Sweep(SweepArgs),
    /// Write a self-contained report.html for a run's result folder (plots embedded, summary
    /// tables, fault events, configuration) or a sweep's (figures against the varying
    /// parameter, a row per run) that opens in a browser with no server.
    Report {
        /// The result folder of a `reckon run` or a `reckon sweep`.
        dir: PathBuf,
    },
    /// Remove every reckon network that no running reckon process owns: leftovers of crashed
    /// runs and networks left up by `reckon topo up`. Removes only what those runs recorded
    /// creating, by exact name.
    Clean {
        /// Only the network with this prefix (default: all of them).
        #[arg(long = "only")]
        only: Option<String>,
    },
    /// Check this machine can run experiments, and say how to fix what is missing.
    Doctor,
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(Bench),
    /// The userspace impairment engine of one network (started by reckon itself).
    #[command(name = "__impair-engine", hide = true)]
    ImpairEngine { spec: PathBuf },
}

#[derive(Subcommand)]
enum Topo {
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
    /// Tear down the network left up by `reckon topo up`.
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

#[derive(Args)]
struct SweepArgs {
    #[command(subcommand)]
    merge: Option<SweepCmd>,
    /// The plan (TOML: repeats, shuffle, [fixed] and [grid] of run parameters; see
    /// scripts/lossy-etcd.toml).
    plan: Option<PathBuf>,
    /// The sweep's folder (default: results/sweep-<plan name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only the i-th of n disjoint slices (for a Slurm job array or a Kubernetes Indexed Job).
    #[arg(long, value_name = "i/n")]
    shard: Option<String>,
}

#[derive(Subcommand)]
enum SweepCmd {
    /// Join the results.csv of several shards' folders.
    Merge {
        /// The shards' folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the joined results.csv goes.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// The system under test: etcd, etcd-pre-vote, etcd-3.5 or zookeeper (with --system-file: a
    /// label).
    system: String,
    /// The topology: simple or wan.
    topology: String,
    /// The workload: uniform.
    workload: String,
    /// The fault: none, leader, leader-only, partial-partition, intermittent-partial,
    /// intermittent-full or kill-n.
    fault: String,
    /// Number of nodes (for wan: data centres).
    #[arg(long, default_value_t = 3)]
    number_nodes: usize,
    /// Number of client hosts (simple; wan has one per data centre).
    #[arg(long)]
    number_clients: Option<usize>,
    /// One-way host-to-host delay in ms (reckon's default, 20).
    #[arg(long, default_value_t = 20.0, allow_negative_numbers = true)]
    link_latency: f64,
    /// One-way host-to-host loss in percent.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    link_loss: f64,
    /// Delay standard deviation as a fraction of --link-latency.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    link_jitter: f64,
    /// What applies impairment.
    #[arg(long, value_enum, default_value_t = impair::Backend::Auto)]
    impair_backend: impair::Backend,
    /// Operations per second, over all clients.
    #[arg(long, default_value_t = 100.0, allow_negative_numbers = true)]
    rate: f64,
    /// Share of writes, 0 to 1 (default: the workload's, 1).
    #[arg(long, allow_negative_numbers = true)]
    write_ratio: Option<f64>,
    /// Keys are 0..=max-key (default: the workload's, 1).
    #[arg(long)]
    max_key: Option<u64>,
    /// Bytes per written value (default: the workload's, 10).
    #[arg(long)]
    payload_size: Option<usize>,
    /// How operation times are drawn.
    #[arg(long, value_enum, default_value_t = crate::workload::Arrival::Uniform)]
    arrival_process: crate::workload::Arrival,
    /// Seconds.
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    duration: f64,
    /// Mean time between failures for the intermittent faults, seconds.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    mtbf: f64,
    /// Nodes the kill-n fault kills at the start.
    #[arg(long, default_value_t = 1)]
    kill_n: usize,
    /// Allow a fault to kill a majority of the nodes.
    #[arg(long)]
    allow_no_quorum: bool,
    /// Failure detector timeout, seconds (etcd: election timeout).
    #[arg(long, default_value_t = 1.0)]
    failure_timeout: f64,
    /// Where the results go (default: results/<system>-<topology>-<workload>-<fault>-<time>).
    #[arg(long)]
    result_location: Option<PathBuf>,
    /// Seed of the workload's schedule and the links' jitter and loss.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How the built-in client picks endpoints (what real client it models): sticky (stay on
    /// the endpoint that answered, starting in the client's own data centre; `local` is the
    /// same), leader, or all (clientv3's round-robin, as reckon's Go client).
    #[arg(long, value_enum, default_value_t = crate::client::etcd::Target::Sticky)]
    client_target: crate::client::etcd::Target,
    /// Per-operation timeout, seconds: it covers the whole operation, every endpoint tried.
    #[arg(long, default_value_t = 1.0)]
    op_timeout: f64,
    /// Operations outstanding per client host at most; one that falls due at the bound is not
    /// sent and is recorded as an "overloaded" error.
    #[arg(long, default_value_t = crate::run::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// A fault file of your own instead of a named fault.
    #[arg(long, value_name = "FILE")]
    fault_file: Option<PathBuf>,
    /// A system definition of your own (TOML; see systems/) instead of a named system.
    #[arg(long, value_name = "FILE")]
    system_file: Option<PathBuf>,
    /// An external client speaking reckon's stdio protocol, instead of the built-in one; it is
    /// run in each client host as `<cmd> --targets=<urls> --id=<n> --ncpr=false`.
    #[arg(long, value_name = "CMD")]
    client_cmd: Option<String>,
    /// Debug: build the network and start the system, then take commands (`<host> <cmd…>`,
    /// `partition A B`, `heal`, `kill N`, `restart N`, `leader`, `help`…) until `exit`.
    #[arg(short = 'd')]
    debug: bool,
}

#[derive(Args, Clone)]
struct TopoArgs {
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
struct SystemArgs {
    /// Start this system on the node hosts: etcd, etcd-pre-vote, etcd-3.5 or zookeeper.
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
struct ImpairArgs {
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
enum Direction {
    Forward,
    Back,
    Both,
}

#[derive(Subcommand)]
enum Bench {
    /// Measure the userspace impairment engine alone (two namespaces joined only through it):
    /// the error of the delay it adds and its CPU at several packet rates, and the highest rate
    /// it forwards with under 0.1 % loss.
    Engine {
        /// Packet rates to measure, packets/s.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000, 50_000])]
        rates: Vec<u64>,
        /// The delay the engine adds, ms.
        #[arg(long, default_value_t = 5.0)]
        delay: f64,
        /// Seconds per rate.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
    },
    /// The run's machinery: operations generated per second, the open loop on one thread
    /// against a client that answers at once (rate, dispatch lag, CPU per operation), and how
    /// much longer than its duration a real etcd/wan-3 run takes.
    Run {
        /// Offered rates for the dispatch test, operations/s.
        #[arg(long, value_delimiter = ',', default_values_t = [50_000.0, 100_000.0, 200_000.0])]
        rates: Vec<f64>,
        /// Duration of the real etcd/wan-3 run, seconds (0 skips it).
        #[arg(long, default_value_t = 10.0)]
        etcd_secs: f64,
    },
    /// reckon's load generator against a real etcd on simple-3 (no link latency, one client
    /// host), beside etcd's own (`etcdctl check perf --load=l`, 60 s) on the same cluster:
    /// reckon's CPU per operation, goodput, latency, dispatch lag and memory at each offered
    /// rate, at three times etcdctl's throughput, and in a long run at a high rate.
    Client {
        /// Offered rates, operations/s.
        #[arg(long, value_delimiter = ',', default_values_t = [100.0, 2_000.0, 10_000.0])]
        rates: Vec<f64>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Skip etcdctl's check (60 s): no anchor, no 3x case.
        #[arg(long)]
        no_anchor: bool,
        /// The memory case's rate, operations/s (0 skips it).
        #[arg(long, default_value_t = 20_000.0)]
        memory_rate: f64,
        /// The memory case's duration, seconds.
        #[arg(long, default_value_t = 60.0)]
        memory_secs: f64,
    },
    /// Time building and tearing down wan-3..33 and simple-33.
    Net {
        /// Repetitions per case (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        #[arg(long, value_enum, default_value_t = Datapath::Auto)]
        datapath: Datapath,
    },
}

/// Print a line; a closed stdout (a reader that went away) must not abort the run mid-way.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
        let _ = std::io::stdout().flush();
    }};
}

fn resolve(t: &TopoArgs) -> Result<topology::Topology> {
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

/// Log to stderr at the level `-v` asks for (or `RECKON_LOG`); a second call does nothing.
pub fn init_logging(verbose: u8) {
    let filter = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECKON_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// The whole command line, `args` starting with the program's name; returns the exit status.
/// Installs reckon's Ctrl-C/SIGTERM/SIGHUP handling: call it only from a process of its own
/// (the `reckon` binary, `python -m reckon`).
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_logging(cli.verbose);
    if let Err(e) = signals::install() {
        eprintln!("reckon: cannot install signal handlers: {e}");
        return 1;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reckon: error: {e:#}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let ovs = OvsConfig::default();
    net::validate_prefix(&cli.prefix)?;
    let opts = |datapath, check| NetworkOptions {
        prefix: cli.prefix.clone(),
        datapath,
        check,
        ovs: ovs.clone(),
        ..Default::default()
    };
    match cli.command {
        Cmd::Topo(Topo::Up { topo, hold }) => {
            let t = resolve(&topo)?;
            let sys = topo.system.def()?;
            eprintln!(
                "reckon: bringing up {} as '{}': {} hosts, {} switches{}…",
                t.name,
                cli.prefix,
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
                ..opts(topo.datapath, !topo.no_check)
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
                    let base = PathBuf::from(format!("/var/tmp/reckon/{}-{stamp}", cli.prefix));
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
                out!("network '{}' torn down: removed {removed}", cli.prefix);
            } else {
                if let Some(c) = cluster {
                    c.detach();
                }
                network.detach()?;
                out!(
                    "left up: `reckon{} topo exec <host> -- <cmd>` runs in a host; `reckon{} topo down` removes it",
                    prefix_flag(&cli.prefix),
                    prefix_flag(&cli.prefix)
                );
            }
        }
        Cmd::Topo(Topo::Exec { host, command }) => {
            net::require_root()?;
            let m = net::registry::read(&cli.prefix)
                .context("reading the run registry")?
                .ok_or_else(|| net::NetError::NoNetwork(cli.prefix.clone()))?;
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
        Cmd::Topo(Topo::Impair {
            link,
            latency,
            jitter,
            loss,
            reorder,
            direction,
        }) => {
            net::require_root()?;
            let mut m = net::registry::read(&cli.prefix)
                .context("reading the run registry")?
                .ok_or_else(|| net::NetError::NoNetwork(cli.prefix.clone()))?;
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
        Cmd::Topo(Topo::Links) => {
            net::require_root()?;
            let m = net::registry::read(&cli.prefix)
                .context("reading the run registry")?
                .ok_or_else(|| net::NetError::NoNetwork(cli.prefix.clone()))?;
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
        Cmd::Run(a) => return run_experiment(&cli.prefix, &a),
        Cmd::Sweep(a) => {
            if let Some(SweepCmd::Merge { dirs, out }) = a.merge {
                let (path, n) = crate::sweep::merge(&dirs, &out).map_err(anyhow::Error::msg)?;
                out!("merged {n} runs into {}", path.display());
                return Ok(0);
            }
            let plan_path = a.plan.ok_or_else(|| {
                anyhow::anyhow!("give a sweep plan (TOML), or `reckon sweep merge`")
            })?;
            let plan = crate::sweep::load(&plan_path).map_err(anyhow::Error::msg)?;
            let shard = a
                .shard
                .as_deref()
                .map(crate::sweep::parse_shard)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            net::require_root()?;
            let name = plan_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into());
            let out = a
                .out
                .unwrap_or_else(|| PathBuf::from(format!("results/sweep-{name}")));
            let bin = crate::SelfCommand::current();
            out!(
                "sweep {}: {} runs{} into {}",
                plan_path.display(),
                plan.points.len(),
                shard
                    .map(|(i, n)| format!(", shard {i}/{n}"))
                    .unwrap_or_default(),
                out.display()
            );
            let done =
                crate::sweep::run(&plan, &out, shard, &bin, &cli.prefix, |k, n, p, status| {
                    let params: Vec<String> = plan
                        .columns
                        .iter()
                        .take(4)
                        .map(|c| format!("{c}={}", p.params.get(c).cloned().unwrap_or_default()))
                        .collect();
                    out!("[{k}/{n}] {} {}: {status}", p.id, params.join(" "));
                })
                .map_err(anyhow::Error::msg)?;
            let failed = done
                .iter()
                .filter(|d| d.status.starts_with("failed"))
                .count();
            out!(
                "{} runs: {} done before, {} run now, {failed} failed; results in {}",
                done.len(),
                done.iter().filter(|d| d.status == "done before").count(),
                done.iter().filter(|d| d.status == "ok").count(),
                out.join("results.csv").display()
            );
        }
        Cmd::Report { dir } => {
            let path = crate::report::html::report(&dir).map_err(anyhow::Error::msg)?;
            out!("report: {}", path.display());
        }
        Cmd::ImpairEngine { spec } => {
            let text =
                std::fs::read(&spec).with_context(|| format!("reading {}", spec.display()))?;
            let spec: net::engine::EngineSpec =
                serde_json::from_slice(&text).context("engine spec")?;
            net::engine::run(&spec).context("impairment engine")?;
        }
        Cmd::Topo(Topo::Down) => {
            let removed = net::down(&cli.prefix, &ovs)?;
            out!("network '{}' torn down: removed {removed}", cli.prefix);
        }
        Cmd::Topo(Topo::List) => {
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
                            None => "left up by `reckon topo up`".into(),
                        }
                    ),
                    _ => out!("{p}: unreadable manifest"),
                }
            }
        }
        Cmd::Clean { only } => {
            if let Some(p) = &only {
                net::validate_prefix(p)?;
            }
            let (cleaned, skipped) = net::clean(only.as_deref(), &ovs)?;
            let mut failed = false;
            for c in &cleaned {
                let what = if c.crashed {
                    "leftovers of a crashed run"
                } else {
                    "network left up"
                };
                match &c.result {
                    Ok(r) => out!("{}: removed {what}: {r}", c.prefix),
                    Err(e) => {
                        failed = true;
                        out!("{}: could not remove everything: {e}", c.prefix)
                    }
                }
            }
            for p in &skipped {
                out!("{p}: skipped, owned by a running reckon process");
            }
            if cleaned.is_empty() && skipped.is_empty() {
                out!("nothing to clean");
            }
            if failed {
                return Ok(1);
            }
        }
        Cmd::Doctor => {
            let findings = doctor::diagnose(&ovs);
            let mut ok = true;
            for f in &findings {
                out!(
                    "{:<4} {:<13} {}",
                    if f.ok { "ok" } else { "FAIL" },
                    f.what,
                    f.detail
                );
                if let Some(fix) = &f.fix {
                    out!(
                        "     {:<13} {} {fix}",
                        "",
                        if f.ok { "tip:" } else { "fix:" }
                    );
                }
                ok &= f.ok;
            }
            return Ok(if ok { 0 } else { 1 });
        }
        Cmd::Bench(Bench::Engine { rates, delay, secs }) => {
            let bin = crate::SelfCommand::current();
            out!("userspace engine alone, {delay} ms added on one direction, 32-byte UDP, kernel-to-kernel timestamps");
            out!(
                "{:>9} {:>9} {:>10} {:>12} {:>12} {:>10}",
                "pps",
                "offered",
                "delivered",
                "err p50 ms",
                "err p99 ms",
                "CPU %"
            );
            let (_, best, best_cpu) = bench::engine::engine(&bin, &rates, delay, secs, |r| {
                out!(
                    "{:>9} {:>9} {:>10} {:>12.3} {:>12.3} {:>10.1}",
                    r.rate,
                    r.offered,
                    r.delivered,
                    r.err_p50_us / 1e3,
                    r.err_p99_us / 1e3,
                    r.cpu_pct
                );
            })?;
            out!("highest rate forwarded with < 0.1% loss (1 ms delay, steps of 50k-100k): {best} pps, engine CPU {best_cpu:.0}% of a core");
            out!("error: |one-way delay - {delay} ms - the same stream's median one-way delay with no delay added|");
        }
        Cmd::Bench(Bench::Run { rates, etcd_secs }) => {
            let prefix = if cli.prefix == net::DEFAULT_PREFIX {
                "rkbr"
            } else {
                cli.prefix.as_str()
            };
            let b =
                bench::run::run_machinery(&rates, (etcd_secs > 0.0).then_some(etcd_secs), prefix)?;
            out!(
                "schedule generation: {:.2} M operations/s (uniform keys, 3 clients)",
                b.generated_per_s / 1e6
            );
            out!("open-loop dispatch on one thread against a client that answers at once:");
            out!(
                "{:>12} {:>14} {:>12} {:>12} {:>12} {:>14}",
                "offered/s",
                "dispatched/s",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "CPU µs/op"
            );
            for d in &b.dispatch {
                out!(
                    "{:>12.0} {:>14.0} {:>12.3} {:>12.3} {:>12.3} {:>14.2}",
                    d.offered,
                    d.dispatched_per_s,
                    d.lag_p50_ms,
                    d.lag_p99_ms,
                    d.lag_max_ms,
                    d.cpu_us_per_op
                );
            }
            if let Some((secs, wall)) = b.overhead {
                out!("a {secs} s etcd/wan-3 run took {:.1} s in all: {:.1} s beyond its duration (build, cluster, prerequisites, summary, teardown)", wall.as_secs_f64(), wall.as_secs_f64() - secs);
            }
        }
        Cmd::Bench(Bench::Client {
            rates,
            secs,
            no_anchor,
            memory_rate,
            memory_secs,
        }) => {
            if !(2.0..=3600.0).contains(&secs) {
                bail!("--secs {secs}: give seconds, 2 to 3600");
            }
            let prefix = if cli.prefix == net::DEFAULT_PREFIX {
                "rkbc"
            } else {
                cli.prefix.as_str()
            };
            let o = bench::client::ClientBenchOptions {
                prefix: prefix.into(),
                rates,
                secs,
                anchor: !no_anchor,
                memory: (memory_rate > 0.0).then_some((memory_rate, memory_secs)),
            };
            out!("reckon's load generator against etcd on simple-3: no link latency, one client host, the default (sticky) client, writes");
            if o.anchor {
                out!("anchor: etcdctl check perf --load=l in the client host, 60 s…");
            }
            let header = || {
                out!(
                    "{:>10} {:>6} {:>10} {:>9} {:>9} {:>11} {:>10} {:>8} {:>8}  {}",
                    "offered/s",
                    "secs",
                    "goodput/s",
                    "p50 ms",
                    "p99 ms",
                    "lag p99 ms",
                    "CPU µs/op",
                    "RSS MB",
                    "peak MB",
                    "errors"
                )
            };
            let mut printed = false;
            let (anchor, cases) = bench::client::client(
                &o,
                |a| {
                    out!(
                        "etcdctl check perf --load=l: {:.0} writes/s, {:.1} µs of CPU per write (its process, user+sys)",
                        a.writes_per_s,
                        a.cpu_us_per_write
                    );
                },
                |c| {
                    if !printed {
                        header();
                        printed = true;
                    }
                    let s = &c.summary;
                    let i = s.instrument.clone().unwrap_or_default();
                    let kinds: Vec<String> = s
                        .errors_by_kind
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect();
                    out!(
                        "{:>10.0} {:>6.0} {:>10.0} {:>9.2} {:>9.2} {:>11.3} {:>10.1} {:>8.1} {:>8.1}  {}",
                        c.offered,
                        c.secs,
                        c.goodput(),
                        s.latency_ms.p50,
                        s.latency_ms.p99,
                        s.dispatch_lag_ms.p99,
                        i.cpu_us_per_op,
                        i.rss_mb,
                        i.rss_peak_mb,
                        if kinds.is_empty() { "0".to_string() } else { kinds.join(", ") }
                    );
                },
            )?;
            if let Some(a) = &anchor {
                if let Some(c) = cases
                    .iter()
                    .find(|c| (c.offered - 3.0 * a.writes_per_s).abs() < 1.0)
                {
                    out!(
                        "goodput at 3x etcdctl's throughput ({:.0}/s offered): {:.0}/s = {:.2}x etcdctl's {:.0}/s",
                        c.offered,
                        c.goodput(),
                        c.goodput() / a.writes_per_s,
                        a.writes_per_s
                    );
                }
                if let Some(c) = cases.iter().find(|c| c.offered == 2000.0) {
                    let i = c.summary.instrument.clone().unwrap_or_default();
                    out!(
                        "CPU per operation at 2000/s: reckon {:.1} µs, etcdctl {:.1} µs ({:.2}x)",
                        i.cpu_us_per_op,
                        a.cpu_us_per_write,
                        i.cpu_us_per_op / a.cpu_us_per_write.max(1e-9)
                    );
                }
            }
            out!("CPU µs/op: reckon's process (user+sys) over the middle 80 % of each case, per operation offered; RSS at its end and the process's peak so far");
        }
        Cmd::Bench(Bench::Net { repeat, datapath }) => {
            out!(
                "{:<10} {:>5} {:>9} {:>9} {:>9} {:>11} {:>9} {:>8}",
                "case",
                "hosts",
                "up ms",
                "down ms",
                "total ms",
                "mininet ms",
                "speedup",
                "check ms"
            );
            bench::net(&opts(datapath, false), repeat, |b| {
                let total = b.up + b.down;
                let (mn, speed) = match b.mininet {
                    Some(m) => (
                        format!("{:.0}", m.as_secs_f64() * 1e3),
                        format!("{:.1}x", m.as_secs_f64() / total.as_secs_f64()),
                    ),
                    None => ("-".into(), "-".into()),
                };
                out!(
                    "{:<10} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>11} {:>9} {:>8.1}",
                    b.case,
                    b.hosts,
                    b.up.as_secs_f64() * 1e3,
                    b.down.as_secs_f64() * 1e3,
                    total.as_secs_f64() * 1e3,
                    mn,
                    speed,
                    b.check.as_secs_f64() * 1e3
                );
            })?;
            out!("up/down: medians of {repeat} without the connectivity check (as Mininet's figures); check: all host pairs over ICMP and TCP");
            let rcu = std::fs::read_to_string("/sys/kernel/rcu_expedited")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            out!("kernel: rcu_expedited={rcu} (teardown is mostly ovs-vswitchd waiting one RCU grace period per port it removes; see `reckon doctor`)");
        }
    }
    Ok(0)
}

/// `reckon run`'s arguments alone, for [`parse_run`].
#[derive(Parser)]
#[command(name = "reckon run", no_binary_name = true)]
struct RunOnly {
    #[command(flatten)]
    args: RunArgs,
}

/// Parse `reckon run`'s arguments (`<system> <topology> <workload> <fault> [flags]`, without
/// `reckon run`) and resolve them into a run, exactly as the command line does. Nothing is
/// built. The error is what the command line would print.
pub fn parse_run(prefix: &str, argv: &[String]) -> Result<crate::run::RunSpec> {
    net::validate_prefix(prefix)?;
    let a = RunOnly::try_parse_from(argv)
        .map_err(|e| {
            // clap's message without its "error: " and its pointer to --help.
            let text = e.render().to_string();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("For more information") && !l.trim().is_empty())
                .collect();
            anyhow::anyhow!("{}", lines.join("\n").trim_start_matches("error: "))
        })?
        .args;
    if a.debug {
        bail!("-d (the debug shell) needs a terminal: use `reckon run -d`");
    }
    run_spec(prefix, &a)
}

/// One parameter of `reckon run`, as the Python module names it.
pub struct RunParameter {
    /// The flag's name with `_` for `-` (`link_loss`), or a positional's name (`system`).
    pub name: String,
    /// Whether it is a switch (`--allow-no-quorum`) rather than a flag with a value.
    pub switch: bool,
    /// Positional (system, topology, workload, fault).
    pub positional: bool,
    /// Its help text.
    pub help: String,
}

/// Every parameter of `reckon run`, in the order `--help` shows them.
pub fn run_parameters() -> Vec<RunParameter> {
    use clap::CommandFactory;
    RunOnly::command()
        .get_arguments()
        .filter(|a| a.get_id() != "debug" && a.get_id() != "help")
        .map(|a| RunParameter {
            name: a.get_id().to_string(),
            switch: matches!(
                a.get_action(),
                clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
            ),
            positional: a.is_positional(),
            help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
        })
        .collect()
}

fn run_experiment(prefix: &str, a: &RunArgs) -> Result<u8> {
    net::require_root()?;
    let spec = run_spec(prefix, a)?;
    if a.debug {
        let stdin = std::io::stdin();
        crate::run::debug_shell(&spec, stdin.lock(), std::io::stdout())?;
        return Ok(0);
    }
    let outcome = crate::run::run(&spec)?;
    print_outcome(&spec, &outcome);
    if outcome.summary.interrupted {
        eprintln!(
            "reckon: interrupted at {:.1} s of {:.1}: the results up to then are in {}",
            outcome.summary.duration,
            spec.workload.duration,
            outcome.dir.display()
        );
        return Ok(130);
    }
    Ok(0)
}

/// Resolve a run's arguments: every check that needs nothing built.
fn run_spec(prefix: &str, a: &RunArgs) -> Result<crate::run::RunSpec> {
    if !(a.failure_timeout > 0.0 && a.failure_timeout <= 60.0) {
        bail!(
            "--failure-timeout {}: give seconds, more than 0 and at most 60",
            a.failure_timeout
        );
    }
    if !(a.op_timeout > 0.0 && a.op_timeout <= 600.0) {
        bail!(
            "--op-timeout {}: give seconds, more than 0 and at most 600",
            a.op_timeout
        );
    }
    if !(1..=1_000_000).contains(&a.max_in_flight) {
        bail!(
            "--max-in-flight {}: give operations per client host, 1 to 1000000",
            a.max_in_flight
        );
    }
    let system = match &a.system_file {
        Some(f) => system::from_file(f)?,
        None => system::builtin(&a.system)?,
    };
    let topology = topology::builtin(
        &a.topology,
        Size {
            nodes: a.number_nodes,
            clients: a.number_clients,
        },
    )?;
    let overrides = crate::workload::Overrides {
        rate: Some(a.rate),
        write_ratio: a.write_ratio,
        max_key: a.max_key,
        payload_size: a.payload_size,
        arrival: Some(a.arrival_process),
        duration: Some(a.duration),
        seed: a.seed,
    };
    let workload = crate::workload::builtin(&a.workload, &overrides)?;
    let params = crate::fault::Params {
        duration: a.duration,
        mtbf: a.mtbf,
    };
    let fault = match &a.fault_file {
        Some(f) => crate::fault::from_file(f, params)?,
        None => crate::fault::builtin(&a.fault, params)?,
    };
    let impair = impair::ImpairOptions {
        latency_ms: a.link_latency,
        jitter: a.link_jitter,
        loss_pct: a.link_loss,
        seed: a.seed,
        backend: a.impair_backend,
    };
    impair.validate().map_err(anyhow::Error::msg)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let result_dir = a.result_location.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "results/{}-{}-{}-{}-{stamp}",
            a.system, a.topology, a.workload, fault.name
        ))
    });
    let spec = crate::run::RunSpec {
        system,
        topology,
        workload,
        fault,
        net: NetworkOptions {
            prefix: prefix.into(),
            impair,
            ..Default::default()
        },
        failure_timeout: std::time::Duration::from_secs_f64(a.failure_timeout),
        kill_n: a.kill_n,
        allow_no_quorum: a.allow_no_quorum,
        mtbf: a.mtbf,
        client_target: a.client_target,
        op_timeout: std::time::Duration::from_secs_f64(a.op_timeout),
        max_in_flight: a.max_in_flight,
        result_dir,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        client_cmd: a
            .client_cmd
            .as_ref()
            .map(|c| c.split_whitespace().map(String::from).collect()),
    };
    Ok(spec)
}

fn print_outcome(spec: &crate::run::RunSpec, outcome: &crate::run::RunOutcome) {
    let s = &outcome.summary;
    out!(
        "{} {} {} {}: {} ops, {} ok, {} errors, {:.1} ok/s",
        spec.system.name,
        spec.topology.name,
        spec.workload.name,
        spec.fault.name,
        s.ops,
        s.ok,
        s.errors,
        s.throughput
    );
    out!(
        "latency ms (from intended start): p50 {:.2}  p99 {:.2}  max {:.2}",
        s.latency_ms.p50,
        s.latency_ms.p99,
        s.latency_ms.max
    );
    for p in &s.phases {
        out!(
            "  {:<7} {:>6.1}-{:<6.1}s  {:>6} ok  {:>8.1} ok/s  p50 {:>8.2}  p99 {:>8.2}",
            p.name,
            p.from,
            p.to,
            p.ok,
            p.throughput,
            p.latency_ms.p50,
            p.latency_ms.p99
        );
    }
    out!(
        "longest gap between successes: {:.3} s from {:.2} s",
        s.longest_gap,
        s.longest_gap_from
    );
    for f in &outcome.faults {
        out!(
            "  fault {} {} {} at {:.3} s (scheduled {:.3}){}",
            f.event,
            f.action,
            f.targets,
            f.applied,
            f.scheduled,
            if f.error.is_empty() {
                String::new()
            } else {
                format!(": {}", f.error)
            }
        );
    }
    for e in &outcome.client_errors {
        out!("  client error: {e}");
    }
    out!("results in {}", outcome.dir.display());
}

fn prefix_flag(p: &str) -> String {
    if p == net::DEFAULT_PREFIX {
        String::new()
    } else {
        format!(" --prefix {p}")
    }
}
