//! Items: the values the DHT stores, their keys, signatures and which copy wins.
//!
//! An [`Item`] is always valid: its key is derived, never received, and a signed item's
//! signature has been checked with `verify_strict`. There are exactly two ways to make one:
//! [`SignedItem::sign`] with a private key, and [`SignedItem::verify`] /
//! [`ImmutableItem::new`] from parts that came from elsewhere. The wire codec calls only the
//! latter, so nothing unverified can be stored, served or returned.
//!
//! Byte layouts are in `docs/protocol.md` ("Items"), with test vectors.

use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::id::{Id, Key};
use crate::time::Time;

/// Domain separation tag at the start of every item signature preimage.
pub const ITEM_SIGNATURE_TAG: &[u8] = b"cairn-item-v1";

/// Domain separation tag at the start of every tombstone signature preimage.
pub const TOMBSTONE_SIGNATURE_TAG: &[u8] = b"cairn-tombstone-v1";

/// The longest item name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;

/// A value published under a key pair and a name; the owner can replace it with a higher `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedItem {
    key: Key,
    public_key: [u8; 32],
    name: String,
    value: Bytes,
    seq: u64,
    expires: u64,
    signature: [u8; 64],
}

/// A value whose key is its own hash, so any copy that hashes to the key is the right one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmutableItem {
    key: Key,
    value: Bytes,
}

/// The publisher's word that its signed item under `name` is deleted, as of `seq`: it competes
/// with the signed item's versions by `seq`, so that a stale replica cannot bring the item back
/// (`docs/protocol.md`, "Tombstones").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    key: Key,
    public_key: [u8; 32],
    name: String,
    seq: u64,
    expires: u64,
    signature: [u8; 64],
}

/// A verified item of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Mutable, owned by a key pair.
    Signed(SignedItem),
    /// Content-addressed.
    Immutable(ImmutableItem),
    /// A deleted signed item.
    Tombstone(Tombstone),
}

/// The kinds of item, as the wire names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `"signed"`.
    Signed,
    /// `"immutable"`.
    Immutable,
    /// `"tombstone"`.
    Tombstone,
}

impl Kind {
    /// The name the wire and the HTTP API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Signed => "signed",
            Kind::Immutable => "immutable",
            Kind::Tombstone => "tombstone",
        }
    }
}

/// Why parts do not make a valid item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The name is empty or longer than [`MAX_NAME_LEN`] bytes.
    #[error("item name must be 1 to {MAX_NAME_LEN} bytes, got {0}")]
    NameLength(usize),
    /// The public key is not a valid ed25519 point.
    #[error("public key is not a valid ed25519 key")]
    BadPublicKey,
    /// The signature does not verify under `verify_strict`.
    #[error("signature does not verify")]
    BadSignature,
}

/// The key of a signed item: `SHA-512(SHA-512(public_key) || SHA-512(name))`.
pub fn signed_key(public_key: &[u8; 32], name: &str) -> Key {
    let mut preimage = [0u8; 128];
    preimage[..64].copy_from_slice(Id::hash(public_key).as_bytes());
    preimage[64..].copy_from_slice(Id::hash(name.as_bytes()).as_bytes());
    Id::hash(&preimage)
}

/// The bytes a signed item's signature covers.
pub fn signature_preimage(key: &Key, seq: u64, expires: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ITEM_SIGNATURE_TAG.len() + 64 + 8 + 8 + 4 + value.len());
    out.extend_from_slice(ITEM_SIGNATURE_TAG);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&expires.to_be_bytes());
    // Values are bounded far below 4 GiB by `max_frame`; saturate rather than wrap regardless.
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The bytes a tombstone's signature covers.
pub fn tombstone_preimage(key: &Key, seq: u64, expires: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(TOMBSTONE_SIGNATURE_TAG.len() + 64 + 8 + 8);
    out.extend_from_slice(TOMBSTONE_SIGNATURE_TAG);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&expires.to_be_bytes());
    out
}

/// Checks `signature` over `preimage` under `public_key` with `verify_strict`.
fn verify_signature(
    public_key: &[u8; 32],
    preimage: &[u8],
    signature: &[u8; 64],
) -> Result<(), ItemError> {
    VerifyingKey::from_bytes(public_key)
        .map_err(|_| ItemError::BadPublicKey)?
        .verify_strict(preimage, &Signature::from_bytes(signature))
        .map_err(|_| ItemError::BadSignature)
}

fn check_name(name: &str) -> Result<(), ItemError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ItemError::NameLength(name.len()));
    }
    Ok(())
}

impl SignedItem {
    /// Signs a new item with `signing_key`.
    pub fn sign(
        signing_key: &SigningKey,
        name: &str,
        value: Bytes,
        seq: u64,
        expires: u64,
    ) -> Result<Self, ItemError> {
        check_name(name)?;
        let public_key = signing_key.verifying_key().to_bytes();
        let key = signed_key(&public_key, name);
        let signature = signing_key
            .sign(&signature_preimage(&key, seq, expires, &value))
            .to_bytes();
        Ok(SignedItem {
            key,
            public_key,
            name: name.to_owned(),
            value,
            seq,
            expires,
            signature,
        })
    }

    /// Makes an item of parts without checking the signature: only for `wire`, to read back a
    /// copy the node verified before and recognises by its [`Summary`].
    pub(crate) fn unverified(
        public_key: [u8; 32],
        name: String,
        value: Bytes,
        seq: u64,
        expires: u64,
        signature: [u8; 64],
    ) -> Result<Self, ItemError> {
        check_name(&name)?;
        Ok(SignedItem {
            key: signed_key(&public_key, &name),
            public_key,
            name,
            value,
            seq,
            expires,
            signature,
        })
    }

    /// Checks parts received from elsewhere and makes an item of them: the only way in for
    /// untrusted data.
    pub fn verify(
        public_key: [u8; 32],
        name: String,
        value: Bytes,
        seq: u64,
        expires: u64,
        signature: [u8; 64],
    ) -> Result<Self, ItemError> {
        let item = Self::unverified(public_key, name, value, seq, expires, signature)?;
        let preimage = signature_preimage(&item.key, seq, expires, &item.value);
        verify_signature(&public_key, &preimage, &signature)?;
        Ok(item)
    }

    /// The derived key.
    pub fn key(&self) -> &Key {
        &self.key
    }
    /// The publisher's ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }
    /// The name it was published under.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The value bytes.
    pub fn value(&self) -> &Bytes {
        &self.value
    }
    /// The publisher's sequence number; higher replaces lower.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Unix seconds after which the item is dropped; 0 means never.
    pub fn expires(&self) -> u64 {
        self.expires
    }
    /// The ed25519 signature over [`signature_preimage`].
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl Tombstone {
    /// Signs a tombstone for the item `name` of `signing_key`'s owner, as of `seq`.
    pub fn sign(
        signing_key: &SigningKey,
        name: &str,
        seq: u64,
        expires: u64,
    ) -> Result<Self, ItemError> {
        check_name(name)?;
        let public_key = signing_key.verifying_key().to_bytes();
        let key = signed_key(&public_key, name);
        let signature = signing_key
            .sign(&tombstone_preimage(&key, seq, expires))
            .to_bytes();
        Ok(Tombstone {
            key,
            public_key,
            name: name.to_owned(),
            seq,
            expires,
            signature,
        })
    }

    /// Makes a tombstone of parts without checking the signature (see
    /// [`SignedItem::unverified`]).
    pub(crate) fn unverified(
        public_key: [u8; 32],
        name: String,
        seq: u64,
        expires: u64,
        signature: [u8; 64],
    ) -> Result<Self, ItemError> {
        check_name(&name)?;
        Ok(Tombstone {
            key: signed_key(&public_key, &name),
            public_key,
            name,
            seq,
            expires,
            signature,
        })
    }

    /// Checks parts received from elsewhere and makes a tombstone of them.
    pub fn verify(
        public_key: [u8; 32],
        name: String,
        seq: u64,
        expires: u64,
        signature: [u8; 64],
    ) -> Result<Self, ItemError> {
        let tombstone = Self::unverified(public_key, name, seq, expires, signature)?;
        let preimage = tombstone_preimage(&tombstone.key, seq, expires);
        verify_signature(&public_key, &preimage, &signature)?;
        Ok(tombstone)
    }

    /// The derived key: the deleted item's.
    pub fn key(&self) -> &Key {
        &self.key
    }
    /// The publisher's ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }
    /// The name of the deleted item.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The publisher's sequence number; it competes with the item's versions.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Unix seconds after which the tombstone is dropped; 0 means never.
    pub fn expires(&self) -> u64 {
        self.expires
    }
    /// The ed25519 signature over [`tombstone_preimage`].
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl ImmutableItem {
    /// The immutable item holding `value`; its key is `SHA-512(value)`.
    pub fn new(value: Bytes) -> Self {
        ImmutableItem {
            key: Id::hash(&value),
            value,
        }
    }
    /// The derived key.
    pub fn key(&self) -> &Key {
        &self.key
    }
    /// The value bytes.
    pub fn value(&self) -> &Bytes {
        &self.value
    }
}

impl Item {
    /// The key the item is stored under, derived from its contents.
    pub fn key(&self) -> &Key {
        match self {
            Item::Signed(item) => item.key(),
            Item::Immutable(item) => item.key(),
            Item::Tombstone(item) => item.key(),
        }
    }

    /// The kind of item.
    pub fn kind(&self) -> Kind {
        match self {
            Item::Signed(_) => Kind::Signed,
            Item::Immutable(_) => Kind::Immutable,
            Item::Tombstone(_) => Kind::Tombstone,
        }
    }

    /// Whether this is a tombstone: the item under its key is deleted.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Item::Tombstone(_))
    }

    /// The value bytes (none for a tombstone).
    pub fn value(&self) -> &Bytes {
        static NONE: Bytes = Bytes::new();
        match self {
            Item::Signed(item) => item.value(),
            Item::Immutable(item) => item.value(),
            Item::Tombstone(_) => &NONE,
        }
    }

    /// The sequence number of a signed item or tombstone; immutable items have none.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Item::Signed(item) => Some(item.seq),
            Item::Tombstone(item) => Some(item.seq),
            Item::Immutable(_) => None,
        }
    }

    /// Unix seconds of expiry, 0 for never (immutable items never expire).
    pub fn expires(&self) -> u64 {
        match self {
            Item::Signed(item) => item.expires,
            Item::Tombstone(item) => item.expires,
            Item::Immutable(_) => 0,
        }
    }

    /// Whether this copy is news to someone whose newest `seq` is `last` (`None`: nothing
    /// yet; for an immutable key, any `Some` once its one copy was seen).
    pub fn is_news_after(&self, last: Option<u64>) -> bool {
        match (self.seq(), last) {
            (_, None) => true,
            (Some(seq), Some(last)) => seq > last,
            (None, Some(_)) => false,
        }
    }

    /// Whether the item has expired at `now`: its expiry is set and not after `now`.
    pub fn is_expired(&self, now: Time) -> bool {
        let expires = self.expires();
        expires != 0 && Time::from_secs(expires) <= now
    }

    /// The number of bytes the item occupies, as counted against `max_store_bytes`.
    pub fn size(&self) -> usize {
        match self {
            Item::Signed(item) => 64 + 32 + item.name.len() + item.value.len() + 8 + 8 + 64,
            Item::Immutable(item) => 64 + item.value.len(),
            Item::Tombstone(item) => 64 + 32 + item.name.len() + 8 + 8 + 64,
        }
    }
}

impl From<Tombstone> for Item {
    fn from(item: Tombstone) -> Self {
        Item::Tombstone(item)
    }
}

impl From<SignedItem> for Item {
    fn from(item: SignedItem) -> Self {
        Item::Signed(item)
    }
}

impl From<ImmutableItem> for Item {
    fn from(item: ImmutableItem) -> Self {
        Item::Immutable(item)
    }
}

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
        let signature = match item {
            Item::Signed(s) => Some(s.signature()),
            Item::Tombstone(t) => Some(t.signature()),
            Item::Immutable(_) => None,
        };
        let signature_tag = signature.map_or(0, |signature| {
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

#[cfg(test)]
mod tests;
