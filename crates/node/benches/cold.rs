//! What connection setup costs a lookup and a put: on a 200-node test network in this
//! process, one operation at a time, a lookup of a fresh key from a random node (most of its
//! contacts are new to it, so most requests open a connection: TCP and the signed handshake),
//! the same lookup again (every connection now open), then a put of an item under that key
//! (its lookup and stores reuse those connections), and the put again. Prints the medians.
//!
//! Run: `cargo bench -p cairn-node --bench cold`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::ImmutableItem;
use cairn_testnet::{Silent, Testnet};
use rand::{Rng, SeedableRng};

const NODES: usize = 200;
const ROUNDS: usize = 100;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let net = Testnet::start(NODES).await.expect("nodes start");
    let failed = net.join(&mut rng, 32, &Silent).await;
    let opened = |net: &Testnet| {
        let nodes = net.nodes.clone();
        async move {
            let mut total = 0;
            for dht in &nodes {
                total += dht.status().await.map_or(0, |s| s.connections_opened);
            }
            total
        }
    };
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut setups = [0u64; 4];
    for i in 0..ROUNDS {
        let dht = &net.nodes[rng.random_range(0..NODES)];
        let value = Bytes::from(format!("cold {i}"));
        let key = *ImmutableItem::new(value.clone()).key();
        for (step, times) in times.iter_mut().enumerate() {
            let before = opened(&net).await;
            let start = Instant::now();
            if step < 2 {
                dht.find_node(key).await.expect("running");
            } else {
                dht.put_immutable(value.clone())
                    .await
                    .expect("put succeeds");
            }
            times.push(start.elapsed());
            setups[step] += opened(&net).await - before;
        }
    }
    println!("{NODES} nodes ({failed} joins failed), {ROUNDS} keys, one operation at a time:");
    let names = ["lookup, cold", "lookup, warm", "put, warm", "put again"];
    for ((name, times), opened) in names.iter().zip(times).zip(setups) {
        println!(
            "  {name:<14} p50 {:.2} ms, {:.1} connections opened each",
            median(times),
            opened as f64 / ROUNDS as f64
        );
    }
    net.shutdown().await;
}
