//! What the node reports: query and watch ids, completion events with their costs, and the
//! failures of each query. Records only: nothing here knows the node.

use std::time::Duration;

use crate::id::{Key, NodeId};
use crate::item::Item;
use crate::message::{Contact, Response};
use crate::store::{CommitId, StoreError};

/// The id of a running query; its completion [`Event`] carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// The id of a watch; its [`Event::WatchUpdate`]s carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(pub u64);

/// The id of an exchange ([`super::Node::exchange`]); its [`Event::Exchanged`] carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeId(pub u64);

/// The answer an exchange got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchanged {
    /// Who answered (its key proven by the transport).
    pub from: Contact,
    /// The answer.
    pub response: Response,
    /// From the request's first send to its answer.
    pub round_trip: Duration,
}

/// What a finished query cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Requests sent, write-back and store requests included.
    pub requests: u32,
    /// Round trips on the longest chain that led to the result (0 when answered locally).
    pub hops: u32,
    /// From start to completion.
    pub duration: Duration,
}

/// Why a get found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetFailure {
    /// No node reached holds a valid copy.
    #[error("no valid copy of {key} was found ({asked} nodes answered)")]
    NotFound {
        /// The key sought.
        key: Key,
        /// How many nodes answered.
        asked: usize,
    },
    /// No copy was found, but replicas that hold the item could not read it (this node's
    /// store, or peers that answered [`crate::ErrorCode::UNAVAILABLE`]): the item is not
    /// known to be absent.
    #[error("{key} is held by {replicas} replica(s) whose storage cannot read it now")]
    Unavailable {
        /// The key sought.
        key: Key,
        /// How many replicas holding it could not read it.
        replicas: usize,
    },
}

/// Why a put failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutFailure {
    /// The local store refused the item, so it was not published.
    #[error("not stored locally: {0}")]
    Local(#[from] StoreError),
    /// The local store accepted the item but could not make it durable, and undid it: this
    /// commit failed (the store reported why with it).
    #[error("the local store failed to commit the item; this node does not hold it")]
    NotDurable(CommitId),
    /// The value is above `max_value_size`.
    #[error("value of {size} bytes is above the {max}-byte limit")]
    TooLarge {
        /// The value's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// No other node stored the item: of the `asked` closest nodes the lookup found, none
    /// took it (none found when 0). This node keeps its copy, but a put held by its
    /// publisher's node alone is not acknowledged. Only a node alone by design (its table
    /// empty, no bootstrap address known) puts with no peer: that put succeeds with 1.
    #[error(
        "no other node stored the item ({asked} asked); only this node holds it, try again \
         once it reaches its peers"
    )]
    NoPeer {
        /// The nodes the item was sent to.
        asked: usize,
    },
}

/// Why a bootstrap failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapFailure {
    /// No seed answered and the routing table is empty.
    #[error("no bootstrap node answered and no contact is known")]
    NoContact,
}

/// Something the driver should know.
// Events are few and short-lived (one per finished query); boxing the large ones would
// cost an allocation each for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A `find_node` finished with the closest nodes that answered.
    FindNodeDone {
        /// The query.
        query: QueryId,
        /// Closest first, at most k.
        closest: Vec<Contact>,
        /// Its cost.
        stats: QueryStats,
    },
    /// A `get` finished.
    GetDone {
        /// The query.
        query: QueryId,
        /// The key sought.
        key: Key,
        /// The item with the highest `seq` seen, or why none.
        result: Result<Item, GetFailure>,
        /// Its cost.
        stats: QueryStats,
    },
    /// A `put` finished.
    PutDone {
        /// The query.
        query: QueryId,
        /// The item's key.
        key: Key,
        /// The item's `seq` (signed items).
        seq: Option<u64>,
        /// The item's expiry, Unix seconds (0: never).
        expires: u64,
        /// How many nodes acknowledged, this one included when it stored the item.
        result: Result<usize, PutFailure>,
        /// The commit that makes the local copy durable, if it is not yet: the put may be
        /// reported as done only once it is.
        commit: Option<CommitId>,
        /// Its cost.
        stats: QueryStats,
    },
    /// A `bootstrap` finished.
    BootstrapDone {
        /// The query.
        query: QueryId,
        /// The number of contacts in the table afterwards, or why joining failed.
        result: Result<usize, BootstrapFailure>,
        /// Its cost.
        stats: QueryStats,
    },
    /// A watch learned of a newer version of its key (or of its deletion, as a tombstone).
    WatchUpdate {
        /// The watch.
        watch: WatchId,
        /// The newer copy.
        item: Item,
    },
    /// A contact entered the routing table.
    ContactAdded(Contact),
    /// A contact left the routing table.
    ContactRemoved(NodeId),
    /// This node's address as its peers see it changed, or became known.
    ObservedChanged(super::ObservedChange),
    /// An exchange ended: its answer, or `None` if the request failed or timed out.
    Exchanged {
        /// The exchange.
        exchange: ExchangeId,
        /// The answer.
        result: Option<Exchanged>,
    },
    /// A reachability check changed this node's status.
    ReachabilityChanged {
        /// The status before.
        from: super::Reachability,
        /// The status now.
        to: super::Reachability,
    },
}

impl Event {
    /// The query this event completes, if it completes one.
    pub fn query(&self) -> Option<QueryId> {
        match self {
            Event::FindNodeDone { query, .. }
            | Event::GetDone { query, .. }
            | Event::PutDone { query, .. }
            | Event::BootstrapDone { query, .. } => Some(*query),
            Event::ContactAdded(_)
            | Event::ContactRemoved(_)
            | Event::WatchUpdate { .. }
            | Event::ObservedChanged(_)
            | Event::Exchanged { .. }
            | Event::ReachabilityChanged { .. } => None,
        }
    }
}
