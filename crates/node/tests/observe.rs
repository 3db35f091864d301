//! What a running node shows of itself over its HTTP API: `/metrics` (parsed by a Prometheus
//! text parser), the ring and items the dashboard draws, the page and its assets, and the live
//! activity feed following a lookup from start to end.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cairn_node::view::{HeldItem, Ring};
use cairn_node::{Activity, Config, Dht};
use cairn_testnet::{Silent, Testnet};
use common::Client;
use common::value;
use prometheus_parse::Sample;
use rand::SeedableRng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A free loopback address for an API.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// A GET over a fresh connection: the status code, the content type and the body.
async fn http_get(api: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(api).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("reads");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head[9..12].parse().expect("a status code");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (status, content_type, body.to_owned())
}

async fn scrape(api: SocketAddr) -> Vec<Sample> {
    let (status, content_type, body) = http_get(api, "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/openmetrics-text"));
    common::samples(&body)
}

/// Five nodes of version 1 (TCP only): what these tests count is the connections' work;
/// `datagrams.rs` counts the datagram plane's.
async fn five_joined() -> (Testnet, SocketAddr) {
    let net = Testnet::start_configured(0, 1, 5, |c| c.datagrams(false))
        .await
        .expect("nodes start");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    assert_eq!(net.join(&mut rng, 4, &Silent).await, 0);
    let api = free_addr();
    cairn_node::api::serve(net.nodes[0].clone(), api)
        .await
        .expect("the API binds");
    (net, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_node_did_and_agree_with_its_status() {
    let (net, api) = five_joined().await;
    let dht = &net.nodes[0];
    dht.put_signed("counted", "v".into(), None)
        .await
        .expect("put");
    let other = net.nodes[3]
        .put_immutable("from 3".into())
        .await
        .expect("put");
    dht.get(other.key).await.expect("found");

    let samples = scrape(api).await;
    let status = dht.status().await.expect("running");
    // Requests both ways, by type and outcome; their round trips; connections.
    assert!(
        value(
            &samples,
            "cairn_requests_received_total",
            &[("request", "find_node"), ("outcome", "ok")]
        ) > 0.0
    );
    assert!(
        value(
            &samples,
            "cairn_requests_sent_total",
            &[("request", "store"), ("outcome", "ok")]
        ) >= 4.0
    );
    assert!(
        value(
            &samples,
            "cairn_request_duration_seconds_count",
            &[("request", "store")]
        ) >= 4.0
    );
    assert!(value(&samples, "cairn_connections_opened_total", &[]) >= 1.0);
    assert!(
        value(
            &samples,
            "cairn_connections_open",
            &[("direction", "outbound")]
        ) >= 1.0
    );
    // Lookups by operation and outcome, their latency and hops.
    assert_eq!(
        value(
            &samples,
            "cairn_lookups_total",
            &[("operation", "put"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "cairn_lookups_total",
            &[("operation", "get"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "cairn_lookup_duration_seconds_count",
            &[("operation", "get")]
        ),
        1.0
    );
    assert!(value(&samples, "cairn_lookup_hops_count", &[("operation", "put")]) >= 1.0);
    // The gauges are the status's figures.
    assert_eq!(value(&samples, "cairn_items", &[]), status.items as f64);
    assert_eq!(
        value(&samples, "cairn_routing_table_contacts", &[]),
        status.peers as f64
    );
    assert_eq!(
        value(&samples, "cairn_network_size_estimate", &[]),
        status.network_size as f64
    );
    assert!(value(&samples, "cairn_item_bytes", &[]) >= 1.0);
    assert_eq!(
        value(&samples, "cairn_connections_opened_total", &[]),
        status.connections_opened as f64
    );
    // Refusal counters exist at zero before anyone is refused.
    assert_eq!(
        value(
            &samples,
            "cairn_refusals_total",
            &[("reason", "request_rate")]
        ),
        0.0
    );
    assert!(
        samples
            .iter()
            .any(|s| s.metric == "cairn_connections_refused_total")
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_host_is_counted_and_an_honest_one_is_not() {
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .request_rate(cairn_node::Rate {
            per_second: 0.001,
            burst: 3.0,
        });
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    let api = free_addr();
    cairn_node::api::serve(dht.clone(), api)
        .await
        .expect("binds");
    let mut flood = Client::connect_from("127.0.0.2", addr).await;
    flood.handshake().await;
    let mut refused = 0;
    for id in 1..=10 {
        if flood.ping(id).await != common::pong(id) {
            refused += 1;
        }
    }
    assert_eq!(refused, 7, "the burst of 3 passes, the rest is refused");
    let mut honest = Client::connect_from("127.0.0.3", addr).await;
    honest.handshake().await;
    assert_eq!(
        honest.ping(1).await,
        common::pong(1),
        "another host is served"
    );
    let samples = scrape(api).await;
    assert_eq!(
        value(
            &samples,
            "cairn_refusals_total",
            &[("reason", "request_rate")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &samples,
            "cairn_requests_received_total",
            &[("request", "ping"), ("outcome", "ok")]
        ),
        4.0,
        "three from the flood and one honest ping were answered"
    );
    dht.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_items_and_page_show_what_the_node_knows_and_holds() {
    let (net, api) = five_joined().await;
    let dht = &net.nodes[0];
    let receipt = dht
        .put_signed("shown", "12345".into(), None)
        .await
        .expect("put");
    let key = receipt.key.to_hex();
    let status = dht.status().await.expect("running");

    let (code, _, body) = http_get(api, "/v1/ring").await;
    assert_eq!(code, 200);
    let ring: Ring = serde_json::from_str(&body).expect("a ring");
    assert_eq!(
        ring.center.as_deref(),
        Some(status.node_id.to_hex().as_str())
    );
    assert_eq!(ring.nodes.len(), 5, "itself and its four contacts");
    assert_eq!(ring.nodes[0].id, status.node_id.to_hex());
    assert!(ring.nodes[1..].iter().all(|n| n.bucket.is_some()));
    assert!(
        ring.items
            .iter()
            .any(|i| i.key == key && i.kind == "signed")
    );

    let (code, _, body) = http_get(api, "/v1/items?limit=10").await;
    assert_eq!(code, 200);
    let items: Vec<HeldItem> = serde_json::from_str(&body).expect("items");
    let held = items
        .iter()
        .find(|i| i.key == key)
        .expect("the put is held");
    assert_eq!((held.kind.as_str(), held.own), ("signed", true));
    assert!(held.size > 5, "the value, name and signature count");
    assert_eq!(held.seq, receipt.seq);
    let (code, _, _) = http_get(api, "/v1/items?after=nothex").await;
    assert_eq!(code, 400, "a bad key is refused");

    // The page and its assets are served by the node itself.
    let (code, content_type, page) = http_get(api, "/").await;
    assert_eq!(
        (code, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(page.contains("/dashboard.js") && page.contains("id=\"ring\""));
    for (path, kind) in [
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let (code, content_type, body) = http_get(api, path).await;
        assert_eq!(code, 200);
        assert!(content_type.starts_with(kind) && !body.is_empty());
        // Nothing is fetched from elsewhere: the SVG namespace is the only address.
        let elsewhere = body.replace("http://www.w3.org/2000/svg", "");
        assert!(!elsewhere.contains("http://") && !elsewhere.contains("https://"));
    }
    net.shutdown().await;
}

/// Reads Server-Sent Events from `/v1/events` until `enough` says so; what it read, as an
/// error if `enough` never said so within 30 s.
async fn read_events(
    api: SocketAddr,
    started: tokio::sync::oneshot::Sender<()>,
    enough: impl Fn(&[Activity]) -> bool,
) -> Result<Vec<Activity>, Vec<Activity>> {
    let mut stream = TcpStream::connect(api).await.expect("connects");
    let request = format!("GET /v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut lines = BufReader::new(stream).lines();
    let mut seen = Vec::new();
    let mut started = Some(started);
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.is_empty() {
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
            }
            if let Some(data) = line.strip_prefix("data: ") {
                seen.push(serde_json::from_str(data).expect("an activity"));
                if enough(&seen) {
                    return true;
                }
            }
        }
        false
    };
    let read = tokio::time::timeout(Duration::from_secs(30), read).await;
    if matches!(read, Ok(true)) {
        Ok(seen)
    } else {
        Err(seen)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_follows_a_lookup_from_start_through_its_hops_to_its_end() {
    let (net, api) = five_joined().await;
    let dht: Dht = net.nodes[0].clone();
    let ids: HashMap<String, usize> = {
        let mut ids = HashMap::new();
        for (i, node) in net.nodes.iter().enumerate() {
            ids.insert(node.status().await.expect("running").node_id.to_hex(), i);
        }
        ids
    };
    let own = dht.status().await.expect("running").node_id.to_hex();
    let target = cairn_core::Id::hash(b"somewhere");
    let (started, ready) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(read_events(api, started, move |seen| {
        seen.iter().any(|a| {
            matches!(a, Activity::Done { operation, target: t, .. }
                if operation == "find_node" && *t == target.to_hex())
        })
    }));
    // The feed subscribes before it sends its response head: once the head is here, every
    // event of the lookup will be too.
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .expect("the feed's response head within 10 s")
        .expect("the reader reads the head");
    dht.find_node(target).await.expect("running");
    let seen = reader
        .await
        .expect("the reader ends")
        .unwrap_or_else(|seen| panic!("the lookup's end not in the feed within 30 s: {seen:?}"));

    let query = seen
        .iter()
        .find_map(|a| match a {
            Activity::Lookup {
                query,
                operation,
                target: t,
                node,
            } if operation == "find_node" => {
                assert_eq!(
                    (t.as_str(), node.as_str()),
                    (target.to_hex().as_str(), own.as_str())
                );
                Some(*query)
            }
            _ => None,
        })
        .expect("the lookup's start");
    let hops: Vec<&Activity> = seen
        .iter()
        .filter(|a| matches!(a, Activity::Hop { query: q, .. } if *q == query))
        .collect();
    assert!(!hops.is_empty(), "{seen:?}");
    for hop in hops {
        let Activity::Hop { to, from, .. } = hop else {
            unreachable!()
        };
        assert!(ids.contains_key(to), "hops go to nodes of the network");
        assert!(from.as_ref().is_none_or(|f| ids.contains_key(f)));
    }
    assert!(seen.iter().any(|a| matches!(a,
        Activity::Done { query: q, outcome, .. } if *q == query && outcome == "ok")));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_node_counts_its_commits_and_their_duration() {
    let (dht, dir) = common::durable_node("observe").await;
    let api = free_addr();
    cairn_node::api::serve(dht.clone(), api)
        .await
        .expect("binds");
    for name in ["one", "two", "three"] {
        dht.put_signed(name, "v".into(), None).await.expect("put");
    }
    let samples = scrape(api).await;
    let commits = value(&samples, "cairn_commits_total", &[("outcome", "ok")]);
    assert!(
        (1.0..=3.0).contains(&commits),
        "three puts, in one to three group commits: {commits}"
    );
    assert_eq!(
        value(&samples, "cairn_commit_duration_seconds_count", &[]),
        commits
    );
    assert_eq!(
        value(&samples, "cairn_commits_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(value(&samples, "cairn_items", &[]), 3.0);
    dht.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
