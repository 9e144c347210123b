//! `reckon bench engine`: the userspace impairment engine alone, between two namespaces joined
//! only through it.

use std::time::Duration;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::net::impair::engine::{self, EngineLink, EngineSpec};
use crate::net::impair::Impairment;
use crate::net::registry::{self, Claim, Manifest};
use crate::net::{ethtool, netns, rtnl, NetError};
use crate::topology::{Host, Role, Topology};

/// Two hosts `a` and `b` joined only through the engine (no switch): what is measured is the
/// engine, not Open vSwitch. Registered like a network, so teardown (or `reckon clean`)
/// removes it whatever happens.
struct Rig {
    claim: Claim,
    manifest: Manifest,
    engine: Option<std::process::Child>,
    control: std::path::PathBuf,
}

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

impl Rig {
    fn up(prefix: &str, bin: &crate::SelfCommand) -> anyhow::Result<Rig> {
        crate::net::require_root()?;
        let claim = Claim::new(prefix)?;
        let host = |name: &str, role, ip| Host {
            name: name.into(),
            role,
            dc: None,
            switch: String::new(),
            ip,
            link: Default::default(),
        };
        let topology = Topology {
            name: "engine-bench".into(),
            description: "two hosts joined through the impairment engine".into(),
            subnet: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            switches: vec![],
            hosts: vec![host("a", Role::Client, A), host("b", Role::Node, B)],
            links: vec![],
            path_links: 1,
        };
        let manifest = Manifest {
            prefix: prefix.into(),
            owner: Some(std::process::id()),
            created_unix_ms: 0,
            topology,
            namespaces: vec![
                ("a".into(), format!("{prefix}-a")),
                ("b".into(), format!("{prefix}-b")),
            ],
            veths: vec![],
            bridges: vec![],
            link_netns: Some(format!("{prefix}.links")),
            impair_backend: Some(crate::net::impair::Backend::Userspace),
            impairments: vec![],
            split: vec!["ab".into()],
            latency_compensation_ms: 0.0,
            calibrated: Vec::new(),
            datapath: None,
            kept: false,
            scratch: vec![],
        };
        claim.write(&manifest)?;
        let control = registry::engine_paths(prefix).1;
        let mut rig = Rig {
            claim,
            manifest,
            engine: None,
            control,
        };
        rig.build(bin)?;
        Ok(rig)
    }

    fn ns(&self, which: &str) -> String {
        match which {
            "links" => self.manifest.link_netns.clone().unwrap_or_default(),
            h => self.manifest.netns_of(h).unwrap_or_default().to_string(),
        }
    }

    fn build(&mut self, bin: &crate::SelfCommand) -> anyhow::Result<()> {
        for w in ["a", "b", "links"] {
            netns::create(&self.ns(w))?;
        }
        let (fa, fb, fl) = (
            netns::open(&self.ns("a"))?,
            netns::open(&self.ns("b"))?,
            netns::open(&self.ns("links"))?,
        );
        let mac = crate::net::host_mac;
        netns::in_netns(&fl, || -> Result<(), NetError> {
            let mut rt = rtnl::Rtnl::open().map_err(|e| NetError::Impair(e.to_string()))?;
            let reqs = vec![
                rtnl::Request::add_veth("a", 0, "eth0", Some(fa.as_raw_fd()), Some(mac(A))),
                rtnl::Request::add_veth("b", 0, "eth0", Some(fb.as_raw_fd()), Some(mac(B))),
                rtnl::Request::link_up("a"),
                rtnl::Request::link_up("b"),
            ];
            for r in rt.run_all(reqs) {
                r?;
            }
            let eth = ethtool::Ethtool::open().map_err(|e| NetError::Impair(e.to_string()))?;
            for end in ["a", "b"] {
                eth.tx_checksum_off(end)
                    .map_err(|e| NetError::Impair(e.to_string()))?;
            }
            Ok(())
        })??;
        for (fd, me, other) in [(&fa, A, B), (&fb, B, A)] {
            netns::in_netns(fd, || -> Result<(), NetError> {
                ethtool::Ethtool::open()
                    .and_then(|e| e.tx_checksum_off("eth0"))
                    .map_err(|e| NetError::Impair(e.to_string()))?;
                let idx = nix::net::if_::if_nametoindex("eth0")
                    .map_err(|e| NetError::Impair(e.to_string()))?;
                let mut rt = rtnl::Rtnl::open().map_err(|e| NetError::Impair(e.to_string()))?;
                let reqs = vec![
                    rtnl::Request::add_ipv4(idx, me, 24),
                    rtnl::Request::link_up("eth0"),
                    rtnl::Request::add_neighbour(idx, other, mac(other)),
                ];
                for r in rt.run_all(reqs) {
                    r?;
                }
                Ok(())
            })??;
        }
        let spec = EngineSpec {
            seed: 1,
            control: self.control.clone(),
            links: vec![EngineLink {
                link: "ab".into(),
                ends: ["a".into(), "b".into()],
                forward: Impairment::default(),
                back: Impairment::default(),
            }],
        };
        self.engine = Some(crate::net::spawn_engine(
            &spec,
            &self.manifest.prefix,
            &self.ns("links"),
            bin,
        )?);
        Ok(())
    }

    fn set_delay(&self, ms: f64) -> anyhow::Result<()> {
        let i = Impairment {
            latency_ms: ms,
            ..Default::default()
        };
        let r = engine::request(
            &self.control,
            &engine::Request::Set {
                link: "ab".into(),
                forward: Some(i),
                back: None,
            },
        )?;
        anyhow::ensure!(r.ok, "engine: {:?}", r.error);
        Ok(())
    }

    /// The engine's CPU time so far (user + system), from /proc.
    fn engine_cpu(&self) -> Duration {
        let Some(pid) = self.engine.as_ref().map(|c| c.id()) else {
            return Duration::ZERO;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Err(e) = crate::net::teardown(
            &self.claim,
            &self.manifest,
            &crate::net::OvsConfig::default(),
        ) {
            eprintln!("reckon: tearing down the engine bench: {e}");
        }
        if let Some(mut c) = self.engine.take() {
            let _ = c.wait();
        }
    }
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One-way delays (ns) of `rate` packets/s for `secs` from a to b, kernel to kernel: the
/// sender stamps the payload just before `send`, the receiver's kernel stamps arrival.
/// Returns (offered, one-way delays of those delivered).
fn stream(rig: &Rig, rate: u64, secs: f64, settle: Duration) -> anyhow::Result<(u64, Vec<i64>)> {
    let (fa, fb) = (netns::open(&rig.ns("a"))?, netns::open(&rig.ns("b"))?);
    let dst = SocketAddrV4::new(B, 7000);
    let rx = netns::in_netns(&fb, || UdpSocket::bind(dst))??;
    let one: libc::c_int = 1;
    let size: libc::c_int = 16 << 20;
    unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one as *const _ as *const _,
            4,
        );
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const _,
            4,
        );
    }
    rx.set_read_timeout(Some(Duration::from_millis(20)))?;
    let tx = netns::in_netns(&fa, || UdpSocket::bind(SocketAddrV4::new(A, 0)))??;
    unsafe {
        libc::setsockopt(
            tx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &size as *const _ as *const _,
            4,
        );
    }
    let n = (rate as f64 * secs) as u64;
    let done = AtomicBool::new(false);
    let mut delays = Vec::with_capacity(n as usize);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let sender = s.spawn(|| {
            let start = std::time::Instant::now();
            let mut pkt = [0u8; 32];
            for i in 0..n {
                // Sleep (not spin) to the packet's time: the engine under test needs the other core.
                let due = Duration::from_nanos(i * 1_000_000_000 / rate);
                let now = start.elapsed();
                if now < due {
                    std::thread::sleep(due - now);
                }
                pkt[..8].copy_from_slice(&i.to_le_bytes());
                pkt[8..16].copy_from_slice(&realtime_ns().to_le_bytes());
                let _ = tx.send_to(&pkt, dst);
            }
            std::thread::sleep(settle);
            done.store(true, Ordering::SeqCst);
        });
        let mut buf = [0u8; 64];
        let mut cbuf = [0u64; 8];
        loop {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut _,
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut _;
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            let len = unsafe { libc::recvmsg(rx.as_raw_fd(), &mut msg, 0) };
            if len < 16 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
            let sent = u64::from_le_bytes(buf[8..16].try_into().unwrap());
            let mut arrived = None;
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                if !c.is_null() && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    arrived = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
            }
            delays.push(arrived.unwrap_or_else(realtime_ns) as i64 - sent as i64);
        }
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))?;
        Ok(())
    })?;
    Ok((n, delays))
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One rate of the engine benchmark.
pub struct EngineRate {
    pub rate: u64,
    pub offered: u64,
    pub delivered: u64,
    /// |one-way delay - configured delay - baseline|, percentiles in µs.
    pub err_p50_us: f64,
    pub err_p99_us: f64,
    /// Engine CPU time over wall time, percent of one core.
    pub cpu_pct: f64,
}

/// Measure the engine alone: added-delay error and CPU at each of `rates` (with `delay_ms` on
/// one direction, against the same stream with no delay), then the highest rate it forwards
/// with under 0.1 % loss.
pub fn engine(
    bin: &crate::SelfCommand,
    rates: &[u64],
    delay_ms: f64,
    secs: f64,
    mut progress: impl FnMut(&EngineRate),
) -> anyhow::Result<(Vec<EngineRate>, u64, f64)> {
    let rig = Rig::up("rkbe", bin)?;
    let settle = Duration::from_millis(200) + Duration::from_secs_f64(delay_ms / 1e3);
    let mut out = Vec::new();
    for &rate in rates {
        rig.set_delay(0.0)?;
        let (_, mut base) = stream(&rig, rate, secs.min(1.0), settle)?;
        base.sort_unstable();
        let baseline = pct(&base, 0.5);
        rig.set_delay(delay_ms)?;
        let cpu0 = rig.engine_cpu();
        let t = std::time::Instant::now();
        let (offered, delays) = stream(&rig, rate, secs, settle)?;
        let cpu = (rig.engine_cpu() - cpu0).as_secs_f64() / t.elapsed().as_secs_f64() * 100.0;
        let target = (delay_ms * 1e6) as i64 + baseline;
        let mut err: Vec<i64> = delays.iter().map(|d| (d - target).abs()).collect();
        err.sort_unstable();
        let r = EngineRate {
            rate,
            offered,
            delivered: delays.len() as u64,
            err_p50_us: pct(&err, 0.5) as f64 / 1e3,
            err_p99_us: pct(&err, 0.99) as f64 / 1e3,
            cpu_pct: cpu,
        };
        progress(&r);
        out.push(r);
    }
    // Highest sustained rate: step up until more than 0.1 % is lost.
    rig.set_delay(1.0)?;
    let (mut best, mut best_cpu) = (0, 0.0);
    for rate in [
        50_000u64, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000,
    ] {
        let cpu0 = rig.engine_cpu();
        let t = std::time::Instant::now();
        let (offered, delays) = stream(&rig, rate, 1.0, Duration::from_millis(300))?;
        let cpu = (rig.engine_cpu() - cpu0).as_secs_f64() / t.elapsed().as_secs_f64() * 100.0;
        if (delays.len() as f64) < offered as f64 * 0.999 {
            break;
        }
        (best, best_cpu) = (rate, cpu);
    }
    drop(rig);
    Ok((out, best, best_cpu))
}
