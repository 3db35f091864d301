//! Where a node keeps its items: in memory, or durably in redb ([`RedbStore`]).
//!
//! [`NodeStore`] is the one store type the driver runs with, so a node's store is chosen at
//! start (a data directory or not) without making the driver generic.

mod health;
mod redb;

use cairn_core::{
    CommitId, CommitOutcome, Holdings, Item, Key, MemoryStore, Origin, ReadError, Store,
    StoreError, Time, Written,
};

pub use self::health::{
    ERROR_KINDS, StorageDown, StorageErrors, StorageHealth, StorageState, StorageStatus,
};
pub use self::redb::{CommitError, CommitReceiver, Committed, OpenError, RedbStore, STORE_FILE};

/// The store a node runs with: in memory (tests, the test network, nodes without a data
/// directory) or durable. Dropping it finishes every queued write.
pub enum NodeStore {
    /// Items in memory only.
    Memory(MemoryStore),
    /// Items in redb.
    Redb(Box<RedbStore>),
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            NodeStore::Memory($store) => $call,
            NodeStore::Redb($store) => $call,
        }
    };
}

impl Store for NodeStore {
    fn get(&self, key: &Key, now: Time) -> Result<Option<Item>, ReadError> {
        delegate!(self, s => s.get(key, now))
    }
    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        delegate!(self, s => s.put(item, now, origin))
    }
    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        delegate!(self, s => s.committed(commit, outcome))
    }
    fn expire(&mut self, now: Time) -> usize {
        delegate!(self, s => s.expire(now))
    }
    fn holdings(&self) -> &dyn Holdings {
        delegate!(self, s => s.holdings())
    }
}
