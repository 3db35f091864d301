//! Identifiers in the 512-bit keyspace and the XOR metric between them.
//!
//! Node ids and item keys live in one space: both are 64-byte SHA-512 digests, so one type,
//! [`Id`], serves as both ([`NodeId`] and [`Key`] are names for it that say which role a value
//! plays). [`Distance`] is the XOR of two ids read as a big-endian unsigned integer, which makes
//! the derived byte-wise `Ord` on the array the numeric order.

use std::fmt;

use sha2::{Digest, Sha512};

/// Length in bytes of an id, a key and a distance.
pub const ID_LEN: usize = 64;

/// A point in the 512-bit keyspace.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; ID_LEN]);

/// The id of a node: `SHA-512(public_key)`.
pub type NodeId = Id;

/// The key of an item: see [`crate::Item::key`].
pub type Key = Id;

impl Id {
    /// The id made of these bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Id(bytes)
    }

    /// The id made of a slice, if it is exactly [`ID_LEN`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Id)
    }

    /// `SHA-512(data)`.
    pub fn hash(data: &[u8]) -> Self {
        Id(Sha512::digest(data).into())
    }

    /// The node id of an ed25519 public key: `SHA-512(public_key)`.
    pub fn of_public_key(public_key: &[u8; 32]) -> Self {
        Self::hash(public_key)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The XOR distance between `self` and `other`.
    pub fn distance(&self, other: &Id) -> Distance {
        let mut out = [0u8; ID_LEN];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Distance(out)
    }

    /// Lowercase hex, as ids appear in every text interface.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 128 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, ParseIdError> {
        let bytes = from_hex(text).ok_or(ParseIdError::NotHex)?;
        Self::from_slice(&bytes).ok_or(ParseIdError::Length(bytes.len()))
    }

    /// The id that is `distance` away from `self`: the unique point with that distance.
    pub fn at_distance(&self, distance: &Distance) -> Id {
        let mut out = [0u8; ID_LEN];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(distance.0.iter())) {
            *o = a ^ b;
        }
        Id(out)
    }
}

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The text has a character that is not a hex digit, or an odd number of digits.
    #[error("not a hex string")]
    NotHex,
    /// The text is hex but does not decode to 64 bytes.
    #[error("expected 64 bytes (128 hex digits), got {0} bytes")]
    Length(usize),
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 8 bytes tell ids apart in logs; the full form is `Display`.
        write!(f, "Id({}…)", &self.to_hex()[..16])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// The XOR of two ids, ordered as a 512-bit big-endian unsigned integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Distance([u8; ID_LEN]);

impl Distance {
    /// The distance of an id from itself.
    pub const ZERO: Distance = Distance([0; ID_LEN]);

    /// The distance made of these bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Distance(bytes)
    }

    /// The raw bytes, most significant first.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The position of the highest set bit (0 = least significant), or `None` for zero.
    ///
    /// This is the index of the k-bucket a contact at this distance belongs in.
    pub fn bucket_index(&self) -> Option<usize> {
        let (i, byte) = self.0.iter().enumerate().find(|(_, b)| **b != 0)?;
        let bit_in_byte = 7 - byte.leading_zeros() as usize;
        Some((ID_LEN - 1 - i) * 8 + bit_in_byte)
    }
}

impl fmt::Debug for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Distance({}…)", &to_hex(&self.0)[..16])
    }
}

/// Lowercase hex of some bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// The bytes of a hex string (either case), or `None` if it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Number of bits in the keyspace, and so the number of k-buckets.
    const ID_BITS: usize = ID_LEN * 8;

    fn id() -> impl Strategy<Value = Id> {
        prop::array::uniform32(any::<u8>()).prop_flat_map(|a| {
            prop::array::uniform32(any::<u8>()).prop_map(move |b| {
                let mut bytes = [0u8; ID_LEN];
                bytes[..32].copy_from_slice(&a);
                bytes[32..].copy_from_slice(&b);
                Id(bytes)
            })
        })
    }

    /// Adds two distances as 512-bit integers, returning `None` on overflow.
    fn add(a: &Distance, b: &Distance) -> Option<Distance> {
        let mut out = [0u8; ID_LEN];
        let mut carry = 0u16;
        for i in (0..ID_LEN).rev() {
            let sum = a.0[i] as u16 + b.0[i] as u16 + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        (carry == 0).then_some(Distance(out))
    }

    proptest! {
        #[test]
        fn identity(a in id()) {
            prop_assert_eq!(a.distance(&a), Distance::ZERO);
            prop_assert_eq!(a.distance(&a).bucket_index(), None);
        }

        #[test]
        fn symmetry(a in id(), b in id()) {
            prop_assert_eq!(a.distance(&b), b.distance(&a));
        }

        #[test]
        fn triangle_inequality(a in id(), b in id(), c in id()) {
            // d(a, c) <= d(a, b) + d(b, c); when the sum overflows 512 bits it holds trivially.
            if let Some(sum) = add(&a.distance(&b), &b.distance(&c)) {
                prop_assert!(a.distance(&c) <= sum);
            }
            // XOR also gives the stronger d(a, c) <= d(a, b) XOR-sum bound: d(a,c) = d(a,b) ^ d(b,c).
            prop_assert_eq!(
                a.distance(&c),
                Distance::from_bytes(*a.distance(&b).as_bytes()).xor(&b.distance(&c))
            );
        }

        #[test]
        fn unidirectionality(a in id(), b in id(), c in id()) {
            // Exactly one point lies at a given distance from `a`.
            let d = a.distance(&b);
            prop_assert_eq!(a.at_distance(&d), b);
            if c != b {
                prop_assert_ne!(a.distance(&c), d);
            }
        }

        #[test]
        fn bucket_index_is_highest_differing_bit(a in id(), bit in 0usize..ID_BITS) {
            let mut flipped = *a.as_bytes();
            flipped[ID_LEN - 1 - bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(a.distance(&Id(flipped)).bucket_index(), Some(bit));
        }

        #[test]
        fn hex_round_trips(a in id()) {
            prop_assert_eq!(Id::from_hex(&a.to_hex()), Ok(a));
        }
    }

    impl Distance {
        fn xor(&self, other: &Distance) -> Distance {
            Distance(std::array::from_fn(|i| self.0[i] ^ other.0[i]))
        }
    }

    #[test]
    fn order_is_numeric() {
        let mut small = [0u8; ID_LEN];
        small[ID_LEN - 1] = 0xff;
        let mut large = [0u8; ID_LEN];
        large[0] = 1;
        assert!(Distance(small) < Distance(large));
        assert_eq!(Distance(small).bucket_index(), Some(7));
        assert_eq!(Distance(large).bucket_index(), Some(ID_BITS - 8));
    }

    #[test]
    fn bad_hex_is_refused() {
        assert_eq!(Id::from_hex("zz"), Err(ParseIdError::NotHex));
        assert_eq!(Id::from_hex("abc"), Err(ParseIdError::NotHex));
        assert_eq!(Id::from_hex("abcd"), Err(ParseIdError::Length(2)));
    }
}
