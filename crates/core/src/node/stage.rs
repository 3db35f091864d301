//! What a command is for ([`QueryKind`]) and the stage it is in ([`Stage`]): the pieces a
//! command is made of, and how each turns an answer into progress.
//!
//! Every stage has the same interface: `find_node` is one lookup; `get` is one lookup that
//! also watches for values; `put` is a lookup of the key, then a fixed stage that stores at
//! the closest nodes the lookup found; `bootstrap` is a fixed stage that asks its seed
//! addresses, then a lookup of the node itself; a watch's round is one lookup.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::event::{PutFailure, WatchId};
use super::trace::Operation;
use crate::id::{Key, NodeId};
use crate::item::Item;
use crate::lookup::{FixedPeers, Lookup, Next};
use crate::message::{Contact, Peer, Request};
use crate::rtt::RttTable;
use crate::store::{CommitId, CommitOutcome};

/// The stage a command is in: an iterative lookup or a fixed set of peers.
pub(super) enum Stage {
    Closest(Lookup),
    Fixed(FixedPeers),
}

impl Stage {
    /// Whom to ask next; a lookup asks, among equally close candidates, the one `rtt` expects
    /// to answer first.
    pub(super) fn next(&mut self, rtt: &RttTable) -> Next {
        match self {
            Stage::Closest(lookup) => lookup.next_by(|id| rtt.expected(id)),
            Stage::Fixed(fixed) => fixed.next(),
        }
    }

    pub(super) fn on_success(&mut self, peer: &Peer, closer: Vec<Contact>) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_success(&id, closer),
            (Stage::Fixed(fixed), _) => fixed.on_success(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    /// `peer` answered with what the stage is for (a get's copy).
    pub(super) fn on_found(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_found(&id),
            (Stage::Fixed(fixed), _) => fixed.on_success(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    pub(super) fn on_failure(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_failure(&id),
            (Stage::Fixed(fixed), _) => fixed.on_failure(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    /// `peer`'s request ran past its round-trip timeout. A lookup frees its slot (a late answer
    /// still counts); a fixed set of peers (stores, seeds) keeps waiting for it, since each of
    /// its answers matters.
    pub(super) fn on_slow(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_slow(&id),
            (Stage::Fixed(_), _) | (Stage::Closest(_), None) => false,
        }
    }

    pub(super) fn on_timeout(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_timeout(&id),
            (Stage::Fixed(fixed), _) => fixed.on_timeout(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    pub(super) fn finish(&mut self) {
        match self {
            Stage::Closest(lookup) => lookup.finish(),
            Stage::Fixed(fixed) => fixed.finish(),
        }
    }

    /// Whether every path of a lookup has had a copy from one of its nodes (always, for a
    /// fixed stage). `paths_with_copy` has a bit set per path that did.
    pub(super) fn every_path_has(&self, paths_with_copy: u64) -> bool {
        match self {
            Stage::Closest(lookup) => {
                let all = lookup.paths().min(64);
                paths_with_copy.count_ones() as usize >= all
            }
            Stage::Fixed(_) => true,
        }
    }

    /// The path `peer` belongs to (lookups only).
    pub(super) fn path(&self, peer: &NodeId) -> Option<usize> {
        match self {
            Stage::Closest(lookup) => lookup.path(peer),
            Stage::Fixed(_) => None,
        }
    }

    /// The round trips it took to reach `peer` (lookups only).
    pub(super) fn hop(&self, peer: &NodeId) -> Option<u32> {
        match self {
            Stage::Closest(lookup) => lookup.hop(peer),
            Stage::Fixed(_) => None,
        }
    }

    /// Whether `peer` is among a lookup's `n` closest candidates not known to have failed
    /// (always, for a fixed stage).
    pub(super) fn is_among_closest(&self, peer: &NodeId, n: usize) -> bool {
        match self {
            Stage::Closest(lookup) => lookup.is_among_closest(peer, n),
            Stage::Fixed(_) => true,
        }
    }

    /// The nodes that answered among a lookup's `n` closest candidates not known to have
    /// failed.
    pub(super) fn succeeded_among_closest(&self, n: usize) -> Vec<Contact> {
        match self {
            Stage::Closest(lookup) => lookup.succeeded_among_closest(n),
            Stage::Fixed(_) => Vec::new(),
        }
    }

    pub(super) fn closest_succeeded(&self, n: usize) -> Vec<Contact> {
        match self {
            Stage::Closest(lookup) => lookup.closest_succeeded(n),
            Stage::Fixed(_) => Vec::new(),
        }
    }

    /// Who told this command of `peer`, and in how many round trips it was reached.
    pub(super) fn route_to(&self, peer: Option<&NodeId>) -> (Option<NodeId>, u32) {
        match (self, peer) {
            (Stage::Closest(lookup), Some(id)) => {
                (lookup.referrer(id), lookup.hop(id).unwrap_or(1))
            }
            _ => (None, 1),
        }
    }

    /// Whether this is a lookup (not a fixed set of peers).
    pub(super) fn is_lookup(&self) -> bool {
        matches!(self, Stage::Closest(_))
    }
}

/// What a command is for, beyond the stage it is in.
pub(super) enum QueryKind {
    FindNode,
    Get {
        key: Key,
        best: Option<Item>,
        /// Whether this node held a valid, checked copy when the get started (one it held
        /// since before its start and has not caught up on yet counts for nothing here).
        local_copy: bool,
        /// The `seq` each answering node held (`None`: it answered with nodes).
        held: BTreeMap<NodeId, Option<u64>>,
        /// The answering nodes whose copy was `unchecked`: taken as copies (the newest wins,
        /// and write-back skips those as new as it), never counted toward the quorum.
        unchecked: BTreeSet<NodeId>,
        hops: u32,
        /// A bit per lookup path that has brought a valid copy. With disjoint paths a signed
        /// get ends early only once every path has, so that adversaries serving stale copies
        /// on one path cannot end it before the others are heard.
        paths_with_copy: u64,
        /// Replicas that hold the item but could not read it: this node's store, and peers
        /// that answered [`crate::ErrorCode::UNAVAILABLE`]. Each counts as a failed replica,
        /// never as one without a copy.
        unreadable: usize,
        /// A restarted node's catch-up on an item it held ([`QueryKind::catch_up`]).
        catch_up: bool,
    },
    Put {
        item: Item,
        /// The local copy's outcome: the commit that makes it durable, or why it was refused.
        local: Result<Option<CommitId>, PutFailure>,
        /// Whether the lookup is over and the stores are out.
        storing: bool,
    },
    Bootstrap {
        /// Nodes the seeds told of, the seeds included.
        found: Vec<Contact>,
        /// Whether the seeds are done and the self-lookup runs.
        seeded: bool,
    },
    /// A round of a watch: a lookup of its key, whose closest nodes it subscribes at.
    Watch(WatchId),
}

/// A query about to start: what it is for and its first stage.
pub(super) type QueryStart = (QueryKind, Stage);

impl QueryKind {
    pub(super) fn find_node(lookup: Lookup) -> QueryStart {
        (QueryKind::FindNode, Stage::Closest(lookup))
    }

    /// A get whose local copy is `local`, with whether it is checked (`unreadable`: this
    /// node holds the item but its store cannot read it now).
    pub(super) fn get(
        key: Key,
        mut lookup: Lookup,
        local: Option<(Item, bool)>,
        unreadable: bool,
    ) -> QueryStart {
        // Found by the swarm test: a get whose closest contacts were slower than their
        // estimates ended "not found" (seed 24), or with a stale copy from a nearer node
        // (seed 392), while their answers were on their way. It ends at `get_quorum` copies,
        // or once the slow requests among its k closest have answered or failed.
        lookup.wait_for_slow_requests();
        let local_copy = local.as_ref().is_some_and(|(_, checked)| *checked);
        let local = local.map(|(item, _)| item);
        if matches!(local, Some(Item::Immutable(_))) {
            lookup.finish();
        }
        let kind = QueryKind::Get {
            key,
            best: local,
            local_copy,
            held: BTreeMap::new(),
            unchecked: BTreeSet::new(),
            hops: 0,
            paths_with_copy: 0,
            unreadable: usize::from(unreadable),
            catch_up: false,
        };
        (kind, Stage::Closest(lookup))
    }

    /// A restarted node's catch-up on `local`, an item of another's that it held when it
    /// started: a get that asks each of the k closest (no quorum ends it early), writes the
    /// newest copy back to those that lack it or hold an older one, and hands it to this node
    /// to keep if it beats `local`. A push of `local` (a replication) would instead give a
    /// stale copy to the nodes that lack the item.
    pub(super) fn catch_up(key: Key, lookup: Lookup, local: Item) -> QueryStart {
        let (mut kind, stage) = Self::get(key, lookup, Some((local, false)), false);
        if let QueryKind::Get { catch_up, .. } = &mut kind {
            *catch_up = true;
        }
        (kind, stage)
    }

    /// Whether this is a catch-up ([`QueryKind::catch_up`]).
    pub(super) fn is_catch_up(&self) -> bool {
        matches!(self, QueryKind::Get { catch_up: true, .. })
    }

    pub(super) fn put(
        item: Item,
        mut lookup: Lookup,
        local: Result<Option<CommitId>, PutFailure>,
    ) -> QueryStart {
        if local.is_err() {
            lookup.finish();
        }
        let kind = QueryKind::Put {
            item,
            local,
            storing: false,
        };
        (kind, Stage::Closest(lookup))
    }

    pub(super) fn watch(watch: WatchId, lookup: Lookup) -> QueryStart {
        (QueryKind::Watch(watch), Stage::Closest(lookup))
    }

    pub(super) fn bootstrap(seeds: &[SocketAddr]) -> QueryStart {
        let seeds = seeds.iter().map(|&addr| Peer { id: None, addr });
        let kind = QueryKind::Bootstrap {
            found: Vec::new(),
            seeded: false,
        };
        (kind, Stage::Fixed(FixedPeers::new(seeds, usize::MAX)))
    }

    /// The store reported `commit`: a put whose local copy waited on it is durable, or failed.
    pub(super) fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        if let QueryKind::Put { local, .. } = self {
            if *local == Ok(Some(commit)) {
                *local = match outcome {
                    CommitOutcome::Durable => Ok(None),
                    CommitOutcome::Failed => Err(PutFailure::NotDurable(commit)),
                };
            }
        }
    }

    /// What the query is, for its traces.
    pub(super) fn operation(&self, internal: bool) -> Operation {
        match (self, internal) {
            (QueryKind::FindNode, false) => Operation::FindNode,
            (QueryKind::FindNode, true) => Operation::Refresh,
            (QueryKind::Get { .. }, false) => Operation::Get,
            (QueryKind::Get { .. }, true) => Operation::Replicate,
            (QueryKind::Put { item, .. }, false) if item.is_tombstone() => Operation::Delete,
            (QueryKind::Put { .. }, false) => Operation::Put,
            (QueryKind::Put { .. }, true) => Operation::Replicate,
            (QueryKind::Bootstrap { .. }, _) => Operation::Bootstrap,
            (QueryKind::Watch(_), _) => Operation::Watch,
        }
    }

    /// The request the stage `stage` of this command sends to each peer it asks (`own`: this
    /// node's id, which a bootstrap's seeds are asked for).
    pub(super) fn request(&self, stage: &Stage, own: &NodeId) -> Request {
        match (self, stage) {
            (QueryKind::Get { key, .. }, _) => Request::FindValue { key: *key },
            (QueryKind::Put { item, .. }, Stage::Fixed(_)) => Request::Store { item: item.clone() },
            (_, Stage::Closest(lookup)) => Request::FindNode {
                target: *lookup.target(),
            },
            (_, Stage::Fixed(_)) => Request::FindNode { target: *own },
        }
    }
}
