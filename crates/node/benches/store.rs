//! The durable store's throughput with 1 and 64 concurrent writers (group commit), and how
//! long a store of 100,000 items takes to open (read back and verify every item).
//!
//! Run: `cargo bench -p cairn-node --bench store` (writes under the system temp directory).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::store::StoreLimits;
use cairn_core::{ImmutableItem, Item, SignedItem, Store, Time};
use cairn_node::store::RedbStore;
use ed25519_dalek::SigningKey;

const NOW: Time = Time::from_secs(1_800_000_000);

fn item(n: u64) -> Item {
    let mut value = n.to_be_bytes().to_vec();
    value.resize(256, 0xab);
    ImmutableItem::new(Bytes::from(value)).into()
}

fn throughput(writers: usize, run_for: Duration) {
    let dir = std::env::temp_dir().join(format!(
        "cairn-bench-store-{writers}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Mutex::new(
        RedbStore::open(&dir, StoreLimits::default()).expect("opens"),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let done: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..writers as u64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while start.elapsed() < run_for {
                        let commit = {
                            let mut store = store.lock().expect("lock");
                            store.put(item(w << 40 | n), NOW).expect("stored");
                            store.take_commit().expect("queued")
                        };
                        commit.await.expect("answered").expect("committed");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("writer ran");
        }
        total
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{writers:>3} writer(s): {done:>7} durable stores in {secs:.2} s = {:>8.0} stores/s",
        done as f64 / secs
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn open_time(count: u64) {
    let dir = std::env::temp_dir().join(format!("cairn-bench-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = SigningKey::from_bytes(&[5; 32]);
    {
        let mut store = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        for n in 0..count {
            let item = if n % 2 == 0 {
                item(n)
            } else {
                let value = Bytes::from(vec![0xcd; 256]);
                SignedItem::sign(&key, &format!("item-{n}"), value, 1, 0)
                    .expect("valid")
                    .into()
            };
            store.put(item, NOW).expect("stored");
        }
        store.close();
    }
    let start = Instant::now();
    let store = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    let took = start.elapsed();
    assert_eq!(store.len() as u64, count);
    println!(
        "open a store of {count} items (half signed, 256-byte values, all verified): {took:.2?}"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    println!("cairn-node durable store (redb, fsync per commit)");
    throughput(1, Duration::from_secs(3));
    throughput(64, Duration::from_secs(3));
    open_time(100_000);
}
