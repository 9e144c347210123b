//! Ctrl-C, SIGTERM and SIGHUP: the first one asks the run to stop (long steps poll
//! [`interrupted`] and return an error, so the owning values tear down as they drop); a second
//! one exits at once, leaving leftovers for `reckon clean`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Install the handlers. Call once, early in `main`.
pub fn install() -> std::io::Result<()> {
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Exit on the second signal: the first one set the flag.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(flag()))?;
        signal_hook::flag::register(sig, Arc::clone(flag()))?;
    }
    Ok(())
}

/// Whether a stop was asked for.
pub fn interrupted() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Ask the run to stop, as a first Ctrl-C would (the Python module, on KeyboardInterrupt).
pub fn request_stop() {
    flag().store(true, Ordering::SeqCst);
}

/// Forget a stop that was asked for and dealt with, so that the next run in this process runs
/// (the Python module, after an interrupted run tore down).
pub fn clear() {
    flag().store(false, Ordering::SeqCst);
}

/// Block until a stop is asked for.
pub fn wait() {
    while !interrupted() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
