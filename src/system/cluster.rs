//! A running cluster: one node process per node host, inside that host's namespace, owned by
//! one value — start (config files written first), stop (SIGKILL, data kept), restart (rejoin
//! with the data), pause/resume (SIGSTOP/SIGCONT), wait until ready, member status and the
//! leader (through the system's adapter), logs. Dropping it kills every node it started and
//! removes the data directories.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{fill, Member, SystemDef, SystemError};
use crate::net::{self, registry::Manifest};

/// How often readiness asks the members (each a status request from inside its host).
const READY_POLL: Duration = Duration::from_millis(25);

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
    /// The adapter's [`prepare`](super::Adapter::prepare) has run.
    prepared: std::sync::atomic::AtomicBool,
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
            prepared: Default::default(),
        };
        for i in 0..c.nodes.len() {
            c.spawn(i, "new")?;
            if let Some(path) = c
                .def
                .start_after_answer
                .clone()
                .filter(|_| i + 1 < c.nodes.len())
            {
                c.wait_answer(i, &path, Duration::from_secs(10))?;
            }
        }
        Ok(c)
    }

    /// Wait until node `i` answers an HTTP GET of `path` on its peer port (asked from inside
    /// its host), it exits, or `within` passes (then readiness will say what is wrong).
    fn wait_answer(&mut self, i: usize, path: &str, within: Duration) -> Result<(), SystemError> {
        let (name, ip) = (self.nodes[i].name.clone(), self.nodes[i].ip);
        let addr = std::net::SocketAddr::from((ip, self.def.peer_port));
        let host = net::open_host(&self.manifest, &name)?;
        let start = Instant::now();
        while start.elapsed() < within {
            if crate::signals::interrupted() {
                return Err(SystemError::Interrupted);
            }
            let answered = crate::net::netns::in_netns(&host, || -> std::io::Result<bool> {
                use std::io::{Read, Write};
                let t = Duration::from_millis(200);
                let mut c = std::net::TcpStream::connect_timeout(&addr, t)?;
                c.set_read_timeout(Some(t))?;
                write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
                Ok(c.read(&mut [0u8; 16])? > 0)
            });
            let up = matches!(answered, Ok(Ok(true)));
            if up {
                tracing::debug!("{name} listens after {:?}", start.elapsed());
                return Ok(());
            }
            if let Some(Ok(Some(_))) = self.nodes[i].child.as_mut().map(|c| c.try_wait()) {
                // It died: readiness reports it with its log.
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
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
            ("status_port", self.status_port().to_string()),
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
                status_port: self.status_port(),
                id: k + 1,
            })
            .collect()
    }

    fn status_port(&self) -> u16 {
        self.def.status_port.unwrap_or(self.def.client_port)
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
    /// The first time, the adapter prepares the cluster first (within the same deadline). On
    /// timeout the error shows the tail of every node's log.
    pub fn wait_ready(&self, deadline: Duration) -> Result<String, SystemError> {
        let start = Instant::now();
        if !self.prepared.load(std::sync::atomic::Ordering::Relaxed) {
            let adapter = self.def.adapter();
            adapter
                .prepare(super::Prepare {
                    manifest: &self.manifest,
                    members: &self.members(),
                    endpoints: &self.endpoints(),
                    options: &self.def.client,
                    within: deadline,
                })
                .map_err(|e| match crate::signals::interrupted() {
                    true => SystemError::Interrupted,
                    false => SystemError::Other(format!(
                        "{}: preparing the cluster: {e}\n{}",
                        self.def.name,
                        self.log_tails(12)
                    )),
                })?;
            self.prepared
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut last = Vec::new();
        while start.elapsed() < deadline {
            if crate::signals::interrupted() {
                return Err(SystemError::Interrupted);
            }
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
            std::thread::sleep(READY_POLL);
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
