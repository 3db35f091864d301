//! Housekeeping (see `docs/design.md`, "Storage and housekeeping"), driven by `now` like
//! everything else: republishing own items, replicating held items to the current k closest
//! nodes, refreshing idle buckets, and dropping expired items.
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

/// What housekeeping has to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Task {
    /// Store an item (own or held) at the k closest nodes to its key.
    Store(Key),
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
}

impl Housekeeping {
    /// The earliest deadline, once the schedule has started.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.schedule
            .map(|s| s.republish.min(s.replicate).min(s.refresh).min(s.expire))
    }

    /// A peer stored `key` here at `now`.
    pub(super) fn received(&mut self, key: Key, now: Time) {
        self.received.insert(key, now);
    }

    /// Forgets who stored what, so that the next replication skips nothing.
    pub(super) fn forget_received(&mut self) {
        self.received.clear();
    }

    /// Starts the clock at the first input the node (`own`) sees; later calls do nothing.
    pub(super) fn start(&mut self, now: Time, own: &NodeId, config: &Config) {
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
        });
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
