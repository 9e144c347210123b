//! The `reckon` command line: its arguments (clap) and what each command does, one module per
//! command. The `reckon` binary and `python -m reckon` both call [`main`]; the Python module
//! also parses `reckon run` arguments here ([`parse_run`]) so its keyword arguments and the
//! flags cannot drift apart.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::net::{self, Datapath, NetworkOptions, OvsConfig};
use crate::signals;

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
    Topo(topo::Topo),
    /// Run an experiment: build <topology>, start <system> on its node hosts, drive <workload>
    /// from its client hosts (open loop) while <fault> plays, and write the results
    /// (config.json, ops.csv, faults.csv, summary.json, timeseries.csv, histograms, node logs).
    Run(Box<run::RunArgs>),
    /// Run a sweep plan: a grid over run parameters with repeats, one folder per run and a
    /// results.csv; resumable; `--shard i/n` runs one of n slices; `reckon sweep merge` joins them.
    #[command(args_conflicts_with_subcommands = true)]
    Sweep(sweep::SweepArgs),
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
        /// Only what the reckon process with this pid created and left behind (how a sweep
        /// cleans after a run that crashed, without touching a network left up on purpose).
        #[arg(long, value_name = "PID")]
        owner: Option<u32>,
    },
    /// Check this machine can run experiments, and say how to fix what is missing.
    Doctor,
    /// Is a history linearizable, key by key, as a register? Give a run's folder (the verdict
    /// goes into its summary.json and report) or a history file (CSV or JSON; see the README).
    /// Exit status: 0 linearizable, 3 not, 4 undecided, 1 the history could not be read.
    Check {
        /// A `reckon run` folder, or a history file.
        path: PathBuf,
    },
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// The userspace impairment engine of one network (started by reckon itself).
    #[command(name = "__impair-engine", hide = true)]
    ImpairEngine { spec: PathBuf },
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

mod bench;
mod check;
mod clean;
mod doctor;
mod engine;
mod report;
mod run;
mod sweep;
mod topo;

pub use run::{parse_run, run_parameters, RunParameter};

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
/// What every command gets: the network prefix, and how to reach Open vSwitch.
pub(crate) struct Ctx {
    prefix: String,
    ovs: OvsConfig,
}

impl Ctx {
    /// Options of a network of this prefix.
    fn opts(&self, datapath: Datapath, check: bool) -> NetworkOptions {
        NetworkOptions {
            prefix: self.prefix.clone(),
            datapath,
            check,
            ovs: self.ovs.clone(),
            ..Default::default()
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    net::validate_prefix(&cli.prefix)?;
    let ctx = Ctx {
        prefix: cli.prefix,
        ovs: OvsConfig::default(),
    };
    match cli.command {
        Cmd::Topo(t) => topo::exec(&ctx, t),
        Cmd::Run(a) => run::run_experiment(&ctx.prefix, &a),
        Cmd::Sweep(a) => sweep::exec(&ctx, a),
        Cmd::Report { dir } => report::exec(&dir),
        Cmd::Clean { only, owner } => clean::exec(&ctx, only, owner),
        Cmd::Doctor => doctor::exec(&ctx),
        Cmd::Check { path } => check::exec(&path),
        Cmd::Bench(b) => bench::exec(&ctx, b),
        Cmd::ImpairEngine { spec } => engine::exec(&spec),
    }
}

pub(crate) fn prefix_flag(p: &str) -> String {
    if p == net::DEFAULT_PREFIX {
        String::new()
    } else {
        format!(" --prefix {p}")
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `reckon run --help` and `reckon topo up --help` name every built-in of each axis.
    #[test]
    fn help_names_every_builtin() {
        let mut cli = super::Cli::command();
        let run = cli
            .find_subcommand_mut("run")
            .unwrap()
            .render_help()
            .to_string();
        for c in [
            &crate::system::CATALOG,
            &crate::topology::CATALOG,
            &crate::workload::CATALOG,
            &crate::fault::CATALOG,
        ] {
            for name in c.names() {
                assert!(run.contains(name), "reckon run --help lacks {name}:\n{run}");
            }
        }
        let up = cli
            .find_subcommand_mut("topo")
            .and_then(|t| t.find_subcommand_mut("up"))
            .unwrap()
            .render_help()
            .to_string();
        for name in crate::system::CATALOG.names() {
            assert!(up.contains(name), "reckon topo up --help lacks {name}");
        }
    }
}
