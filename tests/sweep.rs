//! `reckon sweep`: a 2x2x2 grid writes 8 run folders and an 8-row results.csv; a deleted run is
//! redone and only it; a plan that gains a value reruns nothing it had; shards split the runs
//! and `sweep merge` joins them; a failed run's clean-up spares a network left up; a run
//! interrupted before it measured shows as interrupted; bad plans are refused. Needs root, OVS
//! and etcd.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("reckon-test-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn plan(dir: &Path, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("plan.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const SMALL: &str = "[fixed]\ntopology = \"simple\"\nworkload = \"uniform\"\nfault = \"none\"\nduration = 1\nrate = 10\nlink_latency = 0\n";

fn rows(dir: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(dir.join("results.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_sweep_runs_its_grid_resumes_and_shards() {
    let p = "ysw";
    let _ = opts(p);
    let base = tmp("grid");
    let plan_path = plan(&base, &format!("repeats = 2\n{SMALL}[grid]\nsystem = [\"etcd\", \"etcd-pre-vote\"]\nwrite_ratio = [0.5, 1.0]\n"));
    let out = base.join("out");
    let o = reckon(&[
        "--prefix",
        p,
        "sweep",
        plan_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("8 runs: 0 done before, 8 run now, 0 failed"),
        "{}",
        text(&o)
    );
    let runs: Vec<_> = std::fs::read_dir(out.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 8);
    // Consecutive runs share one network: the first builds it, the sweep takes it down at its end.
    let reused = runs
        .iter()
        .filter(|d| {
            let path = d.as_ref().unwrap().path().join("summary.json");
            let s: reckon::record::Summary =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            s.stages.unwrap().network_reused
        })
        .count();
    assert_eq!(reused, 7);
    assert_clean(p);
    let r = rows(&out);
    assert_eq!(r.len(), 8);
    assert!(
        r.iter().all(|row| &row[2] == "ok" && &row[11] == "10"),
        "{r:?}"
    );
    // A sweep report: figures against the varying parameter, one line per system.
    let o = reckon(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_report_renders(&out.join("report.html"), 4);
    assert!(
        html.contains("against write_ratio") && html.contains(&format!("runs/{}/", &r[0][0])),
        "{}",
        &html[..500.min(html.len())]
    );
    // Delete one run and mark another interrupted: a re-run redoes just those two.
    let (deleted, marked) = (r[2][0].to_string(), r[1][0].to_string());
    std::fs::remove_dir_all(out.join("runs").join(&deleted)).unwrap();
    let summary = out.join("runs").join(&marked).join("summary.json");
    let text_of = std::fs::read_to_string(&summary).unwrap();
    assert!(text_of.contains("\"interrupted\": false"), "{text_of}");
    std::fs::write(
        &summary,
        text_of.replace("\"interrupted\": false", "\"interrupted\": true"),
    )
    .unwrap();
    let o = reckon(&[
        "--prefix",
        p,
        "sweep",
        plan_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        text(&o).contains("8 runs: 6 done before, 2 run now, 0 failed"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains(&deleted) && rows(&out).len() == 8);
    // Two shards, then merged.
    let shards_plan = plan(
        &base.join("s"),
        &format!("{SMALL}[grid]\nsystem = [\"etcd\", \"etcd-pre-vote\"]\nmax_key = [1, 5]\n"),
    );
    let (s1, s2) = (base.join("shard1"), base.join("shard2"));
    for (i, d) in [("1/2", &s1), ("2/2", &s2)] {
        let o = reckon(&[
            "--prefix",
            p,
            "sweep",
            shards_plan.to_str().unwrap(),
            "--shard",
            i,
            "--out",
            d.to_str().unwrap(),
        ]);
        assert!(
            o.status.success() && text(&o).contains("2 runs:"),
            "{}",
            text(&o)
        );
    }
    let merged = base.join("merged");
    let o = reckon(&[
        "sweep",
        "merge",
        s1.to_str().unwrap(),
        s2.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && text(&o).contains("merged 4 runs"),
        "{}",
        text(&o)
    );
    assert_eq!(rows(&merged).iter().filter(|r| &r[2] == "ok").count(), 4);
    assert_clean(p);
}

/// The parameters a run folder says it ran with: its params.json and its config.json agree.
fn ran_with(run: &Path) -> (String, String) {
    let params: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("params.json")).unwrap()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let wr = params["params"]["write_ratio"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        cfg["workload"]["write_ratio"].as_f64().unwrap(),
        wr.parse::<f64>().unwrap(),
        "{}",
        run.display()
    );
    (wr, params["repeat"].to_string())
}

/// Resume matched runs by their position in the plan: a grid that gained a value shifted the
/// ids and old folders were taken as done with other parameters. Ids now come from the
/// parameters, and each folder says what it ran.
#[test]
fn a_plan_that_gains_a_value_reruns_nothing_it_had() {
    let p = "ysg";
    let _ = opts(p);
    let base = tmp("grow");
    let out = base.join("out");
    let sweep = |grid: &str| {
        let path = plan(
            &base,
            &format!("{SMALL}system = \"etcd\"\n[grid]\nwrite_ratio = {grid}\n"),
        );
        reckon(&[
            "--prefix",
            p,
            "sweep",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = sweep("[0.5, 1.0]");
    assert!(
        text(&o).contains("2 runs: 0 done before, 2 run now"),
        "{}",
        text(&o)
    );
    let o = sweep("[0.2, 0.5, 1.0]");
    assert!(
        text(&o).contains("3 runs: 2 done before, 1 run now, 0 failed"),
        "{}",
        text(&o)
    );
    let r = rows(&out);
    assert_eq!(r.len(), 3);
    let col = r[0].len();
    let header = csv::Reader::from_path(out.join("results.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .clone();
    let wr = header.iter().position(|h| h == "write_ratio").unwrap();
    for row in &r {
        assert_eq!(row.len(), col);
        assert_eq!(&row[2], "ok", "{row:?}");
        let (ran, _) = ran_with(&out.join("runs").join(&row[0]));
        assert_eq!(ran, &row[wr], "{row:?}");
    }
    assert_clean(p);
}

/// A failed run used to be followed by `clean --only <prefix>`, which removed a network the
/// user had left up under that prefix (the very reason the run failed).
#[test]
fn a_failed_runs_clean_up_spares_a_network_left_up() {
    let p = "ysx";
    let _ = opts(p);
    let up = reckon(&["--prefix", p, "topo", "up", "simple", "--number-nodes", "1"]);
    assert!(up.status.success(), "{}", text(&up));
    let base = tmp("spare");
    let path = plan(
        &base,
        &format!("{SMALL}system = \"etcd\"\n[grid]\nseed = [1]\n"),
    );
    let out = base.join("out");
    let o = reckon(&[
        "--prefix",
        p,
        "sweep",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text(&o).contains("1 failed"), "{}", text(&o));
    assert_eq!(&rows(&out)[0][2], "failed");
    assert!(
        sh("ip netns list").contains(&format!("{p}-h1")),
        "the network left up is still up"
    );
    assert!(reckon(&["--prefix", p, "topo", "down"]).status.success());
    assert_clean(p);
}

/// A run interrupted before its first operation showed as "failed" in results.csv.
#[test]
fn a_run_interrupted_before_it_measured_shows_as_interrupted() {
    let p = "ysi";
    let _ = opts(p);
    let base = tmp("intr");
    let path = plan(
        &base,
        &format!("{SMALL}system = \"etcd\"\n[grid]\nseed = [1, 2]\n"),
    );
    let out = base.join("out");
    // The sweep and its runs in a process group of their own, as at a terminal: Ctrl-C
    // reaches them all.
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "--prefix",
        p,
        "sweep",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().unwrap();
    // While the first run builds its network or starts its cluster.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sh("ip netns list").contains(&format!("{p}-h1")) {
        assert!(std::time::Instant::now() < deadline, "the first run starts");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-(child.id() as i32)),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let statuses: Vec<String> = rows(&out).iter().map(|r| r[2].to_string()).collect();
    assert!(
        statuses.contains(&"interrupted".to_string()),
        "{statuses:?}: {}",
        text(&o)
    );
    assert!(!statuses.contains(&"failed".to_string()), "{statuses:?}");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert_clean(p);
}

#[test]
fn bad_plans_are_refused() {
    let base = tmp("bad");
    for (body, expect) in [
        (
            format!("{SMALL}system = \"etcd\"\n[grid]\nbogus = [1, 2]\n"),
            "unknown parameter 'bogus'",
        ),
        (format!("{SMALL}system = \"etcd\"\n"), "the grid is empty"),
        (format!("{SMALL}[grid]\nsystem = []\n"), "has no values"),
        (
            "[grid]\nrate = [1]\n".to_string(),
            "say which system to run",
        ),
    ] {
        let p = plan(&base, &body);
        let o = reckon(&[
            "sweep",
            p.to_str().unwrap(),
            "--out",
            base.join("o").to_str().unwrap(),
        ]);
        assert!(
            !o.status.success() && text(&o).contains(expect),
            "want '{expect}': {}",
            text(&o)
        );
    }
    let o = reckon(&["sweep", "/nonexistent/plan.toml"]);
    assert!(
        !o.status.success() && text(&o).contains("cannot read sweep plan /nonexistent/plan.toml"),
        "{}",
        text(&o)
    );
    let o = reckon(&["sweep", "x.toml", "--shard", "3/2"]);
    assert!(!o.status.success());
}

/// Every sweep plan in scripts/ expands, and each of its runs is a `reckon run` that would be
/// accepted (names, node counts of the scenarios, expectations).
#[test]
fn every_plan_in_scripts_holds_only_runs_reckon_accepts() {
    let mut plans = 0;
    for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let plan = reckon::sweep::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for p in &plan.points {
            let args = reckon::sweep::run_args(p);
            reckon::cli::parse_run("ysv", &args)
                .unwrap_or_else(|e| panic!("{}: run {args:?}: {e}", path.display()));
        }
        plans += 1;
    }
    assert!(plans >= 3, "found {plans} plans");
}

/// A sweep over faults with an availability budget: results.csv gets the checker's verdict and
/// the expectations' per run; the report's table has a row per configuration with them.
#[test]
fn a_scenario_sweep_reports_verdicts_by_configuration() {
    let p = "ysz";
    let _ = opts(p);
    let base = tmp("scen");
    let plan_path = plan(
        &base,
        "[fixed]\nsystem = \"etcd\"\ntopology = \"simple\"\nworkload = \"uniform\"\nduration = 3\nrate = 20\nlink_latency = 0\nwrite_ratio = 0.5\nexpect = \"longest_gap < 2.5s, linearizable\"\n[grid]\nfault = [\"none\", \"leader-only\"]\n",
    );
    let out = base.join("out");
    let o = reckon(&[
        "--prefix",
        p,
        "sweep",
        plan_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let h = csv::Reader::from_path(out.join("results.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    for r in rows(&out) {
        assert_eq!(&r[2], "ok", "{r:?}");
        assert_eq!(&r[col("linearizable")], "yes", "{r:?}");
        // Without the leader the cluster re-elects within the budget; either way a verdict.
        assert!(
            r[col("expectations")].starts_with("held")
                || r[col("expectations")].starts_with("failed: longest_gap"),
            "{r:?}"
        );
    }
    let o = reckon(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let table = &html[html.find("By configuration").expect("the table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(
        table.contains("<td>none</td>") && table.contains("<td>leader-only</td>"),
        "{table}"
    );
    assert!(table.contains("<td>1/1</td>"), "{table}");
    assert_clean(p);
    let _ = std::fs::remove_dir_all(&base);
}
