//! A network kept from one run to the next. Building a network and tearing it down are most of
//! what a short run costs beyond its duration (README, "Speed"), and a sweep runs many runs on
//! the same topology. A run with `--reuse-network` (every run of a sweep) leaves its network
//! up when it ends well — its cuts healed, the processes in its hosts stopped, its scratch
//! folders gone — recorded as `kept` and owned by no process. The next such run with the same
//! prefix takes it over if it is exactly the network that run would build (the same topology,
//! names, datapath and impairment set-up): it sets the links to its own impairment (the
//! userspace engine reset and seeded with the run's seed, as if just started; measured again if
//! other links are delayed now) and checks every pair of hosts again. A kept network that is
//! not the one a run needs is torn down and a new one built. A run that fails tears its network
//! down as always, so only a network that served a good run is ever reused.
//!
//! Nothing else is ever taken over: a network left up by `reckon topo up` is not `kept`.

use super::registry::{Claim, Manifest};
use super::teardown::{remove_scratch, stop_processes};
use super::{
    build, require_root, teardown, validate_prefix, NetError, Network, NetworkOptions, OvsConfig,
    Removed,
};
use crate::topology::Topology;
use std::time::Instant;

impl Network {
    /// The network a run with `--reuse-network` runs on: the one kept under `opts.prefix` if it
    /// is what [`Network::up`] would build for `topo` and `opts`, reset for this run; else a new
    /// one (a kept network that does not fit is torn down first). The flag says whether it was
    /// reused.
    pub fn reuse_or_up(
        topo: &Topology,
        opts: &NetworkOptions,
    ) -> Result<(Network, bool), NetError> {
        require_root()?;
        validate_prefix(&opts.prefix)?;
        let planned = build::plan(&opts.prefix, topo, opts)?;
        if let Some((claim, m)) = take_kept(&opts.prefix)? {
            if same_build(&m, &planned) {
                let t = Instant::now();
                match Network::adopt(claim, m, opts) {
                    Ok(net) => {
                        tracing::info!(
                            "reusing network '{}' kept by the run before ({:?})",
                            opts.prefix,
                            t.elapsed()
                        );
                        return Ok((net, true));
                    }
                    // Torn down when the half-adopted network was dropped.
                    Err(NetError::Interrupted) => return Err(NetError::Interrupted),
                    Err(e) => eprintln!(
                        "reckon: the network kept under prefix '{}' could not be reset ({e}); building a new one",
                        opts.prefix
                    ),
                }
            } else {
                tracing::info!(
                    "the network kept under prefix '{}' is not the one this run builds: tearing it down",
                    opts.prefix
                );
                teardown(&claim, &m, &opts.ovs)?;
            }
        }
        Ok((Network::up(topo, opts)?, false))
    }

    /// Own the kept network `m` and reset it for a run with `opts`. On error the network is torn
    /// down (it is owned from the start).
    fn adopt(claim: Claim, mut m: Manifest, opts: &NetworkOptions) -> Result<Network, NetError> {
        m.owner = Some(std::process::id());
        m.kept = false;
        claim.write(&m).map_err(NetError::Registry)?;
        let mut net = Network {
            claim,
            manifest: m,
            ovs: opts.ovs.clone(),
            owned: true,
            timings: Default::default(),
            // Started by the run that built the network; stopped with the network's teardown.
            engine: None,
            switches: Default::default(),
            cuts: Vec::new(),
        };
        // Checked with every link clear, as a new network is.
        net.clear_impairment(opts.impair.seed)?;
        if opts.check {
            let t = Instant::now();
            net.timings.pairs_checked = net.check()?;
            net.timings.check = t.elapsed();
        }
        net.impair(opts)?;
        Ok(net)
    }

    /// Leave the network up for the next run with `--reuse-network` (see the module's doc):
    /// heal every cut, stop every process in its hosts, remove the scratch folders, and record
    /// it as kept, owned by no process. On error it is torn down instead.
    pub fn keep(mut self) -> Result<(), NetError> {
        self.heal()?;
        let hosts: Vec<(&str, &str)> = self
            .manifest
            .namespaces
            .iter()
            .map(|(h, ns)| (h.as_str(), ns.as_str()))
            .collect();
        let mut problems = stop_processes(&hosts).1;
        problems.extend(remove_scratch(&self.manifest.scratch));
        if !problems.is_empty() {
            return Err(NetError::Keep(problems));
        }
        self.manifest.scratch.clear();
        self.manifest.kept = true;
        self.leave_up()?;
        Ok(())
    }
}

/// The network kept under `prefix`, taken over: `None` if there is none, or a live process
/// holds the prefix.
fn take_kept(prefix: &str) -> Result<Option<(Claim, Manifest)>, NetError> {
    Ok(
        match Claim::take_over(prefix).map_err(NetError::Registry)? {
            Some((claim, Some(m))) if m.owner.is_none() && m.kept => Some((claim, m)),
            _ => None,
        },
    )
}

/// Whether the kept network `m` is the network `planned` (what a run would build now) describes.
fn same_build(m: &Manifest, planned: &Manifest) -> bool {
    let topology = |t: &Topology| serde_json::to_value(t).ok();
    topology(&m.topology) == topology(&planned.topology)
        && m.namespaces == planned.namespaces
        && m.veths == planned.veths
        && m.bridges == planned.bridges
        && m.link_netns == planned.link_netns
        && m.impair_backend == planned.impair_backend
        && m.split == planned.split
        && m.datapath == planned.datapath
}

/// Tear down the network kept under `prefix`, if there is one (a sweep's end); a network left
/// up by `reckon topo up` or owned by a live process stays.
pub fn down_kept(prefix: &str, ovs: &OvsConfig) -> Result<Option<Removed>, NetError> {
    match take_kept(prefix)? {
        Some((claim, m)) => teardown(&claim, &m, ovs).map(Some),
        None => Ok(None),
    }
}
