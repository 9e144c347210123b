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
    let (stopped, failed) = stop_processes(&all_ns);
    removed.processes = stopped;
    problems.extend(failed);
    tracing::debug!("teardown {}: {:?}", m.prefix, t0.elapsed());
    // 2. Scratch directories, now that no process of the run uses them.
    problems.extend(remove_scratch(&m.scratch));
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

/// Stop every process in these (host, namespace) pairs: how many were stopped, and what
/// could not be done.
pub(super) fn stop_processes(namespaces: &[(&str, &str)]) -> (usize, Vec<String>) {
    let (mut stopped, mut problems) = (0, Vec::new());
    for (host, ns) in namespaces {
        match netns::kill_processes(ns, Duration::from_secs(2)) {
            Ok(p) => stopped += p.len(),
            Err(e) => problems.push(format!("host {host}: {e}")),
        }
    }
    (stopped, problems)
}

/// Remove a network's scratch directories (one already gone is fine); what could not be removed.
pub(super) fn remove_scratch(dirs: &[std::path::PathBuf]) -> Vec<String> {
    dirs.iter()
        .filter_map(|d| match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Some(format!("remove {}: {e}", d.display()))
            }
            _ => None,
        })
        .collect()
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

/// Which networks `clean` removes.
#[derive(Clone, Copy, Debug, Default)]
pub struct CleanScope<'a> {
    /// Only the network with this prefix.
    pub prefix: Option<&'a str>,
    /// Only a network that this process created and left behind (a sweep cleaning after a
    /// run that crashed; never a network left up on purpose, or another run's).
    pub owner: Option<u32>,
}

/// Remove every network no live reckon process owns (crashed runs and `topo up` leftovers),
/// within `scope`. Networks of live runs are skipped and listed in the second value. A prefix
/// whose record cannot be read is reported among the first and the others are still cleaned.
pub fn clean(scope: CleanScope, ovs: &OvsConfig) -> Result<(Vec<Cleaned>, Vec<String>), NetError> {
    require_root()?;
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    let prefixes = match scope.prefix {
        Some(p) => vec![p.to_string()],
        None => registry::prefixes(),
    };
    for p in prefixes {
        let taken = match Claim::take_over(&p) {
            Ok(t) => t,
            Err(e) => {
                done.push(Cleaned {
                    prefix: p,
                    result: Err(NetError::Registry(e)),
                    crashed: false,
                });
                continue;
            }
        };
        match taken {
            None => skipped.push(p),
            Some((_, None)) => {}
            Some((_, Some(m))) if scope.owner.is_some() && m.owner != scope.owner => {}
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
    if scope.owner.is_none() {
        done.extend(clean_unrecorded(scope.prefix, ovs));
    }
    Ok((done, skipped))
}

/// Bridges reckon tagged in OVSDB (`external_ids:reckon-prefix`) whose network has no record
/// and no live owner: they outlive a reboot, which empties the registry (it is on tmpfs), while
/// the namespaces and veths go with the old kernel.
fn clean_unrecorded(only: Option<&str>, ovs: &OvsConfig) -> Vec<Cleaned> {
    let Ok(mut db) = ovs.connect_or_start() else {
        return Vec::new();
    };
    let tagged = db.reckon_bridges().unwrap_or_default();
    let mut by_prefix: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (bridge, prefix) in tagged {
        if only.is_none_or(|o| o == prefix) {
            by_prefix.entry(prefix).or_default().push(bridge);
        }
    }
    let mut done = Vec::new();
    for (prefix, bridges) in by_prefix {
        // A live network, or one with a record, is the registry's business.
        let Ok(Some((claim, None))) = Claim::take_over(&prefix) else {
            continue;
        };
        let result = db
            .del_bridges(&bridges)
            .map(|_| Removed {
                bridges: bridges.len(),
                ..Default::default()
            })
            .map_err(NetError::Ovs);
        drop(claim);
        done.push(Cleaned {
            prefix,
            result,
            crashed: true,
        });
    }
    done
}
