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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::id::Key;
use crate::item::{Held, Item, Refusal, Resolution, resolve};
use crate::message::ErrorCode;
use crate::subnet::Prefix;
use crate::time::Time;

/// The most a store may hold. Defaults: 100,000 items and 256 MiB, of which one network
/// (IPv4 /24, IPv6 /48) may have stored a tenth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// The most items held at once.
    pub max_items: usize,
    /// The most bytes of items ([`Item::size`]) held at once.
    pub max_bytes: usize,
    /// The most items stored by peers of one network held at once. Default 10,000.
    pub max_items_per_network: usize,
    /// The most bytes stored by peers of one network held at once. Default 25.6 MiB.
    pub max_bytes_per_network: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_items: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_items_per_network: 10_000,
            max_bytes_per_network: 256 * 1024 * 1024 / 10,
        }
    }
}

/// Who asked a store to keep an item: what its share of the store is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This node published it (and republishes it).
    Own,
    /// A peer of this network (IPv4 /24, IPv6 /48) stored it: it counts against that
    /// network's share.
    Network(Prefix),
    /// A peer whose network is not known (and items read back from disk): no share.
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
    /// Keeping it would pass the share of the store one network may fill.
    #[error("peers of {network} hold their share of this store ({items} items, {bytes} bytes)")]
    NetworkFull {
        /// The network (IPv4 /24, IPv6 /48).
        network: Prefix,
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
            StoreError::Full { .. } | StoreError::NetworkFull { .. } => ErrorCode::OVER_LIMIT,
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

    /// Keeps `item` if the rules and limits allow (the share of `origin`'s network included),
    /// marking it as this node's own for [`Origin::Own`] (a mark that later copies from peers
    /// keep). The item is served at once; it is durable once the returned commit (if any) is
    /// reported [`CommitOutcome::Durable`].
    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError>;

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

    /// Bytes of the items held, as counted against `max_store_bytes`.
    fn bytes(&self) -> usize;

    /// What is held, in key order: at most `limit` entries, from the first key after `after`
    /// (from the start with `None`). Values are not read.
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

/// The bookkeeping every store shares: what is held per key (a whole item, or a [`Summary`](crate::item::Summary)
/// of one whose value lives elsewhere), the own marks, the bytes held, each network's share,
/// and the limits. The which-copy-wins rules run here, on whatever is held.
#[derive(Clone, Debug)]
pub struct Ledger<T> {
    entries: BTreeMap<Key, T>,
    own: BTreeSet<Key>,
    bytes: usize,
    limits: StoreLimits,
    /// The network whose peer stored each item that counts against a share.
    stored_by: BTreeMap<Key, Prefix>,
    /// Items and bytes each network's peers stored.
    usage: HashMap<Prefix, (usize, usize)>,
}

impl<T: Held + Clone> Ledger<T> {
    /// An empty ledger with these limits.
    pub fn new(limits: StoreLimits) -> Self {
        Ledger {
            entries: BTreeMap::new(),
            own: BTreeSet::new(),
            bytes: 0,
            limits,
            stored_by: BTreeMap::new(),
            usage: HashMap::new(),
        }
    }

    /// Bytes of items held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Items held (expired ones not yet removed included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys of every item held.
    pub fn keys(&self) -> Vec<Key> {
        self.entries.keys().copied().collect()
    }

    /// A listing of what is held ([`Store::list`]).
    pub fn list(&self, after: Option<&Key>, limit: usize) -> Vec<Listed> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(key, held)| Listed {
                key: *key,
                kind: held.kind(),
                seq: held.seq(),
                expires: held.expires(),
                size: held.size(),
                own: self.own.contains(key),
            })
            .collect()
    }

    /// The keys of the items this node published itself.
    pub fn own_keys(&self) -> Vec<Key> {
        self.own.iter().copied().collect()
    }

    /// What is held for `key`, expired or not.
    pub fn held(&self, key: &Key) -> Option<&T> {
        self.entries.get(key)
    }

    /// What is held for `key`, unless it has expired at `now`.
    pub fn live(&self, key: &Key, now: Time) -> Option<&T> {
        self.entries.get(key).filter(|held| !held.is_expired(now))
    }

    /// Whether this node published the item under `key` itself.
    pub fn is_own(&self, key: &Key) -> bool {
        self.own.contains(key)
    }

    /// The network whose peer stored the item under `key`, if it counts against a share.
    pub fn stored_by(&self, key: &Key) -> Option<Prefix> {
        self.stored_by.get(key).copied()
    }

    /// Items and bytes the peers of `network` stored.
    pub fn usage(&self, network: &Prefix) -> (usize, usize) {
        self.usage.get(network).copied().unwrap_or((0, 0))
    }

    /// Applies the which-copy-wins rules, the limits and `origin`'s share to `item`, and if
    /// they allow, holds `entry` for it (made only then).
    pub fn admit(
        &mut self,
        item: &Item,
        entry: impl FnOnce() -> T,
        now: Time,
        origin: Origin,
    ) -> Result<Resolution, StoreError> {
        let key = *item.key();
        let held = self.entries.get(&key);
        let mut resolution = resolve(held, item, now)?;
        if resolution != Resolution::Unchanged {
            let (freed, is_new) = (held.map_or(0, Held::size), held.is_none());
            if let Origin::Network(network) = origin {
                self.check_share(network, &key, freed, item.size())?;
            }
            let items_after = self.entries.len() + usize::from(is_new);
            let bytes_after = self.bytes - freed + item.size();
            if items_after > self.limits.max_items || bytes_after > self.limits.max_bytes {
                return Err(StoreError::Full {
                    items: self.entries.len(),
                    bytes: self.bytes,
                });
            }
            self.bytes = bytes_after;
            self.detach(&key);
            self.entries.insert(key, entry());
            if let Origin::Network(network) = origin {
                self.attach(key, item.size(), network);
            }
            resolution = if is_new {
                Resolution::Insert
            } else {
                Resolution::Replace
            };
        }
        if origin == Origin::Own {
            self.own.insert(key);
        }
        Ok(resolution)
    }

    /// Removes every item expired at `now` and returns their keys.
    pub fn drain_expired(&mut self, now: Time) -> Vec<Key> {
        let gone: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, held)| held.is_expired(now))
            .map(|(key, _)| *key)
            .collect();
        for key in &gone {
            self.remove(key);
        }
        gone
    }

    /// Holds `entry` for `key` as read back from disk, bypassing the rules (it passed them
    /// when stored) but not the limits' accounting.
    pub fn restore(&mut self, key: Key, entry: T, own: bool) {
        self.remove(&key);
        self.bytes += entry.size();
        self.entries.insert(key, entry);
        if own {
            self.own.insert(key);
        }
    }

    /// Puts the ledger back as it was for `key`: `previous` held (or nothing), with that own
    /// mark and counted against that network. Undoes a write whose commit failed.
    pub fn revert(&mut self, key: Key, previous: Option<T>, own: bool, network: Option<Prefix>) {
        self.remove(&key);
        if let Some(entry) = previous {
            let size = entry.size();
            self.restore(key, entry, own);
            if let Some(network) = network {
                self.attach(key, size, network);
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        self.detach(key);
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.size();
        }
        self.own.remove(key);
    }

    /// Counts the item under `key` (of `size` bytes) against `network`'s share.
    fn attach(&mut self, key: Key, size: usize, network: Prefix) {
        self.detach(&key);
        self.stored_by.insert(key, network);
        let usage = self.usage.entry(network).or_default();
        usage.0 += 1;
        usage.1 += size;
    }

    /// Stops counting the item under `key` against any share.
    fn detach(&mut self, key: &Key) {
        let Some(network) = self.stored_by.remove(key) else {
            return;
        };
        let size = self.entries.get(key).map_or(0, Held::size);
        if let Some(usage) = self.usage.get_mut(&network) {
            usage.0 = usage.0.saturating_sub(1);
            usage.1 = usage.1.saturating_sub(size);
            if usage.0 == 0 {
                self.usage.remove(&network);
            }
        }
    }

    /// Whether `network` may store an item of `size` bytes under `key`, replacing one of
    /// `freed` bytes: its share is counted with the replaced item taken out if it was its.
    fn check_share(
        &self,
        network: Prefix,
        key: &Key,
        freed: usize,
        size: usize,
    ) -> Result<(), StoreError> {
        let (items, bytes) = self.usage(&network);
        let replaces_own = self.stored_by.get(key) == Some(&network);
        let (items_after, bytes_after) = if replaces_own {
            (items, bytes - freed + size)
        } else {
            (items + 1, bytes + size)
        };
        if items_after > self.limits.max_items_per_network
            || bytes_after > self.limits.max_bytes_per_network
        {
            return Err(StoreError::NetworkFull {
                network,
                items,
                bytes,
            });
        }
        Ok(())
    }
}

/// Items in a map in memory. Bounded by its [`StoreLimits`].
#[derive(Clone, Debug)]
pub struct MemoryStore {
    ledger: Ledger<Item>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(StoreLimits::default())
    }
}

impl MemoryStore {
    /// An empty store with these limits.
    pub fn new(limits: StoreLimits) -> Self {
        MemoryStore {
            ledger: Ledger::new(limits),
        }
    }

    /// Bytes of items held.
    pub fn bytes(&self) -> usize {
        self.ledger.bytes()
    }

    /// Removes every item expired at `now` and returns their keys.
    pub fn drain_expired(&mut self, now: Time) -> Vec<Key> {
        self.ledger.drain_expired(now)
    }

    /// Adds an item read back from disk, bypassing the rules but not the limits' accounting.
    pub fn restore(&mut self, item: Item, own: bool) {
        self.ledger.restore(*item.key(), item, own);
    }

    /// The item held for `key`, expired or not.
    pub fn held(&self, key: &Key) -> Option<&Item> {
        self.ledger.held(key)
    }

    /// Whether this node published the item under `key` itself.
    pub fn is_own(&self, key: &Key) -> bool {
        self.ledger.is_own(key)
    }

    /// The network whose peer stored the item under `key`, if it counts against a share.
    pub fn stored_by(&self, key: &Key) -> Option<Prefix> {
        self.ledger.stored_by(key)
    }

    /// Items and bytes the peers of `network` stored.
    pub fn usage(&self, network: &Prefix) -> (usize, usize) {
        self.ledger.usage(network)
    }

    /// Puts the store back as it was for `key` (see [`Ledger::revert`]).
    pub fn revert(&mut self, key: Key, previous: Option<Item>, own: bool, network: Option<Prefix>) {
        self.ledger.revert(key, previous, own, network);
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key, now: Time) -> Option<Item> {
        self.ledger.live(key, now).cloned()
    }

    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        let resolution = self.ledger.admit(&item, || item.clone(), now, origin)?;
        Ok(Written {
            resolution,
            commit: None,
        })
    }

    fn committed(&mut self, _: CommitId, _: CommitOutcome) {}

    fn len(&self) -> usize {
        self.ledger.len()
    }

    fn keys(&self) -> Vec<Key> {
        self.ledger.keys()
    }

    fn expire(&mut self, now: Time) -> usize {
        self.drain_expired(now).len()
    }

    fn own_keys(&self) -> Vec<Key> {
        self.ledger.own_keys()
    }

    fn bytes(&self) -> usize {
        self.ledger.bytes()
    }

    fn list(&self, after: Option<&Key>, limit: usize) -> Vec<Listed> {
        self.ledger.list(after, limit)
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
            ..StoreLimits::default()
        });
        assert_eq!(
            store
                .put(blob(1, 10), NOW, Origin::Unknown)
                .map(|w| w.resolution),
            Ok(Resolution::Insert)
        );
        assert_eq!(
            store
                .put(blob(2, 10), NOW, Origin::Unknown)
                .map(|w| w.resolution),
            Ok(Resolution::Insert)
        );
        let full = store
            .put(blob(3, 10), NOW, Origin::Unknown)
            .map(|w| w.resolution)
            .expect_err("over max_items");
        assert_eq!(full.code(), ErrorCode::OVER_LIMIT);
        assert_eq!(
            store
                .put(blob(1, 10), NOW, Origin::Unknown)
                .map(|w| w.resolution),
            Ok(Resolution::Unchanged)
        );
        assert_eq!(store.len(), 2);

        let mut store = MemoryStore::new(StoreLimits {
            max_items: 10,
            max_bytes: 200,
            ..StoreLimits::default()
        });
        assert!(
            store
                .put(blob(1, 100), NOW, Origin::Unknown)
                .map(|w| w.resolution)
                .is_ok()
        );
        assert!(matches!(
            store
                .put(blob(2, 100), NOW, Origin::Unknown)
                .map(|w| w.resolution),
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
            ..StoreLimits::default()
        });
        assert!(
            store
                .put(sign(1, 10), NOW, Origin::Unknown)
                .map(|w| w.resolution)
                .is_ok()
        );
        assert_eq!(
            store
                .put(sign(2, 20), NOW, Origin::Unknown)
                .map(|w| w.resolution),
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
                .put(sign(5, b"a", NOW.as_secs() + 10), NOW, Origin::Unknown)
                .map(|w| w.resolution)
                .is_ok()
        );
        let stale = store
            .put(sign(4, b"a", 0), NOW, Origin::Unknown)
            .map(|w| w.resolution)
            .expect_err("stale");
        assert_eq!(stale.code(), ErrorCode::CONFLICT);
        let conflict = store
            .put(sign(5, b"b", 0), NOW, Origin::Unknown)
            .map(|w| w.resolution)
            .expect_err("conflict");
        assert_eq!(conflict.code(), ErrorCode::CONFLICT);
        let expired = store
            .put(sign(6, b"a", 1), NOW, Origin::Unknown)
            .map(|w| w.resolution)
            .expect_err("expired");
        assert_eq!(expired.code(), ErrorCode::BAD_REQUEST);
        let later = Time::from_secs(NOW.as_secs() + 10);
        assert!(store.get(sign(5, b"a", 0).key(), NOW).is_some());
        assert!(store.get(sign(5, b"a", 0).key(), later).is_none());
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;
    use crate::item::ImmutableItem;
    use bytes::Bytes;

    const NOW: Time = Time::from_secs(1_800_000_000);

    #[test]
    fn one_network_fills_only_its_share_and_others_still_store() {
        let mut store = MemoryStore::new(StoreLimits {
            max_items_per_network: 3,
            ..StoreLimits::default()
        });
        let greedy = Prefix::network("192.0.2.9".parse().expect("ip"));
        let other = Prefix::network("198.51.100.9".parse().expect("ip"));
        let blob = |n: u8| -> Item { ImmutableItem::new(Bytes::from(vec![n; 8])).into() };
        for n in 0..3 {
            assert!(store.put(blob(n), NOW, Origin::Network(greedy)).is_ok());
        }
        let refused = store
            .put(blob(3), NOW, Origin::Network(greedy))
            .expect_err("over its share");
        assert!(matches!(refused, StoreError::NetworkFull { items: 3, .. }));
        assert_eq!(refused.code(), ErrorCode::OVER_LIMIT);
        assert!(store.put(blob(3), NOW, Origin::Network(other)).is_ok());
        assert!(store.put(blob(4), NOW, Origin::Own).is_ok());
        assert_eq!(store.usage(&greedy).0, 3);
        // Dropping one of its items gives the share back.
        store.revert(*blob(0).key(), None, false, None);
        assert_eq!(store.usage(&greedy).0, 2);
        assert!(store.put(blob(5), NOW, Origin::Network(greedy)).is_ok());
    }
}
