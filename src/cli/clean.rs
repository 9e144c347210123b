//! `reckon clean`: remove the networks no running reckon process owns, by the names they
//! recorded.

use anyhow::Result;

use super::Ctx;
use crate::net;

pub(super) fn exec(ctx: &Ctx, only: Option<String>, owner: Option<u32>) -> Result<u8> {
    if let Some(p) = &only {
        net::validate_prefix(p)?;
    }
    let scope = net::CleanScope {
        prefix: only.as_deref(),
        owner,
    };
    let (cleaned, skipped) = net::clean(scope, &ctx.ovs)?;
    let mut failed = false;
    for c in &cleaned {
        let what = if c.crashed {
            "leftovers of a crashed run"
        } else {
            "network left up"
        };
        match &c.result {
            Ok(r) => out!("{}: removed {what}: {r}", c.prefix),
            Err(e) => {
                failed = true;
                out!("{}: could not remove everything: {e}", c.prefix)
            }
        }
    }
    for p in &skipped {
        out!("{p}: skipped, owned by a running reckon process");
    }
    if cleaned.is_empty() && skipped.is_empty() {
        out!("nothing to clean");
    }
    if failed {
        return Ok(1);
    }
    Ok(0)
}
