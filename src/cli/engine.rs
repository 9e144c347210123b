//! The hidden `__impair-engine` command: the userspace impairment engine of one network, as
//! reckon starts it.

use std::path::Path;

use anyhow::{Context, Result};

use crate::net;

pub(super) fn exec(spec: &Path) -> Result<u8> {
    let text = std::fs::read(spec).with_context(|| format!("reading {}", spec.display()))?;
    let spec: net::impair::engine::EngineSpec =
        serde_json::from_slice(&text).context("engine spec")?;
    net::impair::engine::run(&spec).context("impairment engine")?;
    Ok(0)
}
