//! Partitions: a cut between two sets of hosts is a drop rule per directed pair of addresses,
//! installed over OpenFlow on the switch where the source's packets enter the network (so one
//! rule per pair, whatever the path); a heal removes every rule the network installed. After
//! either, the datapath's flow cache is purged so the change holds from the next packet.

use super::{openflow, NetError, Network};

impl Network {
    /// Open OpenFlow connections to every switch now, so that later cuts take effect at once.
    pub fn connect_switches(&mut self) -> Result<(), NetError> {
        let rundir = self
            .ovs
            .socket
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| "/var/run/openvswitch".into());
        for b in self.manifest.bridges.clone() {
            if !self.switches.contains_key(&b) {
                let c = openflow::OfConn::connect(&rundir, &b)
                    .map_err(|e| NetError::Impair(format!("OpenFlow connection to {b}: {e}")))?;
                self.switches.insert(b, c);
            }
        }
        Ok(())
    }

    /// Cut hosts `a` from hosts `b` (both ways, or only a -> b when `oneway`): drop rules on the
    /// switch where each source's packets enter. Returns the number of directed pairs cut.
    pub fn partition(
        &mut self,
        a: &[String],
        b: &[String],
        oneway: bool,
    ) -> Result<usize, NetError> {
        self.connect_switches()?;
        let host = |n: &String| self.host_of(n);
        let mut by_bridge: std::collections::BTreeMap<
            String,
            Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
        > = Default::default();
        for x in a {
            for y in b {
                let (hx, hy) = (host(x)?, host(y)?);
                if hx.name == hy.name {
                    continue;
                }
                by_bridge
                    .entry(format!("{}-{}", self.manifest.prefix, hx.switch))
                    .or_default()
                    .push((hx.ip, hy.ip));
                if !oneway {
                    by_bridge
                        .entry(format!("{}-{}", self.manifest.prefix, hy.switch))
                        .or_default()
                        .push((hy.ip, hx.ip));
                }
            }
        }
        let mut n = 0;
        for (bridge, pairs) in by_bridge {
            let conn = self.switches.get_mut(&bridge).expect("connected above");
            conn.drops(&pairs, true)
                .map_err(|e| NetError::Impair(format!("partition on {bridge}: {e}")))?;
            n += pairs.len();
            self.cuts.push((bridge, pairs));
        }
        self.purge_datapath()?;
        Ok(n)
    }

    /// The switches' rules are in place once the barrier returns, but the datapath keeps
    /// forwarding cached flows until ovs-vswitchd's revalidators catch up (up to half a second):
    /// purge the cache, so the next packets are switched under the new rules at once.
    fn purge_datapath(&self) -> Result<(), NetError> {
        self.ovs
            .vswitchd_command("revalidator/purge", &[])
            .map(|_| ())
            .map_err(NetError::Ovs)
    }

    /// Remove the cuts between hosts `a` and `b`, both ways, leaving every other cut in place;
    /// returns how many directed pairs healed. A pair cut twice (by two partitions that
    /// overlap) heals here all the same: the cut between them is what is asked to go.
    pub fn heal_between(&mut self, a: &[String], b: &[String]) -> Result<usize, NetError> {
        let ips = |hs: &[String]| -> Result<Vec<std::net::Ipv4Addr>, NetError> {
            hs.iter().map(|h| self.host_of(h).map(|h| h.ip)).collect()
        };
        let (a, b) = (ips(a)?, ips(b)?);
        let between = |(x, y): &(std::net::Ipv4Addr, std::net::Ipv4Addr)| {
            (a.contains(x) && b.contains(y)) || (b.contains(x) && a.contains(y))
        };
        let mut healed: std::collections::BTreeMap<String, Vec<_>> = Default::default();
        for (bridge, pairs) in &mut self.cuts {
            let (gone, kept): (Vec<_>, Vec<_>) = pairs.drain(..).partition(|p| between(p));
            *pairs = kept;
            healed.entry(bridge.clone()).or_default().extend(gone);
        }
        self.cuts.retain(|(_, pairs)| !pairs.is_empty());
        for pairs in healed.values_mut() {
            pairs.sort();
            pairs.dedup();
        }
        self.remove_drops(healed.into_iter().collect())
    }

    /// Remove every cut made by [`Network::partition`]; returns how many directed pairs healed.
    pub fn heal(&mut self) -> Result<usize, NetError> {
        let all = std::mem::take(&mut self.cuts);
        self.remove_drops(all)
    }

    /// Take these drop rules off their switches, then purge the datapath's flow cache.
    fn remove_drops(
        &mut self,
        cuts: Vec<(String, Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>)>,
    ) -> Result<usize, NetError> {
        let mut n = 0;
        for (bridge, pairs) in cuts.into_iter().filter(|(_, p)| !p.is_empty()) {
            let conn = self
                .switches
                .get_mut(&bridge)
                .expect("cut through this connection");
            conn.drops(&pairs, false)
                .map_err(|e| NetError::Impair(format!("heal on {bridge}: {e}")))?;
            n += pairs.len();
        }
        if n > 0 {
            self.purge_datapath()?;
        }
        Ok(n)
    }

    /// A host of this network, or an error naming the hosts it has.
    fn host_of(&self, name: &str) -> Result<&crate::topology::Host, NetError> {
        let topo = &self.manifest.topology;
        topo.host(name).ok_or_else(|| NetError::NoSuchHost {
            host: name.into(),
            prefix: self.manifest.prefix.clone(),
            known: topo
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}
