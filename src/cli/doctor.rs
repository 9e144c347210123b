//! `reckon doctor`: can this machine run experiments, and how to fix what is missing.

use anyhow::Result;

use super::Ctx;
use crate::doctor;

pub(super) fn exec(ctx: &Ctx) -> Result<u8> {
    let findings = doctor::diagnose(&ctx.ovs);
    let mut ok = true;
    for f in &findings {
        out!(
            "{:<4} {:<13} {}",
            if f.ok { "ok" } else { "FAIL" },
            f.what,
            f.detail
        );
        if let Some(fix) = &f.fix {
            out!(
                "     {:<13} {} {fix}",
                "",
                if f.ok { "tip:" } else { "fix:" }
            );
        }
        ok &= f.ok;
    }
    Ok(if ok { 0 } else { 1 })
}
