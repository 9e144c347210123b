//! Clients of the system under test. They run inside the client hosts' namespaces, so their
//! traffic crosses the emulated network. `stdio` drives external clients over reckon's stdio
//! protocol; `etcd` is the built-in etcd v3 client.

pub mod etcd;
pub mod stdio;
