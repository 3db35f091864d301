//! The layout: a public segment, three NATs and the hosts behind them, in network
//! namespaces joined by veth pairs, with Linux's own NAT (`nft` masquerade) in between.
//!
//! ```text
//!                  198.51.100.0/24: bridge br0 in namespace "sw"
//!   pub1 .11  pub2 .12  pub3 .13  pub4 .14  pub5 .15     nat1 .1      nat2 .2      nat3 .3
//!                                                           |            |            |
//!                                 203.0.113.0/25 (lan0) ----+  203.0.113.128/25   192.0.2.0/24
//!                                 p1 .10                       p2 .130             p3 .10
//!                                 masquerade                   masquerade          masquerade random
//! ```
//!
//! Only documentation ranges are used (RFC 5737), and only inside the run's namespaces: the
//! host's own interfaces and routes are never touched. Every host's WAN or LAN interface is
//! `w0` or `l0`; each NAT's LAN is a bridge `lan0`, so that more hosts can join one later.
//!
//! A NAT forwards from its LAN out, lets back what conntrack knows (replies), and drops every
//! unsolicited packet in its `input` chain (counted in the named counter `unsolicited`) rather
//! than answering it: a router that answered an early hole-punching packet would confirm a
//! conntrack entry that later clashes with its host's own (see the NAT design's Risks).

use std::net::Ipv4Addr;

use super::guard::Netns;

/// How a NAT picks the public port of a mapping (RFC 4787 terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// `masquerade`: the host's own port whenever it is free, the same for every
    /// destination (endpoint-independent: punchable).
    Preserving,
    /// `masquerade random`: a new random port for each destination (endpoint-dependent:
    /// not punchable).
    Random,
}

/// A NAT: a namespace on the public segment routing one LAN.
#[derive(Debug)]
pub struct Nat {
    /// Its namespace's short name.
    pub name: &'static str,
    /// Its address on the public segment: the one its hosts show there.
    pub wan: Ipv4Addr,
    /// Its address on its LAN, the hosts' gateway.
    pub gateway: Ipv4Addr,
    /// The LAN's prefix length.
    pub lan_len: u8,
    pub mapping: Mapping,
}

/// A host with one address: on the public segment, or on a NAT's LAN.
#[derive(Debug)]
pub struct Host {
    /// Its namespace's short name; it names a veth too, so at most 15 bytes (IFNAMSIZ).
    pub name: &'static str,
    pub addr: Ipv4Addr,
    /// The NAT it sits behind, by name; `None` on the public segment.
    pub nat: Option<&'static str>,
}

/// The public segment's prefix length.
const WAN_LEN: u8 = 24;

/// The hosts on the public segment; the first is the network's seed.
pub const PUBLIC: [Host; 5] = [
    public("pub1", 11),
    public("pub2", 12),
    public("pub3", 13),
    public("pub4", 14),
    public("pub5", 15),
];

/// The NATs.
pub const NATS: [Nat; 3] = [
    Nat {
        name: "nat1",
        wan: Ipv4Addr::new(198, 51, 100, 1),
        gateway: Ipv4Addr::new(203, 0, 113, 1),
        lan_len: 25,
        mapping: Mapping::Preserving,
    },
    Nat {
        name: "nat2",
        wan: Ipv4Addr::new(198, 51, 100, 2),
        gateway: Ipv4Addr::new(203, 0, 113, 129),
        lan_len: 25,
        mapping: Mapping::Preserving,
    },
    Nat {
        name: "nat3",
        wan: Ipv4Addr::new(198, 51, 100, 3),
        gateway: Ipv4Addr::new(192, 0, 2, 1),
        lan_len: 24,
        mapping: Mapping::Random,
    },
];

/// The hosts behind the NATs, one behind each.
pub const PRIVATE: [Host; 3] = [
    Host {
        name: "p1",
        addr: Ipv4Addr::new(203, 0, 113, 10),
        nat: Some("nat1"),
    },
    Host {
        name: "p2",
        addr: Ipv4Addr::new(203, 0, 113, 130),
        nat: Some("nat2"),
    },
    Host {
        name: "p3",
        addr: Ipv4Addr::new(192, 0, 2, 10),
        nat: Some("nat3"),
    },
];

const fn public(name: &'static str, last: u8) -> Host {
    Host {
        name,
        addr: Ipv4Addr::new(198, 51, 100, last),
        nat: None,
    }
}

/// The NAT named `name`.
pub fn nat(name: &str) -> &'static Nat {
    NATS.iter()
        .find(|nat| nat.name == name)
        .unwrap_or_else(|| panic!("no NAT {name}"))
}

/// The address `host` shows on the public segment: its own, or its NAT's.
pub fn public_addr(host: &Host) -> Ipv4Addr {
    host.nat.map_or(host.addr, |name| nat(name).wan)
}

/// The whole layout, built; dropping it deletes it (its [`Netns`] guard).
pub struct Topology {
    netns: Netns,
}

impl Topology {
    /// Builds the layout in `netns`, which already holds the switch namespace `sw` (made by
    /// the checks). Any failure here fails the test: the checks found the host able.
    pub fn build(mut netns: Netns) -> Self {
        let sw = netns.name("sw");
        let step = |what: &str, done: Result<(), String>| {
            done.unwrap_or_else(|why| panic!("building the topology, {what}: {why}"))
        };
        step(
            "br0",
            netns.ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]),
        );
        step("br0 up", netns.ip(&["-n", &sw, "link", "set", "br0", "up"]));
        for host in &PUBLIC {
            step(host.name, wan(&mut netns, host.name, host.addr));
        }
        for nat in &NATS {
            step(nat.name, wan(&mut netns, nat.name, nat.wan));
            step(nat.name, router(&netns, nat));
        }
        for host in &PRIVATE {
            let nat = self::nat(host.nat.expect("a private host has a NAT"));
            step(host.name, lan(&mut netns, nat, host));
        }
        Topology { netns }
    }

    /// The guard, to run commands in the namespaces.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Forwards `port` (UDP and TCP) of `nat`'s public address to `host` behind it, in its
    /// `pre` chain: the host is reachable from the public segment from now on.
    pub fn forward(&self, nat: &Nat, host: &Host, port: u16) {
        let rules = format!(
            "add rule ip nat pre iifname \"w0\" meta l4proto {{ tcp, udp }} th dport {port} dnat to {}:{port}\n",
            host.addr
        );
        let loaded = self.netns.run(
            nat.name,
            &["nft", "-f", "-"],
            &rules,
            std::time::Duration::from_secs(10),
        );
        assert!(
            loaded.status.success(),
            "nft -f: {}",
            String::from_utf8_lossy(&loaded.stderr).trim()
        );
    }

    /// Packets `nat` has dropped as unsolicited so far.
    pub fn unsolicited(&self, nat: &Nat) -> u64 {
        let listed = self.netns.run(
            nat.name,
            &["nft", "list", "counter", "inet", "filter", "unsolicited"],
            "",
            std::time::Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&listed.stdout);
        let packets = text
            .split_whitespace()
            .skip_while(|word| *word != "packets")
            .nth(1);
        packets
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in {text:?}"))
    }
}

/// Makes namespace `name` with `w0` at `addr` on the public segment (its peer in `sw`,
/// named `name`, on `br0`).
fn wan(netns: &mut Netns, name: &str, addr: Ipv4Addr) -> Result<(), String> {
    netns.add(name)?;
    let (ns, sw) = (netns.name(name), netns.name("sw"));
    netns.ip(&[
        "link", "add", "w0", "netns", &ns, "type", "veth", "peer", "name", name, "netns", &sw,
    ])?;
    netns.ip(&["-n", &sw, "link", "set", name, "master", "br0", "up"])?;
    netns.ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{addr}/{WAN_LEN}"),
        "dev",
        "w0",
    ])?;
    netns.ip(&["-n", &ns, "link", "set", "w0", "up"])
}

/// Makes `nat`'s namespace (already on the public segment) a router: the bridge `lan0`
/// at its gateway address, forwarding on, and its `nft` rules.
fn router(netns: &Netns, nat: &Nat) -> Result<(), String> {
    let ns = netns.name(nat.name);
    netns.ip(&["-n", &ns, "link", "add", "lan0", "type", "bridge"])?;
    let gateway = format!("{}/{}", nat.gateway, nat.lan_len);
    netns.ip(&["-n", &ns, "addr", "add", &gateway, "dev", "lan0"])?;
    netns.ip(&["-n", &ns, "link", "set", "lan0", "up"])?;
    let forward = ["sysctl", "-qw", "net.ipv4.ip_forward=1"];
    super::guard::run_ok(&mut netns.command(nat.name, &forward))?;
    let rules = ruleset(nat.mapping);
    let loaded = netns.run(
        nat.name,
        &["nft", "-f", "-"],
        &rules,
        std::time::Duration::from_secs(10),
    );
    if loaded.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f: {}",
            String::from_utf8_lossy(&loaded.stderr).trim()
        ))
    }
}

/// A NAT's `nft` rules. The `pre` chain is empty: port forwards (dnat) go there.
fn ruleset(mapping: Mapping) -> String {
    let masquerade = match mapping {
        Mapping::Preserving => "masquerade",
        Mapping::Random => "masquerade random",
    };
    format!(
        r#"table ip nat {{
  chain pre {{ type nat hook prerouting priority dstnat; policy accept; }}
  chain post {{ type nat hook postrouting priority srcnat; policy accept; oifname "w0" {masquerade}; }}
}}
table inet filter {{
  counter unsolicited {{ }}
  chain input {{
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname {{ "lo", "lan0" }} accept
    counter name "unsolicited" drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "w0" accept
    ct status dnat accept
  }}
}}
"#
    )
}

/// Makes `host`'s namespace on `nat`'s LAN: `l0` at its address (its peer in the NAT's
/// namespace, named after the host, on `lan0`), routing everything through the NAT.
fn lan(netns: &mut Netns, nat: &Nat, host: &Host) -> Result<(), String> {
    netns.add(host.name)?;
    let (ns, router) = (netns.name(host.name), netns.name(nat.name));
    netns.ip(&[
        "link", "add", "l0", "netns", &ns, "type", "veth", "peer", "name", host.name, "netns",
        &router,
    ])?;
    netns.ip(&[
        "-n", &router, "link", "set", host.name, "master", "lan0", "up",
    ])?;
    let addr = format!("{}/{}", host.addr, nat.lan_len);
    netns.ip(&["-n", &ns, "addr", "add", &addr, "dev", "l0"])?;
    netns.ip(&["-n", &ns, "link", "set", "l0", "up"])?;
    netns.ip(&[
        "-n",
        &ns,
        "route",
        "add",
        "default",
        "via",
        &nat.gateway.to_string(),
    ])
}
