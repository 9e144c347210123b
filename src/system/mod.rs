//! The system under test. A system is data (`systems/<name>.toml`: how to start one node of a
//! cluster from its host's address — arguments, environment and config files, as templates)
//! plus an [`Adapter`] in code for what data cannot say (how to ask a member its role and term;
//! the form of its endpoints; its built-in client). A [`Cluster`] runs one node per node host,
//! inside that host's namespace, and owns those processes: start, stop (SIGKILL, data kept),
//! restart (rejoin with the data), pause/resume (SIGSTOP/SIGCONT), wait until ready, leader
//! lookup and member status. Every node's output goes to a log file of the run.
//!
//! Adding a system: a definition in `systems/` and a line in [`BUILTIN`]; if no adapter fits,
//! a module implementing [`Adapter`] and a line in [`ADAPTERS`].

mod cluster;
pub mod etcd;
mod http;
pub mod nats;
pub mod zookeeper;

pub use cluster::{Answer, Cluster, ClusterOptions, MemberStatus, Node};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{Catalog, CatalogError, Source};
use crate::net::{registry::Manifest, NetError};

/// The built-in systems. Adding one = a file in `systems/` + a line here (+ an adapter if none
/// fits).
pub static CATALOG: Catalog = Catalog {
    kind: "system",
    plural: "systems",
    dir: "systems",
    flag: "--system-file",
    builtin: BUILTIN,
};

const BUILTIN: &[(&str, &str)] = &[
    ("etcd", include_str!("../../systems/etcd.toml")),
    (
        "etcd-pre-vote",
        include_str!("../../systems/etcd-pre-vote.toml"),
    ),
    ("etcd-3.5", include_str!("../../systems/etcd-3.5.toml")),
    ("zookeeper", include_str!("../../systems/zookeeper.toml")),
    ("nats", include_str!("../../systems/nats.toml")),
];

/// A member of the cluster, as an adapter sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    /// Its client port.
    pub port: u16,
    /// The port it answers questions about itself on (`status_port`; the client port if the
    /// definition names none).
    pub status_port: u16,
    /// 1-based, in node order (ZooKeeper's `myid`).
    pub id: usize,
}

/// What a built-in client is made from, on a thread inside its client host.
pub struct ClientSpec<'a> {
    /// The client host's network namespace (already entered by the calling thread).
    pub netns: std::sync::Arc<std::os::fd::OwnedFd>,
    /// Every member's endpoint, in node order.
    pub endpoints: &'a [String],
    /// Index of the client's own data centre's node, if any.
    pub local: Option<usize>,
    pub target: crate::client::Target,
    /// The definition's `[client]` table: options of the built-in client.
    pub options: &'a BTreeMap<String, String>,
}

/// What code adds to a system's definition.
pub trait Adapter: Sync {
    /// The name definitions give in `adapter`.
    fn name(&self) -> &'static str;
    /// Ask every member about itself (in parallel, from inside its own host).
    fn status(&self, m: &Manifest, members: &[Member]) -> Vec<MemberStatus>;
    /// A member's client endpoint, as the built-in and external clients are given it.
    fn endpoint(&self, ip: std::net::Ipv4Addr, port: u16) -> String;
    /// The built-in client of one client host; called on a thread inside that host, within a
    /// tokio runtime.
    fn client(
        &self,
        spec: ClientSpec<'_>,
    ) -> Result<std::sync::Arc<dyn crate::client::KvClient>, String>;
    /// Options the built-in client takes in the definition's `[client]` table.
    fn client_options(&self) -> &'static [&'static str] {
        &[]
    }
    /// Once, after the first start and before the cluster is waited for: create what the
    /// system's clients and `status` need (NATS: the key-value bucket), within `within`. Most
    /// systems need nothing.
    fn prepare(&self, _p: Prepare<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// What [`Adapter::prepare`] is given.
pub struct Prepare<'a> {
    pub manifest: &'a Manifest,
    pub members: &'a [Member],
    /// Every member's client endpoint, in node order.
    pub endpoints: &'a [String],
    /// The definition's `[client]` table.
    pub options: &'a BTreeMap<String, String>,
    pub within: Duration,
}

/// Ask every member something from inside its own host, in parallel (`None` where its host
/// could not be entered or it did not answer); answers in member order.
pub fn ask_each<T: Send>(
    m: &Manifest,
    members: &[Member],
    ask: impl Fn(&Member) -> Option<T> + Sync,
) -> Vec<Option<T>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .map(|mb| {
                let fd = crate::net::open_host(m, &mb.name).ok();
                let ask = &ask;
                s.spawn(move || {
                    crate::net::netns::enter(&fd?).ok()?;
                    ask(mb)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// The adapters in code, by the name a definition gives in `adapter`.
pub static ADAPTERS: &[&dyn Adapter] = &[&etcd::Etcd, &zookeeper::ZooKeeper, &nats::Nats];

/// The adapter named `name`.
pub fn adapter(name: &str) -> Option<&'static dyn Adapter> {
    ADAPTERS.iter().copied().find(|a| a.name() == name)
}

fn adapter_names() -> String {
    ADAPTERS
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

const PLACEHOLDERS: &[&str] = &[
    "name",
    "id",
    "ip",
    "data_dir",
    "client_port",
    "peer_port",
    "status_port",
    "token",
    "initial_cluster",
    "cluster_state",
    "election_ms",
    "heartbeat_ms",
];

/// A system definition.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemDef {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub binary: PathBuf,
    /// Other files the system needs installed (when `binary` is an interpreter, say).
    #[serde(default)]
    pub requires: Vec<PathBuf>,
    /// A command that prints the system's version (default: `binary --version`).
    #[serde(default)]
    pub version: Vec<String>,
    /// How to install the binary, shown when it is missing.
    pub install_hint: String,
    pub adapter: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// The port members answer questions about themselves on (NATS: its monitoring port);
    /// the client port if not given.
    #[serde(default)]
    pub status_port: Option<u16>,
    /// The most nodes the system runs (NATS replicates a stream on at most 5 servers).
    #[serde(default)]
    pub max_nodes: Option<usize>,
    /// Start the nodes one after another, each once the one before answers an HTTP GET of this
    /// path on its peer port, instead of all at once (etcd asks its peers at start whether it
    /// is already a member, waiting up to a second for each peer that listens but is itself
    /// still starting).
    #[serde(default)]
    pub start_after_answer: Option<String>,
    pub member: String,
    #[serde(default = "comma")]
    pub member_separator: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files written before a node starts (each start), paths and contents as templates.
    #[serde(default)]
    pub files: Vec<FileTemplate>,
    /// Options of the built-in client (the adapter says which).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

/// A file a node needs (a config file, ZooKeeper's `myid`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTemplate {
    pub path: String,
    pub content: String,
}

impl SystemDef {
    /// The first of the binary and the required files that is not installed.
    pub fn missing(&self) -> Option<&Path> {
        std::iter::once(&self.binary)
            .chain(&self.requires)
            .find(|p| !p.is_file())
            .map(|p| p.as_path())
    }

    /// The first line the version command prints ("" if it does not run).
    pub fn version(&self) -> String {
        let default = [self.binary.display().to_string(), "--version".into()];
        let cmd = if self.version.is_empty() {
            &default[..]
        } else {
            &self.version[..]
        };
        std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .output()
            .ok()
            .and_then(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines().next().map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// Refuse a topology with more nodes than the system runs.
    pub fn check_nodes(&self, nodes: usize) -> Result<(), String> {
        match self.max_nodes {
            Some(max) if nodes > max => Err(format!(
                "system {} runs at most {max} nodes and the topology has {nodes}; choose a smaller --number-nodes or another topology",
                self.name
            )),
            _ => Ok(()),
        }
    }

    /// This definition's adapter (checked when the definition was read).
    pub fn adapter(&self) -> &'static dyn Adapter {
        adapter(&self.adapter).unwrap_or(&etcd::Etcd)
    }
}

fn comma() -> String {
    ",".into()
}

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{system}: {binary} not found; install it: {hint}")]
    Missing {
        system: String,
        binary: String,
        hint: String,
    },
    #[error("node {node}: {what}: {error}")]
    Node {
        node: String,
        what: String,
        error: String,
    },
    #[error("no leader within {deadline:?}{}\n{tails}", if waited_for.is_empty() { String::new() } else { format!(" (not answering: {waited_for})") })]
    NoLeader {
        deadline: Duration,
        waited_for: String,
        tails: String,
    },
    #[error("no node named '{0}'; nodes: {1}")]
    NoSuchNode(String, String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("interrupted while waiting for the cluster")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

/// Resolve a built-in system by name.
pub fn builtin(name: &str) -> Result<SystemDef, SystemError> {
    parse(&CATALOG.builtin(name)?)
}

/// Read a user's system definition; its name is the file's stem.
pub fn from_file(path: &Path) -> Result<SystemDef, SystemError> {
    parse(&CATALOG.file(path)?)
}

fn parse(src: &Source) -> Result<SystemDef, SystemError> {
    let mut def: SystemDef = src.toml().map_err(|(line, message)| SystemError::Invalid {
        file: src.file.clone(),
        line,
        message,
    })?;
    def.name = src.name.clone();
    let invalid = |needle: &str, message: String| SystemError::Invalid {
        file: src.file.clone(),
        line: src.line_of(needle),
        message,
    };
    let Some(a) = adapter(&def.adapter) else {
        return Err(invalid(
            "adapter",
            format!(
                "adapter '{}': known adapters: {}",
                def.adapter,
                adapter_names()
            ),
        ));
    };
    let files = def.files.iter().flat_map(|f| [&f.path, &f.content]);
    for t in def
        .args
        .iter()
        .chain([&def.member])
        .chain(def.env.values())
        .chain(files)
    {
        check_template(t).map_err(|m| invalid(t, m))?;
    }
    for k in def.client.keys() {
        if !a.client_options().contains(&k.as_str()) {
            let known = a.client_options().join(", ");
            return Err(invalid(
                k,
                format!(
                    "[client] {k}: the {} client takes {}",
                    a.name(),
                    if known.is_empty() {
                        "no options".into()
                    } else {
                        known
                    }
                ),
            ));
        }
    }
    if def.args.is_empty() {
        return Err(invalid("args", "args is empty".into()));
    }
    if def.max_nodes == Some(0) {
        return Err(invalid(
            "max_nodes",
            "max_nodes = 0: give at least 1".into(),
        ));
    }
    Ok(def)
}

/// A placeholder is `{name}` with `name` of letters, digits and `_`, and must be known; other
/// braces are text (a config file's own `{ ... }` blocks).
fn check_template(t: &str) -> Result<(), String> {
    for key in placeholders(t) {
        if !PLACEHOLDERS.contains(&key) {
            return Err(format!(
                "'{t}': unknown placeholder {{{key}}}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        }
    }
    Ok(())
}

/// The names of the placeholders in `t`.
fn placeholders(t: &str) -> impl Iterator<Item = &str> {
    t.split('{').skip(1).filter_map(|rest| {
        let (key, _) = rest.split_once('}')?;
        let is_name = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_name.then_some(key)
    })
}

pub(crate) fn fill(t: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = t.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_names_in_braces_and_other_braces_are_text() {
        let conf = "jetstream {\n  store_dir: \"{data_dir}/js\"\n}\nserver_name: {name}";
        assert_eq!(
            super::placeholders(conf).collect::<Vec<_>>(),
            ["data_dir", "name"]
        );
        assert!(super::check_template(conf).is_ok());
        let e = super::check_template("--dir {date_dir}").unwrap_err();
        assert!(e.contains("unknown placeholder {date_dir}"), "{e}");
        assert!(super::check_template("{ }{").is_ok());
    }

    #[test]
    fn every_builtin_definition_parses_and_names_a_known_adapter() {
        for (name, _) in super::BUILTIN {
            let def = super::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(def.adapter().name(), def.adapter, "{name}");
        }
    }
}
