use super::template::expand;
use super::*;

fn size(nodes: usize, clients: Option<usize>) -> Size {
    Size { nodes, clients }
}

fn err_of(src: &str) -> String {
    parse("t", "my.toml", src, size(3, None))
        .unwrap_err()
        .to_string()
}

#[test]
fn simple_has_reckons_shape() {
    let t = builtin("simple", size(5, Some(2))).unwrap();
    assert_eq!(t.switches.len(), 1);
    let names: Vec<_> = t.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h1", "h2", "h3", "h4", "h5", "mc1", "mc2"]);
    assert!(t.hosts.iter().all(|h| h.switch == "s1"));
    assert_eq!(
        t.host("h3").unwrap().ip,
        "10.0.1.3".parse::<Ipv4Addr>().unwrap()
    );
    assert_eq!(
        t.host("mc2").unwrap().ip,
        "10.0.2.2".parse::<Ipv4Addr>().unwrap()
    );
    assert_eq!(t.nodes().count(), 5);
    assert_eq!(t.clients().count(), 2);
    assert!(t.links.is_empty());
}

#[test]
fn simple_defaults_to_one_client() {
    let t = builtin("simple", size(3, None)).unwrap();
    assert_eq!(t.clients().count(), 1);
}

#[test]
fn wan_has_a_dc_per_node() {
    let t = builtin("wan", size(3, None)).unwrap();
    assert_eq!(
        t.switches
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["s1", "s2", "s3", "s4"]
    );
    assert_eq!(t.links.len(), 3);
    assert!(t.links.iter().all(|l| l.b == "s1"));
    for i in 1..=3u32 {
        let h = t.host(&format!("h{i}")).unwrap();
        let c = t.host(&format!("mc{i}")).unwrap();
        assert_eq!(h.switch, format!("s{}", i + 1));
        assert_eq!(c.switch, h.switch);
        assert_eq!((h.dc, c.dc), (Some(i), Some(i)));
        assert_eq!((h.role, c.role), (Role::Node, Role::Client));
    }
}

#[test]
fn sizes_out_of_range_are_refused() {
    assert!(matches!(
        builtin("wan", size(0, None)),
        Err(TopologyError::Nodes(0))
    ));
    assert!(matches!(
        builtin("wan", size(MAX_NODES + 1, None)),
        Err(TopologyError::Nodes(_))
    ));
    assert!(matches!(
        builtin("simple", size(3, Some(0))),
        Err(TopologyError::Clients(0))
    ));
    assert!(matches!(
        builtin("simple", size(3, Some(100_000))),
        Err(TopologyError::Clients(_))
    ));
    assert!(builtin("wan", size(MAX_NODES, None)).is_ok());
}

#[test]
fn unknown_name_lists_the_known_ones() {
    let e = builtin("mesh", size(3, None)).unwrap_err().to_string();
    assert!(e.contains("'mesh'") && e.contains("simple, wan"), "{e}");
}

#[test]
fn placeholders_expand() {
    assert_eq!(expand("s{i+1}", Some(4)).unwrap(), "s5");
    assert_eq!(expand("x{i}y{i-1}", Some(2)).unwrap(), "x2y1");
    assert!(expand("s{i-3}", Some(2)).is_err());
    assert!(expand("s{j}", Some(2))
        .unwrap_err()
        .contains("unknown placeholder"));
    assert!(expand("s{i}", None).unwrap_err().contains("no `count`"));
    assert!(expand("s{i", Some(1)).unwrap_err().contains("unclosed"));
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = err_of("description = \"x\"\n\n[[switches]]\nname = \"s1\"\nbogus = = 3\n");
    assert!(e.starts_with("my.toml:5:"), "{e}");
}

#[test]
fn unknown_field_names_file_and_line() {
    let e = err_of("[[switches]]\nname = \"s1\"\n\n[[hosts]]\nname = \"h1\"\nrole = \"node\"\nswitch = \"s1\"\ncolour = \"red\"\n");
    assert!(e.starts_with("my.toml:") && e.contains("colour"), "{e}");
}

#[test]
fn undefined_switch_names_line() {
    let e = err_of("[[switches]]\nname = \"s1\"\n\n[[hosts]]\nname = \"h1\"\nrole = \"node\"\nswitch = \"s9\"\n");
    assert!(e.starts_with("my.toml:4:") && e.contains("'s9'"), "{e}");
}

#[test]
fn duplicate_names_and_addresses_are_refused() {
    let e = err_of(
        "[[switches]]\nname = \"s1\"\n[[hosts]]\nname = \"s1\"\nrole = \"node\"\nswitch = \"s1\"\n",
    );
    assert!(e.contains("used twice"), "{e}");
    let e = err_of("[[switches]]\nname = \"s1\"\n[[hosts]]\nname = \"h{i}\"\ncount = 2\nrole = \"node\"\nswitch = \"s1\"\nip = \"10.0.0.5\"\n");
    assert!(e.contains("given to two hosts"), "{e}");
}

#[test]
fn loops_between_switches_are_refused() {
    let e = err_of("[[switches]]\nname = \"s{i}\"\ncount = 3\n[[hosts]]\nname = \"h1\"\nrole = \"node\"\nswitch = \"s1\"\n[[links]]\na = \"s1\"\nb = \"s2\"\n[[links]]\na = \"s2\"\nb = \"s3\"\n[[links]]\na = \"s3\"\nb = \"s1\"\n");
    assert!(e.contains("loop"), "{e}");
}

#[test]
fn addresses_are_assigned_when_not_given() {
    let t = parse("t", "f", "subnet = \"10.9.0.0/24\"\n[[switches]]\nname = \"s1\"\n[[hosts]]\nname = \"h{i}\"\ncount = \"nodes\"\nrole = \"node\"\nswitch = \"s1\"\n[[hosts]]\nname = \"x\"\nrole = \"client\"\nswitch = \"s1\"\nip = \"10.9.0.2\"\n", size(3, None)).unwrap();
    let ips: Vec<String> = t.hosts.iter().map(|h| h.ip.to_string()).collect();
    assert_eq!(ips, ["10.9.0.1", "10.9.0.3", "10.9.0.4", "10.9.0.2"]);
    assert_eq!(t.prefix_len, 24);
}

#[test]
fn address_outside_subnet_is_refused() {
    let e = err_of("[[switches]]\nname = \"s1\"\n[[hosts]]\nname = \"h1\"\nrole = \"node\"\nswitch = \"s1\"\nip = \"192.168.1.1\"\n");
    assert!(e.contains("not a host address in subnet"), "{e}");
}

#[test]
fn a_topology_needs_a_node() {
    let e = err_of("[[switches]]\nname = \"s1\"\n[[hosts]]\nname = \"c1\"\nrole = \"client\"\nswitch = \"s1\"\n");
    assert!(e.contains("no host with role"), "{e}");
}

#[test]
fn names_must_fit_interface_names() {
    let e = err_of("[[switches]]\nname = \"averyverylongswitch\"\n");
    assert!(e.contains("1 to 8"), "{e}");
}

#[test]
fn paths_cross_the_tree() {
    let t = builtin("wan", size(3, None)).unwrap();
    assert_eq!(t.path("h1", "h3").unwrap(), ["h1", "s2-s1", "s4-s1", "h3"]);
    assert_eq!(t.path("h2", "mc2").unwrap(), ["h2", "mc2"]);
    assert!(t.path("h1", "nope").is_none());
    let t = builtin("simple", size(2, None)).unwrap();
    assert_eq!(t.path("h1", "mc1").unwrap(), ["h1", "mc1"]);
}
