//! The userspace impairment engine: where the kernel has no `sch_netem`, each impaired link is
//! split into two veth pairs whose inner ends sit in the network's link namespace, and this
//! engine forwards frames between the inner ends, holding each for its delay and dropping some.
//!
//! It runs as its own process (`reckon __impair-engine`) inside the link namespace, so it lives
//! exactly as long as the network: teardown stops every process in the network's namespaces.
//! One thread serves every link: `epoll` over one AF_PACKET socket per inner end, a min-heap of
//! held frames ordered by due time, and a `timerfd` (with 1 ns timer slack) armed for the
//! earliest one; frames' delays count from the kernel's receive timestamp, so the engine's own
//! wake-up latency on arrival does not add to them. Each link direction has two seeded xoshiro256++ generators, one for loss and
//! one for delay, so the same seed drops the same packets whatever the delay does.
//! A unix socket takes live changes (one JSON request per connection).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::Impairment;

/// What the engine forwards: written by the network, read by the engine process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineSpec {
    pub seed: u64,
    /// Where the engine listens for live changes.
    pub control: PathBuf,
    pub links: Vec<EngineLink>,
}

/// One split link: frames arriving on `ends[0]` go out of `ends[1]` impaired by `forward`, and
/// the other way by `back`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineLink {
    pub link: String,
    pub ends: [String; 2],
    pub forward: Impairment,
    pub back: Impairment,
}

/// A live change or a question, sent to the control socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Set a link's impairment in one or both directions.
    Set {
        link: String,
        forward: Option<Impairment>,
        back: Option<Impairment>,
    },
    /// Impair only the frames from `src` to `dst` (IPv4) on one direction of a link, on top of
    /// the direction's own impairment; `None` removes the rule.
    Pair {
        link: String,
        forward: bool,
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
        impairment: Option<Impairment>,
    },
    /// Counters of every link direction.
    Stats,
    /// Start afresh, as if just started with `seed`: every direction clear, its pair rules
    /// gone, its counters zero and its generators seeded anew (a network kept for the next run;
    /// frames already held go out when due).
    Reset { seed: u64 },
}

/// Counters of one link direction.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DirStats {
    pub link: String,
    pub forward: bool,
    pub received: u64,
    pub dropped: u64,
    pub sent: u64,
    pub send_errors: u64,
    pub impairment: Impairment,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<DirStats>,
}

/// Send one request to a running engine.
pub fn request(control: &Path, req: &Request) -> io::Result<Response> {
    let mut s = UnixStream::connect(control)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(req).map_err(io::Error::other)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(io::Error::other)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Receive one frame into `buf`; returns its length and its kernel arrival time (realtime ns).
fn recv_frame(fd: RawFd, buf: &mut [u8]) -> Option<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut _,
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut _;
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let len = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if len <= 0 {
        return None;
    }
    let mut stamp = None;
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((len as usize, stamp))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An AF_PACKET socket on one interface, seeing every frame it receives (not those we send).
fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("{ifname}: {e}")))?;
    let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
    // Protocol 0 until bound, so no frame of another interface slips in before `bind`.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let size: libc::c_int = 4 << 20;
    unsafe {
        const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
        cvt(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &one as *const _ as *const _,
            4,
        ))?;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const _,
            4,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &size as *const _ as *const _,
            4,
        );
        // Kernel receive timestamps: a frame's delay counts from when it arrived, not from when
        // this process woke up to read it.
        cvt(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one as *const _ as *const _,
            4,
        ))?;
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = eth_p_all;
        sll.sll_ifindex = ifindex as i32;
        cvt(libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ))?;
    }
    Ok(fd)
}

/// One direction of one link.
struct Dir {
    link: String,
    forward: bool,
    out: usize,
    imp: Impairment,
    normal: Option<Normal<f64>>,
    loss_rng: Xoshiro256PlusPlus,
    delay_rng: Xoshiro256PlusPlus,
    last_due: u64,
    stats: DirStats,
    /// Rules for frames between two addresses, each with its own loss stream.
    pairs: Vec<PairRule>,
}

/// Extra impairment of the IPv4 frames from `src` to `dst`.
struct PairRule {
    src: [u8; 4],
    dst: [u8; 4],
    imp: Impairment,
    rng: Xoshiro256PlusPlus,
}

/// The IPv4 source and destination of an Ethernet frame, if it carries IPv4.
fn ipv4_pair(frame: &[u8]) -> Option<([u8; 4], [u8; 4])> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    Some((
        frame[26..30].try_into().ok()?,
        frame[30..34].try_into().ok()?,
    ))
}

impl Dir {
    fn new(link: &str, forward: bool, out: usize, imp: Impairment, seed: u64) -> Dir {
        // FNV-1a of the link name and direction: each direction its own streams, stable
        // across runs and platforms.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in link.bytes().chain([forward as u8]) {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        let mut d = Dir {
            link: link.into(),
            forward,
            out,
            imp,
            normal: None,
            loss_rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ h),
            delay_rng: Xoshiro256PlusPlus::seed_from_u64(
                seed ^ h.rotate_left(32) ^ 0x9e3779b97f4a7c15,
            ),
            last_due: 0,
            pairs: Vec::new(),
            stats: DirStats {
                link: link.into(),
                forward,
                impairment: imp,
                ..Default::default()
            },
        };
        d.set(imp);
        d
    }

    fn set(&mut self, imp: Impairment) {
        self.imp = imp;
        self.stats.impairment = imp;
        self.normal = if imp.jitter_ms > 0.0 {
            Normal::new(imp.latency_ms, imp.jitter_ms).ok()
        } else {
            None
        };
    }

    /// Set or remove (`None`) the rule for frames from `src` to `dst`.
    fn set_pair(&mut self, src: [u8; 4], dst: [u8; 4], imp: Option<Impairment>, seed: u64) {
        self.pairs.retain(|p| (p.src, p.dst) != (src, dst));
        if let Some(imp) = imp {
            let mut h = seed ^ 0x5851f42d4c957f2d;
            for b in src.iter().chain(&dst) {
                h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
            }
            self.pairs.push(PairRule {
                src,
                dst,
                imp,
                rng: Xoshiro256PlusPlus::seed_from_u64(h),
            });
        }
    }

    /// Drop the frame? Otherwise, when it is due.
    fn admit(&mut self, now: u64, frame: &[u8]) -> Option<u64> {
        self.stats.received += 1;
        if self.imp.loss_pct > 0.0 && self.loss_rng.random::<f64>() * 100.0 < self.imp.loss_pct {
            self.stats.dropped += 1;
            return None;
        }
        let mut extra_ms = 0.0;
        if !self.pairs.is_empty() {
            if let Some((src, dst)) = ipv4_pair(frame) {
                if let Some(p) = self.pairs.iter_mut().find(|p| p.src == src && p.dst == dst) {
                    if p.imp.loss_pct > 0.0 && p.rng.random::<f64>() * 100.0 < p.imp.loss_pct {
                        self.stats.dropped += 1;
                        return None;
                    }
                    extra_ms = p.imp.latency_ms;
                }
            }
        }
        let ms = match &self.normal {
            Some(n) => n
                .sample(&mut self.delay_rng)
                .clamp(0.0, 2.0 * self.imp.latency_ms),
            None => self.imp.latency_ms,
        };
        let mut due = now + ((ms + extra_ms) * 1e6) as u64;
        if !self.imp.reorder {
            due = due.max(self.last_due);
        }
        self.last_due = due;
        Some(due)
    }
}

struct Held {
    due: u64,
    seq: u64,
    dir: usize,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    /// Reversed: the heap's top is the earliest due.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

const TIMER: u64 = u64::MAX;
const STOP: u64 = u64::MAX - 1;
const CONTROL: u64 = u64::MAX - 2;

/// Run the engine until SIGTERM/SIGINT. Call inside the link namespace. Prints `ready` on
/// stdout once every socket is open.
pub fn run(spec: &EngineSpec) -> io::Result<()> {
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    // Ports: one socket per inner end; ports[2i] and ports[2i+1] are link i's ends.
    let mut ports = Vec::new();
    let mut dirs = Vec::new();
    for (i, l) in spec.links.iter().enumerate() {
        for end in &l.ends {
            ports.push(packet_socket(end).map_err(|e| {
                io::Error::new(e.kind(), format!("link {}: end {end}: {e}", l.link))
            })?);
        }
        dirs.push(Dir::new(&l.link, true, 2 * i + 1, l.forward, spec.seed));
        dirs.push(Dir::new(&l.link, false, 2 * i, l.back, spec.seed));
    }
    // The seed of pair rules and of a reset's generators: the spec's until a reset gives another.
    let mut seed = spec.seed;
    let epfd = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
    let add = |fd: RawFd, token: u64| -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        cvt(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(|_| ())
    };
    for (i, p) in ports.iter().enumerate() {
        add(p.as_raw_fd(), i as u64)?;
    }
    let timer = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        ))?)
    };
    add(timer.as_raw_fd(), TIMER)?;
    let (stop_rx, stop_tx) = std::os::unix::net::UnixStream::pair()?;
    stop_rx.set_nonblocking(true)?;
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        signal_hook::low_level::pipe::register(sig, stop_tx.try_clone()?)?;
    }
    add(stop_rx.as_raw_fd(), STOP)?;
    let _ = std::fs::remove_file(&spec.control);
    let control = UnixListener::bind(&spec.control)?;
    control.set_nonblocking(true)?;
    add(control.as_raw_fd(), CONTROL)?;

    println!("ready");
    let _ = io::stdout().flush();

    let mut heap: BinaryHeap<Held> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut armed = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    // Timer wake-ups come late (tens of microseconds, more in a VM). Arm the timer early by the
    // mean lateness seen so far and send what is due within it: frames leave on time on
    // average, at no extra CPU (spinning to the exact instant was tried: three times the CPU).
    let mut lead = 0u64;
    'run: loop {
        // Send what is due.
        let now = now_ns();
        while heap.peek().is_some_and(|h| h.due <= now + lead) {
            let h = heap.pop().unwrap();
            send(&ports[dirs[h.dir].out], &h.frame, &mut dirs[h.dir].stats);
        }
        // Arm the timer for the next one, early by the lead.
        let next = heap
            .peek()
            .map(|h| h.due.saturating_sub(lead).max(1))
            .unwrap_or(0);
        if next != armed {
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: (next / 1_000_000_000) as i64,
                    tv_nsec: (next % 1_000_000_000) as i64,
                },
            };
            cvt(unsafe {
                libc::timerfd_settime(
                    timer.as_raw_fd(),
                    libc::TFD_TIMER_ABSTIME,
                    &spec,
                    std::ptr::null_mut(),
                )
            })?;
            armed = next;
        }
        let n = unsafe {
            libc::epoll_wait(
                epfd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                -1,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            match ev.u64 {
                TIMER => {
                    let mut x = [0u8; 8];
                    unsafe { libc::read(timer.as_raw_fd(), x.as_mut_ptr() as *mut _, 8) };
                    // Follow the lateness of wake-ups (a slow moving mean, capped at 1 ms).
                    let late = now_ns().saturating_sub(armed).min(1_000_000) as i64;
                    lead = (lead as i64 + (late - lead as i64) / 16).max(0) as u64;
                    armed = 0;
                }
                STOP => break 'run,
                CONTROL => serve_control(&control, &mut dirs, &mut seed),
                port => {
                    let port = port as usize;
                    // Frames arriving on end 0 of a link go forward (dir 2i), on end 1 back (2i+1).
                    let dir = port;
                    // Realtime -> monotonic, for the kernel's arrival stamps.
                    let now = now_ns();
                    let offset = clock_ns(libc::CLOCK_REALTIME) as i64 - now as i64;
                    for _ in 0..256 {
                        let Some((len, stamp)) = recv_frame(ports[port].as_raw_fd(), &mut buf)
                        else {
                            break;
                        };
                        let arrived = stamp
                            .map(|t| (t as i64 - offset) as u64)
                            .filter(|&t| t <= now && now - t < 1_000_000_000)
                            .unwrap_or(now);
                        let Some(due) = dirs[dir].admit(arrived, &buf[..len]) else {
                            continue;
                        };
                        if due <= now && heap.is_empty() {
                            send(&ports[dirs[dir].out], &buf[..len], &mut dirs[dir].stats);
                        } else {
                            seq += 1;
                            heap.push(Held {
                                due,
                                seq,
                                dir,
                                frame: buf[..len].to_vec(),
                            });
                        }
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_file(&spec.control);
    close_in_parallel(ports);
    Ok(())
}

fn send(port: &OwnedFd, frame: &[u8], stats: &mut DirStats) {
    let rc = unsafe {
        libc::send(
            port.as_raw_fd(),
            frame.as_ptr() as *const _,
            frame.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if rc < 0 {
        stats.send_errors += 1;
    } else {
        stats.sent += 1;
    }
}

/// Closing an AF_PACKET socket waits for an RCU grace period; closing them from many threads
/// at once lets them share grace periods instead of paying one each.
fn close_in_parallel(fds: Vec<OwnedFd>) {
    std::thread::scope(|s| {
        for fd in fds {
            s.spawn(move || drop(fd));
        }
    });
}

fn serve_control(listener: &UnixListener, dirs: &mut [Dir], seed: &mut u64) {
    while let Ok((stream, _)) = listener.accept() {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        let resp = match reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::from_str::<Request>(&line).map_err(|e| e.to_string()))
        {
            Err(e) => Response {
                ok: false,
                error: Some(format!("bad request: {e}")),
                stats: vec![],
            },
            Ok(req) => handle(req, dirs, seed),
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_default();
        out.push('\n');
        let _ = (&stream).write_all(out.as_bytes());
    }
}

fn handle(req: Request, dirs: &mut [Dir], seed: &mut u64) -> Response {
    let fail = |e: String| Response {
        ok: false,
        error: Some(e),
        stats: vec![],
    };
    match req {
        Request::Pair {
            link,
            forward,
            src,
            dst,
            impairment,
        } => {
            if let Some(Err(e)) = impairment.map(|i| i.validate()) {
                return fail(e);
            }
            match dirs
                .iter_mut()
                .find(|d| d.link == link && d.forward == forward)
            {
                Some(d) => {
                    d.set_pair(src.octets(), dst.octets(), impairment, *seed);
                    Response {
                        ok: true,
                        error: None,
                        stats: vec![],
                    }
                }
                None => fail(format!("link '{link}' has no impairment engine")),
            }
        }
        Request::Reset { seed: new } => {
            *seed = new;
            for d in dirs.iter_mut() {
                *d = Dir::new(&d.link, d.forward, d.out, Impairment::default(), new);
            }
            Response {
                ok: true,
                error: None,
                stats: vec![],
            }
        }
        Request::Stats => Response {
            ok: true,
            error: None,
            stats: dirs.iter().map(|d| d.stats.clone()).collect(),
        },
        Request::Set {
            link,
            forward,
            back,
        } => {
            for i in [forward, back].iter().flatten() {
                if let Err(e) = i.validate() {
                    return Response {
                        ok: false,
                        error: Some(e),
                        stats: vec![],
                    };
                }
            }
            let mut found = false;
            for d in dirs.iter_mut().filter(|d| d.link == link) {
                found = true;
                if let Some(i) = if d.forward { forward } else { back } {
                    d.set(i);
                }
            }
            if found {
                Response {
                    ok: true,
                    error: None,
                    stats: vec![],
                }
            } else {
                let known: Vec<&str> = dirs
                    .iter()
                    .filter(|d| d.forward)
                    .map(|d| d.link.as_str())
                    .collect();
                Response {
                    ok: false,
                    error: Some(format!(
                        "link '{link}' has no impairment engine; impairable links: {}",
                        known.join(", ")
                    )),
                    stats: vec![],
                }
            }
        }
    }
}
