//! `reckon run` end to end on etcd over wan with 3 data centres (short runs): each fault shows
//! its effect in the results, events land on schedule, a killed run leaves a readable ops.csv,
//! and bad input builds nothing. Needs root, OVS and etcd. One run at a time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use reckon::record::{read_ops, Summary};

static SERIAL: Mutex<()> = Mutex::new(());

fn results(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("reckon-test-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Run `reckon run` and return its results folder's summary and fault rows.
fn run(
    prefix: &str,
    args: &[&str],
    dir: &Path,
) -> (Summary, Vec<reckon::record::FaultRecord>, String) {
    let _ = opts(prefix);
    let mut a = vec!["--prefix", prefix, "run"];
    a.extend_from_slice(args);
    a.extend(["--result-location", dir.to_str().unwrap()]);
    let o = reckon(&a);
    let out = text(&o);
    assert!(o.status.success(), "{a:?}: {out}");
    let s: Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let faults = csv::Reader::from_path(dir.join("faults.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_clean(prefix);
    (s, faults, out)
}

/// Start `reckon run` (args after `run`) into `dir` in the background, and return once it has
/// recorded 100 operations.
fn start_run(prefix: &str, args: &[&str], dir: &Path) -> std::process::Child {
    let mut a = vec!["--prefix", prefix, "run"];
    a.extend_from_slice(args);
    a.extend(["--result-location", dir.to_str().unwrap()]);
    let child = Command::new(BIN)
        .args(&a)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ops = dir.join("ops.csv");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&ops)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 100
    {
        assert!(Instant::now() < deadline, "no operations recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

#[test]
fn no_fault_no_errors_and_every_result_file() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("none");
    let (s, faults, out) = run(
        "yrn",
        &[
            "etcd",
            "wan",
            "uniform",
            "none",
            "--duration",
            "4",
            "--rate",
            "50",
            "--write-ratio",
            "0.5",
        ],
        &dir,
    );
    assert_eq!(s.ops, 200, "{out}");
    assert_eq!(s.errors, 0, "{:?}", s.errors_by_kind);
    assert!(faults.is_empty());
    // Latency is measured from the intended start and crosses the 20 ms WAN (local target).
    assert!(s.latency_ms.p50 > 1.0, "{:?}", s.latency_ms);
    for f in [
        "config.json",
        "ops.csv",
        "faults.csv",
        "summary.json",
        "timeseries.csv",
        "latency-all.hgrm",
        "logs/h1.log",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // Plots, PNG and SVG, with their titles.
    for p in ["latency", "throughput", "cdf"] {
        let png = std::fs::read(dir.join(format!("{p}.png"))).unwrap();
        assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"), "{p}.png");
        let svg = std::fs::read_to_string(dir.join(format!("{p}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("etcd / wan / uniform / none"),
            "{p}.svg"
        );
    }
    // The report: self-contained, and every plot renders in a browser.
    let o = reckon(&["report", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_report_renders(&dir.join("report.html"), 3);
    assert!(
        html.contains("<h1>etcd / wan / uniform / none</h1>")
            && html.contains("Phases")
            && !html.contains("src=\"http"),
        "no external resources"
    );
    let empty = results("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = reckon(&["report", empty.to_str().unwrap()]);
    assert!(
        !o.status.success()
            && text(&o).contains("no results here (no summary.json or results.csv)"),
        "{}",
        text(&o)
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert!(
        cfg["system_version"].as_str().unwrap().contains("3.4"),
        "{cfg}"
    );
    assert_eq!(cfg["workload"]["rate"], 50.0);
    let ops = read_ops(&dir.join("ops.csv")).unwrap();
    assert_eq!(ops.len(), 200);
    assert!(ops
        .iter()
        .all(|o| o.sent >= o.intended - 0.002 && o.done >= o.sent));
    assert_eq!(ops.iter().filter(|o| o.client == "mc3").count(), 66);
}

#[test]
fn partial_partition_lands_on_schedule() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("pp");
    // The system from a definition file (the built-in etcd-pre-vote's, as a user's would be).
    let (s, faults, _) = run(
        "yrp",
        &[
            "mine",
            "wan",
            "uniform",
            "partial-partition",
            "--system-file",
            "systems/etcd-pre-vote.toml",
            "--duration",
            "6",
            "--rate",
            "50",
        ],
        &dir,
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["system"], "etcd-pre-vote", "{cfg}");
    assert_eq!(faults.len(), 2);
    assert_eq!(
        (faults[0].action.as_str(), faults[1].action.as_str()),
        ("partition", "heal")
    );
    for f in &faults {
        assert!(f.error.is_empty(), "{f:?}");
        assert!(
            // On schedule: a scheduler off by a second, or early, fails; a busy VM's tens of
            // milliseconds (seen here: 10) do not.
            f.applied >= f.scheduled && f.applied - f.scheduled <= 0.1,
            "event {f:?} applied more than 100 ms off schedule"
        );
    }
    // The leader and exactly one follower.
    let sides: Vec<&str> = faults[0].targets.split(" | ").collect();
    assert_eq!(sides.len(), 2);
    assert!(
        sides.iter().all(|s| s.starts_with('h') && !s.contains(' ')),
        "{sides:?}"
    );
    assert_eq!(
        s.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["before", "during", "after"]
    );
    assert!(s.phases[2].ok > 0);
}

#[test]
fn killing_the_leader_shows_and_recovers() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("leader");
    let (s, faults, out) = run(
        "yrl",
        &[
            "etcd",
            "wan",
            "uniform",
            "leader",
            "--duration",
            "9",
            "--rate",
            "50",
            "--failure-timeout",
            "0.5",
        ],
        &dir,
    );
    assert_eq!(faults.len(), 2, "{out}");
    assert_eq!(faults[0].action, "kill");
    assert_eq!(faults[1].action, "restart");
    assert_eq!(
        faults[0].targets, faults[1].targets,
        "the killed node is the one restarted"
    );
    let (before, during) = (&s.phases[0], &s.phases[1]);
    // The kill shows: errors, or operations that waited for a new leader.
    assert!(
        s.errors > 0 || during.latency_ms.max > 2.0 * before.latency_ms.p99,
        "{s:?}"
    );
    let r = s.recovery[0]
        .seconds_to_first_success
        .expect("no success after the kill");
    assert!(r < 5.0, "recovery took {r} s");
    assert!(s.phases[2].ok > 0, "nothing succeeded after the restart");
}

#[test]
fn intermittent_faults_stop_at_two_thirds() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("int");
    let (_, faults, _) = run(
        "yri",
        &[
            "etcd",
            "wan",
            "uniform",
            "intermittent-full",
            "--duration",
            "6",
            "--rate",
            "20",
            "--mtbf",
            "0.5",
        ],
        &dir,
    );
    assert!(faults.len() >= 4, "{faults:?}");
    let last = faults.last().unwrap();
    assert_eq!(last.action, "heal");
    assert!(
        faults
            .iter()
            .all(|f| f.scheduled >= 2.0 - 1e-9 && f.scheduled <= 4.0 + 1e-9),
        "{faults:?}"
    );
    assert!(last.applied <= 4.005, "{last:?}");
    // One follower against everyone else: five hosts on the far side.
    assert_eq!(
        faults[0]
            .targets
            .split(" | ")
            .nth(1)
            .unwrap()
            .split(' ')
            .count(),
        5,
        "{:?}",
        faults[0]
    );
}

#[test]
fn a_killed_run_leaves_a_readable_ops_csv() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("killed");
    let p = "yrk";
    let _ = opts(p);
    let mut child = start_run(
        p,
        &[
            "etcd",
            "simple",
            "uniform",
            "none",
            "--duration",
            "30",
            "--rate",
            "100",
            "--link-latency",
            "0",
        ],
        &dir,
    );
    let ops = dir.join("ops.csv");
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = read_ops(&ops).expect("ops.csv of a killed run must parse");
    assert!(rows.len() >= 99, "{}", rows.len());
    assert!(rows.iter().all(|r| r.ok), "a run without faults had errors");
    let o = reckon(&["clean", "--only", p]);
    assert!(o.status.success(), "{}", text(&o));
    assert_clean(p);
    assert!(
        !sh("ps -eo args")
            .lines()
            .any(|l| l.starts_with("/usr/bin/etcd") && l.contains(&format!("reckon-{p}"))),
        "etcd of the killed run survived"
    );
}

#[test]
fn an_interrupted_run_says_so_tears_down_and_keeps_its_results() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("interrupted");
    let p = "yri";
    let _ = opts(p);
    let child = start_run(
        p,
        &[
            "etcd",
            "wan",
            "uniform",
            "partial-partition",
            "--duration",
            "30",
            "--rate",
            "50",
        ],
        &dir,
    );
    let ops = dir.join("ops.csv");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(130), "{out}");
    assert!(out.contains("reckon: interrupted at"), "{out}");
    // It tore itself down: no `reckon clean` needed.
    assert_clean(p);
    let s: Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert!(s.interrupted);
    assert!(s.duration > 1.5 && s.duration < 10.0, "{}", s.duration);
    // The figures cover what ran: no partition yet (it comes at 10 s), no invented gap.
    let names: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["before"]);
    assert!(s.longest_gap < 1.0, "{}", s.longest_gap);
    assert_eq!(s.ops as usize, read_ops(&ops).unwrap().len());
    assert!(s.throughput > 40.0, "{}", s.throughput);
    let o = reckon(&["report", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<strong>Interrupted</strong> after") && html.contains("of 30 s"),
        "the report says it was interrupted"
    );
}

#[test]
fn bad_run_input_builds_nothing() {
    let p = "yrb";
    let dir = results("bad");
    let d = dir.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["etcd9", "wan", "uniform", "none"],
            "known systems: etcd, etcd-pre-vote",
        ),
        (
            vec!["etcd", "mesh", "uniform", "none"],
            "known topologies: simple, wan",
        ),
        (
            vec!["etcd", "wan", "zipf", "none"],
            "known workloads: uniform",
        ),
        (
            vec!["etcd", "wan", "uniform", "meteor"],
            "known faults: none, leader",
        ),
        (
            vec!["etcd", "wan", "uniform", "none", "--rate", "0"],
            "--rate 0",
        ),
        (
            vec!["etcd", "wan", "uniform", "none", "--write-ratio", "1.5"],
            "--write-ratio 1.5",
        ),
        (
            vec!["etcd", "wan", "uniform", "kill-n", "--kill-n", "2"],
            "--allow-no-quorum",
        ),
        (
            vec!["etcd", "wan", "uniform", "none", "--link-loss", "120"],
            "--link-loss 120",
        ),
        (
            vec![
                "etcd",
                "wan",
                "uniform",
                "none",
                "--result-location",
                "/proc/reckon-results",
            ],
            "result location /proc/reckon-results",
        ),
        (
            vec![
                "etcd",
                "wan",
                "uniform",
                "none",
                "--rate",
                "1000000",
                "--duration",
                "86400",
            ],
            "MB are free there",
        ),
        (
            vec!["etcd", "wan", "uniform", "none", "--max-in-flight", "0"],
            "--max-in-flight 0",
        ),
        (
            vec![
                "etcd",
                "wan",
                "uniform",
                "none",
                "--system-file",
                "/nonexistent/sys.toml",
            ],
            "cannot read system file /nonexistent/sys.toml",
        ),
    ] {
        let mut a = vec!["--prefix", p, "run"];
        a.extend(args.iter().copied());
        if !args.contains(&"--result-location") {
            a.extend(["--result-location", d]);
        }
        let o = reckon(&a);
        assert!(!o.status.success(), "{a:?} succeeded");
        assert!(
            text(&o).contains(expect),
            "{a:?}: want '{expect}' in {}",
            text(&o)
        );
        assert_clean(p);
        assert!(!dir.join("ops.csv").exists());
    }
}

#[test]
fn the_debug_shell_runs_commands_and_tears_down() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let p = "yrd";
    let _ = opts(p);
    let dir = results("debug");
    let mut child = Command::new(BIN)
        .args([
            "--prefix",
            p,
            "run",
            "-d",
            "etcd",
            "simple",
            "uniform",
            "none",
            "--result-location",
            dir.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let script = "leader\nmc1 ping -c 1 -W 1 10.0.1.3\npartition client:1 node:3\nmc1 ping -c 1 -W 1 10.0.1.3\nheal\nmc1 ping -c 1 -W 1 10.0.1.3\nkill h1\nrestart killed\nkill mc1\nnonsense\nexit\n";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    let pings: Vec<&str> = out.lines().filter(|l| l.starts_with("[exit")).collect();
    assert_eq!(
        pings,
        ["[exit 0]", "[exit 1]", "[exit 0]"],
        "ping before, during and after the cut: {out}"
    );
    for want in [
        "etcd is up on simple",
        "cut mc1 | h3",
        "healed 2 directed pairs",
        "kill: h1",
        "restart: h1",
        "error: selector 'mc1': use leader, follower",
        "unknown command 'nonsense'",
        "torn down",
    ] {
        assert!(out.contains(want), "want '{want}' in {out}");
    }
    assert_clean(p);
}

#[test]
fn an_external_client_drives_a_run_and_a_dying_one_is_reported() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let client = env!("CARGO_BIN_EXE_reckon-stdio-client");
    let dir = results("ext");
    let (s, _, _) = run(
        "yre",
        &[
            "etcd",
            "simple",
            "uniform",
            "none",
            "--duration",
            "2",
            "--rate",
            "10",
            "--number-clients",
            "2",
            "--link-latency",
            "0",
            "--client-cmd",
            client,
        ],
        &dir,
    );
    assert_eq!((s.ops, s.errors), (20, 0));
    let ops = read_ops(&dir.join("ops.csv")).unwrap();
    assert_eq!(ops.iter().filter(|o| o.client == "mc2").count(), 10);
    assert!(ops.iter().all(|o| o.target.starts_with("http://10.0.1.")));
    // Each result is matched to the operation it answers: its schedule index (operations go
    // to the clients in turn), its key, and reckon's intended start (10 ops/s: n / 10).
    let mut ns: Vec<u64> = ops.iter().map(|o| o.n).collect();
    ns.sort();
    assert_eq!(ns, (0..20).collect::<Vec<u64>>());
    for o in &ops {
        assert_eq!(o.client, format!("mc{}", o.n % 2 + 1), "{o:?}");
        assert!(!o.key.is_empty(), "{o:?}");
        assert!((o.intended - o.n as f64 / 10.0).abs() < 1e-6, "{o:?}");
    }
    // config.json says what ran, and claims nothing reckon did not control.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["client_cmd"][0], client, "{cfg}");
    assert!(
        cfg["client_target"].is_null() && cfg["op_timeout_s"].is_null(),
        "{cfg}"
    );
    let dir = results("ext-dies");
    let cmd = format!("{client} --die-after=3");
    let (s, _, out) = run(
        "yre",
        &[
            "etcd",
            "simple",
            "uniform",
            "none",
            "--duration",
            "2",
            "--rate",
            "10",
            "--link-latency",
            "0",
            "--client-cmd",
            &cmd,
        ],
        &dir,
    );
    assert_eq!(s.ops, 3, "the results sent before the client died are kept");
    assert!(
        out.contains("client error: client 1 on mc1") && out.contains("exit status: 3"),
        "{out}"
    );
}

#[test]
fn a_fault_file_can_degrade_a_link_mid_run() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("impair");
    std::fs::create_dir_all(std::env::temp_dir()).unwrap();
    let f = std::env::temp_dir().join(format!("reckon-test-slow-{}.toml", std::process::id()));
    // mc1's own link gets 100 ms each way for the middle third, then back to nothing.
    std::fs::write(&f, "description = \"slow client link\"\n[[events]]\nat = \"1/3\"\naction = \"impair\"\nlink = \"mc1\"\nlatency = 100\n[[events]]\nat = \"2/3\"\naction = \"impair\"\nlink = \"mc1\"\n").unwrap();
    let (s, faults, out) = run(
        "yrf",
        &[
            "etcd",
            "simple",
            "uniform",
            "custom",
            "--fault-file",
            f.to_str().unwrap(),
            "--duration",
            "6",
            "--rate",
            "20",
            "--link-latency",
            "0",
            "--op-timeout",
            "2",
        ],
        &dir,
    );
    assert_eq!(faults.len(), 2, "{out}");
    assert!(
        faults
            .iter()
            .all(|f| f.error.is_empty() && f.targets == "mc1"),
        "{faults:?}"
    );
    let (before, during, after) = (&s.phases[0], &s.phases[1], &s.phases[2]);
    // A request and its answer each cross the slow link once: +200 ms.
    assert!(
        during.latency_ms.p50 > before.latency_ms.p50 + 150.0,
        "{s:?}"
    );
    assert!(after.latency_ms.p50 < before.latency_ms.p50 + 50.0, "{s:?}");
    assert_eq!(s.errors, 0);
}

/// Ops of `client` intended between `from` and `to`.
fn ops_of(dir: &Path, client: &str, from: f64, to: f64) -> Vec<reckon::record::OpRecord> {
    read_ops(&dir.join("ops.csv"))
        .unwrap()
        .into_iter()
        .filter(|o| o.client == client && o.intended >= from && o.intended < to)
        .collect()
}

/// The client in the data centre of the follower cut from the leader (wan: mc<i> beside h<i>).
fn cut_off_client(f: &reckon::record::FaultRecord) -> String {
    let follower = f.targets.split(" | ").nth(1).unwrap();
    format!("mc{}", follower.trim_start_matches('h'))
}

#[test]
fn the_default_client_leaves_a_leaderless_member_and_round_robin_keeps_hitting_it() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let args = |model: &'static str| {
        vec![
            "etcd",
            "wan",
            "uniform",
            "partial-partition",
            "--duration",
            "12",
            "--rate",
            "60",
            "--client-target",
            model,
        ]
    };
    // The default (sticky): once the cut-off member says it has no leader, its data centre's
    // client is served elsewhere at WAN speed: no plateau at a share of the timeout.
    let dir = results("sticky");
    let mut a = args("sticky");
    a.truncate(a.len() - 2);
    let (s, faults, out) = run("yrs", &a, &dir);
    let (from, to) = (faults[0].applied, faults[1].applied);
    let client = cut_off_client(&faults[0]);
    let during = ops_of(&dir, &client, from, to);
    let mut ok: Vec<&reckon::record::OpRecord> = during.iter().filter(|o| o.ok).collect();
    ok.sort_by(|a, b| a.latency().total_cmp(&b.latency()));
    assert!(
        ok.len() > during.len() / 2,
        "{client}: {} of {} ok: {out}",
        ok.len(),
        during.len()
    );
    // WAN speed is 80-125 ms here. Some 60 operations succeed during the partition, so a p99
    // would be their second slowest: one scheduling hiccup of a busy VM. The 95th percentile
    // still fails on a plateau (a share of the 1 s timeout), which is what this is about.
    let p95 = ok[(ok.len() - 1) * 95 / 100].latency();
    let slowest: Vec<String> = ok
        .iter()
        .rev()
        .take(5)
        .map(|o| {
            format!(
                "{:.3} s at {:.2} via {} ({} attempts)",
                o.latency(),
                o.intended,
                o.target,
                o.attempts
            )
        })
        .collect();
    assert!(
        p95 < 0.25,
        "{client} p95 during the partition {p95} s; slowest: {slowest:?}"
    );
    // Until the member notices (its election timeout), operations there time out: errors,
    // shown as a window of that client beginning at the partition.
    let mine = s.per_client.iter().find(|c| c.client == client).unwrap();
    assert!(
        mine.windows
            .iter()
            .any(|w| w.start >= from - 1.1 && w.start < from + 2.5),
        "{:?}",
        mine.windows
    );
    assert!(
        s.windows.iter().any(|w| w.clients.contains(&client)),
        "{:?}",
        s.windows
    );
    assert_eq!(s.per_client.len(), 3);
    // Failovers: operations tried on a second endpoint (or a third: at the heal, etcd without
    // pre-vote leaves every member leaderless for a moment). Whether any op meets the cut-off
    // member after it says it has no leader but before its client has moved on is a matter
    // of timing, so exactly two attempts is not asked for.
    assert!(
        s.attempts.iter().any(|(&n, &ops)| n >= 2 && ops > 0),
        "failovers: {:?}",
        s.attempts
    );
    // The report shows who suffered.
    let o = reckon(&["report", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<h2>Clients</h2>") && html.contains("<h2>Unavailability</h2>"));
    assert!(html.contains(&format!("<td>{client}</td>")));

    // Round-robin (clientv3, reckon's Go client): a third of that client's operations land on
    // the member without a leader, and fail.
    let dir = results("all");
    let (_, faults, _) = run("yrs", &args("all"), &dir);
    let (from, to) = (faults[0].applied, faults[1].applied);
    let client = cut_off_client(&faults[0]);
    let during = ops_of(&dir, &client, from, to);
    let failed = during.iter().filter(|o| !o.ok).count() as f64 / during.len() as f64;
    assert!(
        (0.2..=0.5).contains(&failed),
        "{client}: {failed:.2} of its operations failed during the partition"
    );
    assert!(
        during.iter().all(|o| o.attempts <= 1),
        "no retries with all"
    );
}

#[test]
fn an_overloaded_client_records_what_it_could_not_send() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = results("overload");
    // 200 ops/s over a link of 10 ms each way, one operation in flight at a time: at most
    // about 40 a second can be sent; the rest are recorded as overloaded, at their instants.
    let (s, _, out) = run(
        "yro",
        &[
            "etcd",
            "simple",
            "uniform",
            "none",
            "--duration",
            "3",
            "--rate",
            "200",
            "--link-latency",
            "10",
            "--max-in-flight",
            "1",
        ],
        &dir,
    );
    assert_eq!(s.ops, 600, "{out}");
    let overloaded = s.errors_by_kind.get("overloaded").copied().unwrap_or(0);
    assert!(overloaded > 400, "{:?}", s.errors_by_kind);
    assert_eq!(s.ok + overloaded, 600, "{:?}", s.errors_by_kind);
    let ops = read_ops(&dir.join("ops.csv")).unwrap();
    for o in ops.iter().filter(|o| !o.ok) {
        assert_eq!(o.attempts, 0);
        assert!(
            o.sent == o.intended && o.done == o.intended,
            "recorded at its instant: {o:?}"
        );
    }
    // Latency counts from the intended start even when the client was busy.
    assert!(ops
        .iter()
        .filter(|o| o.ok)
        .all(|o| o.latency() >= o.service()));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["max_in_flight"], 1);
    let i = s.instrument.expect("the run measures its own cost");
    assert!(
        i.cpu_s > 0.0 && i.rss_mb > 0.0 && i.max_in_flight == 1,
        "{i:?}"
    );
}

/// `reckon run <args> --reuse-network` into `dir`: its summary and output.
fn run_kept(prefix: &str, args: &str, dir: &Path) -> (Summary, String) {
    let mut a = vec!["--prefix", prefix, "run"];
    a.extend(args.split_whitespace());
    a.extend([
        "--reuse-network",
        "--result-location",
        dir.to_str().unwrap(),
    ]);
    let o = reckon(&a);
    let out = text(&o);
    assert!(o.status.success(), "{a:?}: {out}");
    let s = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    (s, out)
}

#[test]
fn a_kept_network_serves_the_next_run_healed_and_reset_and_a_different_one_is_rebuilt() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let p = "yrk";
    let _ = opts(p);
    let cut = std::env::temp_dir().join(format!("reckon-test-cut-{}.toml", std::process::id()));
    // The first node cut from the others at T/3, never healed by the fault itself.
    std::fs::write(&cut, "description = \"cut h1\"\n[[events]]\nat = \"1/3\"\naction = \"partition\"\na = \"node:1\"\nb = \"node:2, node:3\"\n").unwrap();
    let first = format!(
        "etcd wan uniform custom --fault-file {} --duration 4 --rate 20",
        cut.display()
    );
    let (s, out) = run_kept(p, &first, &results("kept1"));
    let st = s.stages.unwrap();
    assert!(!st.network_reused && st.network_kept, "{out}");
    assert!(!leftovers(p).is_empty(), "the network is kept");
    // Another run without the flag is refused, naming it.
    let refused = results("kept-refused");
    let plain = format!(
        "--prefix {p} run etcd wan uniform none --duration 1 --result-location {}",
        refused.display()
    );
    let o = reckon(&plain.split_whitespace().collect::<Vec<_>>());
    assert!(
        !o.status.success() && text(&o).contains("--reuse-network"),
        "{}",
        text(&o)
    );
    // The next run takes it over: the cut is gone (every pair checked, no error) and the links
    // carry this run's latency (50 ms instead of 20: a write's round trips take 2.5 times as
    // long), not the last run's.
    let (s, out) = run_kept(
        p,
        "etcd wan uniform none --duration 3 --rate 20 --link-latency 50",
        &results("kept2"),
    );
    let st = s.stages.clone().unwrap();
    assert!(st.network_reused && st.network_kept, "{out}");
    assert!(st.network_s < 0.3, "reset, not rebuilt: {st:?}");
    assert_eq!(s.errors, 0, "{out}");
    assert!(
        s.latency_ms.p50 > 160.0 && s.latency_ms.p50 < 260.0,
        "{:?}",
        s.latency_ms
    );
    // A run that needs another network tears the kept one down and builds its own.
    let (s, out) = run_kept(
        p,
        "etcd wan uniform none --duration 1 --number-nodes 5",
        &results("kept3"),
    );
    let st = s.stages.unwrap();
    assert!(!st.network_reused && st.network_kept, "{out}");
    assert_eq!(s.errors, 0, "{out}");
    let o = reckon(&["--prefix", p, "topo", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_clean(p);
    let _ = std::fs::remove_file(&cut);
}
