//! Building a network: the plan (every name it will create, after the run's prefix, recorded
//! before anything is made), then namespaces, veth links (host ends created inside their
//! hosts; split links' inner ends in the link namespace), each host's address and ARP table,
//! and the switches with their ports in one OVSDB transaction.

use std::io;
use std::time::Instant;

use super::registry::Manifest;
use super::{
    check_interrupt, ethtool, impair, netns, ovs, rtnl, Datapath, NetError, Network,
    NetworkOptions, HOST_IFNAME,
};
use crate::topology::{Host, Topology};

pub(super) const IFNAMSIZ_MAX: usize = 15;

/// The names a topology gets under a prefix.
pub(super) fn plan(
    prefix: &str,
    topo: &Topology,
    opts: &NetworkOptions,
) -> Result<Manifest, NetError> {
    opts.impair.validate().map_err(NetError::Impair)?;
    let fits = |name: String, what: String| {
        if name.len() > IFNAMSIZ_MAX {
            Err(NetError::NameTooLong { name, what })
        } else {
            Ok(name)
        }
    };
    let namespaces = topo
        .hosts
        .iter()
        .map(|h| (h.name.clone(), format!("{prefix}-{}", h.name)))
        .collect();
    let mut veths = Vec::new();
    for h in &topo.hosts {
        veths.push(fits(
            host_port(prefix, h),
            format!("link of host {}", h.name),
        )?);
    }
    let impairments = impair::plan(topo, &opts.impair);
    let impaired = impairments
        .iter()
        .any(|l| !l.forward.is_none() || !l.back.is_none());
    let impair_backend = match (impaired || opts.impairable_all, opts.impair.backend) {
        (false, _) => None,
        (true, impair::Backend::Auto) => Some(if impair::netem_available() { impair::Backend::Netem } else { impair::Backend::Userspace }),
        (true, impair::Backend::Netem) if !impair::netem_available() => {
            return Err(NetError::Impair(format!(
                "--impair-backend netem: this kernel has no sch_netem (tc said: {}); use --impair-backend userspace or auto",
                impair::netem_probe().1
            )))
        }
        (true, b) => Some(b),
    };
    let split: Vec<String> = match impair_backend {
        Some(impair::Backend::Userspace) => impairments
            .iter()
            .filter(|l| opts.impairable_all || !l.forward.is_none() || !l.back.is_none())
            .map(|l| l.link.clone())
            .collect(),
        _ => Vec::new(),
    };
    for (k, l) in topo.links.iter().enumerate() {
        let (a, b) = switch_ports(prefix, k, &l.a, &l.b);
        let b = fits(b, format!("link {} - {}", l.b, l.a))?;
        veths.push(fits(a, format!("link {} - {}", l.a, l.b))?);
        if split.contains(&l.name()) {
            // Split: the far end is its own pair's root end.
            veths.push(b);
        }
    }
    let bridges = topo
        .switches
        .iter()
        .map(|s| fits(format!("{prefix}-{}", s.name), format!("switch {}", s.name)))
        .collect::<Result<_, _>>()?;
    let created_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Ok(Manifest {
        prefix: prefix.into(),
        owner: Some(std::process::id()),
        created_unix_ms,
        topology: topo.clone(),
        namespaces,
        veths,
        bridges,
        link_netns: (!split.is_empty()).then(|| format!("{prefix}.links")),
        impair_backend,
        impairments,
        split,
        latency_compensation_ms: 0.0,
        calibrated: Vec::new(),
        datapath: Some(opts.datapath.resolve()),
        kept: false,
        scratch: Vec::new(),
    })
}

/// The link group of a network's root-side links: the prefix read as a base-37 number (so two
/// prefixes never share a group), offset past the small groups other software uses.
pub fn link_group(prefix: &str) -> u32 {
    let digit = |c: char| match c {
        'a'..='z' => c as u32 - 'a' as u32 + 1,
        '0'..='9' => c as u32 - '0' as u32 + 27,
        _ => 0,
    };
    prefix
        .chars()
        .fold(0u32, |acc, c| acc.wrapping_mul(37).wrapping_add(digit(c)))
        .wrapping_add(1 << 20)
}

/// The MAC address of a host's interface: locally administered, then its IPv4 address.
pub fn host_mac(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Inner ends of a split host link, in the link namespace: towards the host, towards the switch.
pub(super) fn inner_host_ends(h: &Host) -> (String, String) {
    (format!("{}.h", h.name), format!("{}.s", h.name))
}

/// Inner ends of the k-th split switch link: towards switch a, towards switch b.
pub(super) fn inner_switch_ends(k: usize) -> (String, String) {
    (format!("L{k}.a"), format!("L{k}.b"))
}

/// Root-side name of a host's link (also its port name on the switch).
pub(super) fn host_port(prefix: &str, h: &Host) -> String {
    format!("{prefix}-{}", h.name)
}

/// The two root-side ends of the k-th switch-to-switch link: readable when short enough.
pub(super) fn switch_ports(prefix: &str, k: usize, a: &str, b: &str) -> (String, String) {
    let (x, y) = (format!("{prefix}-{a}-{b}"), format!("{prefix}-{b}-{a}"));
    if x.len() <= IFNAMSIZ_MAX && y.len() <= IFNAMSIZ_MAX {
        (x, y)
    } else {
        (format!("{prefix}-L{k}a"), format!("{prefix}-L{k}b"))
    }
}

/// Every name `m` is about to create must be free: never adopt what someone else made.
pub(super) fn ensure_free(m: &Manifest, db: &mut ovs::Ovsdb) -> Result<(), NetError> {
    // Names we are about to create must be free: never adopt what someone else made.
    for ns in m.namespaces.iter().map(|(_, ns)| ns).chain(&m.link_netns) {
        if netns::exists(ns) {
            return Err(NetError::Exists(format!("network namespace {ns}")));
        }
    }
    let far_ends = m
        .topology
        .links
        .iter()
        .enumerate()
        .map(|(k, l)| switch_ports(&m.prefix, k, &l.a, &l.b).1);
    for v in m.veths.iter().cloned().chain(far_ends) {
        if link_exists(&v) {
            return Err(NetError::Exists(format!("interface {v}")));
        }
    }
    let existing = db.bridges()?;
    if let Some(b) = m.bridges.iter().find(|b| existing.contains(b)) {
        let ours = db
            .reckon_bridges()?
            .into_iter()
            .any(|(n, p)| n == *b && p == m.prefix);
        return Err(if ours {
            NetError::Unrecorded(b.clone())
        } else {
            NetError::Exists(format!("Open vSwitch bridge {b}"))
        });
    }
    Ok(())
}

impl Network {
    pub(super) fn build(
        &mut self,
        db: &mut ovs::Ovsdb,
        datapath: Datapath,
    ) -> Result<(), NetError> {
        let topo = self.manifest.topology.clone();
        let prefix = self.manifest.prefix.clone();

        check_interrupt()?;
        let t = Instant::now();
        tracing::info!("creating {} namespaces", self.manifest.namespaces.len());
        for (host, ns) in &self.manifest.namespaces {
            netns::create(ns).map_err(|source| NetError::Host {
                host: host.clone(),
                what: format!("create namespace {ns}"),
                source,
            })?;
        }
        self.timings.namespaces = t.elapsed();

        // Links: veth pairs from the root namespace, host ends created inside their hosts.
        check_interrupt()?;
        tracing::info!("creating {} links", topo.hosts.len() + topo.links.len());
        let t = Instant::now();
        let fds = self
            .manifest
            .namespaces
            .iter()
            .map(|(host, ns)| {
                netns::open(ns).map_err(|source| NetError::Host {
                    host: host.clone(),
                    what: format!("open namespace {ns}"),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let group = link_group(&prefix);
        let split = |name: &str| self.manifest.split.iter().any(|s| s == name);
        // A split link's inner ends live in the link namespace, with the engine between them.
        let links_fd = match &self.manifest.link_netns {
            Some(ns) => {
                netns::create(ns).map_err(|source| NetError::Host {
                    host: "links".into(),
                    what: format!("create namespace {ns}"),
                    source,
                })?;
                Some(netns::open(ns).map_err(|source| NetError::Host {
                    host: "links".into(),
                    what: format!("open namespace {ns}"),
                    source,
                })?)
            }
            None => None,
        };
        let lfd = links_fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let mut reqs = Vec::new();
        let mut inner_reqs = Vec::new();
        let mut root_ends = Vec::new();
        let mut inner_ends = Vec::new();
        for (h, fd) in topo.hosts.iter().zip(&fds) {
            let port = host_port(&prefix, h);
            let ns_fd = Some(std::os::fd::AsRawFd::as_raw_fd(fd));
            if split(&h.name) {
                let (to_host, to_switch) = inner_host_ends(h);
                reqs.push(rtnl::Request::add_veth(&port, group, &to_switch, lfd, None));
                inner_reqs.push(rtnl::Request::add_veth(
                    &to_host,
                    0,
                    HOST_IFNAME,
                    ns_fd,
                    Some(host_mac(h.ip)),
                ));
                inner_ends.extend([to_host, to_switch]);
            } else {
                reqs.push(rtnl::Request::add_veth(
                    &port,
                    group,
                    HOST_IFNAME,
                    ns_fd,
                    Some(host_mac(h.ip)),
                ));
            }
            root_ends.push(port);
        }
        for (k, l) in topo.links.iter().enumerate() {
            let (a, b) = switch_ports(&prefix, k, &l.a, &l.b);
            if split(&l.name()) {
                let (ia, ib) = inner_switch_ends(k);
                reqs.push(rtnl::Request::add_veth(&a, group, &ia, lfd, None));
                reqs.push(rtnl::Request::add_veth(&b, group, &ib, lfd, None));
                inner_ends.extend([ia, ib]);
            } else {
                reqs.push(rtnl::Request::add_veth(&a, group, &b, None, None));
            }
            root_ends.push(a);
            root_ends.push(b);
        }
        let mut rt = rtnl::Rtnl::open().map_err(|source| NetError::Host {
            host: "root".into(),
            what: "open rtnetlink".into(),
            source,
        })?;
        rt.run_all(reqs)
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
        // Root-side ends: no IPv6 (no stray solicitations into the switches), no checksum
        // offload, then up.
        let eth = ethtool::Ethtool::open().map_err(|source| NetError::Host {
            host: "root".into(),
            what: "open ethtool socket".into(),
            source,
        })?;
        for end in &root_ends {
            netns::disable_ipv6(end);
            eth.tx_checksum_off(end).map_err(|source| NetError::Host {
                host: "root".into(),
                what: format!("configure {end}"),
                source,
            })?;
        }
        rt.run_all(
            root_ends
                .iter()
                .map(|e| rtnl::Request::link_up(e))
                .collect(),
        )
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
        if let Some(fd) = &links_fd {
            let err = |what: String, source: io::Error| NetError::Host {
                host: "links".into(),
                what,
                source,
            };
            netns::in_netns(fd, || -> Result<(), NetError> {
                let mut rt = rtnl::Rtnl::open().map_err(|e| err("open rtnetlink".into(), e))?;
                inner_reqs.extend(inner_ends.iter().map(|e| rtnl::Request::link_up(e)));
                for r in rt.run_all(inner_reqs) {
                    r?;
                }
                let eth =
                    ethtool::Ethtool::open().map_err(|e| err("open ethtool socket".into(), e))?;
                for end in &inner_ends {
                    eth.tx_checksum_off(end)
                        .map_err(|e| err(format!("configure {end}"), e))?;
                }
                Ok(())
            })
            .map_err(|e| err("enter namespace".into(), e))??;
        }
        self.timings.links = t.elapsed();

        // Hosts: inside each namespace, checksum offload off and the address on.
        check_interrupt()?;
        let t = Instant::now();
        let results: Vec<Result<(), NetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = topo
                .hosts
                .iter()
                .zip(&fds)
                .map(|(h, fd)| s.spawn(|| configure_host(h, fd, &topo)))
                .collect();
            handles
                .into_iter()
                .map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.timings.hosts = t.elapsed();

        // Switches: every bridge and port in one OVSDB transaction.
        check_interrupt()?;
        tracing::info!(
            "creating {} switches ({} datapath)",
            topo.switches.len(),
            match datapath.resolve() {
                Datapath::Kernel => "kernel",
                _ => "userspace",
            }
        );
        let t = Instant::now();
        let mut bridges: Vec<ovs::BridgeSpec> = topo
            .switches
            .iter()
            .map(|s| ovs::BridgeSpec {
                name: format!("{prefix}-{}", s.name),
                ports: Vec::new(),
            })
            .collect();
        let idx = |name: &str| {
            topo.switches
                .iter()
                .position(|s| s.name == name)
                .expect("validated switch name")
        };
        for h in &topo.hosts {
            bridges[idx(&h.switch)].ports.push(host_port(&prefix, h));
        }
        for (k, l) in topo.links.iter().enumerate() {
            let (a, b) = switch_ports(&prefix, k, &l.a, &l.b);
            bridges[idx(&l.a)].ports.push(a);
            bridges[idx(&l.b)].ports.push(b);
        }
        db.add_bridges(&bridges, datapath, &prefix)?;
        self.timings.switches = t.elapsed();
        Ok(())
    }
}

/// Inside the host: checksum offload off, address on, link up, and a permanent ARP entry for
/// every other host (no ARP storms when many hosts first talk at once, and a healed partition
/// carries traffic at once instead of waiting for ARP to recover).
fn configure_host(h: &Host, fd: &std::os::fd::OwnedFd, topo: &Topology) -> Result<(), NetError> {
    let err = |what: &str, source: io::Error| NetError::Host {
        host: h.name.clone(),
        what: what.into(),
        source,
    };
    netns::in_netns(fd, || -> Result<(), NetError> {
        ethtool::Ethtool::open()
            .and_then(|e| e.tx_checksum_off(HOST_IFNAME))
            .map_err(|e| err("turn off tx checksum offload", e))?;
        let index =
            nix::net::if_::if_nametoindex(HOST_IFNAME).map_err(|e| err("find eth0", e.into()))?;
        let mut rt = rtnl::Rtnl::open().map_err(|e| err("open rtnetlink", e))?;
        let mut reqs = vec![
            rtnl::Request::add_ipv4(index, h.ip, topo.prefix_len),
            rtnl::Request::link_up(HOST_IFNAME),
        ];
        for other in topo.hosts.iter().filter(|o| o.name != h.name) {
            reqs.push(rtnl::Request::add_neighbour(
                index,
                other.ip,
                host_mac(other.ip),
            ));
        }
        for r in rt.run_all(reqs) {
            r.map_err(|e| err(&e.what, e.error))?;
        }
        Ok(())
    })
    .map_err(|e| err("enter namespace", e))?
}

/// Whether an interface of this name exists in the root namespace.
pub(super) fn link_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetworkOptions;

    #[test]
    fn link_groups_differ_between_prefixes() {
        let all = [
            "rk", "rk1", "rka", "a", "b", "aa", "zzzzzz", "a00000", "tcy", "tcya",
        ];
        let groups: std::collections::HashSet<u32> = all.iter().map(|p| link_group(p)).collect();
        assert_eq!(groups.len(), all.len());
        assert!(all.iter().all(|p| link_group(p) > 1 << 20));
    }

    #[test]
    fn macs_are_local_and_follow_the_address() {
        assert_eq!(host_mac("10.0.1.3".parse().unwrap()), [2, 0, 10, 0, 1, 3]);
    }

    #[test]
    fn plan_names_everything_after_the_prefix() {
        let t = crate::topology::builtin(
            "wan",
            crate::topology::Size {
                nodes: 3,
                clients: None,
            },
        )
        .unwrap();
        let m = plan("rk", &t, &NetworkOptions::default()).unwrap();
        assert_eq!(m.netns_of("h1"), Some("rk-h1"));
        assert!(
            m.veths.contains(&"rk-mc3".to_string()) && m.veths.contains(&"rk-s2-s1".to_string())
        );
        assert_eq!(m.bridges, ["rk-s1", "rk-s2", "rk-s3", "rk-s4"]);
        assert_eq!(
            switch_ports("abcdef", 7, "longname", "other"),
            ("abcdef-L7a".into(), "abcdef-L7b".into())
        );
    }
}
