//! Time for the measuring side of a run: one monotonic clock (`CLOCK_MONOTONIC`, in
//! nanoseconds) for schedules, records and timers, and sleeps that sleep. Nothing here spins: a
//! thread waits for an absolute deadline in `clock_nanosleep`, an async task on a `timerfd`
//! that the runtime's `epoll` watches, so a waiting client costs no CPU at all.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// Now, in nanoseconds of `CLOCK_MONOTONIC` (the clock `std::time::Instant` uses on Linux).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`, which lives for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Seconds from `t0_ns` to `ns` (negative before it).
pub fn secs_since(t0_ns: u64, ns: u64) -> f64 {
    (ns as i128 - t0_ns as i128) as f64 / 1e9
}

/// `t0_ns` plus `s` seconds.
pub fn at(t0_ns: u64, s: f64) -> u64 {
    t0_ns + (s.max(0.0) * 1e9).round() as u64
}

/// Block this thread until `deadline_ns` (absolute), or until `wake()` says to stop; checks
/// `wake` at least every `poll` (a sleep of its own, not a spin). Returns early only if `wake`.
pub fn sleep_until(deadline_ns: u64, poll: Duration, wake: impl Fn() -> bool) {
    let poll = poll.as_nanos() as u64;
    loop {
        if wake() {
            return;
        }
        let now = now_ns();
        if now >= deadline_ns {
            return;
        }
        let until = deadline_ns.min(now + poll);
        let ts = timespec(until);
        // SAFETY: an absolute sleep on the monotonic clock; EINTR just loops.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
    }
}

/// A one-shot timer for async code: a `timerfd` armed at absolute deadlines, watched by the
/// runtime's reactor. Re-arming replaces the previous deadline.
pub struct Timer {
    fd: AsyncFd<OwnedFd>,
    /// The deadline the timer is armed for (0: none), so re-arming for the same one is free.
    armed: std::cell::Cell<u64>,
}

impl Timer {
    /// Must be called inside a tokio runtime with IO enabled.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let raw: RawFd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the timerfd is owned by the AsyncFd from here on, so it stays open for as long
        // as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Timer {
            fd,
            armed: std::cell::Cell::new(0),
        })
    }

    fn arm(&self, deadline_ns: u64) -> io::Result<()> {
        if self.armed.get() == deadline_ns {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: timespec(0),
            // A deadline of 0 would disarm the timer: the earliest real one is 1 ns.
            it_value: timespec(deadline_ns.max(1)),
        };
        // SAFETY: the fd is a timerfd we own; `spec` lives for the call.
        let r = unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            self.armed.set(0);
            return Err(io::Error::last_os_error());
        }
        self.armed.set(deadline_ns);
        Ok(())
    }

    /// Wait until `deadline_ns` (absolute, monotonic). Cancel-safe: dropping the future leaves
    /// at most an armed timer, which the next call re-arms.
    pub async fn sleep_until(&self, deadline_ns: u64) -> io::Result<()> {
        loop {
            if now_ns() >= deadline_ns {
                return Ok(());
            }
            self.arm(deadline_ns)?;
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut ticks = 0u64;
                // SAFETY: reads 8 bytes into `ticks`.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        &mut ticks as *mut u64 as *mut libc::c_void,
                        8,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                // It fired: nothing is armed any more.
                Ok(Ok(())) => self.armed.set(0),
                Ok(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                // A stale readiness (re-arming cleared the expiry): wait again.
                _ => {}
            }
        }
    }
}

/// This process's CPU time so far (user + system), all threads.
pub fn process_cpu() -> Duration {
    cpu(libc::RUSAGE_SELF)
}

/// The calling thread's CPU time so far (user + system).
pub fn thread_cpu() -> Duration {
    cpu(libc::RUSAGE_THREAD)
}

fn cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the struct.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut r) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// This process's resident memory now and at its peak, bytes (from /proc/self/status).
pub fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_wakes_at_its_deadline_without_spinning() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Timer::new().unwrap();
            // This thread's own CPU: other tests run in the same process meanwhile.
            let cpu0 = thread_cpu();
            let mut late = Vec::new();
            for i in 1..=20u64 {
                let d = now_ns() + 5_000_000 * (i % 2 + 1);
                t.sleep_until(d).await.unwrap();
                late.push(now_ns() - d);
            }
            // 20 sleeps of 5-10 ms: well under the 150 ms they took in CPU, and each on time.
            let cpu = thread_cpu() - cpu0;
            assert!(cpu < Duration::from_millis(50), "{cpu:?}");
            late.sort();
            assert!(late[late.len() / 2] < 2_000_000, "{late:?}");
            // A deadline in the past returns at once; re-arming replaces.
            t.sleep_until(now_ns() - 1).await.unwrap();
        });
    }

    #[test]
    fn a_thread_sleeps_to_an_absolute_deadline() {
        let d = now_ns() + 20_000_000;
        sleep_until(d, Duration::from_millis(5), || false);
        assert!(now_ns() >= d);
        let stop = std::sync::atomic::AtomicBool::new(true);
        let t = now_ns();
        sleep_until(t + 1_000_000_000, Duration::from_millis(5), || {
            stop.load(std::sync::atomic::Ordering::Relaxed)
        });
        assert!(now_ns() - t < 100_000_000);
    }
}
