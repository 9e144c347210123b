//! `reckon run -d`: the debug shell.

use std::time::Duration;

use super::faults::{apply, resolve};
use super::{RunError, RunSpec};
use crate::fault::{Action, Event, Scope, Selector};
use crate::net::Network;
use crate::system::{Cluster, ClusterOptions};

/// `reckon run -d`: build the network and start the system as a run would, then read commands
/// from `input` until `exit` or its end, and tear everything down.
///
/// Commands: `<host> <command…>` runs a command inside a host; `partition A B` (hosts or
/// selectors: leader, follower, node:I, dc:I, client:I, others), `oneway A B`, `heal`, `kill N`,
/// `restart N`, `pause N`, `resume N` (a node or a selector), `leader`, `status`, `hosts`,
/// `help`, `exit`.
pub fn debug_shell(
    spec: &RunSpec,
    input: impl std::io::BufRead,
    mut out: impl std::io::Write,
) -> Result<(), RunError> {
    let mut net = Network::up(&spec.topology, &spec.net)?;
    let dir = &spec.result_dir;
    std::fs::create_dir_all(dir).map_err(|e| RunError::Results {
        path: dir.display().to_string(),
        error: e.to_string(),
    })?;
    let data_root = std::env::temp_dir().join(format!(
        "reckon-{}-{}-data",
        spec.net.prefix,
        std::process::id()
    ));
    let copts = ClusterOptions {
        failure_timeout: spec.failure_timeout,
        log_dir: dir.join("logs"),
        data_root,
    };
    let mut cluster = Cluster::start(&mut net, &spec.system, &copts)?;
    let mut bound = super::faults::Bindings::new();
    let leader = cluster.wait_ready(Duration::from_secs(30))?;
    let _ = writeln!(
        out,
        "{} is up on {} (leader {leader}); endpoints {}",
        spec.system.name,
        spec.topology.name,
        cluster.endpoints().join(",")
    );
    let _ = writeln!(
        out,
        "type `help` for the commands; `exit` (or end of input) tears everything down"
    );
    // A command's event: its selectors read as a fault file's are, or a host's name (a node's,
    // for kill, restart, pause and resume).
    let topology = &spec.topology;
    let sel = |s: &str, scope: Scope| {
        Selector::parse_or_host(s, scope, |h| match scope {
            Scope::Hosts => topology.host(h).is_some(),
            Scope::Nodes => topology.nodes().any(|n| n.name == h),
        })
    };
    let event = |action: Action| Event { at: 0.0, action };
    for line in input.lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => continue,
            ["exit"] | ["quit"] => break,
            ["help"] => "<host> <command...> | partition A B | oneway A B | heal | kill N | restart N | pause N | resume N | leader | status | hosts | exit".to_string(),
            ["hosts"] => crate::net::describe(net.manifest()).trim_end().to_string(),
            ["leader"] => cluster.leader().unwrap_or_else(|| "no leader agreed on".into()),
            ["status"] => cluster
                .status()
                .iter()
                .map(|s| match &s.answer {
                    Some(a) => format!("{}: member {:x}, leader {:x}, term {}, index {}", s.node, a.member_id, a.leader_id, a.raft_term, a.raft_index),
                    None => format!("{}: no answer", s.node),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            [cmd @ ("partition" | "oneway"), a, b] => {
                let cut = sel(a, Scope::Hosts).and_then(|a| {
                    Ok(Action::Partition { a, b: sel(b, Scope::Hosts)?, oneway: *cmd == "oneway" })
                });
                let done = cut.map(event).and_then(|ev| {
                    resolve(&ev, &cluster, &spec.topology, spec.kill_n, &mut bound)
                        .and_then(|t| apply(&ev, &t, &mut net, &mut cluster).map(|_| t))
                });
                match done {
                    Ok(t) => format!("cut {}", t.describe()),
                    Err(e) => format!("error: {e}"),
                }
            }
            ["heal"] => match net.heal() {
                Ok(n) => format!("healed {n} directed pairs"),
                Err(e) => format!("error: {e}"),
            },
            [cmd @ ("kill" | "restart" | "pause" | "resume"), n] => {
                let action = sel(n, Scope::Nodes).map(|node| match *cmd {
                    "kill" => Action::Kill { node },
                    "restart" => Action::Restart { node },
                    "pause" => Action::Pause { node },
                    _ => Action::Resume { node },
                });
                let done = action.map(event).and_then(|ev| {
                    resolve(&ev, &cluster, &spec.topology, spec.kill_n, &mut bound)
                        .and_then(|t| apply(&ev, &t, &mut net, &mut cluster).map(|_| t))
                });
                match done {
                    Ok(t) => format!("{cmd}: {}", t.describe()),
                    Err(e) => format!("error: {e}"),
                }
            }
            [host, cmd @ ..] if spec.topology.host(host).is_some() => match net.command(host, cmd[0]) {
                Ok(mut c) => match c.args(&cmd[1..]).output() {
                    Ok(o) => format!("{}{}[exit {}]", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr), o.status.code().unwrap_or(-1)),
                    Err(e) => format!("error: {e}"),
                },
                Err(e) => format!("error: {e}"),
            },
            _ => format!("unknown command '{line}'; type `help`"),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    drop(cluster);
    drop(net);
    let _ = writeln!(out, "torn down");
    Ok(())
}
