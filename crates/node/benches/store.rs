//! The durable store's throughput with 1 and 64 concurrent writers (group commit), and how
//! long a store of 100,000 items takes to open (read back and verify every item).
//!
//! Run: `cargo bench -p cairn-node --bench store` (writes under the system temp directory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::store::{CommitId, Origin, StoreLimits};
use cairn_core::{ImmutableItem, Item, SignedItem, Store, Time};
use cairn_node::store::RedbStore;
use ed25519_dalek::SigningKey;
use tokio::sync::oneshot;

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
    let (store, mut commits) = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
    let store = Arc::new(Mutex::new(store));
    // Who waits on which commit, as the driver's waiters keep it.
    let waiting: Arc<Mutex<HashMap<CommitId, oneshot::Sender<bool>>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let done: u64 = rt.block_on(async {
        let dispatch = waiting.clone();
        tokio::spawn(async move {
            while let Some(done) = commits.recv().await {
                let mut waiting = dispatch.lock().expect("lock");
                for commit in done.commits {
                    if let Some(waiter) = waiting.remove(&commit) {
                        let _ = waiter.send(done.result.is_ok());
                    }
                }
            }
        });
        let tasks: Vec<_> = (0..writers as u64)
            .map(|w| {
                let (store, waiting) = (store.clone(), waiting.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while start.elapsed() < run_for {
                        let durable = {
                            // Registered before the writer can report the commit.
                            let mut waiting = waiting.lock().expect("lock");
                            let mut store = store.lock().expect("lock");
                            let written = store.put(item(w << 40 | n), NOW, Origin::Unknown);
                            let commit = written.expect("stored").commit.expect("queued");
                            let (tx, rx) = oneshot::channel();
                            waiting.insert(commit, tx);
                            rx
                        };
                        assert!(durable.await.expect("answered"), "committed");
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
        let (mut store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        for n in 0..count {
            let item = if n % 2 == 0 {
                item(n)
            } else {
                let value = Bytes::from(vec![0xcd; 256]);
                SignedItem::sign(&key, &format!("item-{n}"), value, 1, 0)
                    .expect("valid")
                    .into()
            };
            let _ = store.put(item, NOW, Origin::Unknown).expect("stored");
        }
        store.close();
    }
    let start = Instant::now();
    let (store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
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
