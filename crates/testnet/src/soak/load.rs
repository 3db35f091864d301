//! The soak's two loops: the load (puts, gets checked against the ledger, deletes, watches,
//! from random nodes that are up) and the chaos (a worker killed with SIGKILL and started
//! again on its data directories, or one node stopped gracefully and started again).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cairn_node::cairn_core::Key;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::watch;

use super::cluster::Cluster;
use super::ledger::{Ack, Claim, Expect, Ledger, Verdict};
use super::tally::Tally;
use crate::TestnetError;
use crate::member::Fetched;
use crate::spread::{Held, Op, Reply};

/// Nodes that must answer (found or not) before a check counts a miss; a check that finds
/// what the ledger allows on any of them passes.
const ANSWERS: usize = 3;

/// Wrong copies whose key the soak takes a census of (each asks every node).
const CENSUSES: usize = 40;

/// Nodes a check tries at most (some may fail to answer: stopped, killed).
const ATTEMPTS: usize = 6;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the loops share.
pub(super) struct Shared {
    pub(super) cluster: Cluster,
    pub(super) ledger: Mutex<Ledger>,
    pub(super) tally: Mutex<Tally>,
    pub(super) rng: Mutex<StdRng>,
    pub(super) watch_for: Duration,
    pub(super) censuses: AtomicUsize,
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Shared {
    /// Takes a free slot whose publisher is up and for which `fits` holds.
    fn claim(&self, fits: impl Fn(&Claim) -> bool) -> Option<Claim> {
        let mut rng = lock(&self.rng);
        lock(&self.ledger).claim(&mut rng, |c| fits(c) && self.cluster.is_up(c.publisher))
    }

    /// Gets the slot's key from up to [`ATTEMPTS`] nodes other than its publisher, until one
    /// finds what the ledger allows or [`ANSWERS`] have answered otherwise. Counts each get
    /// if `record`.
    pub(super) async fn check(&self, claim: &Claim, record: bool) -> Verdict {
        let Some(key) = claim.key.map(|k| k.to_hex()) else {
            return Verdict::Failed;
        };
        let mut tried = vec![claim.publisher];
        let (mut answered, mut miss) = (0, None);
        for _ in 0..ATTEMPTS {
            let node = self.cluster.random_up(&mut lock(&self.rng), &tried);
            let Some(node) = node.filter(|_| answered < ANSWERS) else {
                break;
            };
            tried.push(node);
            let start = Instant::now();
            let asked = key.clone();
            let (found, micros) = match self
                .cluster
                .call(node, |n| Op::Fetch {
                    node: n,
                    key: asked,
                })
                .await
            {
                Some(Reply::Fetched { found, micros }) => (found, micros),
                other => (Fetched::Failed(format!("{other:?}")), micros_since(start)),
            };
            let verdict = lock(&self.ledger).judge(claim.slot, &claim.accept, &found);
            if record {
                let mut tally = lock(&self.tally);
                tally.get.record(verdict == Verdict::Good, micros);
                let failures = &mut tally.get_failures;
                match (&verdict, &found) {
                    (Verdict::Good, _) => {}
                    (Verdict::Failed, _) => failures.errors += 1,
                    (Verdict::Miss(_), Fetched::NotFound) => failures.not_found += 1,
                    (Verdict::Miss(_), _) => failures.wrong_copy += 1,
                }
            }
            if record
                && matches!(verdict, Verdict::Miss(_))
                && found != Fetched::NotFound
                && self.censuses.fetch_add(1, Ordering::Relaxed) < CENSUSES
            {
                self.census(claim, node, &key).await;
            }
            match verdict {
                Verdict::Good => return Verdict::Good,
                Verdict::Miss(what) => {
                    answered += 1;
                    miss = Some(format!("{what} (at node {node})"));
                }
                Verdict::Failed => {}
            }
        }
        miss.map_or(Verdict::Failed, Verdict::Miss)
    }

    /// Prints who holds which copy of `key` (hex), by distance: the soak's evidence when a
    /// get from `getter` found a wrong copy.
    pub(super) async fn census(&self, claim: &Claim, getter: usize, key: &str) {
        let Ok(target) = Key::from_hex(key) else {
            return;
        };
        let acked = lock(&self.ledger).acknowledged_seq(claim.slot);
        let mut held = self.cluster.census(key).await;
        held.sort_by_key(|(_, id, _)| Key::from_hex(id).map(|id| id.distance(&target)).ok());
        let tag = |h: &Option<Held>| match h {
            None => '.',
            Some(h) if h.kind == "tombstone" => 'T',
            Some(h) if h.seq == acked => 'N',
            Some(h) if h.seq < acked => 'S',
            Some(_) => 'U',
        };
        let line: String = held.iter().take(40).map(|(_, _, h)| tag(h)).collect();
        let far: String = held
            .iter()
            .skip(40)
            .map(|(_, _, h)| tag(h))
            .filter(|&t| t != '.')
            .collect();
        let rank = held.iter().position(|(i, _, _)| *i == getter);
        eprintln!(
            "census {} (node {}'s {}, acked seq {acked:?}): getter {getter} rank {rank:?} holds {:?}; 40 closest running: {line}; farther holders: {far}",
            &key[..16],
            claim.publisher,
            claim.name,
            held.iter()
                .find(|(i, _, _)| *i == getter)
                .map(|(_, _, h)| tag(h)),
        );
    }

    async fn put(&self) -> bool {
        let Some(claim) = self.claim(|_| true) else {
            return false;
        };
        let value = {
            let mut rng = lock(&self.rng);
            lock(&self.ledger).new_value(claim.slot, &mut rng)
        };
        let start = Instant::now();
        let (name, sent) = (claim.name.clone(), value.clone());
        let reply = self
            .cluster
            .call(claim.publisher, |node| Op::Put {
                node,
                name: Some(name),
                value: sent,
            })
            .await;
        let (ok, micros, ack) = match reply {
            Some(Reply::Put(done)) => (
                done.sample.ok,
                done.sample.micros,
                done.key
                    .as_deref()
                    .and_then(|k| Key::from_hex(k).ok())
                    .map(|key| Ack {
                        key,
                        seq: done.seq,
                        replicas: done.replicas,
                    }),
            ),
            _ => (false, micros_since(start), None),
        };
        lock(&self.tally).put.record(ok && ack.is_some(), micros);
        lock(&self.ledger).put_done(claim.slot, value, ack);
        true
    }

    async fn get(&self) -> bool {
        let Some(claim) = self.claim(|c| c.key.is_some() && !c.accept.is_empty()) else {
            return false;
        };
        if let Verdict::Miss(what) = self.check(&claim, true).await {
            let key = claim.key.map(|k| k.to_hex()).unwrap_or_default();
            let line = format!("{key} ({} of node {}): {what}", claim.name, claim.publisher);
            lock(&self.tally).missed.push(line);
        }
        lock(&self.ledger).release(claim.slot);
        true
    }

    async fn delete(&self) -> bool {
        let live = |c: &Claim| c.key.is_some() && c.accept.iter().any(|e| e != &Expect::Deleted);
        let Some(claim) = self.claim(live) else {
            return false;
        };
        let start = Instant::now();
        let name = claim.name.clone();
        let reply = self
            .cluster
            .call(claim.publisher, |node| Op::Delete { node, name });
        let (ok, micros) = match reply.await {
            Some(Reply::Deleted { ok, micros }) => (ok, micros),
            _ => (false, micros_since(start)),
        };
        lock(&self.tally).delete.record(ok, micros);
        lock(&self.ledger).delete_done(claim.slot, ok);
        true
    }

    async fn watch(&self) -> bool {
        // The slot is given back at once: new versions while the watch runs are the point.
        let Some(claim) = self.claim(|c| c.key.is_some()) else {
            return false;
        };
        lock(&self.ledger).release(claim.slot);
        let (Some(key), Some(node)) = (
            claim.key.map(|k| k.to_hex()),
            self.cluster.random_up(&mut lock(&self.rng), &[]),
        ) else {
            return false;
        };
        let millis = u64::try_from(self.watch_for.as_millis()).unwrap_or(u64::MAX);
        let start = Instant::now();
        let reply = self
            .cluster
            .call(node, |node| Op::Watch { node, key, millis });
        let (notifications, in_order) = match reply.await {
            Some(Reply::Watched {
                notifications,
                in_order,
            }) => (notifications, in_order),
            _ => (0, true),
        };
        let mut tally = lock(&self.tally);
        tally.notifications += notifications;
        tally.out_of_order += u64::from(!in_order);
        tally.watch.record(notifications > 0, micros_since(start));
        true
    }
}

/// One load loop: operations one after another (puts 35%, gets 40%, deletes 10%, watches
/// 15%) until `stop`.
pub(super) async fn load(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let roll = lock(&shared.rng).random_range(0..100);
        let ran = match roll {
            0..35 => shared.put().await,
            35..75 => shared.get().await,
            75..85 => shared.delete().await,
            _ => shared.watch().await,
        };
        if !ran {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The chaos loop: every `every`, kills a random worker (SIGKILL) or stops a random node
/// (gracefully), in turn, and after `downtime` starts it again on its data directories.
/// Ends when `stop` says so, with every node up again.
pub(super) async fn chaos(
    shared: Arc<Shared>,
    every: Duration,
    downtime: Duration,
    mut rng: StdRng,
    mut stop: watch::Receiver<bool>,
) -> Result<(), TestnetError> {
    for event in 0u64.. {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return Ok(()),
        }
        let cluster = &shared.cluster;
        if event % 2 == 0 {
            let w = rng.random_range(0..cluster.workers());
            cluster.kill_worker(w).await;
            lock(&shared.tally).kills += 1;
            tokio::time::sleep(downtime).await;
            cluster.restart_worker(w, &mut rng).await?;
            lock(&shared.tally).restarts += 1;
        } else if let Some(i) = cluster.random_up(&mut rng, &[]) {
            if cluster.stop_node(i).await {
                lock(&shared.tally).stops += 1;
            }
            tokio::time::sleep(downtime).await;
            if cluster.start_node(i, false, &mut rng).await {
                lock(&shared.tally).starts += 1;
            }
        }
    }
    Ok(())
}
