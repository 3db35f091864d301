//! The metrics a node exports, as a scraper and a dashboard see them: every family the README
//! documents is in a fresh node's first scrape (an alert needs a series before the first
//! event), and a delete is counted and shown as a `delete`, not as the put of its tombstone.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cairn_testnet::{Silent, Testnet};
use common::{samples, value};
use rand::SeedableRng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A free loopback address for an API.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// The body of `GET /metrics`, over a fresh connection.
async fn metrics_text(api: SocketAddr) -> String {
    let mut stream = TcpStream::connect(api).await.expect("connects");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("reads");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Every `cairn_*` name in the README's metrics table (the rows that start with one).
fn documented_families() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let mut names = BTreeSet::new();
    for row in readme.lines().filter(|l| l.starts_with("| `cairn_")) {
        let first_cell = row.split(" | ").next().unwrap_or_default();
        for quoted in first_cell.split('`').skip(1).step_by(2) {
            let name = quoted.split('{').next().unwrap_or_default();
            names.insert(name.to_owned());
        }
    }
    names
}

/// The sample names a family shows in the text: itself, or a histogram's three.
fn sample_names(family: &str) -> Vec<String> {
    let mut names = vec![family.to_owned()];
    names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{family}{s}")));
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_lists_every_documented_family_with_a_sample() {
    let config = cairn_node::Config::default().listen("127.0.0.1:0".parse().expect("valid"));
    let dht = cairn_node::start(config).await.expect("starts");
    let api = free_addr();
    cairn_node::api::serve(dht.clone(), api)
        .await
        .expect("binds");
    let text = metrics_text(api).await;
    let shown: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let documented = documented_families();
    assert!(documented.len() >= 25, "the table was read: {documented:?}");
    let missing: Vec<&String> = documented
        .iter()
        .filter(|family| {
            !sample_names(family)
                .iter()
                .any(|n| shown.contains(n.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "documented but without a sample in a fresh node's scrape: {missing:?}"
    );
    // The example: no housekeeping has run yet, and every duty is listed at zero.
    let samples = samples(&text);
    for duty in ["expire", "republish", "replicate", "refresh"] {
        assert!(
            samples
                .iter()
                .any(|s| s.metric == "cairn_housekeeping_runs_total"
                    && s.labels.get("duty") == Some(duty)),
            "{duty} is listed"
        );
    }
    assert_eq!(value(&samples, "cairn_housekeeping_runs_total", &[]), 0.0);
    dht.shutdown().await;
}

/// Reads `/v1/events` (the dashboard's feed, which replays the recent operations first) until
/// a finished operation named `operation` arrives, for at most ten seconds.
async fn replayed_operation(api: SocketAddr, operation: &str) -> serde_json::Value {
    let mut stream = TcpStream::connect(api).await.expect("connects");
    let request = format!("GET /v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut lines = BufReader::new(stream).lines();
    let find = async {
        while let Some(line) = lines.next_line().await.expect("reads") {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(data).expect("JSON");
            if event["type"] == "done" && event["operation"] == operation {
                return event;
            }
        }
        panic!("the feed ended without a {operation}");
    };
    tokio::time::timeout(Duration::from_secs(10), find)
        .await
        .unwrap_or_else(|_| panic!("no {operation} in the dashboard's feed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_counted_and_shown_as_a_delete() {
    let net = Testnet::start(5).await.expect("nodes start");
    let mut rng = rand::rngs::StdRng::seed_from_u64(24);
    assert_eq!(net.join(&mut rng, 4, &Silent).await, 0);
    let api = free_addr();
    cairn_node::api::serve(net.nodes[0].clone(), api)
        .await
        .expect("the API binds");
    let dht = &net.nodes[0];
    let put = dht
        .put_signed("doomed", "v".into(), None)
        .await
        .expect("put");
    let deleted = dht.delete("doomed", None).await.expect("deleted");
    assert_eq!(deleted.key, put.key);

    let samples = samples(&metrics_text(api).await);
    let lookups = |operation| {
        value(
            &samples,
            "cairn_lookups_total",
            &[("operation", operation), ("outcome", "ok")],
        )
    };
    assert_eq!(lookups("put"), 1.0, "the put alone counts as a put");
    assert_eq!(lookups("delete"), 1.0, "the delete counts as a delete");
    assert_eq!(
        value(
            &samples,
            "cairn_lookup_duration_seconds_count",
            &[("operation", "delete")]
        ),
        1.0
    );

    let done = replayed_operation(api, "delete").await;
    assert_eq!(done["target"], put.key.to_hex());
    assert_eq!(done["outcome"], "ok");
    net.shutdown().await;
}
