//! Mininet beside reckon in `reckon bench net`: the same topology (its switches, hosts and
//! links) built and torn down by Mininet's own Python API, in the same run on the same
//! machine, so the speed-up printed is a ratio of two measurements. Mininet runs as it must
//! where the kernel has no openvswitch module: Open vSwitch's userspace datapath and
//! standalone switches (`OVSBridge`, `datapath='user'`, no controller). Only where Debian's
//! `mininet` is installed (`scripts/setup.sh --test` installs it).
//!
//! Mininet names its switches and interfaces as the topology does (`s1`, `h1-eth0`), without
//! reckon's prefix: it is run only when no bridge of those names exists, and a bridge it leaves
//! behind is removed by its exact name.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::topology::Topology;

/// The Python with Debian's Mininet (the system's, not a virtualenv's).
const PYTHON: &str = "/usr/bin/python3";

/// Whether Mininet can be measured here, and if not, why not.
pub fn available() -> Result<(), String> {
    let o = Command::new(PYTHON)
        .args(["-c", "import mininet.net"])
        .output()
        .map_err(|e| format!("{PYTHON}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(
            "Mininet is not installed (Debian's `mininet`; scripts/setup.sh --test installs it)"
                .into(),
        )
    }
}

/// Mininet's version, as its `mn` says.
pub fn version() -> String {
    Command::new("mn")
        .arg("--version")
        .output()
        .map(|o| {
            // It prints its version on stderr.
            let out = [&o.stdout[..], &o.stderr[..]].concat();
            String::from_utf8_lossy(&out).trim().to_string()
        })
        .unwrap_or_default()
}

/// The driver: builds the topology given as JSON, starts it, stops it, `repeat` times, and
/// prints each up and down in seconds as JSON.
const DRIVER: &str = r#"
import json, sys, time
from functools import partial
from mininet.net import Mininet
from mininet.node import OVSBridge
from mininet.topo import Topo
from mininet.log import setLogLevel

spec = json.load(open(sys.argv[1]))
setLogLevel('error')

class Shape(Topo):
    def build(self):
        for s in spec['switches']:
            self.addSwitch(s)
        for h in spec['hosts']:
            self.addHost(h['name'], ip=h['ip'])
        for a, b in spec['links']:
            self.addLink(a, b)

times = []
for _ in range(spec['repeat']):
    t0 = time.monotonic()
    net = Mininet(topo=Shape(), switch=partial(OVSBridge, datapath='user'), controller=None,
                  autoSetMacs=True, waitConnected=False)
    net.start()
    t1 = time.monotonic()
    net.stop()
    t2 = time.monotonic()
    times.append([t1 - t0, t2 - t1])
print(json.dumps(times))
"#;

fn bridges() -> Vec<String> {
    Command::new("ovs-vsctl")
        .arg("list-br")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Mininet's median up and down of `topo` over `repeat` builds.
pub fn measure(
    topo: &Topology,
    repeat: usize,
    scratch: &Path,
) -> Result<(Duration, Duration), String> {
    let names: Vec<&str> = topo.switches.iter().map(|s| s.name.as_str()).collect();
    if let Some(b) = bridges().iter().find(|b| names.contains(&b.as_str())) {
        return Err(format!(
            "a bridge named {b} exists (not reckon's); Mininet would take its name, so it is not measured"
        ));
    }
    let mut links: Vec<[&str; 2]> = topo
        .hosts
        .iter()
        .map(|h| [h.name.as_str(), h.switch.as_str()])
        .collect();
    links.extend(topo.links.iter().map(|l| [l.a.as_str(), l.b.as_str()]));
    let spec = serde_json::json!({
        "switches": names,
        "hosts": topo.hosts.iter().map(|h| serde_json::json!({
            "name": h.name,
            "ip": format!("{}/{}", h.ip, topo.prefix_len),
        })).collect::<Vec<_>>(),
        "links": links,
        "repeat": repeat.max(1),
    });
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let spec_path = scratch.join("mininet-topology.json");
    let driver_path = scratch.join("mininet-driver.py");
    std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(&driver_path, DRIVER).map_err(|e| e.to_string())?;
    let out = Command::new(PYTHON)
        .arg(&driver_path)
        .arg(&spec_path)
        .output()
        .map_err(|e| format!("{PYTHON}: {e}"));
    // Whatever Mininet left of its switches goes, by their exact names.
    for b in bridges().iter().filter(|b| names.contains(&b.as_str())) {
        let _ = Command::new("ovs-vsctl")
            .args(["--if-exists", "del-br", b])
            .output();
    }
    let _ = std::fs::remove_file(&spec_path);
    let _ = std::fs::remove_file(&driver_path);
    let out = out?;
    if !out.status.success() {
        return Err(format!(
            "Mininet failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let times: Vec<[f64; 2]> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            format!(
                "Mininet's driver printed no times: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
    let median = |k: usize| {
        let mut v: Vec<f64> = times.iter().map(|t| t[k]).collect();
        v.sort_by(f64::total_cmp);
        Duration::from_secs_f64(v[v.len() / 2])
    };
    Ok((median(0), median(1)))
}
