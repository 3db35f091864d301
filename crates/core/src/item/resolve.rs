//! Which copy wins: the rules that decide whether an incoming copy replaces the one held, and
//! the [`Summary`] a durable store keeps of a copy instead of the whole item.

use super::{Item, Kind};
use crate::id::Id;
use crate::time::Time;

/// What storing an item does to the copy already held for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// No copy was held; the new one is stored.
    Insert,
    /// The new copy replaces the held one (higher `seq`, or a refresh of the same one).
    Replace,
    /// The held copy is at least as good and equal in content; nothing changes.
    Unchanged,
}

/// Why a copy is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The held copy has a higher `seq`.
    #[error("stale: a copy with seq {held} is held")]
    Stale {
        /// The `seq` of the held copy.
        held: u64,
    },
    /// Same `seq` as the held copy, different value.
    #[error("conflict: a different value with the same seq {seq} is held")]
    Conflict {
        /// The `seq` both copies carry.
        seq: u64,
    },
    /// The item's expiry has passed.
    #[error("the item has expired")]
    Expired,
}

/// What the which-copy-wins rules need to know of the copy a node holds: a whole [`Item`], or
/// a [`Summary`] of one whose value lives on disk.
pub trait Held {
    /// The `seq` of a signed copy or tombstone; `None` for an immutable one.
    fn seq(&self) -> Option<u64>;
    /// The kind of the copy.
    fn kind(&self) -> Kind;
    /// Unix seconds of expiry, 0 for never.
    fn expires(&self) -> u64;
    /// Whether `item` carries the same value as this copy.
    fn same_value(&self, item: &Item) -> bool;
    /// The bytes counted against `max_store_bytes`.
    fn size(&self) -> usize;
    /// Whether the copy has expired at `now`.
    fn is_expired(&self, now: Time) -> bool {
        let expires = self.expires();
        expires != 0 && Time::from_secs(expires) <= now
    }
}

impl Held for Item {
    fn seq(&self) -> Option<u64> {
        Item::seq(self)
    }
    fn kind(&self) -> Kind {
        Item::kind(self)
    }
    fn expires(&self) -> u64 {
        Item::expires(self)
    }
    fn same_value(&self, item: &Item) -> bool {
        self.value() == item.value()
    }
    fn size(&self) -> usize {
        Item::size(self)
    }
}

/// What the rules need of an item, without its value: about 70 bytes whatever the value's
/// size. The value is compared by a 256-bit prefix of its SHA-512; the signature of a signed
/// item is remembered by a 64-bit prefix of its SHA-512, so that a copy read back from the
/// node's own disk can be recognised as the one verified ([`Summary::describes`],
/// [`crate::wire::decode_known_item`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    kind: Kind,
    seq: Option<u64>,
    expires: u64,
    size: u32,
    value_hash: [u8; 32],
    signature_tag: u64,
}

impl Summary {
    /// The summary of `item`.
    pub fn of(item: &Item) -> Self {
        let hash = Id::hash(item.value());
        let mut value_hash = [0u8; 32];
        value_hash.copy_from_slice(&hash.as_bytes()[..32]);
        let signature_tag = item.header().map_or(0, |header| {
            let signature = header.signature();
            let mut tag = [0u8; 8];
            tag.copy_from_slice(&Id::hash(signature).as_bytes()[..8]);
            u64::from_be_bytes(tag)
        });
        Summary {
            kind: item.kind(),
            seq: item.seq(),
            expires: item.expires(),
            size: u32::try_from(item.size()).unwrap_or(u32::MAX),
            value_hash,
            signature_tag,
        }
    }

    /// Whether `item` is the item this summary was made of: the same `seq`, `expires`, value
    /// and (for a signed item) signature, by their hashes.
    pub fn describes(&self, item: &Item) -> bool {
        Summary::of(item) == *self
    }
}

impl Held for Summary {
    fn seq(&self) -> Option<u64> {
        self.seq
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn expires(&self) -> u64 {
        self.expires
    }
    fn same_value(&self, item: &Item) -> bool {
        Summary::of(item).value_hash == self.value_hash
    }
    fn size(&self) -> usize {
        self.size as usize
    }
}

/// Decides whether `incoming` may be stored over `held` (the copy held for the same key).
///
/// The rules of `docs/protocol.md` ("Which copy wins"): higher `seq` wins, whether the copies
/// are signed items or tombstones; equal `seq` with an equal kind and value replaces only to
/// extend `expires` (0 counts as never); equal `seq` with another kind or value is a conflict;
/// an expired item is refused whatever is held.
pub fn resolve<H: Held>(
    held: Option<&H>,
    incoming: &Item,
    now: Time,
) -> Result<Resolution, Refusal> {
    if incoming.is_expired(now) {
        return Err(Refusal::Expired);
    }
    let held = match held {
        Some(held) if !held.is_expired(now) => held,
        _ => return Ok(Resolution::Insert),
    };
    match (held.seq(), incoming.seq()) {
        (Some(old), Some(new)) => {
            if new > old {
                Ok(Resolution::Replace)
            } else if new < old {
                Err(Refusal::Stale { held: old })
            } else if held.kind() != incoming.kind() || !held.same_value(incoming) {
                Err(Refusal::Conflict { seq: old })
            } else if expiry_order(incoming.expires()) > expiry_order(held.expires()) {
                Ok(Resolution::Replace)
            } else {
                Ok(Resolution::Unchanged)
            }
        }
        (None, None) => Ok(Resolution::Unchanged),
        // A signed and an immutable item under one key would need a SHA-512 collision.
        _ => Err(Refusal::Conflict {
            seq: incoming.seq().unwrap_or(0),
        }),
    }
}

/// Orders expiry times so that 0 ("never") is the latest.
fn expiry_order(expires: u64) -> u64 {
    if expires == 0 { u64::MAX } else { expires }
}
