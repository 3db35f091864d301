//! The invariants a swarm run checks, each with its name and its failure message, and the
//! exemptions each allows: exactly those the protocol promises nothing for.
//!
//! A *replica* of version `seq` of a key is a node whose store made a version at least as new
//! durable (its witness, see `store.rs`): it acknowledged that version. A get or watch is
//! held to a version only if one of the k nodes closest to the key, among those up since the
//! operation began, is a replica (a node partitioned from every replica, or whose replicas
//! crashed or left, is exempt), and only if no partition overlapped the operation or ended
//! within one replication interval before it began.

use std::fmt;
use std::time::Duration;

use cairn_core::{Key, Store, Time};

use super::operations::History;
use super::store::SwarmStore;
use crate::{EPOCH, Sim};

/// The invariants, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// An acknowledged put is returned by every later get unless superseded.
    AcknowledgedPutVisible,
    /// No get returns an older version than one a get returned a replication interval
    /// before; no store goes back to an older version than one it made durable.
    NewestSeqWins,
    /// A deleted item never comes back while its tombstone lives.
    DeletedStaysDeleted,
    /// A watch reports each version at most once, in order.
    WatchOnceInOrder,
    /// A watch reports the newest version within one refresh interval.
    WatchReportsNewest,
    /// No node's memory grows without bound.
    BoundedMemory,
    /// No node panics.
    NoPanic,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 7] = [
        Invariant::AcknowledgedPutVisible,
        Invariant::NewestSeqWins,
        Invariant::DeletedStaysDeleted,
        Invariant::WatchOnceInOrder,
        Invariant::WatchReportsNewest,
        Invariant::BoundedMemory,
        Invariant::NoPanic,
    ];

    /// Its name, as failures print it.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::AcknowledgedPutVisible => "acknowledged-put-visible",
            Invariant::NewestSeqWins => "newest-seq-wins",
            Invariant::DeletedStaysDeleted => "deleted-stays-deleted",
            Invariant::WatchOnceInOrder => "watch-once-in-order",
            Invariant::WatchReportsNewest => "watch-reports-newest",
            Invariant::BoundedMemory => "bounded-memory",
            Invariant::NoPanic => "no-panic",
        }
    }

    /// What it promises, as failures print it.
    pub fn statement(self) -> &'static str {
        match self {
            Invariant::AcknowledgedPutVisible => {
                "an acknowledged put is returned by every later get that can reach a replica, \
                 unless a newer version or a delete superseded it"
            }
            Invariant::NewestSeqWins => {
                "no get returns an older version than one a get returned once replication has \
                 run, and no store goes back to an older version than one it made durable"
            }
            Invariant::DeletedStaysDeleted => {
                "a deleted item never comes back while its tombstone lives"
            }
            Invariant::WatchOnceInOrder => "a watch reports each version at most once, in order",
            Invariant::WatchReportsNewest => {
                "a watch reports the newest version within one refresh interval"
            }
            Invariant::BoundedMemory => {
                "no node's items, contacts, pending requests, subscriptions or RTT table grow \
                 past their bound"
            }
            Invariant::NoPanic => "no node panics",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant: which, when, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant.
    pub invariant: Invariant,
    /// Simulated time since the run's start.
    pub at: Duration,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} broken at {:.3} s: {} ({})",
            self.invariant,
            self.at.as_secs_f64(),
            self.detail,
            self.invariant.statement()
        )
    }
}

/// Pending requests a node may have at once before its memory counts as unbounded: far above
/// what a node of a swarm run needs (a few queries of alpha requests, housekeeping, watches).
pub const MAX_PENDING_REQUESTS: usize = 1_000;

/// Queries a node may run at once before its memory counts as unbounded.
pub const MAX_RUNNING_QUERIES: usize = 1_000;

/// What the checks read of a run.
pub struct Checker<'a> {
    /// The network.
    pub sim: &'a Sim<SwarmStore>,
    /// Since when each node has been up (`None`: down or gone).
    pub up_since: &'a [Option<Time>],
    /// Every partition: when it began, and when it healed.
    pub partitions: &'a [(Time, Option<Time>)],
    /// The nodes' replication interval.
    pub replicate: Duration,
    /// The nodes' k.
    pub k: usize,
    /// How long after its acknowledgement a version binds gets: one replication interval,
    /// the time the protocol takes to repair stale copies off the closest nodes (zero for
    /// the strict reading, see `Options::strict_reads`).
    pub settle: Duration,
}

/// The result of a get, as the checks see it: the `seq` found and whether it is a tombstone.
pub type Found = Option<(u64, bool)>;

impl Checker<'_> {
    /// A violation now.
    fn violation(&self, invariant: Invariant, detail: String) -> Violation {
        Violation {
            invariant,
            at: self.sim.now().since(EPOCH),
            detail,
        }
    }

    /// Whether a partition overlapped `[from, to]` or healed within a replication interval
    /// before `from`.
    pub fn partitioned(&self, from: Time, to: Time) -> bool {
        self.partitions
            .iter()
            .any(|(start, heal)| *start <= to && heal.is_none_or(|h| h + self.replicate > from))
    }

    /// The k nodes closest to `key` among those up since `since`, closest first.
    fn closest_up(&self, key: &Key, since: Time) -> Vec<usize> {
        let mut up: Vec<usize> = (0..self.up_since.len())
            .filter(|n| self.up_since[*n].is_some_and(|t| t <= since))
            .collect();
        up.sort_by_key(|n| self.sim.node(*n).id().distance(key));
        up.truncate(self.k);
        up
    }

    /// What the k nodes closest to `key` (up since `since`) hold and made durable, to print.
    fn holdings(&self, key: &Key, since: Time) -> String {
        let shown: Vec<String> = self
            .closest_up(key, since)
            .into_iter()
            .map(|n| {
                let store = self.sim.node(n).store();
                let held = store.held_seq(key).map_or("-".to_string(), |(s, t)| {
                    format!("{s}{}", if t { "t" } else { "" })
                });
                let durable = store.witness().seq.get(key).copied().unwrap_or(0);
                format!("node {n} holds {held} (durable {durable})")
            })
            .collect();
        let others: Vec<String> = (0..self.up_since.len())
            .filter_map(|n| {
                let (seq, t) = self.sim.node(n).store().held_seq(key)?;
                Some(format!(
                    "{n}:{seq}{}{}",
                    if t { "t" } else { "" },
                    if self.up_since[n].is_some() {
                        ""
                    } else {
                        "(down)"
                    }
                ))
            })
            .collect();
        format!(
            "the k closest up: {}; all holders: {}",
            shown.join(", "),
            others.join(" ")
        )
    }

    /// The nodes in node `node`'s routing table, to print.
    fn table_of(&self, node: usize) -> String {
        let mut known: Vec<usize> = self
            .sim
            .node(node)
            .routing_table()
            .entries()
            .filter_map(|e| {
                (0..self.up_since.len()).find(|n| self.sim.node(*n).id() == &e.contact.id)
            })
            .collect();
        known.sort_unstable();
        format!("node {node}'s routing table: {known:?}")
    }

    /// Whether one of the k nodes closest to `key`, among those up since `since`, made
    /// version `seq` (or a newer one) of it durable.
    pub fn replica_reachable(&self, key: &Key, seq: u64, since: Time) -> bool {
        self.closest_up(key, since).iter().any(|n| {
            let witness = self.sim.node(*n).store().witness();
            witness.seq.get(key).is_some_and(|held| *held >= seq)
        })
    }

    /// Whether the rules hold a get or watch over `[from, to]` to version `seq` of `key`.
    fn held_to(&self, key: &Key, seq: u64, from: Time, to: Time) -> bool {
        !self.partitioned(from, to) && self.replica_reachable(key, seq, from)
    }

    /// Checks a get of `key` by `node` that began at `started` and found `found` (now).
    pub fn get(
        &self,
        history: &History,
        key: &Key,
        node: usize,
        started: Time,
        found: Found,
    ) -> Option<Violation> {
        let now = self.sim.now();
        let seq = found.map(|(seq, _)| seq);
        let shown = |found: Found| match found {
            None => "nothing".to_string(),
            Some((seq, true)) => format!("the tombstone of seq {seq}"),
            Some((seq, false)) => format!("seq {seq}"),
        };
        let since = started.since(EPOCH).as_secs_f64();
        if let Some(acked) = history.newest_acknowledged(started - self.settle) {
            if seq.is_none_or(|s| s < acked.seq) && self.held_to(key, acked.seq, started, now) {
                let invariant = if acked.tombstone && found.is_some() {
                    Invariant::DeletedStaysDeleted
                } else {
                    Invariant::AcknowledgedPutVisible
                };
                let what = if acked.tombstone { "tombstone" } else { "put" };
                return Some(self.violation(
                    invariant,
                    format!(
                        "node {node}'s get of {key} begun at {since:.3} s found {}, but the \
                         {what} of seq {} was acknowledged before it; {}; {}",
                        shown(found),
                        acked.seq,
                        self.holdings(key, started),
                        self.table_of(node)
                    ),
                ));
            }
        }
        let returned = history.returned_by(started - self.replicate);
        if let (Some(seq), Some(before)) = (seq, returned) {
            if seq < before && self.held_to(key, before, started, now) {
                return Some(self.violation(
                    Invariant::NewestSeqWins,
                    format!(
                        "node {node}'s get of {key} begun at {since:.3} s found {}, but a get \
                         had returned seq {before} a replication interval before; {}",
                        shown(found),
                        self.holdings(key, started)
                    ),
                ));
            }
        }
        None
    }

    /// Checks every store that is up: none holds a version older than one it made durable, or
    /// a value older than a tombstone it made durable.
    pub fn stores(&self, keys: &[Key]) -> Option<Violation> {
        for (node, up) in self.up_since.iter().enumerate() {
            if up.is_none() {
                continue;
            }
            let store = self.sim.node(node).store();
            let witness = store.witness();
            for key in keys {
                let Some((seq, tombstone)) = store.held_seq(key) else {
                    continue;
                };
                if let Some(deleted) = witness.tombstone.get(key) {
                    if !tombstone && seq < *deleted {
                        return Some(self.violation(
                            Invariant::DeletedStaysDeleted,
                            format!(
                                "node {node} holds seq {seq} of {key} after making its \
                                 tombstone of seq {deleted} durable"
                            ),
                        ));
                    }
                }
                if let Some(durable) = witness.seq.get(key) {
                    if seq < *durable {
                        return Some(self.violation(
                            Invariant::NewestSeqWins,
                            format!(
                                "node {node} holds seq {seq} of {key} after making seq \
                                 {durable} durable"
                            ),
                        ));
                    }
                }
            }
        }
        None
    }

    /// Checks every node's memory against its bounds: items (no more than the run's keys),
    /// contacts and RTT estimates (no more than the other nodes), pending requests and
    /// running queries, subscriptions (the configured most) and watches (those started).
    pub fn memory(&self, keys: usize, watches: &[usize]) -> Option<Violation> {
        let others = self.up_since.len().saturating_sub(1);
        for (index, watching) in watches.iter().enumerate() {
            if self.up_since[index].is_none() {
                continue;
            }
            let node = self.sim.node(index);
            let config = node.config();
            let counts = [
                ("items", node.store().len(), keys),
                ("contacts", node.routing_table().len(), others),
                ("RTT estimates", node.rtt_contacts(), others),
                (
                    "pending requests",
                    node.pending_requests(),
                    MAX_PENDING_REQUESTS,
                ),
                (
                    "running queries",
                    node.running_queries(),
                    MAX_RUNNING_QUERIES,
                ),
                (
                    "subscriptions",
                    node.subscription_count(),
                    config.max_subscriptions,
                ),
                ("watches", node.watch_count(), *watching),
            ];
            for (what, count, bound) in counts {
                if count > bound {
                    return Some(self.violation(
                        Invariant::BoundedMemory,
                        format!("node {index} has {count} {what}, above its bound of {bound}"),
                    ));
                }
            }
        }
        None
    }
}

/// A watch a run started, and what it has reported so far.
#[derive(Clone, Debug)]
pub struct Watching {
    /// The node.
    pub node: usize,
    /// The watch.
    pub watch: cairn_core::WatchId,
    /// The key's index.
    pub key: usize,
    /// When it started.
    pub started: Time,
    /// How many reports were checked.
    pub checked: usize,
    /// The newest `seq` reported.
    pub newest: Option<u64>,
}

impl Checker<'_> {
    /// Checks a watch's new reports: each newer than the one before it.
    pub fn watch_order(&self, watching: &mut Watching) -> Option<Violation> {
        let reports = self.sim.watched(watching.node, watching.watch);
        for (_, item) in &reports[watching.checked.min(reports.len())..] {
            let seq = item.seq().unwrap_or(0);
            if watching.newest.is_some_and(|newest| seq <= newest) {
                return Some(self.violation(
                    Invariant::WatchOnceInOrder,
                    format!(
                        "node {}'s watch of {} reported seq {seq} after seq {}",
                        watching.node,
                        item.key(),
                        watching.newest.unwrap_or(0)
                    ),
                ));
            }
            watching.newest = Some(seq);
        }
        watching.checked = reports.len();
        None
    }

    /// Checks that a watch has reported the newest version acknowledged a refresh interval
    /// (and `slack`, the time a round takes) ago, if it has run that long.
    pub fn watch_newest(
        &self,
        watching: &Watching,
        history: &History,
        key: &Key,
        refresh: Duration,
        slack: Duration,
    ) -> Option<Violation> {
        let cutoff = self.sim.now() - (refresh + slack);
        if watching.started > cutoff || cutoff < EPOCH + refresh {
            return None;
        }
        let acked = history.newest_acknowledged(cutoff)?;
        if watching.newest.is_some_and(|seq| seq >= acked.seq)
            || !self.held_to(key, acked.seq, cutoff, self.sim.now())
        {
            return None;
        }
        Some(self.violation(
            Invariant::WatchReportsNewest,
            format!(
                "node {}'s watch of {key} reported {} while seq {} was acknowledged at {:.3} s; \
                 it listens at {:?}; {}; {}",
                watching.node,
                watching
                    .newest
                    .map_or("nothing".to_string(), |s| format!("up to seq {s}")),
                acked.seq,
                acked
                    .acknowledged
                    .map_or(0.0, |t| t.since(EPOCH).as_secs_f64()),
                self.sim
                    .node(watching.node)
                    .watch_peers(watching.watch)
                    .iter()
                    .filter_map(|c| (0..self.up_since.len())
                        .find(|n| self.sim.node(*n).id() == &c.id))
                    .collect::<Vec<_>>(),
                self.holdings(key, cutoff),
                self.table_of(watching.node)
            ),
        ))
    }
}
