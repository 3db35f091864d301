//! The bookkeeping every store shares: what is held per key, the own marks, the bytes held,
//! each subnet's share, and the limits; the which-copy-wins rules run here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Holdings, Listed, Origin, StoreError, StoreLimits};
use crate::id::Key;
use crate::item::{Held, Item, Resolution, resolve};
use crate::subnet::Prefix;
use crate::time::Time;

/// The bookkeeping every store shares: what is held per key (a whole item, or a [`Summary`](crate::Summary)
/// of one whose value lives elsewhere), the own marks, the bytes held, each subnet's share,
/// and the limits. The which-copy-wins rules run here, on whatever is held.
#[derive(Clone, Debug)]
pub struct Ledger<T> {
    entries: BTreeMap<Key, T>,
    own: BTreeSet<Key>,
    bytes: usize,
    limits: StoreLimits,
    /// The subnet whose peer stored each item that counts against a share.
    stored_by: BTreeMap<Key, Prefix>,
    /// Items and bytes each subnet's peers stored.
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

    /// The subnet whose peer stored the item under `key`, if it counts against a share.
    pub fn stored_by(&self, key: &Key) -> Option<Prefix> {
        self.stored_by.get(key).copied()
    }

    /// Items and bytes the peers of `subnet` stored.
    pub fn usage(&self, subnet: &Prefix) -> (usize, usize) {
        self.usage.get(subnet).copied().unwrap_or((0, 0))
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
            if let Origin::Subnet(subnet) = origin {
                self.check_share(subnet, &key, freed, item.size())?;
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
            if let Origin::Subnet(subnet) = origin {
                self.attach(key, item.size(), subnet);
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
    /// mark and counted against that subnet. Undoes a write whose commit failed.
    pub fn revert(&mut self, key: Key, previous: Option<T>, own: bool, subnet: Option<Prefix>) {
        self.remove(&key);
        if let Some(entry) = previous {
            let size = entry.size();
            self.restore(key, entry, own);
            if let Some(subnet) = subnet {
                self.attach(key, size, subnet);
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

    /// Counts the item under `key` (of `size` bytes) against `subnet`'s share.
    fn attach(&mut self, key: Key, size: usize, subnet: Prefix) {
        self.detach(&key);
        self.stored_by.insert(key, subnet);
        let usage = self.usage.entry(subnet).or_default();
        usage.0 += 1;
        usage.1 += size;
    }

    /// Stops counting the item under `key` against any share.
    fn detach(&mut self, key: &Key) {
        let Some(subnet) = self.stored_by.remove(key) else {
            return;
        };
        let size = self.entries.get(key).map_or(0, Held::size);
        if let Some(usage) = self.usage.get_mut(&subnet) {
            usage.0 = usage.0.saturating_sub(1);
            usage.1 = usage.1.saturating_sub(size);
            if usage.0 == 0 {
                self.usage.remove(&subnet);
            }
        }
    }

    /// Whether `subnet` may store an item of `size` bytes under `key`, replacing one of
    /// `freed` bytes: its share is counted with the replaced item taken out if it was its.
    fn check_share(
        &self,
        subnet: Prefix,
        key: &Key,
        freed: usize,
        size: usize,
    ) -> Result<(), StoreError> {
        let (items, bytes) = self.usage(&subnet);
        let replaces_own = self.stored_by.get(key) == Some(&subnet);
        let (items_after, bytes_after) = if replaces_own {
            (items, bytes - freed + size)
        } else {
            (items + 1, bytes + size)
        };
        if items_after > self.limits.max_items_per_subnet
            || bytes_after > self.limits.max_bytes_per_subnet
        {
            return Err(StoreError::SubnetFull {
                subnet,
                items,
                bytes,
            });
        }
        Ok(())
    }
}

impl<T: Held + Clone> Holdings for Ledger<T> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn keys(&self) -> Vec<Key> {
        self.entries.keys().copied().collect()
    }

    fn own_keys(&self) -> Vec<Key> {
        self.own.iter().copied().collect()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn list(&self, after: Option<&Key>, limit: usize) -> Vec<Listed> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::ImmutableItem;
    use crate::message::ErrorCode;
    use crate::store::{MemoryStore, Store};
    use bytes::Bytes;

    const NOW: Time = Time::from_secs(1_800_000_000);

    #[test]
    fn one_network_fills_only_its_share_and_others_still_store() {
        let mut store = MemoryStore::new(StoreLimits {
            max_items_per_subnet: 3,
            ..StoreLimits::default()
        });
        let greedy = Prefix::subnet("192.0.2.9".parse().expect("ip"));
        let other = Prefix::subnet("198.51.100.9".parse().expect("ip"));
        let blob = |n: u8| -> Item { ImmutableItem::new(Bytes::from(vec![n; 8])).into() };
        for n in 0..3 {
            assert!(store.put(blob(n), NOW, Origin::Subnet(greedy)).is_ok());
        }
        let refused = store
            .put(blob(3), NOW, Origin::Subnet(greedy))
            .expect_err("over its share");
        assert!(matches!(refused, StoreError::SubnetFull { items: 3, .. }));
        assert_eq!(refused.code(), ErrorCode::OVER_LIMIT);
        assert!(store.put(blob(3), NOW, Origin::Subnet(other)).is_ok());
        assert!(store.put(blob(4), NOW, Origin::Own).is_ok());
        assert_eq!(store.usage(&greedy).0, 3);
        // Dropping one of its items gives the share back.
        store.revert(*blob(0).key(), None, false, None);
        assert_eq!(store.usage(&greedy).0, 2);
        assert!(store.put(blob(5), NOW, Origin::Subnet(greedy)).is_ok());
    }
}
