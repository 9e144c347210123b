//! `reckon check`: a real etcd run's history is linearizable, and the same history with one
//! read made stale is not — the violation names that read, the write it saw and the write that
//! overwrote it, in summary.json and report.html; histories from elsewhere (CSV, JSON) are
//! read in the documented form, and bad ones are refused with the file's name. Needs root, OVS
//! and etcd for the run.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use reckon::record::{read_ops, OpRecord, Summary};

fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("reckon-test-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn summary(dir: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// Read `ops.csv`, change it, write it back.
fn rewrite(dir: &Path, f: impl FnOnce(&mut Vec<OpRecord>)) {
    let mut ops = read_ops(&dir.join("ops.csv")).unwrap();
    f(&mut ops);
    let mut w = csv::Writer::from_path(dir.join("ops.csv")).unwrap();
    for o in &ops {
        w.serialize(o).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn a_real_history_passes_and_a_planted_stale_read_is_caught() {
    let dir = folder("run");
    let _ = opts("yck");
    let o = reckon(&[
        "--prefix",
        "yck",
        "run",
        "etcd",
        "simple",
        "uniform",
        "none",
        "--duration",
        "4",
        "--rate",
        "200",
        "--write-ratio",
        "0.5",
        "--max-key",
        "1",
        "--result-location",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let c = reckon(&["check", dir.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    assert!(
        text(&c).contains("linearizable: ") && text(&c).contains("on 2 keys"),
        "{}",
        text(&c)
    );
    assert_eq!(summary(&dir).check.unwrap().linearizable, Some(true));
    let svg = || std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(
        !svg().contains("not linearizable"),
        "no violation to mark yet"
    );

    // A read that comes after two writes in turn (each returned before the next began) sees
    // the first one's value: stale.
    let mut planted = (0, 0, 0);
    rewrite(&dir, |ops| {
        let ok: Vec<&OpRecord> = ops.iter().filter(|o| o.ok).collect();
        let (w1, w2, r) = ok
            .iter()
            .flat_map(|w1| ok.iter().map(move |w2| (w1, w2)))
            .filter(|(w1, w2)| {
                w1.kind == "write" && w2.kind == "write" && w1.key == w2.key && w1.done < w2.sent
            })
            .find_map(|(w1, w2)| {
                ok.iter()
                    .find(|r| r.kind == "read" && r.key == w1.key && r.sent > w2.done + 0.05)
                    .map(|r| (w1.n, w2.n, r.n))
            })
            .expect("two writes and a later read of one key");
        planted = (w1, w2, r);
        let old = ops.iter().find(|o| o.n == w1).unwrap().value.clone();
        ops.iter_mut().find(|o| o.n == r).unwrap().value = old;
    });
    let c = reckon(&["check", dir.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(3), "{}", text(&c));
    assert!(text(&c).contains("NOT linearizable"), "{}", text(&c));
    let v = summary(&dir).check.unwrap();
    assert_eq!(v.linearizable, Some(false));
    let shown: Vec<u64> = v.violation.unwrap().ops.iter().map(|o| o.id).collect();
    assert!(
        shown.contains(&planted.2) && shown.contains(&planted.0),
        "{shown:?} {planted:?}"
    );
    assert!(shown.len() <= 6, "a small set: {shown:?}");
    // Marked on the latency plot, drawn again: the span shaded, each operation a bar.
    assert!(
        text(&c).contains("violation is marked") && svg().contains("not linearizable: key"),
        "{}",
        text(&c)
    );
    assert!(
        svg().to_uppercase().contains("#9400D3"),
        "the violation's colour"
    );
    let r = reckon(&["report", dir.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("not linearizable") && html.contains(&planted.2.to_string()));
    assert_clean("yck");
}

#[test]
fn histories_from_elsewhere_are_read_and_bad_ones_refused() {
    let dir = folder("files");
    std::fs::create_dir_all(&dir).unwrap();
    let csv_ok = dir.join("h.csv");
    std::fs::write(
        &csv_ok,
        "id,key,kind,value,call,return,status\n\
         1,x,write,a,0.0,1.0,ok\n\
         2,x,read,a,2.0,3.0,ok\n\
         3,x,write,b,4.0,,info\n\
         4,x,read,b,6.0,7.0,ok\n",
    )
    .unwrap();
    let c = reckon(&["check", csv_ok.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    let json_bad = dir.join("h.json");
    std::fs::write(
        &json_bad,
        r#"{"initial": "", "ops": [
            {"id": 1, "key": "x", "kind": "write", "value": "a", "call": 0, "return": 1, "status": "ok"},
            {"id": 2, "key": "x", "kind": "write", "value": "b", "call": 2, "return": 3, "status": "ok"},
            {"id": 3, "key": "x", "kind": "read", "value": "a", "call": 4, "return": 5, "status": "ok"}]}"#,
    )
    .unwrap();
    let c = reckon(&["check", json_bad.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(3), "{}", text(&c));
    let broken = dir.join("broken.csv");
    std::fs::write(&broken, "id,key\n1,x\n").unwrap();
    let c = reckon(&["check", broken.to_str().unwrap()]);
    assert_eq!(c.status.code(), Some(1));
    assert!(
        text(&c).contains("broken.csv") && text(&c).contains("columns"),
        "{}",
        text(&c)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
