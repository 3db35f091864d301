//! A node learns its address as its peers see it (`docs/design.md`, "Observed address"):
//! live nodes on loopback, each on its own 127.0.0.x address, their datagram answers carrying
//! `observed`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use cairn_core::NodeId;
use cairn_node::{Config, Dht, FamilyReachability};
use common::*;

/// A node on `ip`, any free port, counting one vote per host (`/32`) when `per_host`.
async fn node_on(ip: &str, per_host: bool) -> (Dht, SocketAddr) {
    let mut config = Config::default().listen(format!("{ip}:0").parse().expect("an address"));
    if per_host {
        config.protocol.nat_subnet_prefix_v4 = 32;
    }
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

/// `count` nodes on 127.0.0.1, 127.0.0.2, ..., each bootstrapped through the first.
async fn network(count: u8, per_host: bool) -> Vec<(Dht, SocketAddr)> {
    let mut nodes = Vec::new();
    for n in 1..=count {
        nodes.push(node_on(&format!("127.0.0.{n}"), per_host).await);
    }
    let seed = nodes[0].1;
    for (dht, _) in &nodes[1..] {
        dht.bootstrap(vec![seed]).await.expect("joins");
    }
    nodes
}

/// Runs one lookup from `dht` (so it opens sessions and hears answers), then reports what it
/// knows of its IPv4 address.
async fn look_up_and_report(dht: &Dht, round: &AtomicU32) -> FamilyReachability {
    let n = round.fetch_add(1, Ordering::Relaxed);
    let _ = dht.find_node(NodeId::hash(&n.to_be_bytes())).await;
    dht.status().await.expect("running").reachability.ipv4
}

#[tokio::test]
async fn every_node_learns_the_address_its_peers_see() {
    let nodes = network(5, true).await;
    for (dht, addr) in &nodes {
        let round = AtomicU32::new(0);
        let seen = wait_for(
            &format!("{addr} learns its address"),
            || look_up_and_report(dht, &round),
            |r| r.observed.is_some(),
        )
        .await;
        // Loopback has no NAT: peers see the address the node sends from.
        assert_eq!(seen.observed, Some(addr.to_string()));
        assert_eq!(seen.mapping, "independent");
        assert!(seen.votes >= 3, "{seen:?}");
        assert_eq!(seen.changes, 1);
        let status = dht.status().await.expect("running");
        assert_eq!(status.reachability.ipv6.observed, None, "no IPv6 peer");
        let text = dht.metrics().await.expect("running");
        let changes = value(
            &samples(&text),
            "cairn_observed_changes_total",
            &[("family", "ipv4")],
        );
        assert_eq!(changes, 1.0);
    }
    for (dht, _) in nodes {
        dht.shutdown().await;
    }
}

#[tokio::test]
async fn peers_of_one_subnet_are_one_vote() {
    // With the default unit (/24), the whole loopback network is one subnet: however many of
    // its nodes answer, they make one vote, and one vote is no address.
    let nodes = network(4, false).await;
    let (dht, addr) = &nodes[1];
    let round = AtomicU32::new(0);
    // A lookup ends with the closest nodes that answered: 3 of them answered one lookup.
    wait_for(
        &format!("{addr} hears from 3 peers"),
        || async {
            let n = round.fetch_add(1, Ordering::Relaxed);
            let target = NodeId::hash(&n.to_be_bytes());
            dht.find_node(target).await.map(|c| c.len()).unwrap_or(0)
        },
        |answered| *answered >= 3,
    )
    .await;
    let report = dht.status().await.expect("running").reachability.ipv4;
    assert_eq!(report.votes, 1, "{report:?}");
    assert_eq!(report.observed, None);
    assert_eq!(report.mapping, "unknown");
    for (dht, _) in nodes {
        dht.shutdown().await;
    }
}
