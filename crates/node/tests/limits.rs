//! The node's defences against one host, through the real TCP path: each test shows the
//! attacker held back and an honest peer still served.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_node::{Config, Dht};
use common::*;
use tokio::io::AsyncWriteExt;

async fn node_with(config: Config) -> (Dht, std::net::SocketAddr) {
    let config = config.listen("127.0.0.1:0".parse().expect("valid"));
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

fn ping(id: u64) -> Vec<u8> {
    msg(vec![("type", V::Str("ping")), ("id", V::Uint(id))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_pipelined_requests_all_get_their_answers() {
    // Rate limits aside (their own tests are below), no request may go unanswered.
    let config = Config::default().request_rate(cairn_node::Rate::UNLIMITED);
    let (_dht, addr) = node_with(config).await;
    let mut c = Client::connect(addr).await;
    c.handshake().await;
    let burst: Vec<u8> = (1..=5_000).flat_map(ping).collect();
    let (mut read, mut write) = c.stream.into_split();
    // Write and read at once, as a client that pipelines must.
    let writer = tokio::spawn(async move { write.write_all(&burst).await.map(|()| write) });
    let mut answered = BTreeSet::new();
    while answered.len() < 5_000 {
        let Some(cairn_core::Message::Response { id, response }) =
            read_message_from(&mut read).await
        else {
            panic!("the node stopped answering after {} pongs", answered.len())
        };
        assert_eq!(response, cairn_core::Response::Pong);
        assert!(answered.insert(id), "request {id} answered twice");
    }
    assert_eq!(answered, (1..=5_000).collect());
    let _write = writer.await.expect("writer ran").expect("all written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_slowed_down_not_buffered() {
    let config = Config::default().request_rate(cairn_node::Rate::UNLIMITED);
    let (dht, addr) = node_with(config).await;
    let mut greedy = Client::connect(addr).await;
    greedy.handshake().await;
    // Pipeline pings and never read a single answer: a writer of its own counts the pings
    // that went out whole, and blocks when the node stops taking them.
    let (_read, mut write) = greedy.stream.into_split();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (1..=1_000).flat_map(ping).collect();
        for _ in 0..2_000 {
            if write.write_all(&chunk).await.is_err() {
                return false;
            }
            counter.fetch_add(1_000, Ordering::SeqCst);
        }
        true
    });
    // Wait until neither side moves: the node takes nothing more in, the writer is stuck.
    // Filling the sockets' buffers takes a debug build a few seconds (some 200,000 pings on
    // loopback). A node that took everything in fails either way: still moving at the bound,
    // or, once still, with the writer done.
    let status = |dht: &Dht| {
        let dht = dht.clone();
        async move { dht.status().await.expect("running").requests_handled }
    };
    let moving = "requests handled and pings written";
    let last = until_still(moving, Duration::from_secs(120), || async {
        (status(&dht).await, written.load(Ordering::SeqCst))
    })
    .await;
    assert!(
        !writer.is_finished() || !writer.await.expect("writer ran"),
        "the node took 2,000,000 pipelined requests it could not answer"
    );
    // What the node took in is bounded by the socket buffers and `max_requests_per_connection`:
    // it never got to the pings still queued behind them.
    let (handled, sent) = last;
    assert!(handled <= sent + 1_000, "{handled} handled of {sent} sent");
    assert_eq!(status(&dht).await, handled, "requests kept being taken in");
    // An honest peer is served meanwhile.
    let mut honest = Client::connect(addr).await;
    honest.handshake().await;
    assert_eq!(honest.ping(1).await, pong(1));
}

/// Waits until the node has dealt with `count` connections (accepted or refused).
async fn until_seen(dht: &Dht, count: u64) -> cairn_node::Status {
    let what = format!("the node deals with {count} connections");
    wait_for(
        &what,
        || async { dht.status().await.expect("running") },
        |s| {
            s.connections_accepted + s.connections_refused + s.connections_refused_per_host >= count
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_holding_1500_idle_connections_does_not_keep_others_out() {
    let (dht, addr) = node_with(Config::default()).await;
    let mut idle = Vec::new();
    for _ in 0..1_500 {
        idle.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connects"),
        );
    }
    let status = until_seen(&dht, 1_500).await;
    assert_eq!(status.connections_accepted, 16, "max_inbound_per_host");
    assert_eq!(status.connections_refused_per_host, 1_484);
    // Another host completes the handshake and is served at once.
    let mut honest = Client::connect_from("127.0.0.2", addr).await;
    honest.handshake().await;
    assert_eq!(honest.ping(1).await, pong(1));
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_inbound_a_newcomer_evicts_the_unauthenticated_not_the_busy() {
    let config = Config::default().max_inbound(8).max_inbound_per_host(1_000);
    let (dht, addr) = node_with(config).await;
    // An authenticated peer from another host, then silent connections that fill the node.
    let mut early = Client::connect_from("127.0.0.3", addr).await;
    early.handshake().await;
    assert_eq!(early.ping(1).await, pong(1));
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connects"),
        );
    }
    until_seen(&dht, 101).await;
    // A newcomer from another host takes the place of a silent connection...
    let mut honest = Client::connect_from("127.0.0.2", addr).await;
    honest.handshake().await;
    assert_eq!(honest.ping(2).await, pong(2));
    // ...while the silent ones keep evicting only each other: both peers are still served.
    for _ in 0..20 {
        idle.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connects"),
        );
    }
    until_seen(&dht, 122).await;
    assert_eq!(early.ping(3).await, pong(3));
    assert_eq!(honest.ping(4).await, pong(4));
    let status = dht.status().await.expect("running");
    assert!(status.connections_evicted >= 100, "{status:?}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_not_done_in_time_closes_the_connection() {
    let config = Config::default().handshake_timeout(Duration::from_millis(500));
    let (dht, addr) = node_with(config).await;
    // `hello` but never `auth`: pipelined requests are answered, but only until the deadline.
    let mut slow = Client::connect(addr).await;
    slow.hello_welcome().await;
    assert_eq!(slow.ping(1).await, pong(1));
    let mut done = Client::connect(addr).await;
    done.handshake().await;
    assert!(closed(&mut slow.stream).await, "no auth, closed");
    assert_eq!(done.ping(2).await, pong(2), "a completed handshake stays");
    assert_eq!(dht.status().await.expect("running").handshake_timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_busy_serving_requests_are_not_evicted() {
    let config = Config::default()
        .max_inbound(1)
        .request_rate(cairn_node::Rate::UNLIMITED);
    let (dht, addr) = node_with(config).await;
    // A peer with requests in service (it pipelines and does not read yet).
    let mut busy = Client::connect_from("127.0.0.2", addr).await;
    busy.handshake().await;
    // It writes until a write no longer goes through: the node has stopped reading.
    let chunk: Vec<u8> = (1..=1_000).flat_map(ping).collect();
    let mut stopped = false;
    for _ in 0..2_000 {
        let written = tokio::time::timeout(QUIET, busy.stream.write_all(&chunk)).await;
        if !written.is_ok_and(|written| written.is_ok()) {
            stopped = true;
            break;
        }
    }
    assert!(
        stopped,
        "the node took 2,000,000 pings in from a peer that reads nothing"
    );
    // The one place is busy: a newcomer is refused rather than cutting it off.
    let mut newcomer = Client::connect(addr).await;
    assert!(
        closed(&mut newcomer.stream).await,
        "no place for a newcomer"
    );
    let status = dht.status().await.expect("running");
    assert_eq!(status.connections_refused, 1);
    assert_eq!(status.connections_evicted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_identities_from_one_address_get_few_places_in_the_table() {
    let config = Config::default().max_inbound_per_host(1_000);
    let (dht, addr) = node_with(config).await;
    for i in 0..300u16 {
        let mut sybil = Client::connect(addr).await;
        let mut seed = [7u8; 32];
        seed[..2].copy_from_slice(&i.to_be_bytes());
        sybil.key = ed25519_dalek::SigningKey::from_bytes(&seed);
        sybil.port = 20_000 + i;
        sybil.handshake().await;
        assert_eq!(sybil.ping(1).await, pong(1), "identity {i} is still served");
    }
    let status = dht.status().await.expect("running");
    assert_eq!(status.peers, 10, "one /24 holds 10 places in all");
    // Counted each time one is seen: when its `auth` verifies, and at its ping.
    assert_eq!(status.contacts_crowded_out, 2 * 290);
    let peers = dht.peers().await.expect("running");
    assert!(peers.iter().all(|p| p.addr.ip().to_string() == "127.0.0.1"));
    // A peer from another network still gets in.
    let mut other = Client::connect_from("127.0.9.1", addr).await;
    other.port = 7_400;
    other.handshake().await;
    assert_eq!(other.ping(1).await, pong(1));
    assert_eq!(dht.status().await.expect("running").peers, 11);
}

/// The code of an answer: 0 for a success, else the error's code.
fn code(answer: Option<cairn_core::Message>) -> u16 {
    match answer {
        Some(cairn_core::Message::Response {
            response: cairn_core::Response::Error(e),
            ..
        }) => e.code.0,
        Some(cairn_core::Message::Response { .. }) => 0,
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_flooding_stores_is_refused_429_and_another_network_still_stores() {
    let (dht, addr) = node_with(Config::default()).await;
    let mut flood = Client::connect(addr).await;
    flood.handshake().await;
    let mut stored = 0u64;
    let mut refused = false;
    for n in 0..2_000u64 {
        flood.send(&store_message(n, &n.to_be_bytes())).await;
        match code(read_message(&mut flood.stream).await) {
            0 => stored += 1,
            429 => {
                refused = true;
                break;
            }
            other => panic!("store {n} answered {other}"),
        }
    }
    assert!(refused, "{stored} stores and never refused");
    assert!(stored >= 256, "the burst is honoured: {stored}");
    assert!(
        stored < 2_000,
        "refused long before the flood ended: {stored}"
    );
    // Another host in another network stores at once; the flooding host still gets answers.
    let mut other = Client::connect_from("127.0.7.1", addr).await;
    other.handshake().await;
    other.send(&store_message(1, b"from elsewhere")).await;
    assert_eq!(code(read_message(&mut other.stream).await), 0);
    assert_eq!(
        flood.ping(9_999).await,
        pong(9_999),
        "pings are within their own rate"
    );
    let status = dht.status().await.expect("running");
    assert_eq!(status.stores_rate_limited, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_flooding_requests_is_refused_429_and_others_are_served() {
    let (dht, addr) = node_with(Config::default()).await;
    let mut flood = Client::connect(addr).await;
    flood.handshake().await;
    let burst: Vec<u8> = (1..=3_000).flat_map(ping).collect();
    let (mut read, mut write) = flood.stream.into_split();
    let writer = tokio::spawn(async move { write.write_all(&burst).await.map(|()| write) });
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..3_000 {
        match code(read_message_from(&mut read).await) {
            0 => pongs += 1,
            429 => limited += 1,
            other => panic!("a ping answered {other}"),
        }
    }
    assert!(pongs >= 2_048, "the burst is honoured: {pongs}");
    assert!(limited > 0, "3,000 at once pass the burst of 2,048");
    let mut other = Client::connect_from("127.0.7.1", addr).await;
    other.handshake().await;
    assert_eq!(other.ping(1).await, pong(1));
    assert_eq!(
        dht.status().await.expect("running").requests_rate_limited,
        limited
    );
    let _write = writer.await.expect("writer ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_fills_only_its_share_of_the_store() {
    let config = Config::default()
        .store_rate(cairn_node::Rate::UNLIMITED)
        .limits(cairn_core::StoreLimits {
            max_items_per_subnet: 50,
            ..Default::default()
        });
    let (dht, addr) = node_with(config).await;
    let mut flood = Client::connect(addr).await;
    flood.handshake().await;
    let mut stored = 0;
    for n in 0..1_000u64 {
        flood.send(&store_message(n, &n.to_be_bytes())).await;
        match code(read_message(&mut flood.stream).await) {
            0 => stored += 1,
            429 => break,
            other => panic!("store {n} answered {other}"),
        }
    }
    assert_eq!(stored, 50, "the network's share");
    // Another host of the same /24 shares that share...
    let mut neighbour = Client::connect_from("127.0.0.2", addr).await;
    neighbour.handshake().await;
    neighbour.send(&store_message(1, b"same network")).await;
    assert_eq!(code(read_message(&mut neighbour.stream).await), 429);
    // ...while another network stores, and the store holds all of it.
    let mut other = Client::connect_from("127.0.7.1", addr).await;
    other.handshake().await;
    other.send(&store_message(1, b"another network")).await;
    assert_eq!(code(read_message(&mut other.stream).await), 0);
    let status = dht.status().await.expect("running");
    assert_eq!(status.items, 51);
    assert_eq!(status.stores_over_share, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_spent_connection_budget_a_connection_is_refused_and_served_once_a_permit_frees() {
    // A test network's nodes share a budget of connection ends; here it has two permits.
    let budget = Arc::new(tokio::sync::Semaphore::new(2));
    let config = Config::default().listen("127.0.0.1:0".parse().expect("valid"));
    let identity = cairn_node::Identity::generate();
    let store = cairn_node::cairn_core::MemoryStore::new(config.limits);
    let dht = cairn_node::start_with_budget(config, identity, store, None, budget.clone())
        .await
        .expect("starts");
    let addr = dht.status().await.expect("running").listen;
    // Other nodes of the process hold both permits: a newcomer is closed at once.
    let held = budget.clone().acquire_many_owned(2).await.expect("open");
    let mut refused = Client::connect(addr).await;
    refused.send(&refused.hello("cairn", 1)).await;
    assert!(
        closed(&mut refused.stream).await,
        "closed without a welcome"
    );
    let status = dht.status().await.expect("running");
    assert_eq!(status.connection_budget_exhausted, 1);
    assert_eq!(status.connections_accepted, 0);

    // One permit frees: the next peer is served, and holds that permit while connected.
    drop(held);
    let _other = budget.clone().acquire_owned().await.expect("open");
    let mut honest = Client::connect(addr).await;
    honest.handshake().await;
    assert_eq!(honest.ping(1).await, pong(1));
    assert_eq!(
        budget.available_permits(),
        0,
        "the connection holds the last permit"
    );
    drop(honest);
    wait_for(
        "the permit comes back when the connection closes",
        || async { budget.available_permits() },
        |&available| available > 0,
    )
    .await;
    dht.shutdown().await;
}
