//! One node of a run as the workload sees it, in this process or in a worker process: how it
//! joins, puts and gets, and what its operations measured (the samples cross from a worker as
//! JSON, hence their wire forms).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_node::Dht;
use cairn_node::cairn_core::Key;
use cairn_report::Sample;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::spread::Held;
use crate::{Progress, spread};

/// What a put left to get back: its key, and a sample of what it cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PutDone {
    /// The key, when the put succeeded.
    pub(crate) key: Option<String>,
    pub(crate) replicas: usize,
    /// The `seq` a signed item was published with.
    #[serde(default)]
    pub(crate) seq: Option<u64>,
    pub(crate) sample: WireSample,
}

/// A [`Sample`] as it crosses from a worker process: the latency in microseconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct WireSample {
    pub(crate) ok: bool,
    pub(crate) micros: u64,
    pub(crate) hops: u32,
    pub(crate) requests: u32,
}

impl From<WireSample> for Sample {
    fn from(w: WireSample) -> Sample {
        Sample {
            ok: w.ok,
            latency: Duration::from_micros(w.micros),
            hops: w.hops,
            requests: w.requests,
        }
    }
}

/// One node of a run, in this process or in a worker.
#[derive(Clone)]
pub(crate) enum Member {
    Local(Dht),
    Remote(Arc<spread::Worker>, usize),
}

impl Member {
    pub(crate) async fn join(self, seeds: Vec<SocketAddr>) -> bool {
        match self {
            Member::Local(dht) => dht.bootstrap(seeds).await.is_ok(),
            Member::Remote(worker, node) => {
                matches!(
                    worker.call(spread::Op::Join { node, seeds }).await,
                    Some(spread::Reply::Joined(true))
                )
            }
        }
    }

    /// Puts `value`, signed under `name` if there is one, else immutable.
    pub(crate) async fn put(self, name: Option<String>, value: Bytes) -> PutDone {
        match self {
            Member::Local(dht) => put_local(&dht, name, value).await,
            Member::Remote(worker, node) => {
                let value = value.to_vec();
                match worker.call(spread::Op::Put { node, name, value }).await {
                    Some(spread::Reply::Put(done)) => done,
                    _ => PutDone {
                        key: None,
                        replicas: 0,
                        seq: None,
                        sample: worker_gone(),
                    },
                }
            }
        }
    }

    /// Gets `key` and checks the value is `expect`.
    pub(crate) async fn get(self, key: Key, expect: Bytes) -> WireSample {
        match self {
            Member::Local(dht) => get_local(&dht, key, &expect).await,
            Member::Remote(worker, node) => {
                let (key, expect) = (key.to_hex(), expect.to_vec());
                match worker.call(spread::Op::Get { node, key, expect }).await {
                    Some(spread::Reply::Got(sample)) => sample,
                    _ => worker_gone(),
                }
            }
        }
    }
}

/// The sample of an operation whose worker process is gone.
fn worker_gone() -> WireSample {
    WireSample {
        ok: false,
        micros: 0,
        hops: 0,
        requests: 0,
    }
}

pub(crate) async fn put_local(dht: &Dht, name: Option<String>, value: Bytes) -> PutDone {
    let start = Instant::now();
    let receipt = match name {
        Some(name) => dht.put_signed(&name, value, None).await,
        None => dht.put_immutable(value).await,
    };
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    match receipt {
        Ok(r) => PutDone {
            key: Some(r.key.to_hex()),
            replicas: r.replicas,
            seq: r.seq,
            sample: WireSample {
                ok: true,
                micros,
                hops: r.stats.hops,
                requests: r.stats.requests,
            },
        },
        Err(_) => PutDone {
            key: None,
            replicas: 0,
            seq: None,
            sample: WireSample {
                ok: false,
                micros,
                hops: 0,
                requests: 0,
            },
        },
    }
}

pub(crate) async fn get_local(dht: &Dht, key: Key, expect: &[u8]) -> WireSample {
    let start = Instant::now();
    let found = dht.get(key).await;
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let stats = found.as_ref().map(|f| f.stats).unwrap_or_default();
    WireSample {
        ok: found.is_ok_and(|f| f.item.value()[..] == *expect),
        micros,
        hops: stats.hops,
        requests: stats.requests,
    }
}

/// Joins every node but the first through up to three random nodes that joined before it,
/// `concurrency` joins at a time. Returns how many failed.
pub(crate) async fn join(
    members: &[Member],
    addrs: &[SocketAddr],
    rng: &mut StdRng,
    concurrency: usize,
    progress: &dyn Progress,
) -> usize {
    progress.stage("joining", members.len().saturating_sub(1) as u64);
    let mut failed = 0;
    let mut running = JoinSet::new();
    for (i, member) in members.iter().enumerate().skip(1) {
        if running.len() >= concurrency.max(1) {
            failed += usize::from(
                !running
                    .join_next()
                    .await
                    .is_some_and(|r| r.is_ok_and(|ok| ok)),
            );
            progress.step();
        }
        // Seeds are earlier nodes: joined, or at least joining, and so answering.
        let seeds: Vec<SocketAddr> = (0..3.min(i))
            .map(|_| addrs[rng.random_range(0..i)])
            .collect();
        running.spawn(member.clone().join(seeds));
    }
    while let Some(result) = running.join_next().await {
        failed += usize::from(!result.is_ok_and(|ok| ok));
        progress.step();
    }
    progress.finish();
    failed
}

/// What a get found, as the soak's ledger checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fetched {
    /// The newest version found holds this value.
    Value(Vec<u8>),
    /// No node reached holds a copy.
    NotFound,
    /// The newest copy found is a tombstone, of this `seq`.
    Deleted(u64),
    /// The get failed for another reason (the node stopped, say): it says nothing of the item.
    Failed(String),
}

pub(crate) async fn fetch_local(dht: &Dht, key: Key) -> (Fetched, u64) {
    let start = Instant::now();
    let found = match dht.get(key).await {
        Ok(found) => Fetched::Value(found.item.value().to_vec()),
        Err(cairn_node::GetError::NotFound { .. }) => Fetched::NotFound,
        Err(cairn_node::GetError::Deleted { seq, .. }) => Fetched::Deleted(seq),
        Err(e) => Fetched::Failed(e.to_string()),
    };
    (found, micros_since(start))
}

/// `dht`'s id (hex) and its local copy of `key`, if it holds one; `None` if it stopped.
pub(crate) async fn census_local(dht: &Dht, key: Key) -> Option<(String, Option<Held>)> {
    let id = dht.status().await.ok()?.node_id.to_hex();
    // The listing starts after a key: the one just before `key` (none before the first).
    let mut before = *key.as_bytes();
    let after = before.iter().any(|&b| b != 0).then(|| {
        for b in before.iter_mut().rev() {
            let (low, borrow) = b.overflowing_sub(1);
            *b = low;
            if !borrow {
                break;
            }
        }
        Key::from_bytes(before)
    });
    let listed = dht.items(after, 1).await.ok()?;
    let held = listed
        .into_iter()
        .find(|item| item.key == key.to_hex())
        .map(|item| Held {
            kind: item.kind,
            seq: item.seq,
        });
    Some((id, held))
}

/// Deletes `name` published by `dht`: whether it was acknowledged, and in how long.
pub(crate) async fn delete_local(dht: &Dht, name: &str) -> (bool, u64) {
    let start = Instant::now();
    let ok = dht.delete(name, None).await.is_ok();
    (ok, micros_since(start))
}

/// Watches `key` for `lasting`: the versions reported, and whether each came once and in
/// order (`seq` rising).
pub(crate) async fn watch_local(dht: &Dht, key: Key, lasting: Duration) -> (u64, bool) {
    let Ok(mut watch) = dht.watch(key).await else {
        return (0, true);
    };
    let (mut count, mut in_order, mut last) = (0, true, None);
    let until = tokio::time::Instant::now() + lasting;
    while let Ok(Some(item)) = tokio::time::timeout_at(until, watch.next()).await {
        count += 1;
        let seq = item.seq();
        in_order &= last.is_none_or(|last| seq > last);
        last = Some(seq);
    }
    (count, in_order)
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}
