//! One host floods a `cairn node` with 1 KiB immutable stores as fast as it can for 20 s: how
//! many the node keeps, how many it refuses (429), what its memory does, and whether a store
//! from another network is still kept afterwards. The attack of the hardening issue's table,
//! measured against the node's defaults.
//!
//! Run: `cargo bench -p cairn --bench flood`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../src/peer.rs"]
mod peer;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_node::cairn_core::{ImmutableItem, Message, Request, Response};
use cairn_node::client::ApiClient;
use common::{free_addr, spawn_node, temp_dir, wait_for_api};
use peer::Peer;

const FLOOD_FOR: Duration = Duration::from_secs(20);
const IN_FLIGHT: u64 = 32;

fn store(id: u64) -> Message {
    let mut value = id.to_be_bytes().to_vec();
    value.resize(1024, 0xc3);
    let item = ImmutableItem::new(Bytes::from(value)).into();
    Message::Request {
        id,
        request: Request::Store { item },
    }
}

/// Whether an answer is `stored` (true) or 429 (false).
fn stored(answer: Message) -> bool {
    match answer {
        Message::Response {
            response: Response::Stored,
            ..
        } => true,
        Message::Response {
            response: Response::Error(e),
            ..
        } if e.code.0 == 429 => false,
        other => panic!("unexpected answer {other:?}"),
    }
}

fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn main() {
    let dir = temp_dir("bench-flood");
    let (listen, api) = (free_addr(), free_addr());
    let mut node = spawn_node(&dir, listen, api, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    wait_for_api(&rt, api);
    let client = ApiClient::new(api);
    let pid = node.id();
    let before = resident_mib(pid);
    let mut flood = Peer::connect(listen, Some("127.0.0.1"), 1).expect("connects");
    let (mut kept, mut refused, mut id) = (0u64, 0u64, 0u64);
    let flooding = Instant::now();
    while flooding.elapsed() < FLOOD_FOR {
        for _ in 0..IN_FLIGHT {
            id += 1;
            flood.send(&store(id)).expect("sends");
        }
        for _ in 0..IN_FLIGHT {
            if stored(flood.receive().expect("an answer")) {
                kept += 1;
            } else {
                refused += 1;
            }
        }
    }
    let secs = flooding.elapsed().as_secs_f64();
    let after = resident_mib(pid);
    let mut other = Peer::connect(listen, Some("127.0.7.1"), 2).expect("connects");
    other.send(&store(u64::MAX)).expect("sends");
    let honest = stored(other.receive().expect("an answer"));
    let status = rt.block_on(client.status()).expect("status");
    println!("one host flooding 1 KiB stores for {secs:.0} s, {IN_FLIGHT} in flight:");
    println!(
        "  sent {id} ({:.0}/s): {kept} kept, {refused} refused 429",
        id as f64 / secs
    );
    println!(
        "  items held {}; refused by requests_rate_limited {}, stores_rate_limited {}, stores_over_share {}",
        status.items,
        status.requests_rate_limited,
        status.stores_rate_limited,
        status.stores_over_share
    );
    println!("  node resident memory {before:.1} MiB -> {after:.1} MiB");
    println!(
        "  a store from another network afterwards: {}",
        if honest { "kept" } else { "refused" }
    );
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
