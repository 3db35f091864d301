//! Where a node keeps items: the [`Store`] trait and an in-memory implementation.
//!
//! A store applies the which-copy-wins rules ([`crate::item::resolve`]) and the node's limits
//! inside its own `put`, so that a durable store can make the check and the write one
//! transaction. [`MemoryStore`] serves tests, the simulator, and nodes run without a disk.
//!
//! Durability is part of the contract. A durable store answers a write with a [`CommitId`]
//! before the write is on disk; the node carries that id into whatever reports the write (the
//! [`crate::node::Answer`] to a `store`, the [`crate::node::Event::PutDone`] of a put), and the
//! driver reports the commit's outcome back with [`crate::Node::handle_commit`], which calls
//! [`Store::committed`]. Nobody is told an item is stored before its commit is durable, and a
//! commit that failed leaves no trace: the store undoes the write it had accepted.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::Key;
use crate::item::{Item, Refusal, Resolution, resolve};
use crate::message::ErrorCode;
use crate::time::Time;

/// The most a store may hold. Defaults: 100,000 items and 256 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// The most items held at once.
    pub max_items: usize,
    /// The most bytes of items ([`Item::size`]) held at once.
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_items: 100_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
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
}

impl StoreError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Refused(Refusal::Expired) => ErrorCode::BAD_REQUEST,
            StoreError::Refused(_) => ErrorCode::CONFLICT,
            StoreError::Full { .. } => ErrorCode::OVER_LIMIT,
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

/// A node's item storage.
pub trait Store {
    /// The item held for `key`, unless it has expired at `now`.
    fn get(&self, key: &Key, now: Time) -> Option<Item>;

    /// Keeps `item` if the rules and limits allow, marking it as this node's own when `own` is
    /// set (a mark that later copies from peers keep). The item is served at once; it is
    /// durable once the returned commit (if any) is reported [`CommitOutcome::Durable`].
    fn put(&mut self, item: Item, now: Time, own: bool) -> Result<Written, StoreError>;

    /// The outcome of `commit`. On [`CommitOutcome::Failed`] the store undoes the writes of
    /// that commit, so that it never serves an item it could not make durable.
    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome);

    /// The number of items held (expired ones not yet removed included).
    fn len(&self) -> usize;

    /// The keys of every item held, for replication.
    fn keys(&self) -> Vec<Key>;

    /// Removes every item expired at `now`; returns how many.
    fn expire(&mut self, now: Time) -> usize;

    /// The keys of the items this node published itself and still holds.
    fn own_keys(&self) -> Vec<Key>;

    /// Whether no item is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Items in a map in memory. Bounded by its [`StoreLimits`].
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    items: BTreeMap<Key, Item>,
    own: BTreeSet<Key>,
    bytes: usize,
    limits: StoreLimits,
}

impl MemoryStore {
    /// An empty store with these limits.
    pub fn new(limits: StoreLimits) -> Self {
        MemoryStore {
            items: BTreeMap::new(),
            own: BTreeSet::new(),
            bytes: 0,
            limits,
        }
    }

    /// Bytes of items held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Removes every item expired at `now` and returns their keys.
    pub fn drain_expired(&mut self, now: Time) -> Vec<Key> {
        let mut gone = Vec::new();
        let mut freed = 0;
        self.items.retain(|key, item| {
            let keep = !item.is_expired(now);
            if !keep {
                freed += item.size();
                gone.push(*key);
            }
            keep
        });
        self.bytes -= freed;
        let items = &self.items;
        self.own.retain(|key| items.contains_key(key));
        gone
    }

    /// Adds an item read back from disk, bypassing the rules (it passed them when stored) but
    /// not the limits' accounting.
    pub fn restore(&mut self, item: Item, own: bool) {
        let key = *item.key();
        self.bytes += item.size();
        if let Some(old) = self.items.insert(key, item) {
            self.bytes -= old.size();
        }
        if own {
            self.own.insert(key);
        }
    }

    /// The item held for `key`, expired or not.
    pub fn held(&self, key: &Key) -> Option<&Item> {
        self.items.get(key)
    }

    /// Whether this node published the item under `key` itself.
    pub fn is_own(&self, key: &Key) -> bool {
        self.own.contains(key)
    }

    /// Puts the store back as it was for `key`: `previous` held (or nothing), with that own
    /// mark. Undoes a write whose commit failed.
    pub fn revert(&mut self, key: Key, previous: Option<Item>, own: bool) {
        if let Some(old) = self.items.remove(&key) {
            self.bytes -= old.size();
        }
        self.own.remove(&key);
        if let Some(item) = previous {
            self.restore(item, own);
        }
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key, now: Time) -> Option<Item> {
        self.items
            .get(key)
            .filter(|item| !item.is_expired(now))
            .cloned()
    }

    fn put(&mut self, item: Item, now: Time, own: bool) -> Result<Written, StoreError> {
        let key = *item.key();
        let resolution = self.keep(item, now)?;
        if own {
            self.own.insert(key);
        }
        Ok(Written {
            resolution,
            commit: None,
        })
    }

    fn committed(&mut self, _: CommitId, _: CommitOutcome) {}

    fn len(&self) -> usize {
        self.items.len()
    }

    fn keys(&self) -> Vec<Key> {
        self.items.keys().copied().collect()
    }

    fn expire(&mut self, now: Time) -> usize {
        self.drain_expired(now).len()
    }

    fn own_keys(&self) -> Vec<Key> {
        self.own.iter().copied().collect()
    }
}

impl MemoryStore {
    /// Applies the which-copy-wins rules and the limits, and keeps `item` if they allow.
    fn keep(&mut self, item: Item, now: Time) -> Result<Resolution, StoreError> {
        let held = self.items.get(item.key());
        let resolution = resolve(held, &item, now)?;
        if resolution == Resolution::Unchanged {
            return Ok(resolution);
        }
        let (freed, is_new) = (held.map_or(0, Item::size), held.is_none());
        let items_after = self.items.len() + usize::from(is_new);
        let bytes_after = self.bytes - freed + item.size();
        if items_after > self.limits.max_items || bytes_after > self.limits.max_bytes {
            return Err(StoreError::Full {
                items: self.items.len(),
                bytes: self.bytes,
            });
        }
        self.bytes = bytes_after;
        self.items.insert(*item.key(), item);
        Ok(if is_new {
            Resolution::Insert
        } else {
            Resolution::Replace
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{ImmutableItem, SignedItem};
    use bytes::Bytes;
    use ed25519_dalek::SigningKey;

    const NOW: Time = Time::from_secs(1_800_000_000);

    fn blob(n: u8, len: usize) -> Item {
        ImmutableItem::new(Bytes::from(vec![n; len])).into()
    }

    #[test]
    fn limits_refuse_with_429_and_replacing_does_not_count_twice() {
        let mut store = MemoryStore::new(StoreLimits {
            max_items: 2,
            max_bytes: 1_000,
        });
        assert_eq!(
            store.put(blob(1, 10), NOW, false).map(|w| w.resolution),
            Ok(Resolution::Insert)
        );
        assert_eq!(
            store.put(blob(2, 10), NOW, false).map(|w| w.resolution),
            Ok(Resolution::Insert)
        );
        let full = store
            .put(blob(3, 10), NOW, false)
            .map(|w| w.resolution)
            .expect_err("over max_items");
        assert_eq!(full.code(), ErrorCode::OVER_LIMIT);
        assert_eq!(
            store.put(blob(1, 10), NOW, false).map(|w| w.resolution),
            Ok(Resolution::Unchanged)
        );
        assert_eq!(store.len(), 2);

        let mut store = MemoryStore::new(StoreLimits {
            max_items: 10,
            max_bytes: 200,
        });
        assert!(
            store
                .put(blob(1, 100), NOW, false)
                .map(|w| w.resolution)
                .is_ok()
        );
        assert!(matches!(
            store.put(blob(2, 100), NOW, false).map(|w| w.resolution),
            Err(StoreError::Full { .. })
        ));
        assert!(
            store.get(blob(1, 100).key(), NOW).is_some(),
            "a full store keeps serving"
        );

        let key = SigningKey::from_bytes(&[1; 32]);
        let sign = |seq, len| -> Item {
            SignedItem::sign(&key, "n", Bytes::from(vec![0; len]), seq, 0)
                .expect("valid")
                .into()
        };
        let mut store = MemoryStore::new(StoreLimits {
            max_items: 1,
            max_bytes: 1_000,
        });
        assert!(
            store
                .put(sign(1, 10), NOW, false)
                .map(|w| w.resolution)
                .is_ok()
        );
        assert_eq!(
            store.put(sign(2, 20), NOW, false).map(|w| w.resolution),
            Ok(Resolution::Replace),
            "a replacement fits"
        );
        assert_eq!(store.bytes(), sign(2, 20).size());
    }

    #[test]
    fn refusals_map_to_codes_and_expired_items_are_not_served() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let sign = |seq, value: &'static [u8], expires| -> Item {
            SignedItem::sign(&key, "n", Bytes::from_static(value), seq, expires)
                .expect("valid")
                .into()
        };
        let mut store = MemoryStore::default();
        assert!(
            store
                .put(sign(5, b"a", NOW.as_secs() + 10), NOW, false)
                .map(|w| w.resolution)
                .is_ok()
        );
        let stale = store
            .put(sign(4, b"a", 0), NOW, false)
            .map(|w| w.resolution)
            .expect_err("stale");
        assert_eq!(stale.code(), ErrorCode::CONFLICT);
        let conflict = store
            .put(sign(5, b"b", 0), NOW, false)
            .map(|w| w.resolution)
            .expect_err("conflict");
        assert_eq!(conflict.code(), ErrorCode::CONFLICT);
        let expired = store
            .put(sign(6, b"a", 1), NOW, false)
            .map(|w| w.resolution)
            .expect_err("expired");
        assert_eq!(expired.code(), ErrorCode::BAD_REQUEST);
        let later = Time::from_secs(NOW.as_secs() + 10);
        assert!(store.get(sign(5, b"a", 0).key(), NOW).is_some());
        assert!(store.get(sign(5, b"a", 0).key(), later).is_none());
    }
}
