//! Integration tests of the emulated network. They need root, Open vSwitch (scripts/setup.sh)
//! and network namespaces; each test uses its own prefix, so they run in parallel, and each
//! checks from the outside (`ip`, `ovs-vsctl`) that nothing of its network is left.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reckon::net::{self, netns, Network};
use reckon::topology::{self, Size};

fn up_check_down(name: &str, nodes: usize, prefix: &str) {
    let t = topo(
        name,
        nodes,
        if name == "simple" { Some(nodes) } else { None },
    );
    let net = Network::up(&t, &opts(prefix)).unwrap();
    let n = t.hosts.len();
    assert_eq!(net.timings.pairs_checked, n * (n - 1) / 2);
    // Our own look from outside: namespaces, bridges and a TCP exchange across the network.
    let namespaces = sh("ip netns list");
    for h in &t.hosts {
        assert!(
            namespaces.contains(&format!("{prefix}-{}", h.name)),
            "namespace of {} missing",
            h.name
        );
    }
    assert_eq!(
        sh("ovs-vsctl list-br")
            .lines()
            .filter(|l| l.starts_with(&format!("{prefix}-")))
            .count(),
        t.switches.len()
    );
    let first_node = t.nodes().next().unwrap().name.clone();
    let last_client = t.clients().last().unwrap().name.clone();
    let last_node = t.nodes().last().unwrap().name.clone();
    tcp_between(&net, &first_node, &last_client).unwrap();
    tcp_between(&net, &last_client, &last_node).unwrap();
    let ping = net
        .command(&first_node, "ping")
        .unwrap()
        .args(["-c1", "-W2", &t.host(&last_node).unwrap().ip.to_string()])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping {first_node} -> {last_node}: {}",
        text(&ping)
    );
    let removed = net.down().unwrap();
    assert_eq!(removed.namespaces, n);
    assert_eq!(removed.bridges, t.switches.len());
    assert_clean(prefix);
}

#[test]
fn simple_3_all_pairs_reach_each_other() {
    up_check_down("simple", 3, "ts3");
}

#[test]
fn simple_5_all_pairs_reach_each_other() {
    up_check_down("simple", 5, "ts5");
}

#[test]
fn wan_3_all_pairs_reach_each_other() {
    up_check_down("wan", 3, "tw3");
}

#[test]
fn wan_5_all_pairs_reach_each_other() {
    up_check_down("wan", 5, "tw5");
}

/// The check must catch the failure it exists for: a veth end with tx checksum offload back on
/// passes ping but breaks TCP (on the userspace datapath), and the check must name that host.
#[test]
fn check_catches_tcp_broken_by_checksum_offload() {
    if reckon::net::ovs::Datapath::Auto.resolve() != reckon::net::ovs::Datapath::User {
        eprintln!("skipped: the kernel datapath does not have this failure");
        return;
    }
    let t = topo("wan", 3, None);
    let net = Network::up(&t, &opts("tck")).unwrap();
    let on = net
        .command("h2", "ethtool")
        .unwrap()
        .args(["-K", "eth0", "tx", "on"])
        .output()
        .unwrap();
    assert!(on.status.success(), "{}", text(&on));
    let err = net.check().unwrap_err().to_string();
    assert!(
        err.contains("h2 (10.0.1.2)") && err.contains("TCP"),
        "{err}"
    );
    assert!(!err.contains("ICMP"), "ping should still work: {err}");
    // The others are unaffected.
    tcp_between(&net, "h1", "mc3").unwrap();
    drop(net);
    assert_clean("tck");
}

#[test]
fn a_panic_inside_a_run_still_tears_down() {
    let t = topo("wan", 3, None);
    let r = std::panic::catch_unwind(|| {
        let net = Network::up(&t, &opts("tpn")).unwrap();
        assert!(!leftovers("tpn").is_empty());
        let _keep = &net;
        panic!("boom");
    });
    assert!(r.is_err());
    assert_clean("tpn");
}

#[test]
fn twenty_up_down_cycles_with_the_same_names() {
    let t = topo("wan", 3, None);
    for i in 0..20 {
        let net = Network::up(&t, &opts("tcy")).unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        net.down().unwrap_or_else(|e| panic!("cycle {i} down: {e}"));
    }
    assert_clean("tcy");
}

#[test]
fn two_prefixes_coexist() {
    let t = topo("wan", 3, None);
    let a = Network::up(&t, &opts("tca")).unwrap();
    let b = Network::up(&t, &opts("tcb")).unwrap();
    a.check().unwrap();
    b.check().unwrap();
    drop(a);
    assert_clean("tca");
    b.check().unwrap();
    drop(b);
    assert_clean("tcb");
}

#[test]
fn a_prefix_in_use_is_refused_and_the_owner_is_untouched() {
    let t = topo("simple", 3, None);
    let net = Network::up(&t, &opts("tiu")).unwrap();
    let o = reckon(&["--prefix", "tiu", "topo", "up", "simple"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("prefix 'tiu' is in use by a running reckon process"),
        "{}",
        text(&o)
    );
    // `topo down` and `clean` leave a live run alone.
    let o = reckon(&["--prefix", "tiu", "topo", "down"]);
    assert!(
        !o.status.success() && text(&o).contains("belongs to a running reckon process"),
        "{}",
        text(&o)
    );
    let o = reckon(&["clean", "--only", "tiu"]);
    assert!(text(&o).contains("skipped"), "{}", text(&o));
    net.check().unwrap();
    drop(net);
    assert_clean("tiu");
}

fn spawn_hold(
    prefix: &str,
) -> (
    std::process::Child,
    impl Iterator<Item = std::io::Result<String>>,
) {
    let mut child = Command::new(BIN)
        .args([
            "--prefix",
            prefix,
            "topo",
            "up",
            "wan",
            "--number-nodes",
            "3",
            "--hold",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no ready line");
        match lines.next() {
            Some(Ok(l)) if l.starts_with("ready") => break,
            Some(Ok(_)) => {}
            _ => panic!("reckon topo up --hold exited before it was ready"),
        }
    }
    (child, lines)
}

#[test]
fn sigkill_leaves_resources_that_clean_removes() {
    let (mut child, _out) = spawn_hold("tsk");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = leftovers("tsk");
    assert!(
        left.iter().any(|l| l.starts_with("netns")) && left.iter().any(|l| l.starts_with("bridge")),
        "{left:?}"
    );
    let o = reckon(&["clean", "--only", "tsk"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("tsk: removed leftovers of a crashed run: 6 namespaces"),
        "{}",
        text(&o)
    );
    assert_clean("tsk");
    // And the prefix is usable again.
    let net = Network::up(&topo("wan", 3, None), &opts("tsk")).unwrap();
    net.down().unwrap();
    assert_clean("tsk");
}

#[test]
fn sigterm_tears_down() {
    let (mut child, out) = spawn_hold("tst");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let rest: Vec<String> = out.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("torn down: removed 6 namespaces, 9 veth pairs, 4 bridges")),
        "{rest:?}"
    );
    assert_clean("tst");
}

#[test]
fn teardown_stops_processes_inside_hosts() {
    let net = Network::up(&topo("simple", 3, None), &opts("tpr")).unwrap();
    let mut child = net
        .command("h1", "sleep")
        .unwrap()
        .arg("600")
        .spawn()
        .unwrap();
    // A process in the host really is in its namespace.
    let ns = net.manifest().netns_of("h1").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !netns::pids(&ns)
        .iter()
        .any(|p| p.as_raw() == child.id() as i32)
    {
        assert!(Instant::now() < deadline, "sleep never showed up in {ns}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let reaper = std::thread::spawn(move || child.wait());
    let removed = net.down().unwrap();
    assert_eq!(removed.processes, 1);
    assert!(!reaper.join().unwrap().unwrap().success());
    assert_clean("tpr");
}

#[test]
fn cli_up_exec_list_down() {
    let o = reckon(&[
        "--prefix",
        "tcl",
        "topo",
        "up",
        "wan",
        "--number-nodes",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("h1       node    1    10.0.1.1/16"), "{out}");
    assert!(
        out.contains("15 host pairs reach each other over ICMP and TCP"),
        "{out}"
    );
    let o = reckon(&[
        "--prefix", "tcl", "topo", "exec", "mc2", "--", "ip", "-o", "-4", "addr", "show", "eth0",
    ]);
    assert!(
        o.status.success() && text(&o).contains("10.0.2.2/16"),
        "{}",
        text(&o)
    );
    let o = reckon(&[
        "--prefix", "tcl", "topo", "exec", "h1", "--", "ping", "-c1", "-W2", "10.0.2.3",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = reckon(&["--prefix", "tcl", "topo", "exec", "h9", "--", "true"]);
    assert!(
        !o.status.success() && text(&o).contains("no host named 'h9'"),
        "{}",
        text(&o)
    );
    let o = reckon(&["topo", "list"]);
    assert!(
        text(&o).contains("tcl: wan with 6 hosts, left up"),
        "{}",
        text(&o)
    );
    let o = reckon(&["--prefix", "tcl", "topo", "up", "simple"]);
    assert!(
        !o.status.success() && text(&o).contains("topo down"),
        "{}",
        text(&o)
    );
    let o = reckon(&["--prefix", "tcl", "topo", "down"]);
    assert!(
        o.status.success() && text(&o).contains("removed 6 namespaces"),
        "{}",
        text(&o)
    );
    assert_clean("tcl");
    let o = reckon(&["--prefix", "tcl", "topo", "down"]);
    assert!(
        !o.status.success() && text(&o).contains("no reckon network with prefix 'tcl'"),
        "{}",
        text(&o)
    );
}

fn assert_refused(args: &[&str], envs: &[(&str, &str)], expect: &str, prefix: &str) {
    let o = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(
        text(&o).contains(expect),
        "{args:?}: expected '{expect}' in: {}",
        text(&o)
    );
    assert_clean(prefix);
}

#[test]
fn bad_input_is_refused_and_creates_nothing() {
    let p = "tbi";
    assert_refused(
        &["--prefix", p, "topo", "up", "wan", "--number-nodes", "0"],
        &[],
        "--number-nodes 0: must be between 1 and 100",
        p,
    );
    assert_refused(
        &["--prefix", p, "topo", "up", "wan", "--number-nodes", "5000"],
        &[],
        "--number-nodes 5000",
        p,
    );
    assert_refused(
        &[
            "--prefix",
            p,
            "topo",
            "up",
            "simple",
            "--number-clients",
            "0",
        ],
        &[],
        "--number-clients 0",
        p,
    );
    assert_refused(
        &["--prefix", p, "topo", "up", "ring"],
        &[],
        "unknown topology 'ring'; known topologies: simple, wan",
        p,
    );
    assert_refused(
        &["--prefix", "Bad!", "topo", "up", "wan"],
        &[],
        "prefix 'Bad!'",
        p,
    );
    let dir = std::env::temp_dir().join(format!("reckon-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("broken.toml");
    std::fs::write(&f, "[[switches]]\nname = \"s1\"\n\n[[hosts]]\nname = \"h1\"\nrole = \"nod\"\nswitch = \"s1\"\n").unwrap();
    assert_refused(
        &[
            "--prefix",
            p,
            "topo",
            "up",
            "--topology-file",
            f.to_str().unwrap(),
        ],
        &[],
        &format!("{}:", f.display()),
        p,
    );
    assert_refused(
        &[
            "--prefix",
            p,
            "topo",
            "up",
            "--topology-file",
            "/nonexistent/t.toml",
        ],
        &[],
        "cannot read topology file /nonexistent/t.toml",
        p,
    );
    // Open vSwitch unreachable and cannot be started.
    assert_refused(
        &["--prefix", p, "topo", "up", "wan"],
        &[
            ("RECKON_OVSDB_SOCK", "/nonexistent/db.sock"),
            ("RECKON_OVS_CTL", "/bin/false"),
        ],
        "cannot reach Open vSwitch at /nonexistent/db.sock",
        p,
    );
}

#[test]
fn not_root_is_refused_and_creates_nothing() {
    // A copy of the binary that an unprivileged user can surely execute.
    let dir = std::env::temp_dir().join(format!("reckon-test-nr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("reckon");
    std::fs::copy(BIN, &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new(&bin)
        .args(["--prefix", "tnr", "topo", "up", "wan"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("must run as root"), "{}", text(&o));
    assert_clean("tnr");
}

#[test]
fn a_user_topology_file_is_built() {
    let dir = std::env::temp_dir().join(format!("reckon-test-uf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("line.toml");
    std::fs::write(
        &f,
        "subnet = \"10.5.0.0/24\"\n[[switches]]\nname = \"a{i}\"\ncount = 3\n[[links]]\na = \"a{i}\"\nb = \"a{i+1}\"\ncount = 2\n\
         [[hosts]]\nname = \"n{i}\"\nrole = \"node\"\ncount = 3\nswitch = \"a{i}\"\n[[hosts]]\nname = \"c1\"\nrole = \"client\"\nswitch = \"a3\"\n",
    )
    .unwrap();
    let t = topology::from_file(&f, Size::default()).unwrap();
    assert_eq!(t.name, "line");
    let net = Network::up(&t, &opts("tuf")).unwrap();
    assert_eq!(net.timings.pairs_checked, 6);
    tcp_between(&net, "n1", "c1").unwrap();
    drop(net);
    assert_clean("tuf");
}

#[test]
fn long_switch_names_get_short_link_names() {
    let dir = std::env::temp_dir().join(format!("reckon-test-ln-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("long.toml");
    std::fs::write(
        &f,
        "[[switches]]\nname = \"leftside\"\n[[switches]]\nname = \"rightsid\"\n[[links]]\na = \"leftside\"\nb = \"rightsid\"\n\
         [[hosts]]\nname = \"h1\"\nrole = \"node\"\nswitch = \"leftside\"\n[[hosts]]\nname = \"h2\"\nrole = \"node\"\nswitch = \"rightsid\"\n",
    )
    .unwrap();
    let t = topology::from_file(&f, Size::default()).unwrap();
    // "tlongn-leftside-rightsid" would not fit in 15 characters.
    let net = Network::up(&t, &opts("tlongn")).unwrap();
    assert!(sh("ip -o link show").contains("tlongn-L0a"));
    tcp_between(&net, "h1", "h2").unwrap();
    drop(net);
    assert_clean("tlongn");
}

#[test]
fn an_overlong_prefix_is_refused_before_building() {
    let err = Network::up(&topo("wan", 3, None), &opts("abcdefg"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("prefix 'abcdefg'"), "{err}");
    assert!(net::validate_prefix("abcdef").is_ok());
    assert_clean("abcdefg");
}
