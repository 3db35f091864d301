//! Where a node keeps items: the [`Store`] trait and an in-memory implementation.
//!
//! A store applies the which-copy-wins rules ([`crate::item::resolve`]) and the node's limits
//! inside its own `put`, so that a durable store can make the check and the write one
//! transaction. [`MemoryStore`] serves tests, the simulator, and nodes run without a disk.
//! What a store holds is kept by a [`Ledger`], which every store shares; the [`Holdings`] it
//! exposes (counts, keys, own marks, listings) are the same for all of them, so [`Store`]
//! provides those methods from [`Store::holdings`] and a store writes only what differs.
//!
//! - `ledger`: the bookkeeping and the limits, whatever a store keeps per key;
//! - `memory`: [`MemoryStore`], whole items in a map.
//!
//! Durability is part of the contract. A durable store answers a write with a [`CommitId`]
//! before the write is on disk; the node carries that id into whatever reports the write (the
//! [`crate::node::Answer`] to a `store`, the [`crate::node::Event::PutDone`] of a put), and the
//! driver reports the commit's outcome back with [`crate::Node::handle_commit`], which calls
//! [`Store::committed`]. Nobody is told an item is stored before its commit is durable, and a
//! commit that failed leaves no trace: the store undoes the write it had accepted.

mod ledger;
mod memory;

use std::sync::Arc;

use crate::id::Key;
use crate::item::{Item, Refusal, Resolution};
use crate::message::ErrorCode;
use crate::subnet::Prefix;
use crate::time::Time;

pub use ledger::Ledger;
pub use memory::MemoryStore;

/// The most a store may hold. Defaults: 100,000 items and 256 MiB, of which one subnet
/// (IPv4 /24, IPv6 /48) may have stored a tenth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// The most items held at once.
    pub max_items: usize,
    /// The most bytes of items ([`Item::size`]) held at once.
    pub max_bytes: usize,
    /// The most items stored by peers of one subnet held at once. Default 10,000.
    pub max_items_per_subnet: usize,
    /// The most bytes stored by peers of one subnet held at once. Default 25.6 MiB.
    pub max_bytes_per_subnet: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_items: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_items_per_subnet: 10_000,
            max_bytes_per_subnet: 256 * 1024 * 1024 / 10,
        }
    }
}

/// Who asked a store to keep an item: what its share of the store is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This node published it (and republishes it).
    Own,
    /// A peer of this subnet (IPv4 /24, IPv6 /48) stored it: it counts against that
    /// subnet's share.
    Subnet(Prefix),
    /// A peer whose subnet is not known (and items read back from disk): no share.
    Unknown,
}

/// Why a store did not keep an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The which-copy-wins rules refused it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Keeping it would pass `max_items` or `max_store_bytes`.
    #[error("store is full ({items} items, {bytes} bytes held)")]
    Full {
        /// Items held.
        items: usize,
        /// Bytes held.
        bytes: usize,
    },
    /// Keeping it would pass the share of the store one subnet may fill.
    #[error("peers of {subnet} hold their share of this store ({items} items, {bytes} bytes)")]
    SubnetFull {
        /// The subnet (IPv4 /24, IPv6 /48).
        subnet: Prefix,
        /// Items its peers stored.
        items: usize,
        /// Bytes its peers stored.
        bytes: usize,
    },
}

impl StoreError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Refused(Refusal::Expired) => ErrorCode::BAD_REQUEST,
            StoreError::Refused(_) => ErrorCode::CONFLICT,
            StoreError::Full { .. } | StoreError::SubnetFull { .. } => ErrorCode::OVER_LIMIT,
        }
    }
}

/// A write a durable store accepted and is committing. Ids grow with every write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub u64);

/// How a commit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The write is on disk.
    Durable,
    /// The write failed; the store has undone it.
    Failed,
}

/// What a store did with an item it kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a write with a commit is not durable until the commit is"]
pub struct Written {
    /// Whether the item was new, replaced an older copy, or was already held.
    pub resolution: Resolution,
    /// The commit that makes the item durable; `None` when it is durable already (an
    /// in-memory store, or an item already committed).
    pub commit: Option<CommitId>,
}

/// Why a store could not read an item it holds. The item is not lost from the store's
/// bookkeeping, only unreadable for now; a peer that asked for it is answered
/// [`ErrorCode::UNAVAILABLE`], not "not found", and a get of the node's own ends
/// [`crate::GetFailure::Unavailable`] unless another replica has a copy.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The storage under the store failed (an I/O error, a damaged database).
    #[error("cannot read the item {key} from the store: {source}")]
    Storage {
        /// The key whose item could not be read.
        key: Key,
        /// What failed.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl ReadError {
    /// The wire error code a peer is answered with.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::UNAVAILABLE
    }
}

/// A node's item storage.
///
/// A store implements reading, writing, commits and expiry; everything that only counts or
/// lists what is held comes from its [`Holdings`] (usually its [`Ledger`]).
pub trait Store {
    /// The item held for `key`, unless it has expired at `now`; an error if it is held but
    /// cannot be read.
    fn get(&self, key: &Key, now: Time) -> Result<Option<Item>, ReadError>;

    /// Keeps `item` if the rules and limits allow (the share of `origin`'s subnet included),
    /// marking it as this node's own for [`Origin::Own`] (a mark that later copies from peers
    /// keep). The item is served at once; it is durable once the returned commit (if any) is
    /// reported [`CommitOutcome::Durable`].
    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError>;

    /// The outcome of `commit`. On [`CommitOutcome::Failed`] the store undoes the writes of
    /// that commit, so that it never serves an item it could not make durable.
    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome);

    /// Removes every item expired at `now`; returns how many.
    fn expire(&mut self, now: Time) -> usize;

    /// What is held, without the values: the source of the counting and listing methods.
    fn holdings(&self) -> &dyn Holdings;

    /// The number of items held (expired ones not yet removed included).
    fn len(&self) -> usize {
        self.holdings().len()
    }

    /// The keys of every item held, for replication.
    fn keys(&self) -> Vec<Key> {
        self.holdings().keys()
    }

    /// The keys of the items this node published itself and still holds.
    fn own_keys(&self) -> Vec<Key> {
        self.holdings().own_keys()
    }

    /// Whether no item is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the items held, as counted against `max_store_bytes`.
    fn bytes(&self) -> usize {
        self.holdings().bytes()
    }

    /// What is held, in key order: at most `limit` entries, from the first key after `after`
    /// (from the start with `None`). Values are not read.
    fn list(&self, after: Option<&Key>, limit: usize) -> Vec<Listed> {
        self.holdings().list(after, limit)
    }
}

/// What a store holds, counted and listed without reading a value. [`Ledger`] implements it
/// for every store that keeps one.
pub trait Holdings {
    /// The number of items held (expired ones not yet removed included).
    fn len(&self) -> usize;

    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of every item held.
    fn keys(&self) -> Vec<Key>;

    /// The keys of the items this node published itself.
    fn own_keys(&self) -> Vec<Key>;

    /// Bytes of the items held, as counted against `max_store_bytes`.
    fn bytes(&self) -> usize;

    /// What is held, in key order ([`Store::list`]).
    fn list(&self, after: Option<&Key>, limit: usize) -> Vec<Listed>;
}

/// One item held, as a listing shows it: everything but its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: Key,
    /// Signed, immutable or tombstone.
    pub kind: crate::item::Kind,
    /// Its `seq` (signed items and tombstones).
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never.
    pub expires: u64,
    /// Bytes it takes in the store, as counted against `max_store_bytes` (its value, name
    /// and signature).
    pub size: usize,
    /// Whether this node published it.
    pub own: bool,
}

#[cfg(test)]
mod tests;
