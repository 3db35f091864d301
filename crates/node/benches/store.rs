//! The durable store's throughput with 1 and 64 concurrent writers (group commit), how long a
//! store of 100,000 items takes to open (read back and verify every item), and what one read
//! of a held item costs (`Store::get`, as a `find_value` hit runs it on the driver).
//!
//! Run: `cargo bench -p cairn-node --bench store` (writes under the system temp directory);
//! `cargo bench -p cairn-node --bench store -- read` runs only the read.
//!
//! Why a read stays on the driver: a `find_value` hit reads one item in one redb read
//! transaction, and measured it is cheap. With `cargo bench -p cairn-node --bench store --
//! read` (release build, 2 cores shared with other builds), a read of a held 256-byte item
//! from a store of 100,000 took 13.23 µs in a first pass after a reopen and 13.22 µs in a
//! second (the file was in the operating system's cache). That is about 1.3% of a core at
//! 1,000 hits a second, and moving the read to a blocking task would add a thread hop and a
//! channel round trip of a similar cost, and make serving asynchronous in the sans-IO core. A
//! store far larger than memory pays a disk read here: that is the case in which to measure
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::{CommitId, ImmutableItem, Item, Origin, SignedItem, Store, StoreLimits, Time};
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

/// Time per `Store::get` of a held item in a store of `count` items (256-byte values), over
/// two passes after a reopen: the first reads each item from the file, the second finds redb's
/// cache warm where it fits.
fn read_time(count: u64) {
    let dir = std::env::temp_dir().join(format!("cairn-bench-read-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys: Vec<_> = (0..count).map(|n| *item(n).key()).collect();
    {
        let (mut store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        for n in 0..count {
            let _ = store.put(item(n), NOW, Origin::Unknown).expect("stored");
        }
        store.close();
    }
    let (store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    // Every read goes to the file: nothing is pending after a reopen.
    for pass in ["first", "second"] {
        let start = Instant::now();
        for key in &keys {
            let held = store.get(key, NOW).expect("readable");
            assert!(held.is_some(), "held");
        }
        let each = start.elapsed() / u32::try_from(count).expect("fits");
        println!("read a held item ({pass} pass over {count} items, 256-byte values): {each:.2?}");
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    println!("cairn-node durable store (redb, fsync per commit)");
    if std::env::args().skip(1).any(|a| a == "read") {
        read_time(100_000);
        return;
    }
    throughput(1, Duration::from_secs(3));
    throughput(64, Duration::from_secs(3));
    open_time(100_000);
    read_time(100_000);
}
