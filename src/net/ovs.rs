//! Open vSwitch, spoken to over OVSDB's JSON-RPC (RFC 7047) on its unix socket: a whole
//! topology's bridges and ports go in one transaction, and we wait until `ovs-vswitchd` has
//! applied it (`cur_cfg` catching up with `next_cfg`, as `ovs-vsctl` does) and check that every
//! port opened.

use std::io::{self, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const DB: &str = "Open_vSwitch";

/// Which datapath bridges use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Datapath {
    /// Kernel datapath if the kernel has the openvswitch module, userspace otherwise.
    Auto,
    /// The kernel's openvswitch module (`datapath_type=system`).
    Kernel,
    /// OVS's userspace datapath (`datapath_type=netdev`); works without the kernel module.
    User,
}

impl Datapath {
    /// Resolve `Auto` by looking for the kernel module.
    pub fn resolve(self) -> Datapath {
        match self {
            Datapath::Auto if kernel_module_present() => Datapath::Kernel,
            Datapath::Auto => Datapath::User,
            d => d,
        }
    }

    fn ovsdb_name(self) -> &'static str {
        match self.resolve() {
            Datapath::Kernel => "system",
            _ => "netdev",
        }
    }
}

/// Whether the kernel has the openvswitch module loaded (or built in).
pub fn kernel_module_present() -> bool {
    Path::new("/sys/module/openvswitch").exists()
}

#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    #[error("cannot reach Open vSwitch at {socket}: {detail}\n  fix: install it with `scripts/setup.sh` (Debian package openvswitch-switch) and start it with `{ctl} start`")]
    Unavailable {
        socket: PathBuf,
        ctl: PathBuf,
        detail: String,
    },
    #[error("OVSDB at {socket}: {detail}")]
    Protocol { socket: PathBuf, detail: String },
    #[error("OVSDB transaction failed: {0}")]
    Transaction(String),
    #[error("ovs-vswitchd did not apply the configuration within {0:?}; is ovs-vswitchd running? (check `reckon doctor`)")]
    NotApplied(Duration),
    #[error("Open vSwitch could not open port {port}: {error}")]
    Port { port: String, error: String },
}

/// Where to find OVS: the OVSDB socket and the `ovs-ctl` script that starts the daemons.
/// Overridable with `RECKON_OVSDB_SOCK` and `RECKON_OVS_CTL`.
#[derive(Clone, Debug)]
pub struct OvsConfig {
    pub socket: PathBuf,
    pub ctl: PathBuf,
}

impl Default for OvsConfig {
    fn default() -> Self {
        OvsConfig {
            socket: std::env::var_os("RECKON_OVSDB_SOCK")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/var/run/openvswitch/db.sock".into()),
            ctl: std::env::var_os("RECKON_OVS_CTL")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/usr/share/openvswitch/scripts/ovs-ctl".into()),
        }
    }
}

impl OvsConfig {
    fn vswitchd_running(&self) -> bool {
        let pidfile = self.socket.with_file_name("ovs-vswitchd.pid");
        std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Connect, starting the OVS daemons with `ovs-ctl start` if they are not running.
    pub fn connect_or_start(&self) -> Result<Ovsdb, OvsError> {
        if let Ok(db) = Ovsdb::connect(&self.socket) {
            if self.vswitchd_running() {
                return Ok(db);
            }
        }
        tracing::warn!(
            "Open vSwitch is not running; starting it with `{} start`",
            self.ctl.display()
        );
        let out = Command::new(&self.ctl).arg("start").output();
        let detail = match out {
            Err(e) => format!("could not run {}: {e}", self.ctl.display()),
            Ok(o) if !o.status.success() => format!(
                "{} start failed ({}): {}",
                self.ctl.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Ok(_) => match Ovsdb::connect(&self.socket) {
                Ok(db) if self.vswitchd_running() => return Ok(db),
                Ok(_) => "ovsdb-server is up but ovs-vswitchd is not running".into(),
                Err(e) => e.to_string(),
            },
        };
        Err(OvsError::Unavailable {
            socket: self.socket.clone(),
            ctl: self.ctl.clone(),
            detail,
        })
    }

    /// Connect without starting anything.
    pub fn connect(&self) -> Result<Ovsdb, OvsError> {
        Ovsdb::connect(&self.socket)
    }

    /// Run an `ovs-appctl` command on ovs-vswitchd, speaking its unixctl JSON-RPC directly
    /// (no process per call). Returns the command's text answer.
    pub fn vswitchd_command(&self, method: &str, params: &[&str]) -> Result<String, OvsError> {
        let dir = self
            .socket
            .parent()
            .unwrap_or(Path::new("/var/run/openvswitch"));
        let fail = |d: String| OvsError::Protocol {
            socket: dir.join("ovs-vswitchd.<pid>.ctl"),
            detail: d,
        };
        let pid = std::fs::read_to_string(dir.join("ovs-vswitchd.pid"))
            .map_err(|e| fail(format!("ovs-vswitchd.pid: {e}")))?;
        let ctl = dir.join(format!("ovs-vswitchd.{}.ctl", pid.trim()));
        let mut stream =
            UnixStream::connect(&ctl).map_err(|e| fail(format!("{}: {e}", ctl.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| fail(e.to_string()))?;
        stream
            .write_all(
                json!({"method": method, "params": params, "id": 1})
                    .to_string()
                    .as_bytes(),
            )
            .map_err(|e| fail(e.to_string()))?;
        let reply: Value = serde_json::Deserializer::from_reader(BufReader::new(stream))
            .into_iter::<Value>()
            .next()
            .ok_or_else(|| fail("no answer".into()))?
            .map_err(|e| fail(e.to_string()))?;
        if !reply["error"].is_null() {
            return Err(fail(format!("{method}: {}", reply["error"])));
        }
        Ok(reply["result"].as_str().unwrap_or_default().to_string())
    }

    pub fn is_running(&self) -> bool {
        Ovsdb::connect(&self.socket).is_ok() && self.vswitchd_running()
    }
}

/// An OVSDB JSON-RPC connection.
pub struct Ovsdb {
    socket: PathBuf,
    writer: UnixStream,
    reader: serde_json::StreamDeserializer<
        'static,
        serde_json::de::IoRead<BufReader<UnixStream>>,
        Value,
    >,
    next_id: u64,
}

/// A bridge to create: its name and the (already existing) interfaces to attach as ports.
pub struct BridgeSpec {
    pub name: String,
    pub ports: Vec<String>,
}

impl Ovsdb {
    pub fn connect(socket: &Path) -> Result<Ovsdb, OvsError> {
        let unavailable = |e: io::Error| OvsError::Unavailable {
            socket: socket.into(),
            ctl: OvsConfig::default().ctl,
            detail: e.to_string(),
        };
        let stream = UnixStream::connect(socket).map_err(unavailable)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(unavailable)?;
        let reader = serde_json::Deserializer::from_reader(BufReader::new(
            stream.try_clone().map_err(unavailable)?,
        ))
        .into_iter();
        Ok(Ovsdb {
            socket: socket.into(),
            writer: stream,
            reader,
            next_id: 1,
        })
    }

    fn protocol(&self, detail: impl ToString) -> OvsError {
        OvsError::Protocol {
            socket: self.socket.clone(),
            detail: detail.to_string(),
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, OvsError> {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"method": method, "params": params, "id": id});
        self.writer
            .write_all(req.to_string().as_bytes())
            .map_err(|e| self.protocol(e))?;
        loop {
            let msg = match self.reader.next() {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(self.protocol(e)),
                None => return Err(self.protocol("connection closed")),
            };
            if msg.get("method").and_then(Value::as_str) == Some("echo") {
                let reply = json!({"result": msg["params"], "error": null, "id": msg["id"]});
                self.writer
                    .write_all(reply.to_string().as_bytes())
                    .map_err(|e| self.protocol(e))?;
                continue;
            }
            if msg.get("id") != Some(&json!(id)) {
                continue;
            }
            if !msg["error"].is_null() {
                return Err(self.protocol(&msg["error"]));
            }
            return Ok(msg["result"].clone());
        }
    }

    /// Run one transaction; errors if any operation failed.
    pub fn transact(&mut self, ops: Vec<Value>) -> Result<Vec<Value>, OvsError> {
        let mut params = vec![json!(DB)];
        params.extend(ops);
        let result = self.call("transact", Value::Array(params))?;
        let results = result
            .as_array()
            .cloned()
            .ok_or_else(|| self.protocol("transact result is not an array"))?;
        if let Some(err) = results
            .iter()
            .find(|r| r.get("error").is_some_and(|e| !e.is_null()))
        {
            let details = err.get("details").and_then(Value::as_str).unwrap_or("");
            return Err(OvsError::Transaction(format!(
                "{} {}",
                err["error"].as_str().unwrap_or("error"),
                details
            )));
        }
        Ok(results)
    }

    /// Names of all bridges.
    pub fn bridges(&mut self) -> Result<Vec<String>, OvsError> {
        let r = self.transact(vec![
            json!({"op": "select", "table": "Bridge", "where": [], "columns": ["name"]}),
        ])?;
        Ok(rows(&r[0])
            .filter_map(|row| row["name"].as_str().map(String::from))
            .collect())
    }

    /// Bridges tagged as reckon's (`external_ids:reckon-prefix`): (name, prefix).
    pub fn reckon_bridges(&mut self) -> Result<Vec<(String, String)>, OvsError> {
        let r = self.transact(vec![
            json!({"op": "select", "table": "Bridge", "where": [], "columns": ["name", "external_ids"]}),
        ])?;
        Ok(rows(&r[0])
            .filter_map(|row| {
                let name = row["name"].as_str()?;
                // An OVSDB map: ["map", [[key, value], ...]].
                let prefix = row["external_ids"][1]
                    .as_array()?
                    .iter()
                    .find(|kv| kv[0] == TAG)?[1]
                    .as_str()?;
                Some((name.to_string(), prefix.to_string()))
            })
            .collect())
    }

    /// Create bridges (standalone, on `datapath`) with their ports in one transaction, wait until
    /// ovs-vswitchd has applied it, and check every port opened. Each bridge is tagged with
    /// `external_ids:reckon-prefix=<prefix>`, so `reckon clean` finds it even when the run's
    /// record is gone.
    pub fn add_bridges(
        &mut self,
        bridges: &[BridgeSpec],
        datapath: Datapath,
        prefix: &str,
    ) -> Result<(), OvsError> {
        let mut ops = Vec::new();
        let mut bridge_refs = Vec::new();
        let mut n = 0;
        for (bi, b) in bridges.iter().enumerate() {
            let mut port_refs = Vec::new();
            for p in &b.ports {
                n += 1;
                let (iface, port) = (format!("i{n}"), format!("p{n}"));
                ops.push(json!({"op": "insert", "table": "Interface", "uuid-name": iface, "row": {"name": p}}));
                ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port,
                    "row": {"name": p, "interfaces": ["named-uuid", iface]}}));
                port_refs.push(json!(["named-uuid", port]));
            }
            let bref = format!("b{bi}");
            ops.push(
                json!({"op": "insert", "table": "Bridge", "uuid-name": bref, "row": {
                "name": b.name, "datapath_type": datapath.ovsdb_name(), "fail_mode": "standalone",
                "external_ids": ["map", [[TAG, prefix]]],
                "ports": ["set", port_refs]}}),
            );
            bridge_refs.push(json!(["named-uuid", bref]));
        }
        ops.push(
            json!({"op": "mutate", "table": DB, "where": [], "mutations": [
            ["bridges", "insert", ["set", bridge_refs]], ["next_cfg", "+=", 1]]}),
        );
        ops.push(json!({"op": "select", "table": DB, "where": [], "columns": ["next_cfg"]}));
        let r = self.transact(ops)?;
        let target = rows(r.last().unwrap())
            .next()
            .and_then(|row| row["next_cfg"].as_i64())
            .unwrap_or(0);
        self.wait_applied(target)?;
        let ports: std::collections::HashSet<&str> = bridges
            .iter()
            .flat_map(|b| b.ports.iter().map(String::as_str))
            .collect();
        let r = self.transact(vec![
            json!({"op": "select", "table": "Interface", "where": [],
            "columns": ["name", "ofport", "error"]}),
        ])?;
        for row in rows(&r[0]) {
            let name = row["name"].as_str().unwrap_or("");
            if !ports.contains(name) {
                continue;
            }
            let error = row["error"].as_str().unwrap_or("");
            let ofport = row["ofport"].as_i64().unwrap_or(-1);
            if !error.is_empty() || ofport < 0 {
                let error = if error.is_empty() {
                    format!("ofport {ofport}")
                } else {
                    error.to_string()
                };
                return Err(OvsError::Port {
                    port: name.into(),
                    error,
                });
            }
        }
        Ok(())
    }

    /// Delete the named bridges (missing ones are ignored) with their ports, and wait until
    /// ovs-vswitchd has released them.
    pub fn del_bridges(&mut self, names: &[String]) -> Result<(), OvsError> {
        if names.is_empty() {
            return Ok(());
        }
        let r = self.transact(vec![
            json!({"op": "select", "table": "Bridge", "where": [], "columns": ["name", "_uuid"]}),
        ])?;
        let uuids: Vec<Value> = rows(&r[0])
            .filter(|row| {
                row["name"]
                    .as_str()
                    .is_some_and(|n| names.iter().any(|x| x == n))
            })
            .map(|row| row["_uuid"].clone())
            .collect();
        if uuids.is_empty() {
            return Ok(());
        }
        let r = self.transact(vec![
            json!({"op": "mutate", "table": DB, "where": [], "mutations": [
                ["bridges", "delete", ["set", uuids]], ["next_cfg", "+=", 1]]}),
            json!({"op": "select", "table": DB, "where": [], "columns": ["next_cfg"]}),
        ])?;
        let target = rows(&r[1])
            .next()
            .and_then(|row| row["next_cfg"].as_i64())
            .unwrap_or(0);
        self.wait_applied(target)
    }

    /// Wait until ovs-vswitchd reports `cur_cfg >= target`.
    fn wait_applied(&mut self, target: i64) -> Result<(), OvsError> {
        let limit = Duration::from_secs(20);
        let start = Instant::now();
        loop {
            let r = self.transact(vec![
                json!({"op": "select", "table": DB, "where": [], "columns": ["cur_cfg"]}),
            ])?;
            let cur = rows(&r[0])
                .next()
                .and_then(|row| row["cur_cfg"].as_i64())
                .unwrap_or(0);
            if cur >= target {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(OvsError::NotApplied(limit));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The key of the `external_ids` entry that marks a bridge as reckon's; its value is the prefix.
pub const TAG: &str = "reckon-prefix";

fn rows(result: &Value) -> impl Iterator<Item = &Value> {
    result["rows"].as_array().into_iter().flatten()
}
