//! Items: the values the DHT stores, their keys, signatures and which copy wins.
//!
//! An [`Item`] is always valid: its key is derived, never received, and a signed item's
//! signature has been checked with `verify_strict`. There are exactly two ways to make one:
//! [`SignedItem::sign`] with a private key, and [`SignedItem::verify`] /
//! [`ImmutableItem::new`] from parts that came from elsewhere. The wire codec calls only the
//! latter, so nothing unverified can be stored, served or returned.
//!
//! A signed item and a tombstone share one [`SignedHeader`] (publisher, name, `seq`, expiry,
//! signature), which alone signs and verifies; they differ in what the signature covers
//! besides it (the value, or nothing) and in the domain tag that keeps the two apart.
//! Which copy of a key wins is in `resolve`.
//!
//! Byte layouts are in `docs/protocol.md` ("Items"), with test vectors.

use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::id::{Id, Key};
use crate::time::Time;

mod resolve;

pub use resolve::{Held, Refusal, Resolution, Summary, resolve};

/// Domain separation tag at the start of every item signature preimage.
pub const ITEM_SIGNATURE_TAG: &[u8] = b"cairn-item-v1";

/// Domain separation tag at the start of every tombstone signature preimage.
pub const TOMBSTONE_SIGNATURE_TAG: &[u8] = b"cairn-tombstone-v1";

/// The longest item name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;

/// What a signed item and a tombstone share: the publisher's key, the name, the `seq`, the
/// expiry and the signature, with the key derived from the first two. Both dereference to it,
/// so its getters are theirs; what the signature covers besides the header is the item's value
/// or, for a tombstone, nothing (`docs/protocol.md`, "Items").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeader {
    key: Key,
    public_key: [u8; 32],
    name: String,
    seq: u64,
    expires: u64,
    signature: [u8; 64],
}

/// What a signature covers besides its [`SignedHeader`]; each has its own domain tag.
#[derive(Clone, Copy, Debug)]
enum Payload<'a> {
    /// A signed item's value ([`signature_preimage`]).
    Value(&'a [u8]),
    /// Nothing: the header is a tombstone's ([`tombstone_preimage`]).
    Deletion,
}

/// A value published under a key pair and a name; the owner can replace it with a higher `seq`.
/// Its header's getters ([`SignedHeader`]) are its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedItem {
    header: SignedHeader,
    value: Bytes,
}

/// A value whose key is its own hash, so any copy that hashes to the key is the right one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmutableItem {
    key: Key,
    value: Bytes,
}

/// The publisher's word that its signed item under `name` is deleted, as of `seq`: it competes
/// with the signed item's versions by `seq`, so that a stale replica cannot bring the item back
/// (`docs/protocol.md`, "Tombstones"). It is a [`SignedHeader`] alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    header: SignedHeader,
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

fn check_name(name: &str) -> Result<(), ItemError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ItemError::NameLength(name.len()));
    }
    Ok(())
}

impl SignedHeader {
    /// Signs a header for `name` of `signing_key`'s owner over `payload`.
    fn sign(
        signing_key: &SigningKey,
        name: &str,
        seq: u64,
        expires: u64,
        payload: Payload<'_>,
    ) -> Result<Self, ItemError> {
        check_name(name)?;
        let public_key = signing_key.verifying_key().to_bytes();
        let key = signed_key(&public_key, name);
        let mut header = SignedHeader {
            key,
            public_key,
            name: name.to_owned(),
            seq,
            expires,
            signature: [0; 64],
        };
        header.signature = signing_key.sign(&header.preimage(payload)).to_bytes();
        Ok(header)
    }

    /// A header of parts, its signature not checked yet.
    fn unverified(
        public_key: [u8; 32],
        name: String,
        seq: u64,
        expires: u64,
        signature: [u8; 64],
    ) -> Result<Self, ItemError> {
        check_name(&name)?;
        Ok(SignedHeader {
            key: signed_key(&public_key, &name),
            public_key,
            name,
            seq,
            expires,
            signature,
        })
    }

    /// Checks the signature over the header and `payload` with `verify_strict`.
    fn verify(&self, payload: Payload<'_>) -> Result<(), ItemError> {
        VerifyingKey::from_bytes(&self.public_key)
            .map_err(|_| ItemError::BadPublicKey)?
            .verify_strict(
                &self.preimage(payload),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| ItemError::BadSignature)
    }

    /// The bytes the signature covers.
    fn preimage(&self, payload: Payload<'_>) -> Vec<u8> {
        match payload {
            Payload::Value(value) => signature_preimage(&self.key, self.seq, self.expires, value),
            Payload::Deletion => tombstone_preimage(&self.key, self.seq, self.expires),
        }
    }

    /// The derived key: `SHA-512(SHA-512(public_key) || SHA-512(name))`.
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
    /// The publisher's sequence number: higher replaces lower, whether item or tombstone.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Unix seconds after which it is dropped; 0 means never.
    pub fn expires(&self) -> u64 {
        self.expires
    }
    /// The ed25519 signature over [`signature_preimage`] (a signed item) or
    /// [`tombstone_preimage`] (a tombstone).
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
    /// The bytes it counts against `max_store_bytes`: the key, the public key, the name,
    /// `seq`, `expires` and the signature.
    fn size(&self) -> usize {
        64 + 32 + self.name.len() + 8 + 8 + 64
    }
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
        let header = SignedHeader::sign(signing_key, name, seq, expires, Payload::Value(&value))?;
        Ok(SignedItem { header, value })
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
        let header = SignedHeader::unverified(public_key, name, seq, expires, signature)?;
        Ok(SignedItem { header, value })
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
        item.header.verify(Payload::Value(&item.value))?;
        Ok(item)
    }

    /// The value bytes.
    pub fn value(&self) -> &Bytes {
        &self.value
    }
}

impl std::ops::Deref for SignedItem {
    type Target = SignedHeader;
    fn deref(&self) -> &SignedHeader {
        &self.header
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
        let header = SignedHeader::sign(signing_key, name, seq, expires, Payload::Deletion)?;
        Ok(Tombstone { header })
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
        let header = SignedHeader::unverified(public_key, name, seq, expires, signature)?;
        Ok(Tombstone { header })
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
        tombstone.header.verify(Payload::Deletion)?;
        Ok(tombstone)
    }
}

impl std::ops::Deref for Tombstone {
    type Target = SignedHeader;
    fn deref(&self) -> &SignedHeader {
        &self.header
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

    /// The signed header of a signed item or tombstone; immutable items have none.
    pub fn header(&self) -> Option<&SignedHeader> {
        match self {
            Item::Signed(item) => Some(&item.header),
            Item::Tombstone(item) => Some(&item.header),
            Item::Immutable(_) => None,
        }
    }

    /// The sequence number of a signed item or tombstone; immutable items have none.
    pub fn seq(&self) -> Option<u64> {
        self.header().map(SignedHeader::seq)
    }

    /// Unix seconds of expiry, 0 for never (immutable items never expire).
    pub fn expires(&self) -> u64 {
        self.header().map_or(0, SignedHeader::expires)
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
            Item::Signed(item) => item.header.size() + item.value.len(),
            Item::Immutable(item) => 64 + item.value.len(),
            Item::Tombstone(item) => item.header.size(),
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

#[cfg(test)]
mod tests;
