//! reckon: benchmark consensus systems for availability and latency under partial network
//! failures, on an emulated network of namespaces and Open vSwitch switches.

pub mod bench;
pub mod client;
pub mod doctor;
pub mod fault;
pub mod net;
pub mod record;
pub mod report;
pub mod run;
pub mod signals;
pub mod sweep;
pub mod system;
pub mod topology;
pub mod workload;

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
