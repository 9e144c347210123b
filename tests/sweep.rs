//! `reckon sweep`: a 2x2x2 grid writes 8 run folders and an 8-row results.csv; a deleted run is
//! redone and only it; shards split the runs and `sweep merge` joins them; bad plans are refused.
//! Needs root, OVS and etcd.

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
        html.contains("against write_ratio") && html.contains("runs/0000-r0/"),
        "{}",
        &html[..500.min(html.len())]
    );
    // Delete one run and mark another interrupted: a re-run redoes just those two.
    std::fs::remove_dir_all(out.join("runs").join("0002-r1")).unwrap();
    let summary = out.join("runs").join("0001-r0").join("summary.json");
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
    assert!(text(&o).contains("0002-r1") && rows(&out).len() == 8);
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
