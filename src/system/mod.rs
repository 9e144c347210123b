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

pub mod etcd;
pub mod zookeeper;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::catalog::{Catalog, CatalogError, Source};
use crate::net::{self, registry::Manifest, NetError};

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
];

/// A member of the cluster, as an adapter sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    /// Its client port.
    pub port: u16,
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
    pub target: crate::client::etcd::Target,
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
}

/// The adapters in code, by the name a definition gives in `adapter`.
pub static ADAPTERS: &[&dyn Adapter] = &[&etcd::Etcd, &zookeeper::ZooKeeper];

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
    /// How to install the binary, shown when it is missing.
    pub install_hint: String,
    pub adapter: String,
    pub client_port: u16,
    pub peer_port: u16,
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
    Ok(def)
}

/// Every `{...}` in `t` must be a known placeholder.
fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("'{t}': unclosed '{{'"))?
            + open;
        let key = &rest[open + 1..close];
        if !PLACEHOLDERS.contains(&key) {
            return Err(format!(
                "'{t}': unknown placeholder {{{key}}}; known: {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[close + 1..];
    }
    Ok(())
}

fn fill(t: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = t.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// How to run a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// reckon's `--failure-timeout`: the election timeout.
    pub failure_timeout: Duration,
    /// Where node logs go (kept after the run).
    pub log_dir: PathBuf,
    /// Where data directories go (removed with the network).
    pub data_root: PathBuf,
}

/// One node of the cluster.
pub struct Node {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// The node's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// What a member says of itself.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberStatus {
    pub node: String,
    /// `None`: it did not answer.
    pub answer: Option<Answer>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub member_id: u64,
    pub leader_id: u64,
    pub raft_term: u64,
    pub raft_index: u64,
}

/// A running cluster: one process per node host. Dropping it kills every node it started and
/// removes the data directories.
pub struct Cluster {
    pub def: SystemDef,
    pub nodes: Vec<Node>,
    manifest: Manifest,
    opts: ClusterOptions,
    /// Left running on purpose (`reckon topo up` without `--hold`): the network's teardown
    /// stops the nodes and removes the data.
    detached: bool,
}

impl Cluster {
    /// Start a node on every node host of `net` and return without waiting (see [`Cluster::wait_ready`]).
    pub fn start(
        net: &mut net::Network,
        def: &SystemDef,
        opts: &ClusterOptions,
    ) -> Result<Cluster, SystemError> {
        if let Some(missing) = def.missing() {
            return Err(SystemError::Missing {
                system: def.name.clone(),
                binary: missing.display().to_string(),
                hint: def.install_hint.clone(),
            });
        }
        fs::create_dir_all(&opts.log_dir).map_err(|e| {
            SystemError::Other(format!("log directory {}: {e}", opts.log_dir.display()))
        })?;
        if opts.data_root.exists() {
            return Err(SystemError::Other(format!(
                "data directory {} already exists; a fresh run needs a fresh one",
                opts.data_root.display()
            )));
        }
        fs::create_dir_all(&opts.data_root).map_err(|e| {
            SystemError::Other(format!("data directory {}: {e}", opts.data_root.display()))
        })?;
        net.add_scratch(&opts.data_root)?;
        let nodes = net
            .topology()
            .nodes()
            .map(|h| Node {
                name: h.name.clone(),
                ip: h.ip,
                data_dir: opts.data_root.join(&h.name),
                log: opts.log_dir.join(format!("{}.log", h.name)),
                child: None,
                paused: false,
            })
            .collect();
        let mut c = Cluster {
            def: def.clone(),
            nodes,
            manifest: net.manifest().clone(),
            opts: opts.clone(),
            detached: false,
        };
        for i in 0..c.nodes.len() {
            c.spawn(i, "new")?;
        }
        Ok(c)
    }

    fn index(&self, node: &str) -> Result<usize, SystemError> {
        self.nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| {
                SystemError::NoSuchNode(
                    node.into(),
                    self.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }

    fn vars(&self, i: usize, state: &str) -> BTreeMap<&'static str, String> {
        let n = &self.nodes[i];
        let ms = self.opts.failure_timeout.as_millis().max(10);
        let mut v = BTreeMap::from([
            ("client_port", self.def.client_port.to_string()),
            ("peer_port", self.def.peer_port.to_string()),
            ("token", format!("reckon-{}", self.manifest.prefix)),
            ("cluster_state", state.to_string()),
            ("election_ms", ms.to_string()),
            ("heartbeat_ms", (ms / 10).max(1).to_string()),
        ]);
        let members: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let mut mv = v.clone();
                mv.insert("name", m.name.clone());
                mv.insert("ip", m.ip.to_string());
                mv.insert("id", (k + 1).to_string());
                fill(&self.def.member, &mv)
            })
            .collect();
        v.insert("initial_cluster", members.join(&self.def.member_separator));
        v.insert("id", (i + 1).to_string());
        v.insert("name", n.name.clone());
        v.insert("ip", n.ip.to_string());
        v.insert("data_dir", n.data_dir.display().to_string());
        v
    }

    fn spawn(&mut self, i: usize, state: &str) -> Result<(), SystemError> {
        let vars = self.vars(i, state);
        let node = &self.nodes[i];
        let err = |what: &str, e: String| SystemError::Node {
            node: node.name.clone(),
            what: what.into(),
            error: e,
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| err("open log", format!("{}: {e}", node.log.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| err("open log", e.to_string()))?;
        fs::create_dir_all(&node.data_dir).map_err(|e| {
            err(
                "data directory",
                format!("{}: {e}", node.data_dir.display()),
            )
        })?;
        for f in &self.def.files {
            let path = PathBuf::from(fill(&f.path, &vars));
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)
                    .map_err(|e| err("write file", format!("{}: {e}", dir.display())))?;
            }
            fs::write(&path, fill(&f.content, &vars))
                .map_err(|e| err("write file", format!("{}: {e}", path.display())))?;
        }
        let mut cmd: Command = net::command_in(&self.manifest, &node.name, &self.def.binary)?;
        cmd.args(self.def.args.iter().map(|a| fill(a, &vars)))
            .envs(self.def.env.iter().map(|(k, v)| (k, fill(v, &vars))))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // Its own process group: a Ctrl-C at the terminal reaches reckon, which stops nodes itself.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| err("start", format!("{}: {e}", self.def.binary.display())))?;
        tracing::info!(
            "started {} on {} (pid {})",
            self.def.name,
            node.name,
            child.id()
        );
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Kill a node (SIGKILL); its data stays for a restart.
    pub fn stop(&mut self, node: &str) -> Result<(), SystemError> {
        let i = self.index(node)?;
        let n = &mut self.nodes[i];
        let Some(mut c) = n.child.take() else {
            return Err(SystemError::Node {
                node: node.into(),
                what: "stop".into(),
                error: "it is not running".into(),
            });
        };
        let _ = c.kill();
        let _ = c.wait();
        n.paused = false;
        Ok(())
    }

    /// Start a stopped node again with its data: it rejoins the cluster.
    pub fn restart(&mut self, node: &str) -> Result<(), SystemError> {
        let i = self.index(node)?;
        if self.nodes[i].child.is_some() {
            return Err(SystemError::Node {
                node: node.into(),
                what: "restart".into(),
                error: "it is running; stop it first".into(),
            });
        }
        self.spawn(i, "existing")
    }

    fn signal(&mut self, node: &str, sig: Signal, paused: bool) -> Result<(), SystemError> {
        let i = self.index(node)?;
        let n = &mut self.nodes[i];
        let pid = n.pid().ok_or_else(|| SystemError::Node {
            node: node.into(),
            what: format!("{sig}"),
            error: "it is not running".into(),
        })?;
        kill(Pid::from_raw(pid as i32), sig).map_err(|e| SystemError::Node {
            node: node.into(),
            what: format!("{sig}"),
            error: e.to_string(),
        })?;
        n.paused = paused;
        Ok(())
    }

    /// Freeze a node (SIGSTOP): it holds its state and sockets but answers nothing.
    pub fn pause(&mut self, node: &str) -> Result<(), SystemError> {
        self.signal(node, Signal::SIGSTOP, true)
    }

    /// Let a paused node go on (SIGCONT).
    pub fn resume(&mut self, node: &str) -> Result<(), SystemError> {
        self.signal(node, Signal::SIGCONT, false)
    }

    /// Client endpoints of every node, in node order.
    pub fn endpoints(&self) -> Vec<String> {
        let a = self.def.adapter();
        self.nodes
            .iter()
            .map(|n| a.endpoint(n.ip, self.def.client_port))
            .collect()
    }

    /// The members, as adapters see them.
    pub fn members(&self) -> Vec<Member> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(k, n)| Member {
                name: n.name.clone(),
                ip: n.ip,
                port: self.def.client_port,
                id: k + 1,
            })
            .collect()
    }

    /// Ask every node about itself (in parallel, from inside its own host).
    pub fn status(&self) -> Vec<MemberStatus> {
        self.def.adapter().status(&self.manifest, &self.members())
    }

    /// The node the answering members agree leads, if any.
    pub fn leader(&self) -> Option<String> {
        leader_of(&self.status())
    }

    /// Wait until every running, unpaused node answers and they agree on a leader; returns it.
    /// On timeout the error shows the tail of every node's log.
    pub fn wait_ready(&self, deadline: Duration) -> Result<String, SystemError> {
        let start = Instant::now();
        let mut last = Vec::new();
        while start.elapsed() < deadline {
            let st = self.status();
            let expected: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| n.is_running() && !n.paused)
                .map(|n| n.name.as_str())
                .collect();
            let all_answer = expected
                .iter()
                .all(|e| st.iter().any(|s| s.node == *e && s.answer.is_some()));
            if let (true, Some(l)) = (all_answer, leader_of(&st)) {
                return Ok(l);
            }
            last = st;
            std::thread::sleep(Duration::from_millis(100));
        }
        let silent = last
            .iter()
            .filter(|s| s.answer.is_none())
            .map(|s| s.node.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(SystemError::NoLeader {
            deadline,
            waited_for: silent,
            tails: self.log_tails(12),
        })
    }

    /// The last `lines` lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let text = fs::read_to_string(&n.log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            s += &format!("--- {} ({}):\n", n.name, n.log.display());
            for l in &all[all.len().saturating_sub(lines)..] {
                s += &format!("  {l}\n");
            }
        }
        s
    }
}

/// The leader named by most answering members, provided it is one of them.
fn leader_of(st: &[MemberStatus]) -> Option<String> {
    let answers: Vec<(&str, &Answer)> = st
        .iter()
        .filter_map(|s| s.answer.as_ref().map(|a| (s.node.as_str(), a)))
        .collect();
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, a) in &answers {
        if a.leader_id != 0 {
            *votes.entry(a.leader_id).or_default() += 1;
        }
    }
    let (&id, _) = votes.iter().max_by_key(|(_, v)| **v)?;
    answers
        .iter()
        .find(|(_, a)| a.member_id == id)
        .map(|(n, _)| n.to_string())
}

impl Cluster {
    /// Leave the nodes running after this process exits; the network's teardown (`reckon topo
    /// down`, `reckon clean`) stops them and removes their data.
    pub fn detach(mut self) {
        self.detached = true;
        for n in &mut self.nodes {
            n.child = None;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = fs::remove_dir_all(&self.opts.data_root);
    }
}
