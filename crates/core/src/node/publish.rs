//! Publishing under this node's own key: the rules that choose a signed item's `seq` and
//! expiry, so that every driver (the tokio node, the simulator) publishes the same way.
//!
//! `seq` is the current Unix time in milliseconds, or one more than the `seq` of the copy held
//! if that is larger: a publisher's updates always win, even when its clock steps back or it
//! publishes twice within a millisecond.

use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;

use super::{Node, QueryId};
use crate::item::{ItemError, SignedItem, Tombstone, signed_key};
use crate::store::Store;
use crate::time::Time;

/// The `seq` a new version gets at `now`, given the `seq` of the copy held, if any.
pub fn next_seq(now: Time, held: Option<u64>) -> u64 {
    held.map_or(now.as_millis(), |seq| {
        now.as_millis().max(seq.saturating_add(1))
    })
}

/// The `expires` field (Unix seconds, 0 for never) of an item published at `now` to live `ttl`.
/// A ttl so short that it rounds to the epoch still expires (1, not 0).
pub fn expiry(now: Time, ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| (now + ttl).as_secs().max(1))
}

impl<S: Store> Node<S> {
    /// Signs `value` under `name` with `key` (this node's publishing key), choosing `seq` and
    /// `expires` by the rules above, and puts it. Fails only if the item is invalid (say, a
    /// name of more than 255 bytes).
    pub fn publish(
        &mut self,
        now: Time,
        key: &SigningKey,
        name: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<QueryId, ItemError> {
        let item_key = signed_key(&key.verifying_key().to_bytes(), name);
        let held = self
            .store
            .get(&item_key, now)
            .ok()
            .flatten()
            .and_then(|item| item.seq());
        let item = SignedItem::sign(key, name, value, next_seq(now, held), expiry(now, ttl))?;
        Ok(self.put(now, item.into()))
    }

    /// Deletes the item `name` of `key`'s owner: signs a tombstone whose `seq` beats both the
    /// copy held here and `found` (the `seq` a get found in the network, if any), and puts it.
    /// The tombstone lives `ttl`, for ever without one: a tombstone that expires stops
    /// refusing older copies, so it should outlive every copy of the item it deletes.
    pub fn delete(
        &mut self,
        now: Time,
        key: &SigningKey,
        name: &str,
        found: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<QueryId, ItemError> {
        let item_key = signed_key(&key.verifying_key().to_bytes(), name);
        let local = self
            .store
            .get(&item_key, now)
            .ok()
            .flatten()
            .and_then(|item| item.seq());
        let held = local.max(found);
        let tombstone = Tombstone::sign(key, name, next_seq(now, held), expiry(now, ttl))?;
        Ok(self.put(now, tombstone.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::id::NodeId;
    use crate::node::Event;

    const NOW: Time = Time::from_millis(1_800_000_000_123);

    #[test]
    fn seq_is_the_time_in_milliseconds_or_one_more_than_held() {
        assert_eq!(next_seq(NOW, None), 1_800_000_000_123);
        assert_eq!(next_seq(NOW, Some(5)), 1_800_000_000_123, "an old copy");
        assert_eq!(
            next_seq(NOW, Some(1_800_000_000_123)),
            1_800_000_000_124,
            "published twice in one millisecond"
        );
        assert_eq!(
            next_seq(NOW, Some(1_900_000_000_000)),
            1_900_000_000_001,
            "the clock stepped back"
        );
        assert_eq!(next_seq(NOW, Some(u64::MAX)), u64::MAX, "saturates");
    }

    #[test]
    fn expiry_is_now_plus_ttl_in_seconds_and_zero_without_one() {
        assert_eq!(expiry(NOW, None), 0);
        assert_eq!(expiry(NOW, Some(Duration::from_secs(60))), 1_800_000_060);
        assert_eq!(
            expiry(Time::from_millis(0), Some(Duration::ZERO)),
            1,
            "never 0, which would mean never"
        );
    }

    #[test]
    fn a_second_publish_replaces_the_first_and_bad_names_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut node = Node::new(
            NodeId::hash(b"me"),
            Default::default(),
            MemoryStore::default(),
        );
        let first = node.publish(NOW, &key, "doc", Bytes::from_static(b"a"), None);
        let second = node.publish(NOW, &key, "doc", Bytes::from_static(b"b"), None);
        assert!(first.is_ok() && second.is_ok());
        let item_key = signed_key(&key.verifying_key().to_bytes(), "doc");
        let held = node
            .store()
            .get(&item_key, NOW)
            .expect("readable")
            .expect("stored locally");
        assert_eq!(held.value().as_ref(), b"b");
        assert_eq!(held.seq(), Some(1_800_000_000_124));
        let done: Vec<_> = std::iter::from_fn(|| node.poll_event())
            .filter(|e| matches!(e, Event::PutDone { .. }))
            .collect();
        assert_eq!(done.len(), 2, "alone in its network, each put ends at once");
        let long = "n".repeat(256);
        assert!(node.publish(NOW, &key, &long, Bytes::new(), None).is_err());
    }
}
