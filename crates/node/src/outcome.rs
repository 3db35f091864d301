//! What the [`crate::Dht`] handle's calls return: receipts, found items, the node's status and
//! peers, and the errors of each call.

use std::net::SocketAddr;

use cairn_core::item::ItemError;
use cairn_core::node::QueryStats;
use cairn_core::{Item, Key};
use serde::{Deserialize, Serialize};

use crate::store::CommitError;

/// What a successful put did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PutReceipt {
    /// The item's key.
    #[serde(serialize_with = "hex_key")]
    pub key: Key,
    /// The `seq` a signed item was published with.
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never.
    pub expires: u64,
    /// Nodes that acknowledged a copy, this one included.
    pub replicas: usize,
    /// What the put cost.
    #[serde(skip)]
    pub stats: QueryStats,
}

fn hex_key<S: serde::Serializer>(key: &Key, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key.to_hex())
}

/// An item found by a get, and what finding it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The verified item (the highest `seq` seen, for a signed one).
    pub item: Item,
    /// Requests, hops and time.
    pub stats: QueryStats,
}

/// Why a put failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PutError {
    /// The item itself is invalid (say, a name of more than 255 bytes).
    #[error("invalid item: {0}")]
    Invalid(#[from] ItemError),
    /// The node refused the item: too large, stale, conflicting or over a limit.
    #[error(transparent)]
    Refused(#[from] cairn_core::node::PutError),
    /// The local store failed to commit the item, so the put is not acknowledged and this
    /// node does not hold it.
    #[error("the item could not be stored durably: {0}")]
    NotDurable(#[from] CommitError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Why a get failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// No node reached holds a valid copy.
    #[error("not found: no node holds a valid copy of {key} ({asked} nodes answered)")]
    NotFound {
        /// The key sought.
        key: Key,
        /// How many nodes answered the lookup.
        asked: usize,
    },
    /// The newest copy found is a tombstone: its publisher deleted the item.
    #[error("deleted: the item under {key} was deleted by its publisher (seq {seq})")]
    Deleted {
        /// The key sought.
        key: Key,
        /// The tombstone's `seq`.
        seq: u64,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Why a delete failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeleteError {
    /// Neither this node nor the network holds an item of that name published by this node.
    #[error("nothing to delete: no item named {name:?} published by this node was found")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The item is deleted already.
    #[error("the item named {name:?} is deleted already (seq {seq})")]
    AlreadyDeleted {
        /// The name.
        name: String,
        /// The tombstone's `seq`.
        seq: u64,
    },
    /// Publishing the tombstone failed.
    #[error(transparent)]
    Put(#[from] PutError),
}

/// Why joining failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// No bootstrap node answered and no contact is known.
    #[error("no bootstrap node answered ({tried} tried) and no other node is known")]
    NoContact {
        /// How many addresses were tried.
        tried: usize,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// A node's state, as `GET /v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Hex node id.
    pub node_id: String,
    /// Hex ed25519 public key.
    pub public_key: String,
    /// Network name.
    pub network: String,
    /// The address peers connect to.
    pub listen: SocketAddr,
    /// Every address peers may connect to (`listen` first; more with dual stack).
    #[serde(default)]
    pub listen_addrs: Vec<SocketAddr>,
    /// Contacts in the routing table.
    pub peers: usize,
    /// How many nodes the network has, estimated from the routing table (see
    /// `cairn_core::routing::RoutingTable::network_size`); 0 while no contact is known.
    pub network_size: u64,
    /// Items in the store.
    pub items: usize,
    /// Seconds since start.
    pub uptime_s: u64,
    /// cairn's version.
    pub version: String,
    /// Requests sent to peers.
    pub requests_sent: u64,
    /// Requests from peers answered.
    pub requests_handled: u64,
    /// Requests to peers that failed or timed out.
    pub requests_failed: u64,
    /// Times a verified contact was kept out of the routing table because its network (IPv4
    /// /24, IPv6 /48) held its share of places (each sighting counts: its `auth`, its
    /// requests, its answers).
    pub contacts_crowded_out: u64,
    /// Outgoing connections opened.
    pub connections_opened: u64,
    /// Incoming connections accepted.
    pub connections_accepted: u64,
    /// Connections not opened, or accepted and closed at once, because the process's
    /// connection budget was spent.
    pub connection_budget_exhausted: u64,
    /// Outgoing connections that could not be made (connect or handshake failed).
    pub dial_failures: u64,
    /// Incoming connections closed at once because `max_inbound` busy connections were served.
    pub connections_refused: u64,
    /// Frames from peers that were not valid messages (each answered with an error 400).
    pub invalid_messages: u64,
    /// Incoming connections closed at once because their host held `max_inbound_per_host`.
    pub connections_refused_per_host: u64,
    /// Incoming connections closed to make room for a newcomer (unauthenticated or idle).
    pub connections_evicted: u64,
    /// Incoming connections closed because the handshake was not done in `handshake_timeout`.
    pub handshake_timeouts: u64,
    /// Requests answered 429 because their host passed `request_rate`.
    pub requests_rate_limited: u64,
    /// Stores answered 429 because their host passed `store_rate`.
    pub stores_rate_limited: u64,
    /// Stores answered 429 because their network (IPv4 /24, IPv6 /48) held its share.
    pub stores_over_share: u64,
    /// `listen` subscriptions peers hold at this node.
    pub subscriptions: usize,
    /// Keys this node watches.
    pub watches: usize,
}

/// A routing-table contact, as `GET /v1/peers` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Hex node id.
    pub node_id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Seconds since it last answered or sent a verified request.
    pub last_seen_s: u64,
    /// Failed requests in a row.
    pub failures: u32,
}
