//! Defects found by reading the code, each shown here by a test that failed before its fix:
//! `clean` beside a live userspace-engine run and a corrupt record; a tiny `--mtbf`; a result
//! folder given to two runs; a full disk under ops.csv; Ctrl-C while the cluster starts, while
//! the prerequisites are written and while an external client ignores its input; bridges whose
//! record a reboot erased. (The sweep's defects are in tests/sweep.rs.) Needs root and OVS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reckon::net::Network;
use reckon::record::Summary;

/// One at a time: `reckon clean` without `--only` sees every network of this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("reckon-test-rel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child` for at most `limit`; a child still running then is killed and the test
/// fails (the defect was a hang).
fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
    std::thread::sleep(Duration::from_secs(5));
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    panic!("{what}: still running after {limit:?}:\n{}", text(&o));
}

fn until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `reckon run etcd simple uniform none` under `prefix` into `dir`, with `extra` flags.
fn etcd_run<'a>(prefix: &'a str, dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--prefix", prefix, "run", "etcd", "simple", "uniform", "none",
    ];
    a.extend_from_slice(extra);
    a.extend(["--result-location", dir]);
    a
}

/// `reckon topo up simple` with one node, left up under `prefix`.
fn left_up(prefix: &str) -> Output {
    reckon(&[
        "--prefix",
        prefix,
        "topo",
        "up",
        "simple",
        "--number-nodes",
        "1",
    ])
}

fn interrupt(c: &Child) {
    kill(Pid::from_raw(c.id() as i32), Signal::SIGINT).unwrap();
}

/// `reckon clean` while a run with the userspace engine is live (its registry holds
/// `<prefix>.impair.json`, which is not a manifest), and with a record that cannot be read:
/// it skips the one, reports the other and still removes a network left up.
#[test]
fn clean_skips_what_is_not_a_manifest_and_goes_on_after_a_bad_one() {
    let _s = serial();
    // A live network with the userspace engine (no netem here; forced where there is).
    let mut o = opts("yce");
    o.impair.latency_ms = 5.0;
    o.impair.backend = reckon::net::impair::Backend::Userspace;
    let live = Network::up(&topo("simple", 2, None), &o).unwrap();
    assert!(Path::new("/run/reckon/yce.impair.json").exists());
    // A network left up on purpose, and a record nobody can read.
    let _ = opts("ycl");
    let up = left_up("ycl");
    assert!(up.status.success(), "{}", text(&up));
    std::fs::write("/run/reckon/ycbad.json", b"{ not a manifest").unwrap();

    let list = reckon(&["topo", "list"]);
    assert!(
        !text(&list).contains("yce.impair"),
        "the engine's spec is not a network: {}",
        text(&list)
    );
    let c = reckon(&["clean"]);
    let out = text(&c);
    let _ = std::fs::remove_file("/run/reckon/ycbad.json");
    let _ = std::fs::remove_file("/run/reckon/ycbad.lock");
    assert!(!out.contains("missing field"), "{out}");
    assert!(
        out.contains("yce: skipped, owned by a running reckon process"),
        "{out}"
    );
    assert!(out.contains("ycbad: could not remove everything"), "{out}");
    assert!(out.contains("ycl: removed network left up"), "{out}");
    assert_eq!(c.status.code(), Some(1), "one prefix failed: {out}");
    assert_clean("ycl");
    // The live network was not touched.
    assert!(sh("ip netns list").contains("yce-h1"));
    live.down().unwrap();
    assert_clean("yce");
}

/// A tiny `--mtbf` used to grow the fault timeline without end (24 GB, then the OOM killer):
/// it is refused at once, with the smallest period reckon can play, and nothing is written.
#[test]
fn a_tiny_mtbf_is_refused_at_once() {
    let _s = serial();
    for mtbf in ["1e-300", "1e-6"] {
        let dir = folder("mtbf");
        let c = spawn(&[
            "--prefix",
            "ymt",
            "run",
            "etcd",
            "wan",
            "uniform",
            "intermittent-partial",
            "--mtbf",
            mtbf,
            "--result-location",
            dir.to_str().unwrap(),
        ]);
        let o = finish_within(c, Duration::from_secs(10), "a run with --mtbf {mtbf}");
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(
            out.contains("--mtbf") && out.contains("at least 0.01 s"),
            "{out}"
        );
        assert!(!dir.exists(), "nothing written for a refused run");
        assert_clean("ymt");
    }
}

/// Two runs given one result folder: the second is refused before it writes anything, so the
/// first's config.json stays the first's; a folder that holds results is never written again;
/// a folder a run left before it measured anything may be used again.
#[test]
fn a_result_folder_belongs_to_one_run() {
    let _s = serial();
    let dir = folder("claim");
    let d = dir.to_str().unwrap();
    let _ = opts("ycf");
    let _ = opts("ycg");
    let first = spawn(&etcd_run("ycf", d, &["--duration", "4", "--rate", "20"]));
    let config = dir.join("config.json");
    until(
        Duration::from_secs(30),
        "the first run's config.json",
        || std::fs::read_to_string(&config).is_ok_and(|c| c.contains("\"ycf\"")),
    );
    let second = reckon(&etcd_run("ycg", d, &["--duration", "4"]));
    assert!(!second.status.success());
    assert!(
        text(&second).contains("in use by another reckon run"),
        "{}",
        text(&second)
    );
    let o = finish_within(first, Duration::from_secs(60), "the first run");
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        cfg["prefix"], "ycf",
        "the first run's config.json is its own"
    );
    // Its results stay its own.
    let again = reckon(&etcd_run("ycg", d, &[]));
    assert!(
        text(&again).contains("already holds a run's results"),
        "{}",
        text(&again)
    );
    // A run that failed before measuring (its prefix was taken) leaves a folder the next run
    // may have.
    let left = folder("claim-left");
    let l = left.to_str().unwrap();
    let up = left_up("ycg");
    assert!(up.status.success(), "{}", text(&up));
    let refused = reckon(&etcd_run("ycg", l, &["--duration", "2"]));
    assert!(!refused.status.success());
    assert!(text(&refused).contains("left up"), "{}", text(&refused));
    assert!(reckon(&["--prefix", "ycg", "topo", "down"])
        .status
        .success());
    let retry = reckon(&etcd_run("ycg", l, &["--duration", "2", "--rate", "20"]));
    assert!(retry.status.success(), "{}", text(&retry));
    assert!(left.join("summary.json").exists());
    for p in ["ycf", "ycg"] {
        assert_clean(p);
    }
}

/// A full disk under ops.csv: the run goes on, and its summary (which counts every operation)
/// says that ops.csv is incomplete; so does the exit status.
#[test]
fn a_full_disk_under_ops_csv_is_marked() {
    let _s = serial();
    let mnt = folder("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(m.success(), "mount a tmpfs");
    let dir = mnt.join("run");
    let _ = opts("yfd");
    let run = spawn(&etcd_run(
        "yfd",
        dir.to_str().unwrap(),
        &["--duration", "5", "--rate", "300"],
    ));
    let ops = dir.join("ops.csv");
    until(Duration::from_secs(60), "ops.csv with rows", || {
        std::fs::metadata(&ops).is_ok_and(|m| m.len() > 0)
    });
    // Fill the disk for two seconds, then free it for the summary.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        for size in [64 << 10, 4 << 10, 64] {
            let chunk = vec![0u8; size];
            while f.write_all(&chunk).is_ok() {}
        }
        let _ = f.sync_all();
    }
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&filler).unwrap();
    let o = finish_within(run, Duration::from_secs(60), "the run");
    let s: Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let _ = Command::new("umount").arg(&mnt).status();
    let why = s
        .incomplete
        .expect("the summary says ops.csv is incomplete");
    assert!(
        why.contains("ops.csv") && why.contains("writing it failed"),
        "{why}"
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("results are incomplete"), "{}", text(&o));
    assert_eq!(s.ops, 1500, "the figures count every operation");
    assert_clean("yfd");
}

/// Ctrl-C while the cluster gets ready (here it never does: the "system" is a program that
/// answers nothing) ends the run at once, as interrupted, with nothing left behind.
#[test]
fn ctrl_c_while_the_cluster_starts_ends_the_run() {
    let _s = serial();
    let defs = folder("mute");
    std::fs::create_dir_all(&defs).unwrap();
    let def = defs.join("mute.toml");
    std::fs::write(
        &def,
        "description = \"answers nothing\"\nbinary = \"/bin/sleep\"\ninstall_hint = \"-\"\n\
         adapter = \"etcd\"\nclient_port = 2379\npeer_port = 2380\nmember = \"{name}\"\n\
         args = [\"600\"]\n",
    )
    .unwrap();
    let dir = folder("mute-run");
    let _ = opts("ycs");
    let c = spawn(&[
        "--prefix",
        "ycs",
        "run",
        "mute",
        "simple",
        "uniform",
        "none",
        "--system-file",
        def.to_str().unwrap(),
        "--result-location",
        dir.to_str().unwrap(),
    ]);
    // Well into the wait for a leader (which would last 30 s).
    until(Duration::from_secs(30), "the nodes", || {
        sh("ip netns list").contains("ycs-h1") && dir.join("logs").exists()
    });
    std::thread::sleep(Duration::from_secs(3));
    interrupt(&c);
    let o = finish_within(
        c,
        Duration::from_secs(8),
        "a run interrupted while starting",
    );
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(
        text(&o).contains("interrupted before the run started measuring"),
        "{}",
        text(&o)
    );
    assert_clean("ycs");
}

/// Ctrl-C while the prerequisites are written (a million keys, which would take minutes).
#[test]
fn ctrl_c_while_the_prerequisites_are_written_ends_the_run() {
    let _s = serial();
    let dir = folder("prereq");
    let _ = opts("ypq");
    let mut c = spawn(&etcd_run(
        "ypq",
        dir.to_str().unwrap(),
        &["--max-key", "1000000"],
    ));
    // Its stderr says when it starts writing them.
    let mut err = c.stderr.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains("prerequisite keys") {
        assert!(Instant::now() < deadline, "the prerequisites begin: {seen}");
        let mut buf = [0u8; 512];
        let n = std::io::Read::read(&mut err, &mut buf).unwrap();
        assert!(n > 0, "the run ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::thread::sleep(Duration::from_secs(2));
    interrupt(&c);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(8) {
            let _ = c.kill();
            panic!("still writing prerequisites 8 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert_clean("ypq");
}

/// An external client that never reads its input used to block the run forever once the pipe
/// was full: it is given up after reckon's send timeout, and a Ctrl-C ends the wait at once.
#[test]
fn an_external_client_that_reads_nothing_is_given_up() {
    let _s = serial();
    for ctrl_c in [true, false] {
        let dir = folder("deaf");
        let _ = opts("ydf");
        // A client that takes no input and ignores its arguments.
        let deaf = dir.with_extension("sh");
        std::fs::write(&deaf, "#!/bin/sh\nexec sleep 600\n").unwrap();
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&deaf, exec).unwrap();
        // 20,000 operations: far more than a pipe holds.
        let c = spawn(&[
            "--prefix",
            "ydf",
            "run",
            "etcd",
            "simple",
            "uniform",
            "none",
            "--rate",
            "1000",
            "--duration",
            "20",
            "--client-cmd",
            deaf.to_str().unwrap(),
            "--result-location",
            dir.to_str().unwrap(),
        ]);
        let o = if ctrl_c {
            until(Duration::from_secs(60), "the client", || {
                dir.join("logs").join("client-1.stderr").exists()
            });
            std::thread::sleep(Duration::from_secs(2));
            interrupt(&c);
            let o = finish_within(c, Duration::from_secs(8), "a run interrupted at preload");
            assert_eq!(o.status.code(), Some(130), "{}", text(&o));
            o
        } else {
            let limit = reckon::client::stdio::SEND_TIMEOUT + Duration::from_secs(40);
            let o = finish_within(c, limit, "a run whose client reads nothing");
            assert!(!o.status.success());
            assert!(
                text(&o).contains("read nothing of its input"),
                "{}",
                text(&o)
            );
            o
        };
        drop(o);
        assert_clean("ydf");
    }
}

/// After a reboot the registry (tmpfs) is empty but the bridges (OVSDB, on disk) remain:
/// reckon tags its bridges, so `reckon clean` finds and removes them, and a run with the
/// prefix says what to do instead of "no reckon run owns it".
#[test]
fn bridges_a_reboot_left_are_found_without_a_record() {
    let _s = serial();
    let _ = opts("yrb");
    let up = left_up("yrb");
    assert!(up.status.success(), "{}", text(&up));
    // The reboot: namespaces and their links gone with the kernel, the registry with tmpfs.
    for ns in sh("ip netns list")
        .lines()
        .filter_map(|l| l.split(' ').next())
    {
        if ns.starts_with("yrb-") {
            assert!(Command::new("ip")
                .args(["netns", "delete", ns])
                .status()
                .unwrap()
                .success());
        }
    }
    until(Duration::from_secs(10), "the host links to go", || {
        !sh("ip -o link show").contains("yrb-")
    });
    for f in ["yrb.json", "yrb.lock"] {
        let _ = std::fs::remove_file(Path::new("/run/reckon").join(f));
    }
    assert!(sh("ovs-vsctl list-br").contains("yrb-s1"));
    let again = left_up("yrb");
    assert!(!again.status.success());
    assert!(
        text(&again).contains("record is gone") && text(&again).contains("reckon clean"),
        "{}",
        text(&again)
    );
    let c = reckon(&["clean", "--only", "yrb"]);
    assert!(c.status.success(), "{}", text(&c));
    assert!(text(&c).contains("yrb: removed"), "{}", text(&c));
    assert_clean("yrb");
    let up = left_up("yrb");
    assert!(up.status.success(), "{}", text(&up));
    assert!(reckon(&["--prefix", "yrb", "topo", "down"])
        .status
        .success());
    assert_clean("yrb");
}
