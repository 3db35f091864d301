//! Reachability checks through the real network path (`docs/design.md`, "Reachability"):
//! live nodes on loopback, each on an address of its own, probe each other and become public;
//! a peer that is a plane of its own over a real socket floods `probe` requests and is refused
//! past the limit while an honest peer's probe is still served.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cairn_core::datagram::{MAX_DATAGRAM, PROBE, PROBE_LEN};
use cairn_core::{ErrorCode, Peer, Request, Response};
use cairn_node::{Config, Dht, ModeSetting, Status};
use common::plane::Peer2;
use common::*;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The deadline for a verdict (point 6: "within a minute").
const VERDICT_LIMIT: Duration = Duration::from_secs(60);

/// A node on `ip`, any free port, counting one vote and one check subnet per host, with room
/// in its table for every node of a test.
async fn node_on(ip: &str, mode: ModeSetting) -> (Dht, SocketAddr) {
    let mut config = Config::default().mode(mode);
    config.protocol.nat_subnet_prefix_v4 = 32;
    start_on(config, ip).await
}

async fn status(dht: &Dht) -> Status {
    dht.status().await.expect("running")
}

/// Looks at `sample` until `done` holds, for at most [`VERDICT_LIMIT`].
async fn within_a_minute<S: std::fmt::Debug, F: Future<Output = S>>(
    what: &str,
    mut sample: impl FnMut() -> F,
    done: impl Fn(&S) -> bool,
) -> S {
    let deadline = Instant::now() + VERDICT_LIMIT;
    loop {
        let value = sample().await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {VERDICT_LIMIT:?}; last seen {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn auto_nodes_on_distinct_addresses_all_become_public_servers() {
    // The first node has joined no one: a server from the start. The others join it and are
    // clients until their checks find them public.
    let mut nodes = vec![node_on("127.0.1.1", ModeSetting::Auto).await];
    let seed = nodes[0].1;
    for n in 2..=6 {
        let (dht, addr) = node_on(&format!("127.0.1.{n}"), ModeSetting::Auto).await;
        dht.bootstrap(vec![seed]).await.expect("joins");
        nodes.push((dht, addr));
    }
    assert_eq!(status(&nodes[0].0).await.mode, "server");
    for (dht, addr) in &nodes {
        let s = within_a_minute(
            &format!("{addr} to find itself public"),
            || async { status(dht).await.reachability },
            |r| r.status == "public" && r.mode == "server",
        )
        .await;
        assert_eq!(s.setting, "auto");
        assert!(s.probes.received >= 2, "{s:?}");
        assert!(s.checked_at.is_some(), "{s:?}");
        let text = dht.metrics().await.expect("running");
        let samples = samples(&text);
        assert_eq!(
            value(&samples, "cairn_reachability", &[("status", "public")]),
            1.0
        );
        assert_eq!(
            value(&samples, "cairn_reachability", &[("status", "unknown")]),
            0.0
        );
    }
    // Each, a server now, enters the others' tables.
    for (dht, addr) in &nodes {
        within_a_minute(
            &format!("{addr}'s table to hold every other node"),
            || async { status(dht).await.peers },
            |peers| *peers == nodes.len() - 1,
        )
        .await;
    }
    for (dht, _) in nodes {
        dht.shutdown().await;
    }
}

#[tokio::test]
async fn a_network_that_restarts_at_once_on_its_saved_peers_does_not_stay_all_clients() {
    // Found in review: an auto node that restarts on saved peers starts as a client, and a
    // client can neither be a third node's asker's server nor enter tables; a whole network
    // restarted at once was all clients for good. A client whose bootstrap ends knowing no
    // server is the first node of its network, and a server.
    let base = std::env::temp_dir().join(format!("cairn-reach-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let config = |n: u8, port: u16| {
        let mut config = Config::default()
            .listen(format!("127.0.2.{n}:{port}").parse().expect("an address"))
            .data_dir(base.join(n.to_string()))
            .mode(ModeSetting::Auto);
        config.protocol.nat_subnet_prefix_v4 = 32;
        config.protocol.diversity = cairn_core::Diversity {
            per_bucket: 20,
            per_table: 100,
        };
        config
    };
    let mut nodes = Vec::new();
    for n in 1..=5u8 {
        let dht = cairn_node::start(config(n, 0)).await.expect("starts");
        let addr = dht.status().await.expect("running").listen;
        if let Some((_, seed)) = nodes.first() {
            dht.bootstrap(vec![*seed]).await.expect("joins");
        }
        nodes.push((dht, addr));
    }
    for (dht, addr) in &nodes {
        within_a_minute(
            &format!("{addr} to be a public server"),
            || async { status(dht).await.reachability },
            |r| r.status == "public" && r.mode == "server",
        )
        .await;
    }
    let ports: Vec<u16> = nodes.iter().map(|(_, addr)| addr.port()).collect();
    for (dht, _) in nodes.drain(..) {
        dht.shutdown().await;
    }
    // All start again at once, each a client (it joined before), on its saved peers alone.
    let mut restarted = Vec::new();
    for (n, port) in (1..=5u8).zip(&ports) {
        let dht = cairn_node::start(config(n, *port))
            .await
            .expect("starts again");
        assert_eq!(
            status(&dht).await.mode,
            "client",
            "it joined a network before"
        );
        restarted.push(dht);
    }
    let rejoins = restarted.iter().map(|dht| dht.bootstrap(Vec::new()));
    let _ = futures_util::future::join_all(rejoins).await;
    for dht in &restarted {
        within_a_minute(
            "a restarted node to be a server again",
            || async { status(dht).await.reachability },
            |r| r.mode == "server",
        )
        .await;
    }
    for dht in restarted {
        dht.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// A UDP socket that keeps what arrives.
async fn sink(ip: &str) -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind(format!("{ip}:0")).await.expect("binds");
    let addr = socket.local_addr().expect("an address");
    (socket, addr)
}

/// The next datagram `socket` receives, and from where.
async fn next(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; MAX_DATAGRAM + 1];
    let (len, from) = tokio::time::timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .expect("a datagram")
        .expect("receives");
    buf.truncate(len);
    (buf, from)
}

fn code(response: &Response) -> Option<ErrorCode> {
    match response {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn a_probe_flood_is_refused_past_the_limit_while_an_honest_probe_is_served() {
    let (node, addr) = node_on("127.0.2.1", ModeSetting::Server).await;
    let peer = Peer {
        id: Some(status(&node).await.node_id),
        addr,
    };
    // The flooder asks probes to many targets, each once: only the per-server bound stops it.
    let mut flooder = Peer2::bind("127.0.2.2", 2, true).await;
    let mut probed = 0;
    let mut refused = 0;
    for n in 0..40u8 {
        let to: SocketAddr = format!("127.0.3.{}:9", n + 1).parse().expect("an address");
        let request = Request::Probe { to, nonce: [n; 16] };
        match flooder.request(peer, 1 + u64::from(n), request).await {
            Response::Probed => probed += 1,
            Response::Error(e) if e.code == ErrorCode::OVER_LIMIT => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(refused > 0, "{probed} probed, none refused");
    assert!(probed <= 16, "{probed} probed for one server");
    // An honest server is still served, and its probe is one small datagram from a port of
    // its own, not the node's.
    let (target, target_addr) = sink("127.0.2.4").await;
    let mut honest = Peer2::bind("127.0.2.3", 3, true).await;
    let request = Request::Probe {
        to: target_addr,
        nonce: [9; 16],
    };
    assert_eq!(honest.request(peer, 1, request).await, Response::Probed);
    let (bytes, from) = next(&target).await;
    assert_eq!(bytes.len(), PROBE_LEN);
    assert_eq!(bytes[0], PROBE);
    assert_eq!(&bytes[1..], &[9; 16]);
    assert_eq!(from.ip(), addr.ip());
    assert_ne!(from.port(), addr.port());
    // A client (no address announced) may not ask probes at all.
    let mut client = Peer2::bind("127.0.2.5", 5, false).await;
    let request = Request::Probe {
        to: target_addr,
        nonce: [5; 16],
    };
    let answer = client.request(peer, 1, request).await;
    assert_eq!(code(&answer), Some(ErrorCode::BAD_SIGNATURE), "{answer:?}");
    // Counted in the status and the metrics, like every refusal.
    let served = status(&node).await.reachability.served;
    assert_eq!(served.refused, refused + 1, "{served:?}");
    assert_eq!(served.sent, probed + 1, "{served:?}");
    let text = node.metrics().await.expect("running");
    let refusals = value(
        &samples(&text),
        "cairn_probes_served_total",
        &[("outcome", "refused")],
    );
    assert_eq!(refusals, (refused + 1) as f64);
    node.shutdown().await;
}

#[tokio::test]
async fn a_reach_names_no_address_the_probe_goes_to_the_askers_source() {
    // Two servers: B is asked, C probes. The asker's `reach` carries only a nonce; the probe
    // arrives at the socket the request came from.
    let (b, b_addr) = node_on("127.0.4.1", ModeSetting::Server).await;
    let (c, _) = node_on("127.0.4.2", ModeSetting::Server).await;
    c.bootstrap(vec![b_addr]).await.expect("joins");
    within_a_minute(
        "B's table to hold C",
        || async { status(&b).await.peers },
        |peers| *peers >= 1,
    )
    .await;
    let mut asker = Peer2::bind("127.0.4.3", 7, false).await;
    let to = Peer {
        id: Some(status(&b).await.node_id),
        addr: b_addr,
    };
    let answer = asker
        .request(to, 1, Request::Reach { nonce: [4; 16] })
        .await;
    assert_eq!(answer, Response::Probed);
    let (from, nonce) = asker.probe().await;
    assert_eq!(nonce, [4; 16]);
    assert_eq!(from.ip().to_string(), "127.0.4.2", "from C, not B");
    let served = status(&b).await.reachability.served;
    assert_eq!(served.relayed, 1, "{served:?}");
    for dht in [b, c] {
        dht.shutdown().await;
    }
}

#[tokio::test]
async fn a_probe_that_cannot_be_sent_is_not_confirmed() {
    // Found in review: C answered `probed` for a probe it never sent (no socket of the
    // target's family, or a failed send), and the checking node counted the silence toward
    // `private`. A node listening on IPv4 alone cannot send to an IPv6 target.
    let (node, addr) = node_on("127.0.5.1", ModeSetting::Server).await;
    let peer = Peer {
        id: Some(status(&node).await.node_id),
        addr,
    };
    let mut server = Peer2::bind("127.0.5.2", 2, true).await;
    let unreachable = Request::Probe {
        to: "[2001:db8::1]:9".parse().expect("an address"),
        nonce: [6; 16],
    };
    let answer = server.request(peer, 1, unreachable).await;
    assert_eq!(code(&answer), Some(ErrorCode::UNAVAILABLE), "{answer:?}");
    // One it can send is confirmed, and arrives.
    let (target, target_addr) = sink("127.0.5.3").await;
    let sendable = Request::Probe {
        to: target_addr,
        nonce: [7; 16],
    };
    assert_eq!(server.request(peer, 2, sendable).await, Response::Probed);
    assert_eq!(&next(&target).await.0[1..], &[7; 16]);
    let served = status(&node).await.reachability.served;
    assert_eq!((served.sent, served.unsent), (1, 1), "{served:?}");
    let text = node.metrics().await.expect("running");
    let unsent = value(
        &samples(&text),
        "cairn_probes_served_total",
        &[("outcome", "unsent")],
    );
    assert_eq!(unsent, 1.0);
    node.shutdown().await;
}
