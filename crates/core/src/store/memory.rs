//! [`MemoryStore`]: whole items in a map, for tests, the simulator and nodes without a disk.

use super::{
    CommitId, CommitOutcome, Holdings, Ledger, Origin, ReadError, Store, StoreError, StoreLimits,
    Written,
};
use crate::id::Key;
use crate::item::Item;
use crate::subnet::Prefix;
use crate::time::Time;

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

    /// The subnet whose peer stored the item under `key`, if it counts against a share.
    pub fn stored_by(&self, key: &Key) -> Option<Prefix> {
        self.ledger.stored_by(key)
    }

    /// Items and bytes the peers of `subnet` stored.
    pub fn usage(&self, subnet: &Prefix) -> (usize, usize) {
        self.ledger.usage(subnet)
    }

    /// Puts the store back as it was for `key` (see [`Ledger::revert`]).
    pub fn revert(&mut self, key: Key, previous: Option<Item>, own: bool, subnet: Option<Prefix>) {
        self.ledger.revert(key, previous, own, subnet);
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key, now: Time) -> Result<Option<Item>, ReadError> {
        Ok(self.ledger.live(key, now).cloned())
    }

    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        let resolution = self.ledger.admit(&item, || item.clone(), now, origin)?;
        Ok(Written {
            resolution,
            commit: None,
        })
    }

    fn committed(&mut self, _: CommitId, _: CommitOutcome) {}

    fn expire(&mut self, now: Time) -> usize {
        self.drain_expired(now).len()
    }

    fn holdings(&self) -> &dyn Holdings {
        &self.ledger
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Resolution;
    use crate::item::{ImmutableItem, SignedItem};
    use crate::message::ErrorCode;
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
            store
                .get(blob(1, 100).key(), NOW)
                .expect("readable")
                .is_some(),
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
        assert!(
            store
                .get(sign(5, b"a", 0).key(), NOW)
                .expect("readable")
                .is_some()
        );
        assert!(
            store
                .get(sign(5, b"a", 0).key(), later)
                .expect("readable")
                .is_none()
        );
    }
}
