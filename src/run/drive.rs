//! The open loop: a thread drives a client host's built-in client (`run::clients` starts one
//! per client host, inside the host's namespace). Each operation is sent at its scheduled
//! instant whether or not earlier ones returned (no coordinated omission), and its latency
//! counts from that instant. Any [`KvClient`] can be driven.
//!
//! Nothing spins. The thread sleeps in its event loop until a `timerfd` deadline or a reply; an
//! operation that falls due while the thread is awake anyway (handling replies) goes out then,
//! so at high rates most dispatches ride on wake-ups that happen regardless. Operations whose
//! instants lie within [`DISPATCH_SLACK`] of the next one share one wake-up (at the last of
//! their instants) and one write per connection; an operation with no neighbour that close
//! gets a wake-up of its own at its exact instant. Every operation's dispatch lag (send minus
//! intended start) is recorded, and the summary reports it.
//!
//! Overload: each client host has at most `max_in_flight` operations outstanding. An operation
//! that falls due while its client is at the bound is not sent: it is recorded as failed at its
//! intended instant with the error "overloaded" (see [`OVERLOADED`]). Its latency is zero, it
//! counts as an error, not as a success, and not in the dispatch lag (it was not dispatched), so
//! a client that cannot keep up shows as errors at the instants they happen rather than as a
//! backlog sent late.
//!
//! The thread runs at real-time priority (`SCHED_FIFO` 1) where it may: on a machine shared
//! with the system under test, a normal thread's wake-ups wait behind the system's threads for
//! up to milliseconds, which would show as dispatch lag and as late completion instants — in
//! both cases as latency that is reckon's, not the system's. It uses the same CPU either way;
//! it only gets it when it asks.
//!
//! Records go to the recorder (`run::measure`'s thread with `record::Tally`) in batches every
//! [`BATCH`], so the recorder is woken a few times a second, not once per operation.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::KvClient;
use crate::clock::{self, now_ns};
use crate::record::OpRecord;
use crate::workload::Scheduled;

/// How long after its instant an operation may wait for a wake-up it can share. Each wake-up
/// of a sleeping thread costs tens of microseconds of CPU on a virtual machine; sharing them
/// keeps reckon's cost per operation down while the dispatch lag stays under a millisecond.
pub const DISPATCH_SLACK: Duration = Duration::from_micros(500);
/// How often finished operations go to the recorder.
pub const BATCH: Duration = Duration::from_millis(50);
pub use crate::record::OVERLOADED;

/// How the open loop runs.
pub struct DriveOptions {
    pub op_timeout: Duration,
    pub max_in_flight: usize,
    /// The run's start (monotonic ns); operations' times count from it.
    pub t0_ns: u64,
}

/// Counters the progress display reads.
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
}

/// What finished operations are handed over as.
pub type Batch = Vec<OpRecord>;

struct Shared {
    done: Mutex<Vec<OpRecord>>,
    /// The next operation's instant (ns), for replies to decide whether to wake the dispatcher.
    next_due: AtomicU64,
    wake: tokio::sync::Notify,
    counters: Arc<Counters>,
}

/// A client host as the open loop sees it: its name, its client, and the endpoints its
/// client's answers index into.
pub struct Slot {
    pub name: String,
    pub endpoints: Vec<String>,
    pub client: Arc<dyn KvClient>,
}

/// Put the calling thread at real-time priority (`SCHED_FIFO`, the lowest level); false if
/// the system does not allow it (reckon then runs as a normal thread).
pub fn realtime() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: changes this thread's scheduling policy; `p` lives for the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

/// Drive `schedule` (the client host's operations, in time order) through its client until
/// it ends or `stop` is set; finished operations go to `sink` in batches. Returns when every
/// operation sent has finished (each within the operation timeout).
pub async fn open_loop(
    slot: Slot,
    schedule: impl Iterator<Item = Scheduled>,
    o: &DriveOptions,
    stop: &AtomicBool,
    counters: Arc<Counters>,
    mut sink: impl FnMut(Batch) -> bool,
) -> std::io::Result<()> {
    let timer = clock::Timer::new()?;
    let shared = Arc::new(Shared {
        done: Mutex::new(Vec::new()),
        next_due: AtomicU64::new(u64::MAX),
        wake: tokio::sync::Notify::new(),
        counters,
    });
    let name: Arc<str> = Arc::from(slot.name.as_str());
    let endpoints = Arc::new(slot.endpoints);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut schedule = Lookahead {
        inner: schedule,
        ahead: std::collections::VecDeque::new(),
    };
    let mut last_batch = now_ns();
    let slack = DISPATCH_SLACK.as_nanos() as u64;
    let batch_ns = BATCH.as_nanos() as u64;
    loop {
        let now = now_ns();
        // Everything due goes out now.
        while let Some(s) = schedule.get(0) {
            let due = clock::at(o.t0_ns, s.time);
            if due > now || stop.load(Ordering::Relaxed) {
                break;
            }
            let s = schedule.ahead.pop_front().expect("looked at");
            if in_flight.load(Ordering::Relaxed) >= o.max_in_flight {
                // Not sent: it fails at its own instant, whenever the loop got to it.
                let t = s.time;
                push(
                    &shared,
                    record(&s, &name, t, t, Err(OVERLOADED.into()), 0, None),
                );
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, shared, in_flight, name, eps) = (
                slot.client.clone(),
                shared.clone(),
                in_flight.clone(),
                name.clone(),
                endpoints.clone(),
            );
            let (t0, timeout) = (o.t0_ns, o.op_timeout);
            tasks.spawn(async move {
                let sent = clock::secs_since(t0, now_ns());
                let out = client.perform(&s.op, timeout).await;
                let done_ns = now_ns();
                let done = clock::secs_since(t0, done_ns);
                let endpoint = out.endpoint.and_then(|i| eps.get(i).cloned());
                let r = record(&s, &name, sent, done, out.result, out.attempts, endpoint);
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let first = push(&shared, r);
                // Wake the dispatcher if an operation is due (it goes out now, on this
                // wake-up) or if this record starts a batch (so the batch gets a deadline).
                if first || done_ns >= shared.next_due.load(Ordering::Relaxed) {
                    shared.wake.notify_one();
                }
            });
        }
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
        let mut pending = !shared.done.lock().map(|d| d.is_empty()).unwrap_or(true);
        if pending && now >= last_batch + batch_ns {
            let batch = std::mem::take(&mut *shared.done.lock().unwrap_or_else(|p| p.into_inner()));
            (last_batch, pending) = (now, false);
            if !sink(batch) {
                break;
            }
        }
        let next = match schedule.get(0) {
            Some(s) if !stop.load(Ordering::Relaxed) => clock::at(o.t0_ns, s.time),
            _ => break,
        };
        shared.next_due.store(next, Ordering::Relaxed);
        // Wake at the last instant of the operations that lie within the slack of the next.
        let mut deadline = next;
        let mut k = 1;
        while let Some(s) = schedule.get(k) {
            let t = clock::at(o.t0_ns, s.time);
            if t > next + slack {
                break;
            }
            deadline = t;
            k += 1;
        }
        if pending {
            deadline = deadline.min(last_batch + batch_ns);
        }
        // A stop request is seen within 100 ms even between sparse operations.
        deadline = deadline.min(now_ns() + 100_000_000);
        tokio::select! {
            r = timer.sleep_until(deadline) => r?,
            _ = shared.wake.notified() => {}
        }
    }
    shared.next_due.store(u64::MAX, Ordering::Relaxed);
    // The operations in flight end within their timeout; their records go out as they come.
    while !tasks.is_empty() {
        let tick = tokio::time::sleep(BATCH);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                r = tasks.join_next() => if r.is_none() { break },
                _ = &mut tick => break,
            }
        }
        let batch = std::mem::take(&mut *shared.done.lock().unwrap_or_else(|p| p.into_inner()));
        if !batch.is_empty() && !sink(batch) {
            break;
        }
    }
    let batch = std::mem::take(&mut *shared.done.lock().unwrap_or_else(|p| p.into_inner()));
    if !batch.is_empty() {
        sink(batch);
    }
    Ok(())
}

/// Add a finished operation; true if it is the first since the last batch went out.
fn push(shared: &Shared, r: OpRecord) -> bool {
    if r.ok {
        shared.counters.ok.fetch_add(1, Ordering::Relaxed);
    } else {
        shared.counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    let mut d = shared.done.lock().unwrap_or_else(|p| p.into_inner());
    d.push(r);
    d.len() == 1
}

/// The schedule with a look ahead (how many operations fall due close together).
struct Lookahead<I> {
    inner: I,
    ahead: std::collections::VecDeque<Scheduled>,
}

impl<I: Iterator<Item = Scheduled>> Lookahead<I> {
    fn get(&mut self, k: usize) -> Option<&Scheduled> {
        while self.ahead.len() <= k {
            self.ahead.push_back(self.inner.next()?);
        }
        self.ahead.get(k)
    }
}

fn record(
    s: &Scheduled,
    client: &str,
    sent: f64,
    done: f64,
    result: Result<Option<Vec<u8>>, String>,
    attempts: u32,
    endpoint: Option<String>,
) -> OpRecord {
    let ok = result.is_ok();
    let value = match (&s.op, &result) {
        (crate::workload::Op::Write { value, .. }, _) => value.clone(),
        (_, Ok(Some(v))) => String::from_utf8_lossy(v).into_owned(),
        _ => String::new(),
    };
    OpRecord {
        n: s.n,
        client: client.to_string(),
        kind: s.op.kind().into(),
        key: s.op.key().into(),
        intended: s.time,
        sent,
        done,
        ok,
        error: result.err().unwrap_or_default(),
        target: endpoint.unwrap_or_default(),
        attempts,
        value,
    }
}
