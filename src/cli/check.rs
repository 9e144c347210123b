//! `reckon check`: the history checker on a run's folder or a history file.

use std::path::Path;

use anyhow::Result;

use crate::check::{self, History};

/// Exit statuses besides 0 (linearizable) and 1 (an error: the history could not be read).
pub const NOT_LINEARIZABLE: u8 = 3;
pub const UNDECIDED: u8 = 4;

pub(super) fn exec(path: &Path) -> Result<u8> {
    let h = History::load(path).map_err(anyhow::Error::msg)?;
    let v = check::check(&h);
    out!("{}", check::describe(&v));
    if path.is_dir() {
        check::record(path, &v).map_err(anyhow::Error::msg)?;
        if v.violation.is_some() {
            crate::report::html::replot(path).map_err(anyhow::Error::msg)?;
            out!("plots drawn again: the violation is marked on latency.png and latency.svg");
        }
    }
    Ok(match v.linearizable {
        Some(true) => 0,
        Some(false) => NOT_LINEARIZABLE,
        None => UNDECIDED,
    })
}
