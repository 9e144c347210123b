//! The result folder of a run, claimed by that run alone. The claim is its `config.json`,
//! created exclusively (so two runs given the same folder cannot both start) and locked with
//! `flock` for as long as the run lives. A folder whose `config.json` nobody holds and that has
//! no `ops.csv` belongs to a run that never started measuring (it failed while building, say):
//! a new run may take it over. A folder with `ops.csv` holds a run's results and is never
//! written into again. Before anything is built the claim also checks that the folder is
//! writable and that the run's ops.csv will fit on its disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::RunError;
use crate::workload::Workload;

/// Bytes a row of ops.csv takes, about (numbers, names, an endpoint; errors are longer but
/// rarer). With the free space of the result location, it refuses runs the disk cannot hold.
const ROW_BYTES: u64 = 120;

/// A run's hold on its result folder; released when dropped (or when the process ends).
pub struct FolderClaim {
    _lock: File,
}

/// Claim `dir` for a run of `workload`, creating it if need be.
pub fn claim(dir: &Path, workload: &Workload) -> Result<FolderClaim, RunError> {
    let results = |error: String| RunError::Results {
        path: dir.display().to_string(),
        error,
    };
    if dir.join("ops.csv").exists() {
        return Err(results(
            "already holds a run's results (ops.csv); choose another --result-location".into(),
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| results(format!("{e}; choose a writable --result-location")))?;
    let config = dir.join("config.json");
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&config)
    {
        Ok(f) => f,
        // Another run's claim, or what a run that never started measuring left.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .write(true)
            .open(&config)
            .map_err(|e| results(format!("{}: {e}", config.display())))?,
        Err(e) => {
            return Err(results(format!(
                "not writable: {e}; choose another --result-location"
            )))
        }
    };
    let held = !crate::lock_exclusive(&file).map_err(|e| results(e.to_string()))?;
    if held || dir.join("ops.csv").exists() {
        return Err(results(
            "is in use by another reckon run (its config.json is held); choose another --result-location".into(),
        ));
    }
    // Will ops.csv fit?
    if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
        // The block counts' types differ between architectures.
        #[allow(clippy::unnecessary_cast)]
        let free = st.blocks_available() as u64 * st.fragment_size() as u64;
        let need = workload.expected_ops() * ROW_BYTES;
        if need > free {
            let _ = std::fs::remove_file(&config);
            return Err(results(format!(
                "--rate {} for --duration {} s makes about {} operations, about {} MB of ops.csv, and only {} MB are free there; shorten the run, lower the rate or choose another --result-location",
                workload.rate,
                workload.duration,
                workload.expected_ops(),
                need / 1_000_000,
                free / 1_000_000
            )));
        }
    }
    Ok(FolderClaim { _lock: file })
}
