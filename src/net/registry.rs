//! The run registry: which reckon networks exist on this machine and who owns them.
//!
//! Each network has a manifest, `/run/reckon/<prefix>.json`, naming exactly what it created (so
//! clean-up removes those names and nothing else), and a lock file, `/run/reckon/<prefix>.lock`,
//! that its owning process holds with `flock` for as long as it lives. The kernel drops the lock
//! when the owner dies, however it dies, so "lock free + manifest present" means "left over".

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::topology::Topology;

pub fn dir() -> PathBuf {
    std::env::var_os("RECKON_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/run/reckon".into())
}

/// Everything one network created, by exact name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub prefix: String,
    /// The process that owns it, or `None` once `reckon topo up` has left it up on its own.
    pub owner: Option<u32>,
    pub created_unix_ms: u128,
    pub topology: Topology,
    /// Host name -> namespace name.
    pub namespaces: Vec<(String, String)>,
    /// Root-side veth ends (deleting one deletes its peer).
    pub veths: Vec<String>,
    pub bridges: Vec<String>,
    /// The namespace holding the inner ends of split links (userspace impairment engine).
    #[serde(default)]
    pub link_netns: Option<String>,
    /// How links are impaired (`None`: no link is).
    #[serde(default)]
    pub impair_backend: Option<crate::net::impair::Backend>,
    /// Every link's impairment as last set.
    #[serde(default)]
    pub impairments: Vec<crate::net::impair::LinkImpairment>,
    /// Links split for the userspace engine.
    #[serde(default)]
    pub split: Vec<String>,
    /// Subtracted from each delayed link's latency: the emulated network's own one-way latency
    /// per delayed link, measured when the network was built (see `net::calibrate`).
    #[serde(default)]
    pub latency_compensation_ms: f64,
    /// The delayed links [`latency_compensation_ms`](Self::latency_compensation_ms) was measured
    /// for (a network kept for another run measures again if that run delays others).
    #[serde(default)]
    pub calibrated: Vec<String>,
    /// The datapath its bridges were made with (resolved).
    #[serde(default)]
    pub datapath: Option<crate::net::Datapath>,
    /// Left up by a run for the next run with `--reuse-network` (see `net::reuse`), rather than
    /// by `reckon topo up`.
    #[serde(default)]
    pub kept: bool,
    /// Directories the run created for its processes (e.g. data directories), removed with it.
    #[serde(default)]
    pub scratch: Vec<std::path::PathBuf>,
}

impl Manifest {
    pub fn netns_of(&self, host: &str) -> Option<&str> {
        self.namespaces
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, ns)| ns.as_str())
    }
}

/// A claim on a prefix: holds its lock for as long as it lives.
pub struct Claim {
    pub prefix: String,
    /// Held for its `flock`; released when the claim is dropped.
    _lock: File,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("prefix '{prefix}' is in use by a running reckon process{}; choose another with --prefix", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse { prefix: String, pid: Option<u32> },
    #[error("prefix '{prefix}' names a network left up by `reckon topo up`; take it down with `reckon --prefix {prefix} topo down`, or choose another --prefix")]
    Detached { prefix: String },
    #[error("prefix '{prefix}' names a network a run kept for the next (--reuse-network); run with --reuse-network to use it, take it down with `reckon --prefix {prefix} topo down`, or choose another --prefix")]
    Kept { prefix: String },
    #[error("prefix '{prefix}' has leftovers of a reckon run that did not clean up (pid {pid:?}); remove them with `reckon clean`")]
    Leftovers { prefix: String, pid: Option<u32> },
    #[error("run registry {dir}: {source}")]
    Io { dir: String, source: io::Error },
}

/// The userspace engine's files of a network: its spec, control socket and log.
pub fn engine_paths(prefix: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir();
    (
        d.join(format!("{prefix}.impair.json")),
        d.join(format!("{prefix}.impair.sock")),
        d.join(format!("{prefix}.impair.log")),
    )
}

fn manifest_path(prefix: &str) -> PathBuf {
    dir().join(format!("{prefix}.json"))
}

fn lock_path(prefix: &str) -> PathBuf {
    dir().join(format!("{prefix}.lock"))
}

/// Lock the prefix's lock file; `None` if another process holds it. The lock file is removed
/// with the network, so after locking make sure the file we locked is still the one at the path
/// (another process may have removed it in between), and start again if not.
fn try_lock(prefix: &str) -> io::Result<Option<File>> {
    fs::create_dir_all(dir())?;
    let path = lock_path(prefix);
    loop {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if !crate::lock_exclusive(&f)? {
            return Ok(None);
        }
        let same = match fs::metadata(&path) {
            Ok(m) => m.ino() == f.metadata()?.ino(),
            Err(_) => false,
        };
        if same {
            return Ok(Some(f));
        }
    }
}

/// Read a manifest; `None` if there is none.
pub fn read(prefix: &str) -> io::Result<Option<Manifest>> {
    match fs::read(manifest_path(prefix)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Record a changed manifest of a network this process does not own (e.g. `reckon topo
/// impair` on a network left up).
pub fn rewrite(m: &Manifest) -> io::Result<()> {
    let tmp = dir().join(format!("{}.json.tmp.{}", m.prefix, std::process::id()));
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(m).map_err(io::Error::other)?,
    )?;
    fs::rename(&tmp, manifest_path(&m.prefix))
}

/// Every prefix that has a manifest: `<prefix>.json` where `<prefix>` is a valid prefix. The
/// registry holds other files besides (the engine's `<prefix>.impair.json`, temporary files),
/// which are not manifests.
pub fn prefixes() -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir()) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .filter(|p| super::validate_prefix(p).is_ok())
                .map(String::from)
        })
        .collect();
    v.sort();
    v
}

impl Drop for Claim {
    /// With no network recorded under the prefix, its lock file goes too (removed while still
    /// locked; see `try_lock`). A detached network keeps its manifest and so its lock file.
    fn drop(&mut self) {
        if !manifest_path(&self.prefix).exists() {
            let _ = fs::remove_file(lock_path(&self.prefix));
        }
    }
}

impl Claim {
    /// Claim `prefix` for a new network: fails if a live process owns it or leftovers remain.
    pub fn new(prefix: &str) -> Result<Claim, ClaimError> {
        let io_err = |source| ClaimError::Io {
            dir: dir().display().to_string(),
            source,
        };
        let lock = try_lock(prefix).map_err(io_err)?;
        let existing = read(prefix).map_err(io_err)?;
        let Some(lock) = lock else {
            return Err(ClaimError::InUse {
                prefix: prefix.into(),
                pid: existing.and_then(|m| m.owner),
            });
        };
        match existing {
            None => Ok(Claim {
                prefix: prefix.into(),
                _lock: lock,
            }),
            Some(m) if m.owner.is_none() && m.kept => Err(ClaimError::Kept {
                prefix: prefix.into(),
            }),
            Some(m) if m.owner.is_none() => Err(ClaimError::Detached {
                prefix: prefix.into(),
            }),
            Some(m) => Err(ClaimError::Leftovers {
                prefix: prefix.into(),
                pid: m.owner,
            }),
        }
    }

    /// Take over an existing network whose owner is gone (for `topo down` and `clean`).
    /// `Ok(None)` if a live process owns it.
    pub fn take_over(prefix: &str) -> io::Result<Option<(Claim, Option<Manifest>)>> {
        let Some(lock) = try_lock(prefix)? else {
            return Ok(None);
        };
        let m = read(prefix)?;
        Ok(Some((
            Claim {
                prefix: prefix.into(),
                _lock: lock,
            },
            m,
        )))
    }

    /// Record the manifest (atomically: write a temporary file, then rename).
    pub fn write(&self, m: &Manifest) -> io::Result<()> {
        let tmp = dir().join(format!("{}.json.tmp", self.prefix));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(m).map_err(io::Error::other)?,
        )?;
        fs::rename(&tmp, manifest_path(&self.prefix))
    }

    /// Forget the network: its engine files and manifest go (the lock file goes when the
    /// claim is dropped).
    pub fn remove(&self) -> io::Result<()> {
        let (spec, sock, log) = engine_paths(&self.prefix);
        for p in [spec, sock, log, manifest_path(&self.prefix)] {
            match fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}
