//! Housekeeping (see `docs/design.md`, "Storage and housekeeping"), driven by `now` like everything else: republishing own items,
//! replicating held items to the current k closest nodes, refreshing idle buckets, and
//! dropping expired items.
//!
//! Each duty has a deadline that `poll_timeout` reports. When one falls due, its work is put
//! in a queue of tasks, and at most `max_housekeeping` of them run as lookups at once, so a
//! node holding many items never floods its peers. The queue holds at most one task per item
//! held plus one per bucket.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Node;
use super::query::QueryKind;
use super::trace::{Duty, Trace};
use crate::id::{Distance, Id, Key};
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
    pub(super) running: usize,
}

impl Housekeeping {
    /// The earliest deadline, once the schedule has started.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.schedule
            .map(|s| s.republish.min(s.replicate).min(s.refresh).min(s.expire))
    }

    pub(super) fn received(&mut self, key: Key, now: Time) {
        self.received.insert(key, now);
    }

    pub(super) fn forget_received(&mut self) {
        self.received.clear();
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

impl<S: Store> Node<S> {
    /// Starts the housekeeping clock at the first input the node sees.
    pub(super) fn start_housekeeping(&mut self, now: Time) {
        if self.housekeeping.schedule.is_none() {
            // Nodes started together must not replicate together: each starts its rhythm at
            // a phase of its own, from half an interval to one and a half.
            let phase = f64::from(u16::from_be_bytes([
                self.id.as_bytes()[0],
                self.id.as_bytes()[1],
            ]));
            let first =
                |interval: std::time::Duration| now + interval.mul_f64(0.5 + phase / 65_536.0);
            let c = &self.config;
            self.housekeeping.schedule = Some(Schedule {
                republish: first(c.republish_interval),
                replicate: first(c.replicate_interval),
                refresh: first(c.refresh_interval),
                expire: now + c.expire_interval,
            });
        }
    }

    /// Runs every duty due at `now`, then starts queued tasks.
    pub(super) fn housekeep(&mut self, now: Time) {
        let Some(mut due) = self.housekeeping.schedule else {
            return;
        };
        let c = self.config.clone();
        if due.expire <= now {
            due.expire = now + c.expire_interval;
            let count = self.store.expire(now);
            self.traces.push(|| Trace::Housekeeping {
                duty: Duty::Expire,
                count,
            });
            let since = now - c.replicate_interval;
            self.housekeeping.received.retain(|_, at| *at > since);
        }
        if due.republish <= now {
            due.republish = now + c.republish_interval;
            let own = self.store.own_keys();
            let count = own.len();
            self.traces.push(|| Trace::Housekeeping {
                duty: Duty::Republish,
                count,
            });
            self.housekeeping
                .queue
                .extend(own.into_iter().map(Task::Store));
        }
        if due.replicate <= now {
            due.replicate = now + c.replicate_interval;
            let since = now - c.replicate_interval;
            // A set: a node may hold 100,000 items, and this runs on the driver's thread.
            let own: BTreeSet<Key> = self.store.own_keys().into_iter().collect();
            let received = &self.housekeeping.received;
            let held = self.store.keys().into_iter().filter(|key| {
                !own.contains(key) && received.get(key).is_none_or(|at| *at <= since)
            });
            let queued = self.housekeeping.queue.len();
            self.housekeeping.queue.extend(held.map(Task::Store));
            let count = self.housekeeping.queue.len() - queued;
            self.traces.push(|| Trace::Housekeeping {
                duty: Duty::Replicate,
                count,
            });
        }
        if due.refresh <= now {
            due.refresh = now + c.refresh_interval;
            let stale = self.table.stale_buckets(now - c.bucket_idle);
            let count = stale.len();
            self.traces.push(|| Trace::Housekeeping {
                duty: Duty::Refresh,
                count,
            });
            for index in stale {
                let seed = [
                    self.id.as_bytes().as_slice(),
                    &now.as_millis().to_be_bytes(),
                ]
                .concat();
                let target = id_in_bucket(&self.id, index, &seed);
                self.housekeeping.queue.push_back(Task::Refresh(target));
            }
        }
        self.housekeeping.schedule = Some(due);
        self.pump_housekeeping(now);
    }

    /// Starts queued housekeeping tasks while fewer than `max_housekeeping` run.
    pub(super) fn pump_housekeeping(&mut self, now: Time) {
        while self.housekeeping.running < self.config.max_housekeeping.get() {
            let Some(task) = self.housekeeping.queue.pop_front() else {
                return;
            };
            let plan = match task {
                Task::Store(key) => match self.store.get(&key, now).ok().flatten() {
                    Some(item) => QueryKind::put(item, self.start_lookup(now, &key), Ok(None)),
                    None => continue,
                },
                Task::Refresh(target) => QueryKind::find_node(self.start_lookup(now, &target)),
            };
            self.housekeeping.running += 1;
            self.start_internal(now, plan);
        }
    }
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
