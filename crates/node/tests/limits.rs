//! The node's defences against one host, through the real TCP path: each test shows the
//! attacker held back and an honest peer still served.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_node::{Config, Dht};
use common::*;
use tokio::io::AsyncWriteExt;

async fn node_with(config: Config) -> (Dht, std::net::SocketAddr) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("valid"),
        ..config
    };
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

fn ping(id: u64) -> Vec<u8> {
    msg(vec![("type", V::Str("ping")), ("id", V::Uint(id))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_pipelined_requests_all_get_their_answers() {
    let (_dht, addr) = node_with(Config::default()).await;
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
    let config = Config {
        read_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let (dht, addr) = node_with(config).await;
    let mut greedy = Client::connect(addr).await;
    greedy.handshake().await;
    // Pipeline pings and never read a single answer, until the node stops taking them.
    let chunk: Vec<u8> = (1..=1_000).flat_map(ping).collect();
    let mut written = 0u64;
    let mut stalled = false;
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_secs(1), greedy.stream.write_all(&chunk)).await {
            Ok(Ok(())) => written += 1_000,
            Ok(Err(_)) | Err(_) => {
                stalled = true;
                break;
            }
        }
    }
    assert!(
        stalled,
        "the node kept reading {written} requests it could not answer"
    );
    // Nothing more is taken in while the greedy client does not read: what the node holds
    // for it is bounded by the socket buffers and `max_requests_per_connection`.
    let handled = dht.status().await.expect("running").requests_handled;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = dht.status().await.expect("running").requests_handled;
    assert_eq!(handled, later, "requests kept being taken in");
    assert!(handled < written, "{handled} handled of {written} written");
    // An honest peer is served meanwhile.
    let mut honest = Client::connect(addr).await;
    honest.handshake().await;
    assert_eq!(honest.ping(1).await, pong(1));
}
