//! Link impairment: delay, jitter and loss on the links of a network.
//!
//! The `--link-*` figures are end-to-end, as in reckon: a topology marks the links that carry
//! them and says how many of those a host-to-host path crosses (`path_links`, k); each such link
//! gets, in each direction, latency/k, jitter sigma/sqrt(k) (so variances add up to sigma²) and
//! loss 1-(1-L)^(1/k) (so the path loses L). `--link-jitter` is reckon's: a fraction of the
//! latency, so the path's delay has standard deviation jitter × latency.
//!
//! Delays are drawn from a normal distribution around the latency and clamped to
//! [0, 2 × latency], which keeps the mean and median at the latency; so jitter larger than the
//! latency is refused. Unless `reorder` is set, a packet never leaves before one that arrived
//! before it on the same link direction (jitter then delays rather than reorders).
//!
//! Two backends apply it: kernel `tc netem` on the veth ends, where the kernel has sch_netem,
//! and reckon's userspace engine ([`engine`]) otherwise. This module is the model (what each
//! link gets); [`control`] applies it to a live network.

pub mod control;
pub mod engine;

use serde::{Deserialize, Serialize};

pub use crate::topology::Impairment;
use crate::topology::{LinkProps, Topology};

/// Which backend applies impairment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// netem where the kernel has it, the userspace engine otherwise.
    Auto,
    /// Kernel `tc netem` on the veth ends.
    Netem,
    /// reckon's userspace engine between split veth pairs.
    Userspace,
}

/// The command line's impairment: end-to-end figures, as reckon's flags.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImpairOptions {
    /// `--link-latency`: one-way host-to-host delay, ms.
    pub latency_ms: f64,
    /// `--link-jitter`: standard deviation of the delay as a fraction of the latency.
    pub jitter: f64,
    /// `--link-loss`: one-way host-to-host loss, percent.
    pub loss_pct: f64,
    /// `--seed`: makes jitter and loss repeatable.
    pub seed: u64,
    pub backend: Backend,
}

impl Default for ImpairOptions {
    fn default() -> Self {
        ImpairOptions {
            latency_ms: 0.0,
            jitter: 0.0,
            loss_pct: 0.0,
            seed: 0,
            backend: Backend::Auto,
        }
    }
}

impl ImpairOptions {
    /// Check the flags, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !self.latency_ms.is_finite() || self.latency_ms < 0.0 || self.latency_ms > 60_000.0 {
            return Err(format!(
                "--link-latency {}: give milliseconds between 0 and 60000",
                self.latency_ms
            ));
        }
        if !self.loss_pct.is_finite() || !(0.0..=100.0).contains(&self.loss_pct) {
            return Err(format!(
                "--link-loss {}: give a percentage between 0 and 100",
                self.loss_pct
            ));
        }
        if !self.jitter.is_finite() || self.jitter < 0.0 {
            return Err(format!(
                "--link-jitter {}: give a fraction of the latency, 0 or more",
                self.jitter
            ));
        }
        if self.jitter > 1.0 {
            return Err(format!(
                "--link-jitter {}: jitter is a fraction of --link-latency and may not exceed 1 (delays are clamped to [0, 2 x latency] around the latency)",
                self.jitter
            ));
        }
        if self.jitter > 0.0 && self.latency_ms == 0.0 {
            return Err(
                "--link-jitter needs a --link-latency: it is a fraction of the latency".into(),
            );
        }
        Ok(())
    }

    /// One impaired link's share of the end-to-end figures.
    pub fn per_link(&self, path_links: u32) -> Impairment {
        let k = path_links.max(1) as f64;
        Impairment {
            latency_ms: self.latency_ms / k,
            jitter_ms: self.jitter * self.latency_ms / k.sqrt(),
            loss_pct: 100.0 * (1.0 - (1.0 - self.loss_pct / 100.0).powf(1.0 / k)),
            reorder: false,
        }
    }

    /// The impairment of a link with these properties.
    pub fn for_link(&self, props: &LinkProps, path_links: u32) -> Impairment {
        let share = if props.impaired {
            self.per_link(path_links)
        } else {
            Impairment::default()
        };
        Impairment {
            latency_ms: props.latency.unwrap_or(share.latency_ms),
            jitter_ms: props.jitter.unwrap_or(share.jitter_ms),
            loss_pct: props.loss.unwrap_or(share.loss_pct),
            reorder: false,
        }
    }
}

/// One link of a topology as impairment sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkImpairment {
    /// The link's name: a host's name for its link, `a-b` between switches.
    pub link: String,
    /// From the host (or switch `a`) towards the switch (or switch `b`).
    pub forward: Impairment,
    /// The other way.
    pub back: Impairment,
}

/// Whether the kernel has `sch_netem`: try a netem qdisc on `lo` of a throwaway namespace.
/// Returns the answer and, when absent, what `tc` said. Checked once per process.
pub fn netem_probe() -> (bool, String) {
    static PROBE: std::sync::OnceLock<(bool, String)> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            let ns = format!("reckon-probe-{}", std::process::id());
            if let Err(e) = crate::net::netns::create(&ns) {
                return (false, format!("could not create a test namespace: {e}"));
            }
            let result = crate::net::netns::open(&ns).and_then(|fd| {
                let mut cmd = std::process::Command::new("tc");
                cmd.args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]);
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                        crate::net::netns::enter(&fd)
                    });
                }
                cmd.output()
            });
            let _ = crate::net::netns::delete(&ns);
            match result {
                Ok(o) if o.status.success() => (true, String::new()),
                Ok(o) => (false, String::from_utf8_lossy(&o.stderr).trim().to_string()),
                Err(e) => (false, format!("could not run tc: {e}")),
            }
        })
        .clone()
}

pub fn netem_available() -> bool {
    netem_probe().0
}

/// `tc` arguments that set `imp` on the egress of `dev` (replacing what was there); no
/// impairment removes the qdisc.
pub fn netem_args(dev: &str, imp: &Impairment) -> Vec<String> {
    if imp.is_none() {
        return ["qdisc", "del", "dev", dev, "root"]
            .map(String::from)
            .to_vec();
    }
    let mut a: Vec<String> = [
        "qdisc", "replace", "dev", dev, "root", "netem", "limit", "100000",
    ]
    .map(String::from)
    .to_vec();
    a.extend(["delay".into(), format!("{}ms", imp.latency_ms)]);
    if imp.jitter_ms > 0.0 {
        a.extend([
            format!("{}ms", imp.jitter_ms),
            "distribution".into(),
            "normal".into(),
        ]);
    }
    if imp.loss_pct > 0.0 {
        a.extend(["loss".into(), format!("{}%", imp.loss_pct)]);
    }
    a
}

/// Every link's impairment (impaired or not) for a topology and the command line's figures.
pub fn plan(topo: &Topology, opts: &ImpairOptions) -> Vec<LinkImpairment> {
    let host_links = topo.hosts.iter().map(|h| (h.name.clone(), &h.link));
    let switch_links = topo.links.iter().map(|l| (l.name(), &l.props));
    host_links
        .chain(switch_links)
        .map(|(link, props)| {
            let i = opts.for_link(props, topo.path_links);
            LinkImpairment {
                link,
                forward: i,
                back: i,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{builtin, Size};

    fn opts(latency: f64, jitter: f64, loss: f64) -> ImpairOptions {
        ImpairOptions {
            latency_ms: latency,
            jitter,
            loss_pct: loss,
            ..Default::default()
        }
    }

    #[test]
    fn wan_puts_half_the_latency_on_each_dc_link_and_none_on_hosts() {
        let t = builtin(
            "wan",
            Size {
                nodes: 3,
                clients: None,
            },
        )
        .unwrap();
        let p = plan(&t, &opts(20.0, 0.0, 10.0));
        let get = |n: &str| p.iter().find(|l| l.link == n).unwrap().forward;
        assert_eq!(get("h1"), Impairment::default());
        assert_eq!(get("mc2"), Impairment::default());
        let dc = get("s2-s1");
        assert_eq!(dc.latency_ms, 10.0);
        // Two links each losing l lose 1-(1-l)^2 = 10 %.
        let l = dc.loss_pct / 100.0;
        assert!(((1.0 - (1.0 - l) * (1.0 - l)) - 0.10).abs() < 1e-12);
    }

    #[test]
    fn simple_impairs_every_host_link() {
        let t = builtin(
            "simple",
            Size {
                nodes: 3,
                clients: Some(2),
            },
        )
        .unwrap();
        let p = plan(&t, &opts(30.0, 0.2, 0.0));
        assert_eq!(p.len(), 5);
        for l in &p {
            assert_eq!(l.forward.latency_ms, 15.0);
            // Two links' variances add up to (0.2 x 30)^2.
            assert!((2.0 * l.forward.jitter_ms.powi(2) - 36.0).abs() < 1e-9);
            assert_eq!(l.forward, l.back);
        }
    }

    #[test]
    fn fixed_link_values_override_the_command_line() {
        let props = LinkProps {
            impaired: true,
            latency: Some(3.0),
            jitter: None,
            loss: Some(0.0),
        };
        let i = opts(20.0, 0.0, 5.0).for_link(&props, 2);
        assert_eq!((i.latency_ms, i.loss_pct), (3.0, 0.0));
    }

    #[test]
    fn bad_flags_are_refused_by_name() {
        assert!(opts(-1.0, 0.0, 0.0)
            .validate()
            .unwrap_err()
            .contains("--link-latency -1"));
        assert!(opts(10.0, 0.0, 101.0)
            .validate()
            .unwrap_err()
            .contains("--link-loss 101"));
        assert!(opts(10.0, 0.0, -0.5)
            .validate()
            .unwrap_err()
            .contains("--link-loss"));
        assert!(opts(10.0, 1.5, 0.0)
            .validate()
            .unwrap_err()
            .contains("may not exceed 1"));
        assert!(opts(0.0, 0.5, 0.0)
            .validate()
            .unwrap_err()
            .contains("needs a --link-latency"));
        assert!(opts(f64::NAN, 0.0, 0.0).validate().is_err());
        assert!(opts(20.0, 1.0, 100.0).validate().is_ok());
    }

    #[test]
    fn netem_arguments() {
        let i = Impairment {
            latency_ms: 10.0,
            jitter_ms: 2.5,
            loss_pct: 5.0,
            reorder: false,
        };
        assert_eq!(
            netem_args("rk-h1", &i).join(" "),
            "qdisc replace dev rk-h1 root netem limit 100000 delay 10ms 2.5ms distribution normal loss 5%"
        );
        assert_eq!(
            netem_args("eth0", &Impairment::default()).join(" "),
            "qdisc del dev eth0 root"
        );
    }

    #[test]
    fn link_values_are_checked() {
        let i = Impairment {
            latency_ms: 1.0,
            jitter_ms: 2.0,
            loss_pct: 0.0,
            reorder: false,
        };
        assert!(i.validate().unwrap_err().contains("larger than latency"));
        assert!(Impairment {
            loss_pct: 100.5,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
