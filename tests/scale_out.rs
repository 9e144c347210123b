//! Sweeps beyond one machine: the Kubernetes Indexed Job (scripts/k8s) and the Slurm job array
//! (scripts/slurm) parse, agree on their shard count, and hand every shard its own
//! `--shard i/N` (counting from 1) and folder, then merge exactly those folders. Each script's
//! command is run for real by the shell with stand-ins for `reckon`, `docker` and `sbatch` that
//! print their arguments; the arguments are then given to the real reckon, which must take
//! them. Needs no root and no cluster.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;

/// A folder with stand-ins for `reckon` and `docker` that print their name and arguments, one
/// per line, and for `sbatch`, which appends them to `sbatch.log` there and prints a job id
/// (as `--parsable` does).
fn stand_ins(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reckon-scale-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["reckon", "docker", "sbatch"] {
        let body = if name == "sbatch" {
            let log = dir.join("sbatch.log");
            format!(
                "{{ echo sbatch; for a in \"$@\"; do echo \"$a\"; done; }} >> {}\necho 4242\n",
                log.display()
            )
        } else {
            format!("echo {name}\nfor a in \"$@\"; do echo \"$a\"; done\n")
        };
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&p, exec).unwrap();
    }
    dir
}

/// Run `program args` with the stand-ins first on the PATH and `env`; its output's lines.
fn run(program: &str, args: &[&str], bin: &Path, env: &[(&str, String)]) -> Vec<String> {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = Command::new(program)
        .args(args)
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// The real reckon accepts these arguments: whatever fails, it is not the command line (clap
/// exits 2 on a usage error).
fn reckon_accepts(args: &[String]) {
    let o = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(2), "reckon {args:?}: {err}");
    assert!(
        !err.contains("unexpected argument") && !err.contains("Usage:"),
        "reckon {args:?}: {err}"
    );
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn container(job: &serde_yaml::Value) -> &serde_yaml::Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

fn env_of(c: &serde_yaml::Value, name: &str) -> String {
    c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no env {name}"))
        .to_string()
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_kubernetes_indexed_job_gives_each_pod_its_shard_and_merge_takes_them_all() {
    let bin = stand_ins("k8s");
    let job = yaml("scripts/k8s/sweep.yaml");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let n = job["spec"]["completions"].as_u64().unwrap() as usize;
    let c = container(&job);
    assert_eq!(env_of(c, "SHARDS"), n.to_string(), "SHARDS = completions");
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(strings(&c["command"]), ["/usr/local/bin/reckon-entrypoint"]);
    let args = strings(&c["args"]);
    assert_eq!(args[..2], ["/bin/sh", "-c"]);
    let mut outs = Vec::new();
    for index in 0..n {
        let got = run(
            "/bin/sh",
            &["-c", &args[2]],
            &bin,
            &[
                ("JOB_COMPLETION_INDEX", index.to_string()),
                ("SHARDS", n.to_string()),
            ],
        );
        let shard = format!("{}/{n}", index + 1);
        let out = format!("/results/shard-{}", index + 1);
        assert_eq!(
            got,
            [
                "reckon",
                "sweep",
                "/plans/plan.toml",
                "--shard",
                &shard,
                "--out",
                &out
            ]
        );
        reckon_accepts(&got[1..].to_vec());
        outs.push(out);
    }
    // The plan is the config map's plan.toml, mounted at /plans.
    let spec = &job["spec"]["template"]["spec"];
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "reckon-plan");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/plans");

    let merge = yaml("scripts/k8s/merge.yaml");
    let m = container(&merge);
    assert_eq!(env_of(m, "SHARDS"), n.to_string(), "merge.yaml's SHARDS");
    let margs = strings(&m["args"]);
    let got = run(
        "/bin/sh",
        &["-c", &margs[0]],
        &bin,
        &[("SHARDS", n.to_string())],
    );
    let mut want = vec!["reckon", "sweep", "merge", "--out", "/results/merged"];
    want.extend(outs.iter().map(String::as_str));
    assert_eq!(got, want);
    reckon_accepts(&got[1..].to_vec());
    // Both jobs use one results claim.
    for j in [&job, &merge] {
        let vols = j["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        assert!(vols
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "reckon-results"));
    }
    let _ = std::fs::remove_dir_all(&bin);
}

/// The array's size as `#SBATCH --array=1-N` says it.
fn array_size(script: &str) -> usize {
    let text = std::fs::read_to_string(script).unwrap();
    let spec = text
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("an #SBATCH --array line");
    let (first, last) = spec.split_once('-').unwrap();
    assert_eq!(first, "1", "shards count from 1");
    last.parse().unwrap()
}

#[test]
fn the_slurm_array_gives_each_task_its_shard_and_merge_takes_them_all() {
    let bin = stand_ins("slurm");
    let n = array_size("scripts/slurm/sweep.sbatch");
    let results = "/shared/results";
    for i in 1..=n {
        let env = [
            ("SLURM_ARRAY_TASK_ID", i.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", n.to_string()),
            ("SLURM_ARRAY_JOB_ID", "77".to_string()),
        ];
        let shard = format!("{i}/{n}");
        // A reckon on the nodes...
        let mut with_reckon = env.to_vec();
        with_reckon.push(("RECKON", bin.join("reckon").display().to_string()));
        let got = run(
            "bash",
            &["scripts/slurm/sweep.sbatch", "plans/x.toml", results],
            &bin,
            &with_reckon,
        );
        let out = format!("{results}/shard-{i}");
        assert_eq!(
            got,
            [
                "reckon",
                "sweep",
                "plans/x.toml",
                "--shard",
                &shard,
                "--out",
                &out
            ]
        );
        reckon_accepts(&got[1..].to_vec());
        // ... or the image, privileged, with the plan's folder and the results mounted.
        let got = run(
            "bash",
            &["scripts/slurm/sweep.sbatch", "/etc/x.toml", results],
            &bin,
            &env,
        );
        assert_eq!(got[..4], ["docker", "run", "--rm", "--privileged"]);
        assert!(got.contains(&"/etc:/plans:ro".to_string()), "{got:?}");
        assert!(got.contains(&format!("{results}:/results")), "{got:?}");
        let tail = &got[got.len() - 7..];
        let out = format!("/results/shard-{i}");
        assert_eq!(
            tail,
            [
                "reckon",
                "sweep",
                "/plans/x.toml",
                "--shard",
                &shard,
                "--out",
                &out
            ]
        );
        reckon_accepts(&tail[1..].to_vec());
    }
    // submit.sh: the array, then the merge of its n shards once every task has ended.
    let printed = run(
        "bash",
        &["scripts/slurm/submit.sh", "plans/x.toml", results],
        &bin,
        &[],
    );
    assert_eq!(printed, ["4242"], "the merge job's id");
    let got: Vec<String> = std::fs::read_to_string(bin.join("sbatch.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got.iter().filter(|l| *l == "sbatch").count(), 2, "{got:?}");
    let merge_at = got.iter().rposition(|l| l == "sbatch").unwrap();
    assert!(got[..merge_at].iter().any(|l| l.ends_with("sweep.sbatch")));
    let merge = &got[merge_at..];
    assert!(
        merge.contains(&"--dependency=afterany:4242".to_string()),
        "{merge:?}"
    );
    assert!(merge.iter().any(|l| l.ends_with("merge.sbatch")));
    assert_eq!(merge[merge.len() - 2..], [results, &n.to_string()]);
    // merge.sbatch joins exactly the shards' folders.
    let got = run(
        "bash",
        &["scripts/slurm/merge.sbatch", results, &n.to_string()],
        &bin,
        &[("RECKON", bin.join("reckon").display().to_string())],
    );
    let mut want = vec![
        "reckon".to_string(),
        "sweep".into(),
        "merge".into(),
        "--out".into(),
        format!("{results}/merged"),
    ];
    want.extend((1..=n).map(|i| format!("{results}/shard-{i}")));
    assert_eq!(got, want);
    reckon_accepts(&got[1..].to_vec());
    let _ = std::fs::remove_dir_all(&bin);
}
