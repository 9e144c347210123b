//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use reckon::net::{self, netns, Network, NetworkOptions};
use reckon::topology::{self, Size, Topology};

pub const BIN: &str = env!("CARGO_BIN_EXE_reckon");

/// Options for a test's network. Each test owns its prefix: leftovers of an earlier, crashed
/// run of the same test are removed first (by `clean`, which only touches unowned networks).
pub fn opts(prefix: &str) -> NetworkOptions {
    let o = NetworkOptions {
        prefix: prefix.into(),
        engine_bin: Some(BIN.into()),
        ..Default::default()
    };
    if net::validate_prefix(prefix).is_ok() {
        let scope = net::CleanScope {
            prefix: Some(prefix),
            owner: None,
        };
        net::clean(scope, &o.ovs).unwrap();
    }
    o
}

pub fn topo(name: &str, nodes: usize, clients: Option<usize>) -> Topology {
    topology::builtin(name, Size { nodes, clients }).unwrap()
}

pub fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Everything visible from outside that carries `prefix`: namespaces, links, bridges, manifest.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    let mut left: Vec<String> = Vec::new();
    left.extend(
        sh("ip netns list")
            .lines()
            .filter(|l| l.starts_with(&p))
            .map(|l| format!("netns {l}")),
    );
    left.extend(
        sh("ip -o link show")
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .filter(|n| n.starts_with(&p))
            .map(|n| format!("link {n}")),
    );
    left.extend(
        sh("ovs-vsctl list-br")
            .lines()
            .filter(|l| l.starts_with(&p))
            .map(|l| format!("bridge {l}")),
    );
    if std::path::Path::new(&format!("/run/reckon/{prefix}.json")).exists() {
        left.push(format!("manifest {prefix}.json"));
    }
    left
}

pub fn assert_clean(prefix: &str) {
    let left = leftovers(prefix);
    assert!(left.is_empty(), "left behind for prefix {prefix}: {left:?}");
}

pub fn reckon(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A TCP exchange between two hosts made by the test itself, not by reckon's check.
pub fn tcp_between(net: &Network, from: &str, to: &str) -> Result<(), String> {
    let t = net.topology();
    let (src, dst) = (t.host(from).unwrap(), t.host(to).unwrap());
    let ns = |h: &str| netns::open(net.manifest().netns_of(h).unwrap()).unwrap();
    let addr = SocketAddrV4::new(dst.ip, 7777);
    let listener = netns::in_netns(ns(to), || TcpListener::bind(addr))
        .unwrap()
        .map_err(|e| e.to_string())?;
    let src_ip = src.ip;
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (mut c, peer) = listener.accept().map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            std::io::Read::read_exact(&mut c, &mut buf).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut c, &buf).map_err(|e| e.to_string())?;
            Ok::<Ipv4Addr, String>(match peer.ip() {
                std::net::IpAddr::V4(v) => v,
                _ => Ipv4Addr::UNSPECIFIED,
            })
        });
        let client = netns::in_netns(ns(from), || -> Result<(), String> {
            let mut c = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3))
                .map_err(|e| e.to_string())?;
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            std::io::Write::write_all(&mut c, b"hello").map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            std::io::Read::read_exact(&mut c, &mut buf).map_err(|e| e.to_string())?;
            if &buf != b"hello" {
                return Err("echo differs".into());
            }
            Ok(())
        })
        .unwrap();
        if client.is_err() {
            // Unblock the server thread.
            let _ = netns::in_netns(ns(to), || TcpStream::connect(addr));
        }
        let peer = server.join().unwrap();
        client?;
        if peer? != src_ip {
            return Err("connection came from the wrong address".into());
        }
        Ok(())
    })
}

/// Headless Chromium: `RECKON_CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
/// The tests need it (`scripts/setup.sh --test` installs Debian's).
pub fn chromium() -> String {
    if let Ok(c) = std::env::var("RECKON_CHROMIUM") {
        return c;
    }
    for c in ["chromium", "chromium-browser"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.into();
        }
    }
    panic!("no Chromium to check the report in: install it (scripts/setup.sh --test installs Debian's chromium) or set RECKON_CHROMIUM");
}

/// One `<img>` of a page as the browser has it once the page has loaded.
#[derive(Debug, PartialEq)]
pub struct Rendered {
    pub loaded: bool,
    pub width: u32,
    pub height: u32,
}

/// Open `html` (a self-contained page) in headless Chromium, offline, and return every image
/// as the browser decoded it once the page loaded. A copy of the page gets a script that writes
/// what `document.images` holds into the DOM, and Chromium prints the DOM.
pub fn render_images(html: &std::path::Path) -> Vec<Rendered> {
    let dir = std::env::temp_dir().join(format!(
        "reckon-browser-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(dir.join("profile")).unwrap();
    let page = dir.join("check.html");
    let mut text = std::fs::read_to_string(html).unwrap();
    text.push_str(
        "<script>window.addEventListener('load', () => {\
         const rows = [...document.images].map(i => (i.complete ? 1 : 0) + ' ' + i.naturalWidth + ' ' + i.naturalHeight);\
         const pre = document.createElement('pre'); pre.id = 'reckon-check';\
         pre.textContent = 'IMAGES:' + rows.join(';') + ':END'; document.body.appendChild(pre);});</script>",
    );
    std::fs::write(&page, text).unwrap();
    // Offline: no background services, no name resolution, a fresh profile.
    let o = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    let _ = std::fs::remove_dir_all(&dir);
    let dom = String::from_utf8_lossy(&o.stdout);
    let found = dom
        .split("<pre id=\"reckon-check\">IMAGES:")
        .nth(1)
        .and_then(|s| s.split(":END</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "chromium printed no result ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        });
    found
        .split(';')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let v: Vec<u32> = r.split(' ').map(|x| x.parse().unwrap()).collect();
            Rendered {
                loaded: v[0] == 1,
                width: v[1],
                height: v[2],
            }
        })
        .collect()
}

/// The PNGs embedded in a page, as (width, height) from their headers.
pub fn embedded_pngs(html: &str) -> Vec<(u32, u32)> {
    use base64::Engine;
    html.split("src=\"data:image/png;base64,")
        .skip(1)
        .map(|rest| {
            let png = base64::engine::general_purpose::STANDARD
                .decode(rest.split('"').next().unwrap())
                .expect("valid base64");
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
            let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
            (be(16), be(20))
        })
        .collect()
}

/// The report at `html` renders in a browser: it has `expected` images, every one loads, at
/// the size of the PNG it embeds.
pub fn assert_report_renders(html: &std::path::Path, expected: usize) {
    let pngs = embedded_pngs(&std::fs::read_to_string(html).unwrap());
    assert_eq!(pngs.len(), expected, "embedded plots");
    let shown = render_images(html);
    let want: Vec<Rendered> = pngs
        .iter()
        .map(|&(width, height)| Rendered {
            loaded: true,
            width,
            height,
        })
        .collect();
    assert_eq!(shown, want, "images as Chromium decoded them");
}
