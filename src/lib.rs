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
