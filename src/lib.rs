//! reckon: benchmark consensus systems for availability and latency under partial network
//! failures, on an emulated network of namespaces and Open vSwitch switches.

pub mod bench;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod client;
pub mod clock;
pub mod doctor;
pub mod fault;
pub mod net;
#[cfg(feature = "python")]
mod python;
pub mod record;
pub mod report;
pub mod run;
pub mod signals;
pub mod sweep;
pub mod system;
pub mod topology;
pub mod workload;

/// Lock `f` exclusively (`flock`) without waiting: false if another process holds it. The lock
/// goes with the file's last descriptor, so with the process, however it ends.
pub(crate) fn lock_exclusive(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

/// The 1-based line of byte `offset` in `src`: data files' errors name file and line.
pub(crate) fn line_at(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// A TOML parse error as (line, message).
pub(crate) fn toml_error(src: &str, e: &toml::de::Error) -> (usize, String) {
    (
        e.span().map(|s| line_at(src, s.start)).unwrap_or(1),
        e.message().trim().to_string(),
    )
}

/// How this process runs reckon's own command line again — for the impairment engine and a
/// sweep's runs, each a process of its own: the `reckon` binary, or this Python interpreter
/// with the module when the Python module is the program.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfCommand {
    pub program: std::path::PathBuf,
    /// Arguments before reckon's own (for Python, `-c` and code that calls the module's CLI).
    pub args: Vec<String>,
}

static SELF_COMMAND: std::sync::OnceLock<SelfCommand> = std::sync::OnceLock::new();

impl SelfCommand {
    /// A `reckon` binary.
    pub fn binary(path: impl Into<std::path::PathBuf>) -> SelfCommand {
        SelfCommand {
            program: path.into(),
            args: Vec::new(),
        }
    }

    /// Say how this process runs reckon (the Python module does, when it is imported); the
    /// first call wins.
    pub fn set(c: SelfCommand) {
        let _ = SELF_COMMAND.set(c);
    }

    /// How to run reckon from here: what [`SelfCommand::set`] said, else `RECKON_BIN`, else
    /// this program if it is `reckon`, else the `reckon` next to it or one folder up (a test
    /// binary in target/*/deps), else `reckon` on the PATH.
    pub fn current() -> SelfCommand {
        if let Some(c) = SELF_COMMAND.get() {
            return c.clone();
        }
        if let Some(b) = std::env::var_os("RECKON_BIN") {
            return SelfCommand::binary(b);
        }
        if let Ok(exe) = std::env::current_exe() {
            if exe.file_name().is_some_and(|n| n == "reckon") {
                return SelfCommand::binary(exe);
            }
            if let Some(dir) = exe.parent() {
                for cand in [dir.join("reckon"), dir.join("../reckon")] {
                    if cand.is_file() {
                        return SelfCommand::binary(cand);
                    }
                }
            }
        }
        SelfCommand::binary("reckon")
    }

    /// A command that runs reckon; add reckon's arguments to it.
    pub fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.program);
        c.args(&self.args);
        c
    }
}

impl std::fmt::Display for SelfCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program.display())?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}
