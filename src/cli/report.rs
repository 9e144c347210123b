//! `reckon report`: a self-contained report.html for a run's or a sweep's folder.

use std::path::Path;

use anyhow::Result;

pub(super) fn exec(dir: &Path) -> Result<u8> {
    let path = crate::report::html::report(dir).map_err(anyhow::Error::msg)?;
    out!("report: {}", path.display());
    Ok(0)
}
