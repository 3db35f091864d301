//! Housekeeping (see `docs/design.md`, "Storage and housekeeping"), driven by `now` like
//! everything else: republishing own items, replicating held items to the current k closest
//! nodes, refreshing idle buckets, and dropping expired items. A node that starts on a store
//! holding others' items (a restart on its data directory) also catches up on them soon
//! after it starts, one at a time over [`CATCH_UP_WINDOW`]: a get of each that asks all of
//! the k closest, keeps the newest copy and writes it back to those that lack it, so that
//! copies replaced or deleted while the node was away are not served until its first
//! replication. Until an item's catch-up hears from another node (or a peer stores a copy of
//! it, or a replication round takes it in) the node answers it `unchecked`, so that getters do
//! not let a copy that may have been replaced while the node was away count toward their
//! quorum. A catch-up that heard from nobody checked nothing: the item goes back to the end
//! of the catch-up, at most [`CATCH_UP_TRIES`] tries in all, and stays unchecked until one
//! is heard or the first replication round.
//!
//! Each duty has a deadline that `poll_timeout` reports. When one falls due, its work is put
//! in a queue of tasks, and at most `max_housekeeping` of them run as lookups at once, so a
//! node holding many items never floods its peers. The queue holds at most one task per item
//! held plus one per bucket. This part keeps the schedule, the queue and the count of
//! lookups running; the node starts each task's lookup and reports when it ends.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::trace::{Duty, Trace, Traces};
use crate::config::Config;
use crate::id::{Distance, Id, Key, NodeId};
use crate::routing::RoutingTable;
use crate::store::Store;
use crate::time::Time;

/// How long after its start, at its phase (from half of it to one and a half), a restarted
/// node begins to catch up: its bootstrap has filled its table by then.
const CATCH_UP_DELAY: Duration = Duration::from_secs(30);

/// Over how long a restarted node spreads its catch-up on what it held (at most half its
/// replication interval): one item at a time, evenly, so that its peers see a trickle, not
/// the burst of a replication round (a soak whose restarted nodes replicated everything at
/// once lost a fifth of its put throughput; see `docs/testing.md`), yet short enough to end
/// before the next restart of a node that restarts every few minutes.
const CATCH_UP_WINDOW: Duration = Duration::from_secs(120);

/// How many catch-ups an item gets that hear from nobody (its table empty, or every node it
/// asked down) before it waits, unchecked, for the first replication round.
pub(super) const CATCH_UP_TRIES: u32 = 3;

/// The least wait before an item whose catch-up heard from nobody is tried again, when no
/// other item of the catch-up is left to go before it.
const CATCH_UP_RETRY: Duration = Duration::from_secs(30);

/// What housekeeping has to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Task {
    /// Store an item (own or held) at the k closest nodes to its key.
    Store(Key),
    /// Catch up on an item held when a restarted node started: find the newest copy among the
    /// k closest, keep it, and write it back to those that lack it.
    CatchUp(Key),
    /// Look up an id to refresh its bucket.
    Refresh(Id),
}

/// When each duty is next due.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    republish: Time,
    replicate: Time,
    refresh: Time,
    expire: Time,
    /// When the next item of the catch-up is due, while one is left.
    catch_up: Option<Time>,
}

/// The items a restarted node held when it started, to be replicated one at a time.
#[derive(Debug, Default)]
struct CatchUp {
    keys: VecDeque<Key>,
    /// Between two items.
    every: Duration,
    /// When the node started: items a peer stored since are fresh and skipped.
    started: Option<Time>,
    /// The items held at the start whose copies are not yet checked against the other
    /// replicas: those still in `keys`, and those whose catch-up is queued or running.
    unchecked: BTreeSet<Key>,
    /// The catch-ups that heard from nobody, per item (at most one entry per item held at
    /// the start).
    missed: BTreeMap<Key, u32>,
}

/// Housekeeping state of a node.
#[derive(Debug, Default)]
pub(super) struct Housekeeping {
    schedule: Option<Schedule>,
    /// When each key last arrived in a `store` from a peer: replication skips those items
    /// for an interval, since whoever sent them is replicating them already.
    received: BTreeMap<Key, Time>,
    queue: VecDeque<Task>,
    /// Housekeeping lookups running.
    running: usize,
    catch_up: CatchUp,
}

impl Housekeeping {
    /// The earliest deadline, once the schedule has started.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.schedule.map(|s| {
            let next = s.republish.min(s.replicate).min(s.refresh).min(s.expire);
            s.catch_up.map_or(next, |at| next.min(at))
        })
    }

    /// A peer stored `key` here at `now`: the copy held is now as new as the peer's.
    pub(super) fn received(&mut self, key: Key, now: Time) {
        self.received.insert(key, now);
        self.catch_up.unchecked.remove(&key);
    }

    /// Whether the copy of `key` held is one the node held when it started and has not yet
    /// checked against the other replicas (the `unchecked` key of a `value` answer).
    pub(super) fn is_unchecked(&self, key: &Key) -> bool {
        self.catch_up.unchecked.contains(key)
    }

    /// The catch-up on `key` ended: whatever it found is kept, the copy is checked.
    pub(super) fn caught_up(&mut self, key: &Key) {
        self.catch_up.unchecked.remove(key);
        self.catch_up.missed.remove(key);
    }

    /// The catch-up on `key` ended at `now` having heard from nobody: the copy stays
    /// unchecked, and is tried again after the items still to go (at least [`CATCH_UP_RETRY`]
    /// later when none is), unless it had [`CATCH_UP_TRIES`] tries already.
    pub(super) fn missed(&mut self, now: Time, key: Key) {
        if !self.catch_up.unchecked.contains(&key) {
            // Checked meanwhile (a peer stored it), or a replication round took it in.
            return;
        }
        let tries = self.catch_up.missed.entry(key).or_insert(0);
        *tries += 1;
        if *tries >= CATCH_UP_TRIES {
            return;
        }
        self.catch_up.keys.push_back(key);
        if let Some(schedule) = &mut self.schedule {
            let retry = now + CATCH_UP_RETRY.max(self.catch_up.every);
            schedule.catch_up.get_or_insert(retry);
        }
    }

    /// Forgets who stored what, so that the next replication skips nothing.
    pub(super) fn forget_received(&mut self) {
        self.received.clear();
    }

    /// Starts the clock at the first input the node (`own`) sees; later calls do nothing.
    /// Items of others already in `store` (the node restarts on its data directory) are
    /// caught up on soon after.
    pub(super) fn start<S: Store>(&mut self, now: Time, own: &NodeId, config: &Config, store: &S) {
        if self.schedule.is_some() {
            return;
        }
        // Nodes started together must not replicate together: each starts its rhythm at a
        // phase of its own, from half an interval to one and a half.
        let phase = f64::from(u16::from_be_bytes([own.as_bytes()[0], own.as_bytes()[1]]));
        let first = |interval: Duration| now + interval.mul_f64(0.5 + phase / 65_536.0);
        self.schedule = Some(Schedule {
            republish: first(config.republish_interval),
            replicate: first(config.replicate_interval),
            refresh: first(config.refresh_interval),
            expire: now + config.expire_interval,
            catch_up: None,
        });
        let mine: BTreeSet<Key> = store.own_keys().into_iter().collect();
        let held: VecDeque<Key> = store
            .keys()
            .into_iter()
            .filter(|key| !mine.contains(key))
            .collect();
        if let Some(count) = u32::try_from(held.len()).ok().filter(|n| *n > 0) {
            let window = CATCH_UP_WINDOW.min(config.replicate_interval / 2);
            self.catch_up = CatchUp {
                unchecked: held.iter().copied().collect(),
                keys: held,
                every: window / count,
                started: Some(now),
                missed: BTreeMap::new(),
            };
            if let Some(schedule) = &mut self.schedule {
                schedule.catch_up = Some(first(CATCH_UP_DELAY));
            }
        }
    }

    /// Runs every duty due at `now`: expires items of `store`, and queues the items and the
    /// idle buckets of `table` to be stored or refreshed. The node (`own`) starts the queued
    /// tasks ([`Housekeeping::next_task`]). Returns whether a refresh round was due (when the
    /// node pings its dormant contacts).
    pub(super) fn run_due<S: Store>(
        &mut self,
        now: Time,
        own: &NodeId,
        config: &Config,
        store: &mut S,
        table: &RoutingTable,
        traces: &mut Traces,
    ) -> bool {
        let Some(mut due) = self.schedule else {
            return false;
        };
        if due.expire <= now {
            due.expire = now + config.expire_interval;
            self.expire(now, now - config.replicate_interval, store, traces);
        }
        if due.republish <= now {
            due.republish = now + config.republish_interval;
            self.queue_republish(store, traces);
        }
        if due.replicate <= now {
            due.replicate = now + config.replicate_interval;
            self.queue_replication(now - config.replicate_interval, store, traces);
            // A replication round takes in whatever the catch-up had left: its stores bring
            // back any newer copy a peer holds (a 409 makes this node fetch it).
            self.catch_up.keys.clear();
            self.catch_up.unchecked.clear();
            self.catch_up.missed.clear();
            due.catch_up = None;
        }
        if due.catch_up.is_some_and(|at| at <= now) {
            due.catch_up = self.catch_up_next(now, traces);
        }
        let refresh = due.refresh <= now;
        if refresh {
            due.refresh = now + config.refresh_interval;
            self.queue_refresh(
                now,
                own,
                table.stale_buckets(now - config.bucket_idle),
                traces,
            );
        }
        self.schedule = Some(due);
        refresh
    }

    /// Drops the items of `store` expired at `now`, and forgets stores received before `since`.
    fn expire<S: Store>(&mut self, now: Time, since: Time, store: &mut S, traces: &mut Traces) {
        let count = store.expire(now);
        traces.push(|| Trace::Housekeeping {
            duty: Duty::Expire,
            count,
        });
        self.received.retain(|_, at| *at > since);
    }

    /// Queues every item of this node's own.
    fn queue_republish<S: Store>(&mut self, store: &S, traces: &mut Traces) {
        let own = store.own_keys();
        let count = own.len();
        traces.push(|| Trace::Housekeeping {
            duty: Duty::Republish,
            count,
        });
        self.queue.extend(own.into_iter().map(Task::Store));
    }

    /// Queues every item held but not owned, except those a peer stored `since`.
    fn queue_replication<S: Store>(&mut self, since: Time, store: &S, traces: &mut Traces) {
        // A set: a node may hold 100,000 items, and this runs on the driver's thread.
        let own: BTreeSet<Key> = store.own_keys().into_iter().collect();
        let received = &self.received;
        let held = store
            .keys()
            .into_iter()
            .filter(|key| !own.contains(key) && received.get(key).is_none_or(|at| *at <= since));
        let queued = self.queue.len();
        self.queue.extend(held.map(Task::Store));
        let count = self.queue.len() - queued;
        traces.push(|| Trace::Housekeeping {
            duty: Duty::Replicate,
            count,
        });
    }

    /// Queues the next item of the catch-up that no peer has stored since the start; returns
    /// when the one after it is due, if any is left.
    fn catch_up_next(&mut self, now: Time, traces: &mut Traces) -> Option<Time> {
        let started = self.catch_up.started?;
        while let Some(key) = self.catch_up.keys.pop_front() {
            if self.received.get(&key).is_some_and(|at| *at >= started) {
                continue;
            }
            self.queue.push_back(Task::CatchUp(key));
            traces.push(|| Trace::Housekeeping {
                duty: Duty::Replicate,
                count: 1,
            });
            break;
        }
        (!self.catch_up.keys.is_empty()).then(|| now + self.catch_up.every)
    }

    /// Queues a lookup of an id in each of the `stale` buckets of `own`.
    fn queue_refresh(&mut self, now: Time, own: &NodeId, stale: Vec<usize>, traces: &mut Traces) {
        let count = stale.len();
        traces.push(|| Trace::Housekeeping {
            duty: Duty::Refresh,
            count,
        });
        for index in stale {
            let seed = [own.as_bytes().as_slice(), &now.as_millis().to_be_bytes()].concat();
            let target = id_in_bucket(own, index, &seed);
            self.queue.push_back(Task::Refresh(target));
        }
    }

    /// The next queued task, while fewer than `max` run. The caller reports it with
    /// [`Housekeeping::started`] if it starts a lookup for it.
    pub(super) fn next_task(&mut self, max: usize) -> Option<Task> {
        if self.running >= max {
            return None;
        }
        self.queue.pop_front()
    }

    /// A task's lookup started.
    pub(super) fn started(&mut self) {
        self.running += 1;
    }

    /// A task's lookup ended.
    pub(super) fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
    }
}

/// An id in bucket `index` of `own`, derived from `seed` (no RNG in the core: a hash of the
/// time serves, since refresh targets need to be spread, not secret).
fn id_in_bucket(own: &Id, index: usize, seed: &[u8]) -> Id {
    let mut bytes = *Id::hash(seed).as_bytes();
    let byte = 63 - index / 8;
    let bit = (index % 8) as u8;
    bytes[..byte].fill(0);
    // Keep the bits below `bit`, set `bit`, clear the ones above it.
    bytes[byte] = (bytes[byte] & ((1u8 << bit) - 1)) | (1 << bit);
    own.at_distance(&Distance::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{ImmutableItem, Item};
    use crate::store::{MemoryStore, StoreLimits};

    /// Runs `housekeeping` from deadline to deadline until `until`, returning when each
    /// catch-up task was queued and for which key.
    fn stores_queued(
        housekeeping: &mut Housekeeping,
        config: &Config,
        store: &mut MemoryStore,
        until: Time,
    ) -> Vec<(Time, Key)> {
        let own = Id::hash(b"own");
        let table = RoutingTable::new(own, config.k.get(), config.max_failures);
        let mut traces = Traces::default();
        let mut queued = Vec::new();
        while let Some(now) = housekeeping.next_deadline().filter(|at| *at <= until) {
            housekeeping.run_due(now, &own, config, store, &table, &mut traces);
            while let Some(task) = housekeeping.next_task(usize::MAX) {
                if let Task::CatchUp(key) = task {
                    queued.push((now, key));
                }
            }
        }
        queued
    }

    #[test]
    fn a_restarted_node_catches_up_on_what_it_held_one_item_at_a_time() {
        let config = Config::default();
        let t0 = Time::from_secs(1_800_000_000);
        let mut store = MemoryStore::new(StoreLimits::default());
        let items: Vec<Item> = (0..4u8)
            .map(|n| ImmutableItem::new(vec![n].into()).into())
            .collect();
        for item in &items[..3] {
            store.restore(item.clone(), false);
        }
        store.restore(items[3].clone(), true);
        let mut housekeeping = Housekeeping::default();
        housekeeping.start(t0, &Id::hash(b"own"), &config, &store);
        // A peer stores one of them after the start: it is fresh, and skipped.
        housekeeping.received(*items[1].key(), t0 + Duration::from_secs(1));
        let queued = stores_queued(
            &mut housekeeping,
            &config,
            &mut store,
            t0 + CATCH_UP_WINDOW * 2,
        );
        let keys: BTreeSet<Key> = queued.iter().map(|(_, key)| *key).collect();
        assert_eq!(
            keys,
            BTreeSet::from([*items[0].key(), *items[2].key()]),
            "the others' items not stored since, and not its own"
        );
        assert_eq!(queued.len(), 2, "once each");
        let (first, second) = (queued[0].0, queued[1].0);
        assert!(first >= t0 + CATCH_UP_DELAY / 2 && first <= t0 + CATCH_UP_DELAY * 3 / 2);
        assert_eq!(
            second.since(first),
            CATCH_UP_WINDOW / 3,
            "evenly over the window"
        );
    }

    #[test]
    fn a_node_that_starts_with_only_its_own_items_has_nothing_to_catch_up() {
        let config = Config::default();
        let t0 = Time::from_secs(1_800_000_000);
        let mut store = MemoryStore::new(StoreLimits::default());
        let item: Item = ImmutableItem::new(b"mine".to_vec().into()).into();
        store.restore(item, true);
        let mut housekeeping = Housekeeping::default();
        housekeeping.start(t0, &Id::hash(b"own"), &config, &store);
        let until = t0 + config.replicate_interval / 4;
        assert!(stores_queued(&mut housekeeping, &config, &mut store, until).is_empty());
    }

    #[test]
    fn refresh_targets_fall_in_their_bucket() {
        let own = Id::hash(b"own");
        for index in [0, 1, 7, 8, 9, 300, 510, 511] {
            for seed in 0u8..20 {
                let id = id_in_bucket(&own, index, &[seed]);
                assert_eq!(own.distance(&id).bucket_index(), Some(index));
            }
        }
    }
}
