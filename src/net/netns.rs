//! Network namespaces: the hosts of an emulated network. A namespace is named by a file under
//! `/run/netns` (the same place `ip netns` uses, so `ip netns` lists and enters ours), created by
//! unsharing a thread's network namespace and bind-mounting it there.
//!
//! Work inside a namespace happens on a short-lived thread that has entered it
//! ([`in_netns`]): sockets opened there stay bound to that namespace.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Make sure `/run/netns` exists and is a shared mount point, as `ip netns add` does, so that
/// namespaces mounted there are seen from other mount namespaces.
fn prepare_dir() -> io::Result<()> {
    fs::create_dir_all(NETNS_DIR)?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(io::Error::from)?;
            mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>)
                .map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Create the named namespace with `lo` up. Fails with `AlreadyExists` if the name is taken.
pub fn create(name: &str) -> io::Result<()> {
    prepare_dir()?;
    let target = path(name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)?;
    let t = target.clone();
    let made = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &t,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        // IPv4 only: IPv6's router solicitations, DAD and MLD reports would be stray traffic on
        // every link (and would draw from the links' loss generators).
        for conf in ["all", "default"] {
            let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
        }
        let mut rtnl = super::rtnl::Rtnl::open()?;
        rtnl.run(super::rtnl::Request::link_up("lo"))
            .map_err(|e| e.error)?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")));
    if made.is_err() {
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&target);
    }
    made
}

/// Remove the named namespace. Missing is fine. The namespace itself is freed by the kernel
/// once no process holds it; call [`kill_processes`] first.
pub fn delete(name: &str) -> io::Result<()> {
    let p = path(name);
    if !p.exists() {
        return Ok(());
    }
    match umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(&p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Turn IPv6 off on one interface of the calling thread's namespace (missing IPv6 is fine).
pub fn disable_ipv6(ifname: &str) {
    let _ = fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    );
}

pub fn open(name: &str) -> io::Result<OwnedFd> {
    Ok(fs::File::open(path(name))?.into())
}

/// Run `f` on a thread that has entered namespace `ns` (an open namespace fd).
pub fn in_netns<T: Send>(ns: impl AsFd + Send, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<T> {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Enter namespace `ns` on the calling thread. For a freshly spawned thread or a child before
/// `exec`; never call it on a thread that goes on to do other work.
pub fn enter(ns: impl AsFd) -> io::Result<()> {
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// The (device, inode) identity of a namespace file.
fn identity(p: &Path) -> Option<(u64, u64)> {
    fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Process ids whose network namespace is the named one.
pub fn pids(name: &str) -> Vec<Pid> {
    let Some(id) = identity(&path(name)) else {
        return Vec::new();
    };
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| identity(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(id))
        .map(Pid::from_raw)
        .collect()
}

/// Stop every process inside the named namespace (SIGTERM, then SIGKILL after `grace`) and wait
/// until none is left. Returns the pids that were stopped; errors if some survive.
pub fn kill_processes(name: &str, grace: Duration) -> io::Result<Vec<Pid>> {
    let first = pids(name);
    if first.is_empty() {
        return Ok(first);
    }
    for p in &first {
        let _ = kill(*p, Signal::SIGTERM);
    }
    let start = Instant::now();
    let mut killed = false;
    loop {
        let left = pids(name);
        if left.is_empty() {
            return Ok(first);
        }
        if start.elapsed() > grace && !killed {
            for p in &left {
                let _ = kill(*p, Signal::SIGKILL);
            }
            killed = true;
        }
        if start.elapsed() > grace + Duration::from_secs(10) {
            return Err(io::Error::other(format!(
                "processes {left:?} in namespace {name} did not exit after SIGKILL"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
