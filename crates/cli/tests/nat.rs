//! cairn behind real NATs (issue 22, point 6): the `cairn` binary in Linux network
//! namespaces, on a public segment and behind `nft` masquerading NATs of both kinds (see
//! `netns/topology.rs` for the layout). The harness itself is tested too: it builds the NATs
//! the later tests rely on (one keeps ports for every destination, one picks a new port for
//! each) and removes everything it made, even when a test panics.
//!
//! Each test builds its own topology (namespaces are cheap; its names carry a prefix of its
//! own), so the tests run side by side. They need root, `ip`, `nft` and `python3`; without
//! them each prints `skipped: <reason>` and passes, unless `CAIRN_REQUIRE_NETNS=1` (set by
//! `.ci/run`), which makes that a failure. See docs/testing.md, "NAT (network namespaces)".

mod netns;

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::time::Duration;

use netns::guard::{Netns, namespaces};
use netns::nodes::Network;
use netns::probe::{self, Listener};
use netns::topology::{self, Mapping, NATS, PRIVATE, PUBLIC, Topology, nat};

/// Ports the probes send from: one for UDP, one for TCP.
const SOURCE: (u16, u16) = (9100, 9101);

#[cfg_attr(
    cairn_no_netns,
    ignore = "needs ip (iproute2) and nft (nftables), and root; CAIRN_REQUIRE_NETNS=1 fails instead"
)]
#[test]
fn every_private_host_reaches_the_public_segment_only_through_its_nat() {
    let Some(topology) = netns::start() else {
        return;
    };
    let listener = Listener::start(&topology, &PUBLIC[0]);
    for host in &PRIVATE {
        probe::send(&topology, host, SOURCE, host.name, &[listener.addr]);
        let nat = nat(host.nat.expect("behind a NAT"));
        for (tcp, port) in [(false, SOURCE.0), (true, SOURCE.1)] {
            for seen in listener.from(&topology, tcp, host.name) {
                assert_eq!(seen.source.ip(), &nat.wan, "{host:?} seen as {seen:?}");
                if nat.mapping == Mapping::Preserving {
                    assert_eq!(seen.source.port(), port, "{host:?} seen as {seen:?}");
                }
            }
        }
    }
    // nat1 now maps p1's UDP port towards pub1 only: the same port from pub2 is unsolicited,
    // dropped in nat1's input chain, neither forwarded to p1 nor answered.
    let nat1 = nat("nat1");
    let before = topology.unsolicited(nat1);
    let mapped = SocketAddrV4::new(nat1.wan, SOURCE.0);
    netns::wait_for(
        "nat1 to drop a datagram from pub2 to p1's mapping",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            probe::fire(&topology, &PUBLIC[1], "unsolicited", mapped);
            let now = topology.unsolicited(nat1);
            if now > before {
                Ok(())
            } else {
                Err(format!("{now} dropped"))
            }
        },
    );
}

#[cfg_attr(
    cairn_no_netns,
    ignore = "needs ip (iproute2) and nft (nftables), and root; CAIRN_REQUIRE_NETNS=1 fails instead"
)]
#[test]
fn masquerade_random_maps_each_destination_to_a_port_of_its_own() {
    let Some(topology) = netns::start() else {
        return;
    };
    let listeners: Vec<Listener> = PUBLIC[..3]
        .iter()
        .map(|host| Listener::start(&topology, host))
        .collect();
    let to: Vec<SocketAddrV4> = listeners.iter().map(|l| l.addr).collect();
    for host in &PRIVATE {
        probe::send(&topology, host, (SOURCE.0, 0), host.name, &to);
        let nat = nat(host.nat.expect("behind a NAT"));
        let sources: BTreeSet<SocketAddrV4> = listeners
            .iter()
            .flat_map(|l| l.from(&topology, false, host.name))
            .map(|seen| seen.source)
            .collect();
        let ports: BTreeSet<u16> = sources.iter().map(|s| s.port()).collect();
        assert!(sources.iter().all(|s| s.ip() == &nat.wan), "{sources:?}");
        match nat.mapping {
            // One mapping for every destination, on the host's own port: punchable.
            Mapping::Preserving => assert_eq!(ports, BTreeSet::from([SOURCE.0]), "{host:?}"),
            // A mapping per destination. Two of three random ports agree by chance about
            // once in 20,000 runs, all three about once in 4 billion.
            Mapping::Random => assert!(ports.len() >= 2, "{host:?}: {sources:?}"),
        }
    }
}

#[cfg_attr(
    cairn_no_netns,
    ignore = "needs ip (iproute2) and nft (nftables), and root; CAIRN_REQUIRE_NETNS=1 fails instead"
)]
#[test]
fn nodes_behind_each_nat_put_get_delete_and_watch_across_the_network() {
    let Some(topology) = netns::start() else {
        return;
    };
    let started = std::time::Instant::now();
    let network = Network::start(topology);
    println!(
        "the network is up, its tables filled, in {:?}",
        started.elapsed()
    );
    let value = |host: &topology::Host| format!("from {}", host.name);
    let public_item = network.put(&PUBLIC[4], "item", &value(&PUBLIC[4]));
    let items: Vec<String> = PRIVATE
        .iter()
        .map(|host| network.put(host, "item", &value(host)))
        .collect();
    for (i, host) in PRIVATE.iter().enumerate() {
        let other = (i + 1) % PRIVATE.len();
        let got = network.get(host, &items[other]);
        assert_eq!(
            got,
            Ok(value(&PRIVATE[other])),
            "{}'s item on {}",
            PRIVATE[other].name,
            host.name
        );
        let got = network.get(host, &public_item);
        assert_eq!(got, Ok(value(&PUBLIC[4])), "pub5's item on {}", host.name);
        let got = network.get(&PUBLIC[3], &items[i]);
        assert_eq!(got, Ok(value(host)), "{}'s item on pub4", host.name);
    }
    println!("puts and gets done at {:?}", started.elapsed());
    for (i, owner) in PRIVATE.iter().enumerate() {
        let watcher = &PRIVATE[(i + 1) % PRIVATE.len()];
        watch_an_update_and_a_delete(&network, owner, watcher, &items[i]);
        println!(
            "{} watched {}'s item to its deletion by {:?}",
            watcher.name,
            owner.name,
            started.elapsed()
        );
    }
    // Whatever the public nodes learnt, they learnt it from what reached them: only addresses
    // on the public segment (a NAT's, never one behind it).
    for host in &PUBLIC {
        let peers = network.peers(host).expect("the API answers");
        for (id, addr) in &peers {
            let addr: SocketAddrV4 = addr.parse().expect("an IPv4 address");
            assert!(
                PUBLIC
                    .iter()
                    .chain(&PRIVATE)
                    .any(|h| topology::public_addr(h) == *addr.ip()),
                "{} holds {id} at {addr}, not an address of the public segment",
                host.name
            );
        }
    }
}

/// `watcher` watches `owner`'s `item`: it sees the value, then the update `owner` puts, then
/// its deletion; a get on the watcher and on a public node then says the item was deleted.
fn watch_an_update_and_a_delete(
    network: &Network,
    owner: &topology::Host,
    watcher: &topology::Host,
    item: &str,
) {
    let subscriptions = || -> u64 {
        PUBLIC
            .iter()
            .map(|host| {
                let status = network.api(host, "/v1/status").expect("the API answers");
                status["subscriptions"].as_u64().expect("a count")
            })
            .sum()
    };
    let before = subscriptions();
    let watch = network.watch(watcher, item);
    let first = format!("from {}", owner.name);
    watch.until(network, "the watch to print the value", |v| {
        v.first().is_some_and(|v| v.text == first)
    });
    // The watch has subscribed at some public node: a new version reaches it from there.
    netns::wait_for(
        "the watch to subscribe",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            if subscriptions() > before {
                Ok(())
            } else {
                Err("none yet".into())
            }
        },
    );
    let update = format!("from {}, updated", owner.name);
    network.put(owner, "item", &update);
    watch.until(network, "the watch to print the update", |v| {
        v.iter().any(|v| v.text == update)
    });
    network.delete(owner, "item");
    let versions = watch.until(network, "the watch to print the deletion", |v| {
        v.last().is_some_and(|v| v.tombstone)
    });
    let seqs: Vec<u64> = versions.iter().map(|v| v.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(versions.len(), 3, "{versions:?}");
    for host in [watcher, &PUBLIC[1]] {
        let got = network.get(host, item);
        assert!(
            got.as_ref().is_err_and(|e| e.contains("deleted")),
            "a get of {}'s deleted item on {}: {got:?}",
            owner.name,
            host.name
        );
    }
}

#[cfg_attr(
    cairn_no_netns,
    ignore = "needs ip (iproute2) and nft (nftables), and root; CAIRN_REQUIRE_NETNS=1 fails instead"
)]
#[test]
fn the_harness_removes_what_it_made_even_when_a_test_panics() {
    let Some(topology) = netns::start() else {
        return;
    };
    let prefix = topology.netns().prefix().to_owned();
    let made: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    // sw, five public hosts, three NATs, three private hosts.
    assert_eq!(
        made.len(),
        1 + PUBLIC.len() + NATS.len() + PRIVATE.len(),
        "{made:?}"
    );
    let listener = Listener::start(&topology, &PUBLIC[0]);
    let pid = topology.netns().pid(listener.process());
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _topology: Topology = topology;
        panic!("a test failing while its network runs (this panic is the test's own)");
    }));
    assert!(failed.is_err());
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the listener (pid {pid}) still runs"
    );

    // A namespace and a scratch directory of a run whose process is gone are removed by the
    // next run; a namespace of a run still going (this process's) is not.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("true runs");
    gone.wait().expect("true ends");
    let stale = Stale {
        namespace: format!("cn{}-0-sw", gone.id()),
        dir: std::env::temp_dir().join(format!("cairn-cn{}-0-netns", gone.id())),
    };
    netns::guard::run_ok(std::process::Command::new("ip").args(["netns", "add", &stale.namespace]))
        .expect("ip netns add");
    std::fs::create_dir_all(&stale.dir).expect("creates a directory");
    let mut live = Netns::new();
    live.add("sw").expect("ip netns add");
    let live_name = live.name("sw");
    drop(Netns::new());
    let now = namespaces();
    assert!(
        !now.contains(&stale.namespace),
        "{} was left: {now:?}",
        stale.namespace
    );
    assert!(!stale.dir.exists(), "{} was left", stale.dir.display());
    assert!(now.contains(&live_name), "{live_name} was removed: {now:?}");
}

/// A namespace and a scratch directory made by hand to look like a dead run's; removed on
/// drop if still there.
struct Stale {
    namespace: String,
    dir: std::path::PathBuf,
}

impl Drop for Stale {
    fn drop(&mut self) {
        if namespaces().contains(&self.namespace) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.namespace])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `host`'s reachability and mode, as its `/v1/status` says: `(status, mode)`.
fn reachability(network: &Network, host: &topology::Host) -> Result<(String, String), String> {
    let status = network.api(host, "/v1/status")?;
    let r = &status["reachability"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    Ok((text(&r["status"]), text(&r["mode"])))
}

/// Fails the test if a public node's table holds a node behind a NAT (its contact's
/// address is its NAT's), naming who holds whom; `except` may be held (it became public).
fn no_private_node_in_a_public_table(network: &Network, except: Option<&topology::Host>) {
    for host in &PUBLIC {
        let Ok(peers) = network.peers(host) else {
            continue;
        };
        for (id, addr) in &peers {
            let addr: SocketAddrV4 = addr.parse().expect("an IPv4 address");
            for private in PRIVATE
                .iter()
                .filter(|p| except.is_none_or(|e| e.name != p.name))
            {
                assert_ne!(
                    *addr.ip(),
                    topology::public_addr(private),
                    "{} holds {id} at {addr}: {} behind its NAT",
                    host.name,
                    private.name
                );
            }
        }
    }
}

#[cfg_attr(
    cairn_no_netns,
    ignore = "needs ip (iproute2) and nft (nftables), and root; CAIRN_REQUIRE_NETNS=1 fails instead"
)]
#[test]
fn auto_nodes_behind_nats_say_private_public_ones_public_and_a_forwarded_one_becomes_a_server() {
    let Some(topology) = netns::start() else {
        return;
    };
    let started = std::time::Instant::now();
    // Every node runs the command's default mode: auto.
    let network = Network::start(topology);
    println!("the network is up in {:?}", started.elapsed());
    // Issue 22, point 6: within a minute every node behind a NAT says private and every
    // public node public; no private node is in a public node's table at any check.
    let deadline = Duration::from_secs(60);
    let mut last = String::new();
    loop {
        no_private_node_in_a_public_table(&network, None);
        let mut wrong = Vec::new();
        for host in PUBLIC.iter().chain(&PRIVATE) {
            let expected = match host.nat {
                None => ("public", "server"),
                Some(_) => ("private", "client"),
            };
            match reachability(&network, host) {
                Ok((status, mode)) if (status.as_str(), mode.as_str()) == expected => {}
                seen => wrong.push(format!("{}: {seen:?}", host.name)),
            }
        }
        if wrong.is_empty() {
            break;
        }
        last = wrong.join(", ");
        assert!(
            started.elapsed() < deadline,
            "not every verdict within {deadline:?} of the start: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("every verdict in {:?} ({last})", started.elapsed());
    // p1's NAT now forwards its port: p1 can be reached. Its next check finds it public, and
    // it becomes a server (its checks while private come every two minutes).
    let p1 = &PRIVATE[0];
    network
        .topology()
        .forward(nat(p1.nat.expect("behind a NAT")), p1, netns::nodes::PORT);
    let moved = std::time::Instant::now();
    netns::wait_for(
        "p1, forwarded, to find itself public and become a server",
        Duration::from_secs(200),
        Duration::from_millis(500),
        || {
            no_private_node_in_a_public_table(&network, Some(p1));
            match reachability(&network, p1)? {
                (status, mode) if status == "public" && mode == "server" => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        },
    );
    println!(
        "p1 became a server {:?} after its port was forwarded",
        moved.elapsed()
    );
    // The other private nodes stay out of every public table.
    for _ in 0..5 {
        no_private_node_in_a_public_table(&network, Some(p1));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `host`'s rendezvous counters, as its `/v1/status` says (`reachability.rendezvous`).
fn rendezvous(network: &Network, host: &topology::Host) -> Result<serde_json::Value, String> {
    let status = network.api(host, "/v1/status")?;
    Ok(status["reachability"]["rendezvous"].clone())
}

/// The public key (hex) of `host`'s node, as its `/v1/status` says.
fn public_key(network: &Network, host: &topology::Host) -> String {
    let status = network.api(host, "/v1/status").expect("the API answers");
    status["public_key"]
        .as_str()
        .expect("a public key")
        .to_owned()
}

/// What one `cairn ping` did: whether it succeeded, what it printed, and how long it ran.
struct Ping {
    ok: bool,
    stdout: String,
    stderr: String,
    wall: Duration,
}

impl Ping {
    /// The round trip it printed (`… : 1.2 ms`), in milliseconds.
    fn rtt_ms(&self) -> Option<f64> {
        let (_, rtt) = self.stdout.trim().rsplit_once(": ")?;
        rtt.strip_suffix(" ms")?.parse().ok()
    }
}

impl std::fmt::Debug for Ping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}, {:?}, stdout {:?}, stderr {:?}",
            if self.ok { "0" } else { "non-zero" },
            self.wall,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// `cairn ping KEY` of `to`'s node, against `from`'s node, in `from`'s namespace.
fn ping(network: &Network, from: &topology::Host, to: &topology::Host) -> Ping {
    let key = public_key(network, to);
    let started = std::time::Instant::now();
    let output = network.cairn(from, &["ping", &key]);
    let ping = Ping {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        wall: started.elapsed(),
    };
    eprintln!("cairn ping {} on {}: {ping:?}", to.name, from.name);
    ping
}

/// Every node's rendezvous counters and every NAT's unsolicited drops, for a failure's
/// diagnosis.
fn rendezvous_counters(network: &Network) -> String {
    let mut lines = Vec::new();
    for host in PUBLIC.iter().chain(&PRIVATE) {
        let counters = rendezvous(network, host).unwrap_or_else(serde_json::Value::String);
        lines.push(format!("{}: {counters}", host.name));
    }
    for nat in &NATS {
        let dropped = network.topology().unsolicited(nat);
        lines.push(format!("{}: {dropped} unsolicited dropped", nat.name));
    }
    lines.join("\n")
}

/// Prints, for a note to quote, how many of `runs` (each `cairn ping` p1 -> p2) said
/// punched, and each one's printed round trip and wall time.
fn measure(how: &str, runs: &[Ping]) {
    let punched = runs
        .iter()
        .filter(|r| r.stdout.starts_with("punched"))
        .count();
    eprintln!(
        "measurement ({how}): {punched} of {} cairn ping p1 -> p2 said punched",
        runs.len()
    );
    for (i, run) in runs.iter().enumerate() {
        let rtt = run
            .rtt_ms()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
        let said = if run.ok {
            run.stdout.trim()
        } else {
            run.stderr.trim()
        };
        eprintln!(
            "measurement ({how}): run {}: round trip {rtt}, wall {:.0} ms: {said}",
            i + 1,
            run.wall.as_secs_f64() * 1_000.0
        );
    }
}

/// Counts, from now on, the datagrams from `from`'s public address that reach `nat` itself
/// (a rule at the head of its input chain): none is an answer to anything `nat` forwarded
/// (those are forwarded, not input), so each is dropped as unsolicited.
fn count_arrivals(network: &Network, nat: &topology::Nat, from: &topology::Nat) {
    let rule = format!(
        "insert rule inet filter input ip saddr {} meta l4proto udp counter comment \"from {}\"\n",
        from.wan, from.name
    );
    let loaded = network.topology().netns().run(
        nat.name,
        &["nft", "-f", "-"],
        &rule,
        Duration::from_secs(10),
    );
    assert!(loaded.status.success(), "nft -f: {loaded:?}");
}

/// The datagrams [`count_arrivals`] counted at `nat` from `from`.
fn arrivals(network: &Network, nat: &topology::Nat, from: &topology::Nat) -> u64 {
    let listed = network.topology().netns().run(
        nat.name,
        &["nft", "list", "chain", "inet", "filter", "input"],
        "",
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("\"from {}\"", from.name)))
        .unwrap_or_else(|| panic!("no rule counting {} in {text}", from.name));
    let packets = line
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1);
    packets
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {line:?}"))
}

/// Issue 22's rendezvous through real NATs: every node behind a NAT registers with a
/// rendezvous point; `cairn ping KEY` reaches a public node directly and a node behind a
/// port-keeping NAT punched, from behind another such NAT or from the public segment. A node
/// behind the random-mapping NAT (`masquerade random`, a mapping per destination) cannot be
/// punched to: it is relayed by its rendezvous point, until the circuit's bytes or its time
/// are spent (the point then closes it, and the next ping opens another; through `cairn
/// ping`, one process per ping, its 2 minutes run out first, and
/// `crates/node/tests/rendezvous.rs` spends its bytes). Prints measurements.
#[cfg_attr(
    cairn_no_netns,
    ignore = "needs ip (iproute2) and nft (nftables), and root; CAIRN_REQUIRE_NETNS=1 fails instead"
)]
#[test]
fn ping_punches_through_port_keeping_nats_and_relays_to_one_behind_a_random_mapping_nat() {
    let Some(topology) = netns::start() else {
        return;
    };
    let started = std::time::Instant::now();
    // Every node runs in auto mode: the private ones become clients once they say private.
    let network = Network::start(topology);
    eprintln!("the network is up in {:?}", started.elapsed());
    let mut registered = Vec::new();
    for host in &PRIVATE {
        netns::wait_for(
            &format!("{} to register with a rendezvous point", host.name),
            Duration::from_secs(180),
            Duration::from_millis(200),
            || {
                let counters = rendezvous(&network, host)?;
                match counters["points"].as_u64() {
                    Some(points) if points >= 1 => Ok(()),
                    _ => Err(format!("{counters} ({:?})", reachability(&network, host))),
                }
            },
        );
        registered.push(format!("{} at {:?}", host.name, started.elapsed()));
    }
    eprintln!(
        "measurement: every private node had a rendezvous point {:?} after the start ({})",
        started.elapsed(),
        registered.join(", ")
    );
    eprintln!("counters:\n{}", rendezvous_counters(&network));
    let [p1, p2, p3] = &PRIVATE;

    // To a public node, from behind a NAT and from the public segment: direct.
    for (from, to) in [(p1, &PUBLIC[0]), (p3, &PUBLIC[1]), (&PUBLIC[2], &PUBLIC[3])] {
        let pinged = ping(&network, from, to);
        assert!(
            pinged.ok && pinged.stdout.starts_with("direct at "),
            "{} to {}: {pinged:?}",
            from.name,
            to.name
        );
    }

    // From behind port-keeping NAT 1 to behind port-keeping NAT 2: punched. p2's punch
    // opens nat2 towards p1's mapping, and is itself dropped by nat1 (p1 has sent nothing
    // to p2 yet). What each NAT dropped from the other is printed, not asserted: a first
    // datagram of p1's that beats the punch to nat2 is dropped there and sent again.
    let (nat1, nat2) = (nat("nat1"), nat("nat2"));
    count_arrivals(&network, nat2, nat1);
    count_arrivals(&network, nat1, nat2);
    let pinged = ping(&network, p1, p2);
    eprintln!(
        "during the first ping p1 -> p2, datagrams from nat1 that nat2 dropped (came before \
         p2's punch): {}; from nat2 that nat1 dropped (p2's punch, p1 not yet sent): {}",
        arrivals(&network, nat2, nat1),
        arrivals(&network, nat1, nat2)
    );
    assert!(
        pinged.ok && pinged.stdout.starts_with("punched at "),
        "p1 to p2: {pinged:?}\n{}",
        rendezvous_counters(&network)
    );

    // From the public segment to behind a port-keeping NAT: punched, from every public
    // node: at least two of the five are none of p1's (at most three) rendezvous points, so
    // some other node introduces them.
    for asker in &PUBLIC {
        let pinged = ping(&network, asker, p1);
        assert!(
            pinged.ok && pinged.stdout.starts_with("punched at "),
            "{} to p1: {pinged:?}\n{}",
            asker.name,
            rendezvous_counters(&network)
        );
    }

    // Behind the random-mapping NAT: p3's NAT maps its port towards its rendezvous point
    // alone; its punch towards p1 leaves from another port, and p1's ping to the address
    // the point gave finds no mapping. The point relays.
    let relay_started = std::time::Instant::now();
    let pinged = ping(&network, p1, p3);
    assert!(
        pinged.ok && pinged.stdout.starts_with("relayed at "),
        "p1 to p3, behind the random-mapping NAT: {pinged:?}\n{}",
        rendezvous_counters(&network)
    );
    eprintln!(
        "measurement: the first relayed ping p1 -> p3 took {:?} (the punch tried first): {}",
        relay_started.elapsed(),
        pinged.stdout.trim()
    );
    // Pings on the circuit until it is spent (its 128 KiB or its 2 minutes, whichever
    // comes first): the point closes it and refuses what comes on it (counted), and the
    // next ping opens another, through the same point or, if p3's record names another
    // first by then, that one. Each ping is a sealed request and its answer, about 150
    // bytes. The counters are the public nodes' together.
    let circuits = |network: &Network| {
        let (mut opened, mut refused) = (0, 0);
        for host in &PUBLIC {
            let counters = rendezvous(network, host).expect("a public node's counters");
            opened += counters["circuits_opened"].as_u64().unwrap_or(0);
            refused += counters["relay_refused"].as_u64().unwrap_or(0);
        }
        (opened, refused)
    };
    let (opened_before, _) = circuits(&network);
    let spent_started = std::time::Instant::now();
    let mut pings = 0;
    let (opened, refused) = loop {
        let pinged = ping(&network, p1, p3);
        assert!(pinged.ok, "ping {pings} on the circuit: {pinged:?}");
        pings += 1;
        if pings % 50 != 0 {
            continue;
        }
        let (opened, refused) = circuits(&network);
        eprintln!(
            "after {pings} pings on the circuit, {:?}: {opened} circuits opened, {refused} \
             datagrams refused on spent ones",
            spent_started.elapsed()
        );
        if opened > opened_before {
            break (opened, refused);
        }
        assert!(
            pings < 5_000,
            "no circuit was spent after {pings} pings:\n{}",
            rendezvous_counters(&network)
        );
    };
    assert!(
        refused >= 1,
        "the spent circuit's last datagram was refused: {opened} opened, {refused} refused"
    );
    let counters = rendezvous_counters(&network);
    eprintln!(
        "measurement: {pings} pings p1 -> p3 spent a circuit in {:?}; the counters:\n\
         {counters}",
        spent_started.elapsed()
    );

    // Measurements: ten pings from p1 to p2, one every 3 s after the windows of the pings
    // above have passed: within p2's bound of 4 punches to one IP per 10 s (and each
    // point's 8 introductions per asking IP per 10 s).
    std::thread::sleep(Duration::from_secs(10));
    let spaced: Vec<Ping> = (0..10)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(3));
            }
            ping(&network, p1, p2)
        })
        .collect();
    measure("one every 3 s", &spaced);
    // Then ten back to back, as fast as they run: each goes the way the last found (kept
    // 60 s), through the open hole, with no new introduction nor punch (each of those is
    // bounded: 4 punches to one IP per 10 s).
    let burst: Vec<Ping> = (0..10).map(|_| ping(&network, p1, p2)).collect();
    for pinged in &burst {
        assert!(
            pinged.ok && pinged.stdout.starts_with("punched at "),
            "back to back: {pinged:?}"
        );
    }
    measure("back to back", &burst);
    eprintln!("counters:\n{}", rendezvous_counters(&network));

    // Byte streams (`cairn connect`, `cairn listen`), each its own run of the binary.
    let dir = network.topology().netns().dir().to_path_buf();
    let ten_mib: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let sent = dir.join("ten-mib");
    std::fs::write(&sent, &ten_mib).expect("writes");

    // p1 to p2, behind the two port-keeping NATs: punched; 10 MiB one way and p2's line the
    // other arrive intact, and both commands exit 0.
    let (p2_heard, p1_heard) = (dir.join("p2-heard"), dir.join("p1-heard"));
    let listening = Piped::start(&network, p2, &["listen"], b"from p2\n", &p2_heard, &dir);
    let started = std::time::Instant::now();
    let connected = Piped::start(
        &network,
        p1,
        &["connect", &public_key(&network, p2)],
        &ten_mib,
        &p1_heard,
        &dir,
    )
    .finish();
    let wall = started.elapsed();
    assert!(connected.ok, "cairn connect p1 -> p2: {connected:?}");
    let listened = listening.finish();
    assert!(listened.ok, "cairn listen on p2: {listened:?}");
    assert!(connected.stderr.contains("(punched)"), "{connected:?}");
    assert!(
        std::fs::read(&p2_heard).expect("reads") == ten_mib,
        "p2 got 10 MiB intact"
    );
    assert_eq!(std::fs::read(&p1_heard).expect("reads"), b"from p2\n");
    eprintln!(
        "measurement: cairn connect p1 -> p2 (punched) carried 10 MiB in {wall:?} ({:.1} MiB/s, \
         the command's start, the reach and the handshake included)",
        10.0 / wall.as_secs_f64()
    );

    // p1 to p3, behind the random-mapping NAT: relayed, until the relay's bound (128 KiB a
    // circuit, both ways together): both commands fail, saying so, and p3 got less than that.
    let p3_heard = dir.join("p3-heard");
    let listening = Piped::start(&network, p3, &["listen"], b"from p3\n", &p3_heard, &dir);
    let started = std::time::Instant::now();
    let connected = Piped::start(
        &network,
        p1,
        &["connect", &public_key(&network, p3)],
        &ten_mib,
        &dir.join("p1-heard-p3"),
        &dir,
    )
    .finish();
    let wall = started.elapsed();
    assert!(
        !connected.ok && connected.stderr.contains("(relayed)"),
        "{connected:?}"
    );
    assert!(
        connected.stderr.contains("relay carries at most 128 KiB"),
        "{connected:?}"
    );
    let listened = listening.finish();
    let carried = std::fs::read(&p3_heard).expect("reads");
    assert!(
        !listened.ok,
        "cairn listen on p3 ended the stream cleanly: {listened:?}"
    );
    assert!(carried.len() < 128 << 10, "p3 got {} bytes", carried.len());
    assert!(
        ten_mib.starts_with(&carried),
        "what p3 got is the start of what p1 sent"
    );
    eprintln!(
        "measurement: cairn connect p1 -> p3 (relayed) carried {} bytes to p3 before its \
         relay's bound stopped it; the command failed after {wall:?}",
        carried.len()
    );
}

/// A `cairn` command against a node, its standard input from bytes and its standard output
/// to a file; killed if the test ends first.
struct Piped {
    child: std::process::Child,
    errors: std::path::PathBuf,
    name: String,
}

/// How a [`Piped`] command ended.
#[derive(Debug)]
struct Ended {
    ok: bool,
    stderr: String,
}

impl Piped {
    /// Starts `cairn ARGS` on `host`, and for `cairn listen` waits until its node listens.
    fn start(
        network: &Network,
        host: &topology::Host,
        args: &[&str],
        input: &[u8],
        output: &std::path::Path,
        dir: &std::path::Path,
    ) -> Piped {
        let name = format!("{} {}", host.name, args[0]);
        let stem = format!("{}-{}", host.name, args[0]);
        let (input_file, errors) = (
            dir.join(format!("{stem}.in")),
            dir.join(format!("{stem}.err")),
        );
        std::fs::write(&input_file, input).expect("writes the input");
        let file = |path: &std::path::Path| std::fs::File::create(path).expect("creates a file");
        let child = network
            .cairn_command(host, args)
            .stdin(std::fs::File::open(&input_file).expect("opens the input"))
            .stdout(file(output))
            .stderr(file(&errors))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let piped = Piped {
            child,
            errors,
            name,
        };
        if args[0] == "listen" {
            netns::wait_for(
                &format!("{} to listen", piped.name),
                Duration::from_secs(60),
                Duration::from_millis(50),
                || {
                    let said = std::fs::read_to_string(&piped.errors).unwrap_or_default();
                    if said.contains("listening") {
                        Ok(())
                    } else {
                        Err(said)
                    }
                },
            );
        }
        piped
    }

    /// Waits for the command to end (3 minutes at most).
    fn finish(mut self) -> Ended {
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "{} still ran after 3 minutes: {}",
                self.name,
                std::fs::read_to_string(&self.errors).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Ended {
            ok: status.success(),
            stderr: std::fs::read_to_string(&self.errors).unwrap_or_default(),
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
