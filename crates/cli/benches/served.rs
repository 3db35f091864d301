//! A node holding 100,000 items of 1 KiB: its resident memory, and how many `find_value`
//! requests per second it serves from that store over loopback TCP.
//!
//! Run: `cargo bench -p cairn --bench served`. It fills a data directory through the durable
//! store, starts the built `cairn node` on it (rate limits raised in its config file, so that
//! the figure is the node's speed, not its limits), reads the node's resident memory from
//! `/proc`, then runs client threads that each complete a handshake and keep 32
//! `find_value` requests for random held keys in flight for a few seconds.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../src/peer.rs"]
mod peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_node::cairn_core::{
    ImmutableItem, Item, Key, Message, Origin, Request, Response, Store, StoreLimits, Time,
};
use cairn_node::store::RedbStore;
use common::{free_addr, spawn_node, temp_dir, wait_for_api};
use peer::Peer;

const ITEMS: u64 = 100_000;
const CLIENTS: usize = 4;
const IN_FLIGHT: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(5);

fn item(n: u64) -> Item {
    let mut value = n.to_be_bytes().to_vec();
    value.resize(1024, 0x5a);
    ImmutableItem::new(Bytes::from(value)).into()
}

/// Fills `dir` with the items, all committed.
fn fill(dir: &std::path::Path) -> Vec<Key> {
    let (mut store, _commits) = RedbStore::open(dir, StoreLimits::default()).expect("opens");
    let now = Time::from_secs(1_800_000_000);
    let keys = (0..ITEMS)
        .map(|n| {
            let item = item(n);
            let key = *item.key();
            let _ = store.put(item, now, Origin::Unknown).expect("fits");
            key
        })
        .collect();
    store.close();
    keys
}

/// A field of `/proc/PID/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One client: `find_value`s with IN_FLIGHT in flight until `stop`.
fn client(addr: SocketAddr, keys: Arc<Vec<Key>>, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut peer = Peer::connect(addr, None, seed as u8).expect("connects");
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next_key = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        keys[(rng % keys.len() as u64) as usize]
    };
    let mut served = 0u64;
    let mut id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..IN_FLIGHT {
            id += 1;
            let request = Request::FindValue { key: next_key() };
            peer.send(&Message::Request { id, request }).expect("sends");
        }
        for _ in 0..IN_FLIGHT {
            match peer.receive().expect("an answer") {
                Message::Response {
                    response: Response::Value { .. },
                    ..
                } => served += 1,
                other => panic!("expected a value, got {other:?}"),
            }
        }
    }
    served
}

fn main() {
    let dir = temp_dir("bench-served");
    let filled = Instant::now();
    let keys = Arc::new(fill(&dir));
    println!(
        "filled a store with {ITEMS} items of 1 KiB in {:.1?}",
        filled.elapsed()
    );
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        "requests_per_host_per_sec = 100000000\nmax_inbound_per_host = 64\n",
    )
    .expect("config written");
    let (listen, api) = (free_addr(), free_addr());
    let config = config.to_string_lossy().into_owned();
    let mut node = spawn_node(&dir, listen, api, &["--config", &config]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let items = wait_for_api(&rt, api).items;
    let pid = node.id();
    println!(
        "node open with {items} items after {:.1?}: resident {:.1} MiB (peak {:.1} MiB)",
        started.elapsed(),
        proc_kib(pid, "VmRSS:") as f64 / 1024.0,
        proc_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (keys, stop, total) = (keys.clone(), stop.clone(), total.clone());
            std::thread::spawn(move || {
                let served = client(listen, keys, c as u64 + 1, stop);
                total.fetch_add(served, Ordering::Relaxed);
            })
        })
        .collect();
    let load = Instant::now();
    std::thread::sleep(RUN_FOR);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("client ran");
    }
    let secs = load.elapsed().as_secs_f64();
    let served = total.load(Ordering::Relaxed);
    println!(
        "find_value (hits, {CLIENTS} connections, {IN_FLIGHT} in flight each): {served} in {secs:.1} s = {:.0}/s",
        served as f64 / secs
    );
    println!(
        "after the load: resident {:.1} MiB (peak {:.1} MiB)",
        proc_kib(pid, "VmRSS:") as f64 / 1024.0,
        proc_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
