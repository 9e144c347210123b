//! What the client threads and the fault timeline tell the rest of a run: records for the
//! recorder ([`Msg`]) and, once, that a client is ready ([`Ready`]).

use crate::record::{FaultRecord, OpRecord};

/// What the recorder is sent.
pub enum Msg {
    /// A batch of finished operations.
    Ops(Vec<OpRecord>),
    /// A fault event as it was applied.
    Fault(FaultRecord),
}

/// What a client says when it is ready.
#[derive(Default)]
pub struct Ready {
    /// Endpoints it could not reach (not fatal: a node may be down on purpose).
    pub warnings: Vec<String>,
    /// It runs at real-time priority (built-in clients).
    pub realtime: bool,
}
