//! The topology file format: switches, hosts and links as templates (`count` repeats an entry
//! for each node, client or data centre, with `{i}` and `{i+1}`-style placeholders), resolved
//! for a [`Size`] into a [`Topology`] and checked: names, addresses inside the subnet, switches
//! that exist, a loop-free switch graph, link impairments the command line would accept.
//! Errors name the file and line.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use serde::Deserialize;
use toml::Spanned;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileT {
    #[serde(default)]
    description: String,
    #[serde(default = "default_subnet")]
    subnet: Spanned<String>,
    #[serde(default)]
    switches: Vec<Spanned<SwitchT>>,
    #[serde(default)]
    hosts: Vec<Spanned<HostT>>,
    #[serde(default)]
    links: Vec<Spanned<LinkT>>,
    #[serde(default = "one")]
    path_links: u32,
}

fn default_subnet() -> Spanned<String> {
    Spanned::new(0..0, "10.0.0.0/16".into())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CountT {
    Number(usize),
    Param(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchT {
    name: String,
    count: Option<CountT>,
    dc: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostT {
    name: String,
    role: Role,
    switch: String,
    count: Option<CountT>,
    dc: Option<String>,
    ip: Option<String>,
    #[serde(default)]
    impaired: bool,
    latency: Option<f64>,
    jitter: Option<f64>,
    loss: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkT {
    a: String,
    b: String,
    count: Option<CountT>,
    #[serde(default)]
    impaired: bool,
    latency: Option<f64>,
    jitter: Option<f64>,
    loss: Option<f64>,
}

/// Check a link's fixed impairment: the same rules as the command line's.
fn link_props(
    impaired: bool,
    latency: Option<f64>,
    jitter: Option<f64>,
    loss: Option<f64>,
) -> Result<LinkProps, String> {
    let p = LinkProps {
        impaired,
        latency,
        jitter,
        loss,
    };
    Impairment {
        latency_ms: latency.unwrap_or(0.0),
        jitter_ms: jitter.unwrap_or(0.0),
        loss_pct: loss.unwrap_or(0.0),
        reorder: false,
    }
    .validate()
    .map_err(|e| {
        e.replace("latency_ms", "latency")
            .replace("jitter_ms", "jitter")
            .replace("loss_pct", "loss")
    })?;
    Ok(p)
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    size: Size,
    uses_clients: bool,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        crate::line_at(self.src, offset)
    }
    fn err(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> TopologyError {
        TopologyError::Invalid {
            file: self.file.into(),
            line: self.line(span.start),
            message: message.into(),
        }
    }
    /// The indices an entry expands to: `[None]` for a single entry.
    fn indices(
        &mut self,
        count: &Option<CountT>,
        span: std::ops::Range<usize>,
    ) -> Result<Vec<Option<u32>>, TopologyError> {
        let n = match count {
            None => return Ok(vec![None]),
            Some(CountT::Number(n)) => *n,
            Some(CountT::Param(p)) if p == "nodes" => self.size.nodes,
            Some(CountT::Param(p)) if p == "clients" => {
                self.uses_clients = true;
                self.size.clients.unwrap_or(1)
            }
            Some(CountT::Param(p)) => {
                return Err(self.err(
                    span,
                    format!("count = \"{p}\": use a number, \"nodes\" or \"clients\""),
                ))
            }
        };
        Ok((1..=n as u32).map(Some).collect())
    }
    fn subst(
        &self,
        s: &str,
        i: Option<u32>,
        span: std::ops::Range<usize>,
    ) -> Result<String, TopologyError> {
        expand(s, i).map_err(|m| self.err(span, m))
    }
}

/// Replace `{i}`, `{i+K}` and `{i-K}` in `s` with the index `i`.
pub(super) fn expand(s: &str, i: Option<u32>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("'{s}': unclosed '{{'"))?
            + open;
        let expr: String = rest[open + 1..close]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let Some(i) = i else {
            return Err(format!(
                "'{s}' uses {{{expr}}} but the entry has no `count`"
            ));
        };
        let value = if expr == "i" {
            Some(i as i64)
        } else if let Some(k) = expr.strip_prefix("i+") {
            k.parse::<i64>().ok().map(|k| i as i64 + k)
        } else if let Some(k) = expr.strip_prefix("i-") {
            k.parse::<i64>().ok().map(|k| i as i64 - k)
        } else {
            None
        };
        match value {
            Some(v) if v >= 0 => out.push_str(&v.to_string()),
            Some(v) => return Err(format!("'{s}': {{{expr}}} is {v} for i = {i}")),
            None => {
                return Err(format!(
                    "'{s}': unknown placeholder {{{expr}}}; use {{i}}, {{i+K}} or {{i-K}}"
                ))
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 8
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

pub(super) fn parse(
    name: &str,
    file: &str,
    src: &str,
    size: Size,
) -> Result<Topology, TopologyError> {
    if size.nodes == 0 || size.nodes > MAX_NODES {
        return Err(TopologyError::Nodes(size.nodes));
    }
    if let Some(c) = size.clients {
        if c == 0 || c > MAX_CLIENTS {
            return Err(TopologyError::Clients(c));
        }
    }
    let mut ctx = Ctx {
        file,
        src,
        size,
        uses_clients: false,
    };
    let t: FileT = toml::from_str(src).map_err(|e| {
        let (line, message) = crate::toml_error(src, &e);
        TopologyError::Invalid {
            file: file.into(),
            line,
            message,
        }
    })?;

    let subnet_span = t.subnet.span();
    let (subnet, prefix_len) =
        parse_cidr(t.subnet.get_ref()).map_err(|m| ctx.err(subnet_span.clone(), m))?;

    let mut names: HashSet<String> = HashSet::new();
    let mut check_name = |ctx: &Ctx,
                          n: &str,
                          span: std::ops::Range<usize>|
     -> Result<(), TopologyError> {
        if !valid_name(n) {
            return Err(ctx.err(
                span,
                format!("name '{n}': use 1 to 8 letters, digits or '_', starting with a letter"),
            ));
        }
        if !names.insert(n.to_string()) {
            return Err(ctx.err(
                span,
                format!("name '{n}' is used twice (hosts and switches share one namespace)"),
            ));
        }
        Ok(())
    };
    let parse_dc = |ctx: &Ctx,
                    dc: &Option<String>,
                    i,
                    span: std::ops::Range<usize>|
     -> Result<Option<u32>, TopologyError> {
        match dc {
            None => Ok(None),
            Some(d) => {
                let d = ctx.subst(d, i, span.clone())?;
                d.parse()
                    .map(Some)
                    .map_err(|_| ctx.err(span, format!("dc = '{d}' is not a number")))
            }
        }
    };

    let mut switches = Vec::new();
    for s in &t.switches {
        let span = s.span();
        let s = s.get_ref();
        for i in ctx.indices(&s.count, span.clone())? {
            let name = ctx.subst(&s.name, i, span.clone())?;
            check_name(&ctx, &name, span.clone())?;
            switches.push(Switch {
                name,
                dc: parse_dc(&ctx, &s.dc, i, span.clone())?,
            });
        }
    }
    let switch_names: HashSet<String> = switches.iter().map(|s| s.name.clone()).collect();
    let need_switch =
        |ctx: &Ctx, n: &str, span: std::ops::Range<usize>| -> Result<(), TopologyError> {
            if switch_names.contains(n) {
                Ok(())
            } else {
                Err(ctx.err(span, format!("switch '{n}' is not defined in [[switches]]")))
            }
        };

    let mut hosts = Vec::new();
    let mut explicit_ips: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for h in &t.hosts {
        let span = h.span();
        let h = h.get_ref();
        for i in ctx.indices(&h.count, span.clone())? {
            let name = ctx.subst(&h.name, i, span.clone())?;
            check_name(&ctx, &name, span.clone())?;
            let switch = ctx.subst(&h.switch, i, span.clone())?;
            need_switch(&ctx, &switch, span.clone())?;
            let ip = match &h.ip {
                Some(ip) => {
                    let ip = ctx.subst(ip, i, span.clone())?;
                    let ip: Ipv4Addr = ip.parse().map_err(|_| {
                        ctx.err(span.clone(), format!("ip = '{ip}' is not an IPv4 address"))
                    })?;
                    if !in_subnet(ip, subnet, prefix_len)
                        || ip == subnet
                        || ip == broadcast(subnet, prefix_len)
                    {
                        return Err(ctx.err(span, format!("ip {ip} of host {name} is not a host address in subnet {subnet}/{prefix_len}")));
                    }
                    explicit_ips.push((hosts.len(), span.clone()));
                    ip
                }
                None => Ipv4Addr::UNSPECIFIED,
            };
            let link = link_props(h.impaired, h.latency, h.jitter, h.loss)
                .map_err(|m| ctx.err(span.clone(), format!("host {name}: {m}")))?;
            hosts.push(Host {
                name,
                role: h.role,
                dc: parse_dc(&ctx, &h.dc, i, span.clone())?,
                switch,
                ip,
                link,
            });
        }
    }
    // Addresses: explicit ones must be unique; the rest are handed out in order from the subnet.
    let mut used = HashSet::new();
    for (idx, span) in &explicit_ips {
        if !used.insert(hosts[*idx].ip) {
            return Err(ctx.err(
                span.clone(),
                format!("ip {} is given to two hosts", hosts[*idx].ip),
            ));
        }
    }
    let mut next = u32::from(subnet) + 1;
    for h in hosts.iter_mut().filter(|h| h.ip.is_unspecified()) {
        while used.contains(&Ipv4Addr::from(next)) {
            next += 1;
        }
        let ip = Ipv4Addr::from(next);
        if !in_subnet(ip, subnet, prefix_len) || ip == broadcast(subnet, prefix_len) {
            return Err(ctx.err(
                subnet_span.clone(),
                format!("subnet {subnet}/{prefix_len} has too few addresses for every host"),
            ));
        }
        used.insert(ip);
        h.ip = ip;
    }

    let mut links = Vec::new();
    let mut seen_links = HashSet::new();
    for l in &t.links {
        let span = l.span();
        let l = l.get_ref();
        for i in ctx.indices(&l.count, span.clone())? {
            let a = ctx.subst(&l.a, i, span.clone())?;
            let b = ctx.subst(&l.b, i, span.clone())?;
            need_switch(&ctx, &a, span.clone())?;
            need_switch(&ctx, &b, span.clone())?;
            if a == b {
                return Err(ctx.err(span, format!("link from switch '{a}' to itself")));
            }
            let key = if a < b {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            };
            if !seen_links.insert(key) {
                return Err(ctx.err(span, format!("switches '{a}' and '{b}' are linked twice")));
            }
            let props = link_props(l.impaired, l.latency, l.jitter, l.loss)
                .map_err(|m| ctx.err(span.clone(), format!("link {a}-{b}: {m}")))?;
            links.push(SwitchLink { a, b, props });
        }
    }
    if !hosts.iter().any(|h| h.role == Role::Node) {
        return Err(TopologyError::Invalid {
            file: file.into(),
            line: 1,
            message: "the topology has no host with role = \"node\"".into(),
        });
    }
    check_loop_free(&switches, &links).map_err(|m| TopologyError::Invalid {
        file: file.into(),
        line: 1,
        message: m,
    })?;
    if let (Some(c), false) = (size.clients, ctx.uses_clients) {
        let actual = hosts.iter().filter(|h| h.role == Role::Client).count();
        if c != actual {
            tracing::warn!("topology {name} has {actual} client host(s); --number-clients {c} does not apply to it");
        }
    }
    if t.path_links == 0 {
        return Err(TopologyError::Invalid {
            file: file.into(),
            line: 1,
            message: "path_links must be at least 1".into(),
        });
    }
    Ok(Topology {
        name: name.into(),
        description: t.description,
        subnet,
        prefix_len,
        switches,
        hosts,
        links,
        path_links: t.path_links,
    })
}

/// Standalone switches flood: a loop among them would melt the network. Require a forest.
fn check_loop_free(switches: &[Switch], links: &[SwitchLink]) -> Result<(), String> {
    let mut parent: HashMap<&str, &str> = switches
        .iter()
        .map(|s| (s.name.as_str(), s.name.as_str()))
        .collect();
    fn root<'a>(p: &HashMap<&'a str, &'a str>, mut x: &'a str) -> &'a str {
        while p[x] != x {
            x = p[x];
        }
        x
    }
    for l in links {
        let (ra, rb) = (root(&parent, &l.a), root(&parent, &l.b));
        if ra == rb {
            return Err(format!(
                "the link {} - {} closes a loop of switches; switches run without spanning tree, so links between switches must form a tree",
                l.a, l.b
            ));
        }
        parent.insert(ra, rb);
    }
    Ok(())
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("subnet '{s}': write it as an IPv4 network, e.g. \"10.0.0.0/16\"");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(format!(
            "subnet '{s}': prefix length must be between 8 and 30"
        ));
    }
    Ok((Ipv4Addr::from(u32::from(addr) & mask(len)), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    u32::from(ip) & mask(len) == u32::from(net)
}

fn broadcast(net: Ipv4Addr, len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net) | !mask(len))
}
