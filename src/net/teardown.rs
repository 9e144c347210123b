//! Taking a network down, by exact name and in the order the kernel needs: the processes in
//! its namespaces, its scratch directories, the namespaces (the kernel then removes the host
//! links), the switch-to-switch links (one request for the network's link group when only
//! ours are in it), the bridges; then it checks that nothing is left and forgets the network.
//! `down` is `reckon topo down`, `clean` is `reckon clean`.

use std::io;
use std::time::{Duration, Instant};

use super::build::{link_exists, link_group};
use super::registry::{self, Claim, Manifest};
use super::{netns, require_root, rtnl, NetError, OvsConfig};

/// What a teardown removed.
#[derive(Clone, Debug, Default)]
pub struct Removed {
    pub processes: usize,
    pub namespaces: usize,
    pub veths: usize,
    pub bridges: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let n =
            |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        write!(
            f,
            "{}, {}, {}, {}",
            n(self.namespaces, "namespace", "namespaces"),
            n(self.veths, "veth pair", "veth pairs"),
            n(self.bridges, "bridge", "bridges"),
            n(self.processes, "process", "processes")
        )
    }
}

/// Remove everything in `m`, by exact name, and confirm it is gone. The caller holds the claim.
pub fn teardown(claim: &Claim, m: &Manifest, ovs: &OvsConfig) -> Result<Removed, NetError> {
    let mut removed = Removed::default();
    let mut problems = Vec::new();
    let t0 = Instant::now();
    removed.veths = m.veths.iter().filter(|v| link_exists(v)).count();
    // 1. Processes: a namespace is only freed (and its veths with it) once nothing holds it.
    let all_ns: Vec<(&str, &str)> = m
        .namespaces
        .iter()
        .map(|(h, ns)| (h.as_str(), ns.as_str()))
        .chain(m.link_netns.as_deref().map(|ns| ("(links)", ns)))
        .collect();
    for (host, ns) in &all_ns {
        match netns::kill_processes(ns, Duration::from_secs(2)) {
            Ok(p) => removed.processes += p.len(),
            Err(e) => problems.push(format!("host {host}: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // Scratch directories, now that no process of the run uses them.
    for d in &m.scratch {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                problems.push(format!("remove {}: {e}", d.display()))
            }
            _ => {}
        }
    }
    // 3. Namespaces: the kernel then removes every host link in one batch.
    for (host, ns) in &all_ns {
        if netns::exists(ns) {
            match netns::delete(ns) {
                Ok(()) => removed.namespaces += 1,
                Err(e) => problems.push(format!("host {host}: delete namespace {ns}: {e}")),
            }
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // 4. The remaining links (between switches), from the root side. They carry the network's
    // link group, so one request removes them all, provided nothing else is in that group;
    // otherwise they go one by one, by name.
    let present: Vec<&String> = m.veths.iter().filter(|v| link_exists(v)).collect();
    if !present.is_empty() {
        let group = link_group(&m.prefix);
        match rtnl::Rtnl::open() {
            Ok(mut rt) => {
                let only_ours = rt
                    .links_in_group(group)
                    .is_ok_and(|names| names.iter().all(|n| m.veths.contains(n)));
                let reqs = if only_ours {
                    vec![rtnl::Request::del_group(group)]
                } else {
                    present.iter().map(|v| rtnl::Request::del_link(v)).collect()
                };
                for r in rt.run_all(reqs) {
                    match r {
                        Err(e) if e.errno() != Some(libc::ENODEV) => problems.push(e.to_string()),
                        _ => {}
                    }
                }
            }
            Err(e) => problems.push(format!("open rtnetlink: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // Host links go when the kernel finishes destroying the namespaces: wait for that, so the
    // next network with the same names can be built as soon as this returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.veths.iter().any(|v| link_exists(v)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // 5. Switches.
    if !m.bridges.is_empty() {
        match ovs.connect_or_start().and_then(|mut db| {
            let before = db.bridges()?;
            db.del_bridges(&m.bridges)?;
            let after = db.bridges()?;
            removed.bridges = m.bridges.iter().filter(|b| before.contains(b)).count();
            Ok(m.bridges
                .iter()
                .filter(|b| after.contains(b))
                .cloned()
                .collect::<Vec<_>>())
        }) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => problems.push(format!("bridges still present: {}", left.join(", "))),
            Err(e) => problems.push(format!("removing bridges: {e}")),
        }
    }
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // 6. Confirm, then forget.
    for v in m.veths.iter().filter(|v| link_exists(v)) {
        problems.push(format!("interface {v} still exists"));
    }
    if problems.is_empty() {
        claim.remove().map_err(NetError::Registry)?;
        Ok(removed)
    } else {
        Err(NetError::Teardown(problems))
    }
}

/// Tear down the network `prefix` if no live process owns it (`reckon topo down`).
pub fn down(prefix: &str, ovs: &OvsConfig) -> Result<Removed, NetError> {
    require_root()?;
    match Claim::take_over(prefix).map_err(NetError::Registry)? {
        None => Err(NetError::Owned {
            prefix: prefix.into(),
            pid: registry::read(prefix).ok().flatten().and_then(|m| m.owner),
        }),
        Some((_, None)) => Err(NetError::NoNetwork(prefix.into())),
        Some((claim, Some(m))) => teardown(&claim, &m, ovs),
    }
}

/// What `reckon clean` did for one prefix.
pub struct Cleaned {
    pub prefix: String,
    pub result: Result<Removed, NetError>,
    /// Whether it was a crashed run (owner recorded) rather than a network left up on purpose.
    pub crashed: bool,
}

/// Remove every network no live reckon process owns (crashed runs and `topo up` leftovers).
/// With `only`, just that prefix. Networks of live runs are skipped and listed in the second value.
pub fn clean(only: Option<&str>, ovs: &OvsConfig) -> Result<(Vec<Cleaned>, Vec<String>), NetError> {
    require_root()?;
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    let prefixes = match only {
        Some(p) => vec![p.to_string()],
        None => registry::prefixes(),
    };
    for p in prefixes {
        match Claim::take_over(&p).map_err(NetError::Registry)? {
            None => skipped.push(p),
            Some((_, None)) => {}
            Some((claim, Some(m))) => {
                let result = teardown(&claim, &m, ovs);
                done.push(Cleaned {
                    prefix: p,
                    result,
                    crashed: m.owner.is_some(),
                });
            }
        }
    }
    Ok((done, skipped))
}
