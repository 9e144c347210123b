//! `make docker`'s image: built from this checkout's release binaries (scripts/docker-image.sh,
//! with a base from a registry or from debootstrap), it runs a 10 s experiment in a privileged
//! container; the results land in the host's folder, and nothing of reckon is left on the host
//! (namespaces, links, bridges) or in Docker (containers). Where no Docker engine answers, the
//! test says so and passes without running.

mod common;

use std::process::Command;

use common::*;

const IMAGE: &str = "reckon:latest";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

/// `scripts/docker-run.sh`: `docker run --rm --privileged`, or its parts where the engine
/// cannot grant it.
fn run_in_image(args: &[&str]) -> std::process::Output {
    Command::new("scripts/docker-run.sh")
        .args(args)
        .env("RECKON_IMAGE", IMAGE)
        .output()
        .unwrap()
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What of reckon the host shows: namespaces, links and bridges (any prefix).
fn host_state() -> (String, String, String) {
    let links: Vec<String> = sh("ip -o link show")
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect();
    (
        sh("ip netns list"),
        links.join(" "),
        sh("ovs-vsctl list-br"),
    )
}

/// Ignored by a plain `cargo test`: it builds an image (minutes of CPU, and the engine keeps
/// busy for a while after), which would disturb the timing of the tests after it. `make test`
/// runs it last, on its own (`cargo test --test docker -- --ignored`).
#[test]
#[ignore]
fn the_image_runs_an_experiment_and_leaves_nothing_behind() {
    if !engine_answers() {
        eprintln!("skipped: no Docker engine answers (`docker info` failed)");
        return;
    }
    let build = Command::new("scripts/docker-image.sh")
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "building the image: {}",
        text(&build)
    );
    let before = host_state();
    let dir = std::env::temp_dir().join(format!("reckon-test-docker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("reckon-test-{}", std::process::id());
    let o = run_in_image(&[
        "--name",
        &name,
        "-v",
        &format!("{}:/results", dir.display()),
        IMAGE,
        "reckon",
        "run",
        "etcd",
        "wan",
        "uniform",
        "partial-partition",
        "--duration",
        "10",
        "--result-location",
        "/results/run",
    ]);
    assert!(
        o.status.success(),
        "the experiment in the container: {}",
        text(&o)
    );
    let run = dir.join("run");
    let s: reckon::record::Summary =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s.ops, 1000, "100 ops/s for 10 s");
    // Served before, during and after the partition (etcd 3.4's heal costs it seconds).
    assert!(s.phases.iter().all(|p| p.ok > 0), "{s:?}");
    let ops = reckon::record::read_ops(&run.join("ops.csv")).unwrap();
    assert_eq!(ops.len(), 1000);
    let faults: Vec<reckon::record::FaultRecord> = csv::Reader::from_path(run.join("faults.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(faults.len(), 2, "the partition and its heal: {faults:?}");
    // Nothing left: no container, and the host as it was.
    let ps = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "{}",
        text(&ps)
    );
    assert_eq!(
        host_state(),
        before,
        "the container's network stayed inside it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
