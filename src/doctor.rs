//! `reckon doctor`: is this machine ready to run experiments, and if not, how to fix it.

use crate::net::{self, ovs};

/// One finding.
pub struct Finding {
    pub what: &'static str,
    /// Whether runs can go ahead as far as this check is concerned.
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

fn finding(what: &'static str, ok: bool, detail: impl Into<String>, fix: Option<&str>) -> Finding {
    Finding {
        what,
        ok,
        detail: detail.into(),
        fix: fix.map(String::from),
    }
}

/// Run every check.
pub fn diagnose(cfg: &ovs::OvsConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let root = net::require_root().is_ok();
    out.push(finding(
        "root",
        root,
        if root { "running as root" } else { "not root" },
        (!root).then_some("run reckon with sudo"),
    ));

    let ovs_ok = match cfg.connect() {
        Ok(mut db) => {
            let version = db
                .transact(vec![serde_json::json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["ovs_version"]})])
                .ok()
                .and_then(|r| r[0]["rows"][0]["ovs_version"].as_str().map(String::from))
                .unwrap_or_else(|| "unknown version".into());
            if cfg.is_running() {
                out.push(finding(
                    "Open vSwitch",
                    true,
                    format!(
                        "ovsdb-server and ovs-vswitchd running ({version}) at {}",
                        cfg.socket.display()
                    ),
                    None,
                ));
                true
            } else {
                out.push(finding(
                    "Open vSwitch",
                    false,
                    "ovsdb-server is up but ovs-vswitchd is not running",
                    Some(&format!("{} start", cfg.ctl.display())),
                ));
                false
            }
        }
        Err(e) => {
            let fix = if cfg.ctl.exists() {
                format!(
                    "{} start (reckon also tries this itself)",
                    cfg.ctl.display()
                )
            } else {
                "run scripts/setup.sh (installs Debian's openvswitch-switch and starts it)".into()
            };
            out.push(finding(
                "Open vSwitch",
                false,
                e.to_string().lines().next().unwrap_or("").to_string(),
                Some(&fix),
            ));
            false
        }
    };
    let _ = ovs_ok;

    let dp = ovs::Datapath::Auto.resolve();
    out.push(finding(
        "datapath",
        true,
        match dp {
            ovs::Datapath::Kernel => "kernel datapath (openvswitch module present)".to_string(),
            _ => "userspace datapath (no openvswitch kernel module); reckon turns tx checksum offload off on every veth so TCP works".to_string(),
        },
        None,
    ));

    if root {
        let (present, detail) = crate::net::impair::netem_probe();
        out.push(finding(
            "netem",
            true,
            if present {
                "sch_netem present: --impair-backend auto uses tc netem".to_string()
            } else {
                format!("sch_netem absent ({detail}): --impair-backend auto uses reckon's userspace engine")
            },
            None,
        ));
    }

    match std::fs::read_to_string("/sys/kernel/rcu_expedited").map(|s| s.trim().to_string()) {
        Ok(v) if v == "0" => out.push(finding(
            "teardown",
            true,
            "RCU grace periods are normal (rcu_expedited=0): ovs-vswitchd needs one per port it removes, ~15 ms each here, which dominates teardown",
            Some("optional: `echo 1 > /sys/kernel/rcu_expedited` (machine-wide; makes teardown ~10x faster; `echo 0` to undo)"),
        )),
        Ok(_) => out.push(finding("teardown", true, "RCU grace periods expedited (rcu_expedited=1): fast teardown", None)),
        Err(_) => {}
    }

    // Every built-in system: installed or not. etcd runs the default experiment, so its absence
    // is a failure; the others are needed only to run them.
    for name in crate::system::CATALOG.names() {
        let Ok(def) = crate::system::builtin(name) else {
            continue;
        };
        let needed = name == "etcd";
        match def.missing() {
            None => {
                let version = def.version();
                out.push(finding(
                    name,
                    true,
                    format!("{} ({}; {version})", def.description, def.binary.display()),
                    None,
                ));
            }
            Some(missing) => out.push(finding(
                name,
                !needed,
                format!(
                    "{} not found{}",
                    missing.display(),
                    if needed {
                        ""
                    } else {
                        " (needed only to run it)"
                    }
                ),
                Some(def.install_hint.as_str()),
            )),
        }
    }
    out
}
