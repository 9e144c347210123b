//! `reckon run`: its arguments, resolved into a `RunSpec` (also for the Python module, through
//! [`parse_run`], so its keyword arguments and the flags cannot drift apart), and the outcome
//! printed.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser};

use crate::net::{self, impair, NetworkOptions};
use crate::system;
use crate::topology::{self, Size};

#[derive(Args, Clone)]
pub(super) struct RunArgs {
    /// The system under test: etcd, etcd-pre-vote, etcd-3.5, zookeeper or nats (with
    /// --system-file: a label).
    system: String,
    /// The topology: simple or wan.
    topology: String,
    /// The workload: uniform.
    workload: String,
    /// The fault: none, leader, leader-only, partial-partition, intermittent-partial,
    /// intermittent-full, kill-n; the partial-connectivity scenarios quorum-loss (5 nodes),
    /// constrained-election (5 nodes), chained (3 nodes), lossy-link; or random (a seeded
    /// plan of faults: see --seed, --random-interval, --random-mix).
    fault: String,
    /// Number of nodes (for wan: data centres); default: the fault's own (5 for
    /// quorum-loss and constrained-election), else 3.
    #[arg(long)]
    number_nodes: Option<usize>,
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
    /// Where the results go: a new folder, or one a run left before it started measuring
    /// (default: results/<system>-<topology>-<workload>-<fault>-<time>-<pid>).
    #[arg(long)]
    result_location: Option<PathBuf>,
    /// Seed of the workload's schedule, the links' jitter and loss, and the random fault's
    /// plan.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The random fault: mean length of a fault and mean gap between two, seconds.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    random_interval: f64,
    /// The random fault: the kinds it draws from, with optional weights ("kill:2,halves"):
    /// halves, isolate, bridge, ring, oneway, kill, pause, degrade.
    #[arg(long, default_value = crate::fault::random::DEFAULT_MIX)]
    random_mix: String,
    /// How the built-in client picks endpoints (what real client it models): sticky (stay on
    /// the endpoint that answered, starting in the client's own data centre; `local` is the
    /// same), leader, or all (clientv3's round-robin, as reckon's Go client).
    #[arg(long, value_enum, default_value_t = crate::client::Target::Sticky)]
    client_target: crate::client::Target,
    /// Per-operation timeout, seconds: it covers the whole operation, every endpoint tried.
    #[arg(long, default_value_t = 1.0)]
    op_timeout: f64,
    /// Operations outstanding per client host at most; one that falls due at the bound is not
    /// sent and is recorded as an "overloaded" error.
    #[arg(long, default_value_t = crate::run::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Pass/fail: expectations on summary.json's figures, separated by commas, e.g.
    /// "longest_gap < 2s, errors < 1%, latency_ms.p99 <= 300ms, linearizable" (units s, ms;
    /// % is a share of all operations). reckon exits 3 if one fails, naming it.
    #[arg(long, value_name = "EXPECTATIONS")]
    expect: Option<String>,
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
    /// Run on the network the run before left up under this prefix (with this flag) if it is
    /// the network this run would build, instead of building one, and leave it up at the end
    /// for the next (`reckon topo down` or `reckon clean` removes it). Sweeps pass it to every
    /// run and take the network down at their end.
    #[arg(long, conflicts_with = "debug")]
    reuse_network: bool,
    /// Debug: build the network and start the system, then take commands (`<host> <cmd…>`,
    /// `partition A B`, `heal`, `kill N`, `restart N`, `leader`, `help`…) until `exit`.
    #[arg(short = 'd')]
    debug: bool,
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

pub(super) fn run_experiment(prefix: &str, a: &RunArgs) -> Result<u8> {
    net::require_root()?;
    let spec = run_spec(prefix, a)?;
    if a.debug {
        let stdin = std::io::stdin();
        crate::run::debug_shell(&spec, stdin.lock(), std::io::stdout())?;
        return Ok(0);
    }
    let outcome = match crate::run::run(&spec) {
        Ok(o) => o,
        // Stopped before measuring (while building, starting the cluster, writing the
        // prerequisites): everything built is gone; say so and exit as interrupted.
        Err(e) if crate::signals::interrupted() => {
            let why = match e {
                crate::run::RunError::Interrupted => e.to_string(),
                e => format!("interrupted before the run started measuring ({e})"),
            };
            eprintln!("reckon: {why}; everything it built is torn down");
            return Ok(130);
        }
        Err(e) => return Err(e.into()),
    };
    print_outcome(&spec, &outcome);
    if let Some(why) = &outcome.summary.incomplete {
        eprintln!(
            "reckon: the results are incomplete: {why}; summary.json counts every operation (and says so)"
        );
        return Ok(1);
    }
    if outcome.summary.interrupted {
        eprintln!(
            "reckon: interrupted at {:.1} s of {:.1}: the results up to then are in {}",
            outcome.summary.duration,
            spec.workload.duration,
            outcome.dir.display()
        );
        return Ok(130);
    }
    let failed: Vec<_> = outcome
        .summary
        .expect
        .iter()
        .flatten()
        .filter(|e| !e.ok)
        .collect();
    if !failed.is_empty() {
        for e in &failed {
            eprintln!(
                "reckon: expectation failed: {} (measured {})",
                e.expectation, e.measured
            );
        }
        return Ok(crate::run::EXPECTATION_FAILED);
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
    let random = a.fault_file.is_none() && a.fault == crate::fault::RANDOM;
    let fault = match &a.fault_file {
        Some(f) => Some(crate::fault::from_file(f, params)?),
        None if random => None,
        None => Some(crate::fault::builtin(&a.fault, params)?),
    };
    let written_for = fault.as_ref().and_then(|f| f.nodes);
    let nodes = match (a.number_nodes, written_for) {
        (Some(n), Some(w)) if n != w => bail!(
            "fault {} is written for {w} nodes (its file says nodes = {w}); --number-nodes {n} does not fit: leave --number-nodes out or give {w}",
            fault.as_ref().map(|f| f.name.as_str()).unwrap_or_default()
        ),
        (n, w) => n.or(w).unwrap_or(3),
    };
    let topology = topology::builtin(
        &a.topology,
        Size {
            nodes,
            clients: a.number_clients,
        },
    )?;
    let fault = match fault {
        Some(f) => f,
        None => crate::fault::random::plan(&crate::fault::random::Options {
            seed: a.seed,
            interval: a.random_interval,
            mix: crate::fault::random::parse_mix(&a.random_mix).map_err(anyhow::Error::msg)?,
            nodes: topology.nodes().count(),
            duration: a.duration,
        })
        .map_err(anyhow::Error::msg)?,
    };
    let expect = match &a.expect {
        Some(e) => crate::record::expect::parse(e).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    if a.client_cmd.is_some() && expect.contains(&crate::record::expect::Expectation::Linearizable)
    {
        bail!("--expect linearizable: the history checker needs what the built-in client records (write values, what reads saw); with --client-cmd it does not run");
    }
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
            "results/{}-{}-{}-{}-{stamp}-{}",
            a.system,
            a.topology,
            a.workload,
            fault.name,
            std::process::id()
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
        expect,
        reuse_network: a.reuse_network,
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
    if let Some(v) = &s.check {
        out!("{}", crate::check::describe(v));
    }
    for e in s.expect.iter().flatten() {
        out!(
            "expect {}: {} (measured {})",
            e.expectation,
            if e.ok { "held" } else { "FAILED" },
            e.measured
        );
    }
    out!("results in {}", outcome.dir.display());
}
