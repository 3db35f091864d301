//! Golden vectors and the which-copy-wins rules.

use super::*;

/// The key pair of the golden vectors: the seed is the bytes 0x00, 0x01, ..., 0x1f.
fn golden_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8))
}

fn signed(seq: u64, value: &'static [u8], expires: u64) -> Item {
    SignedItem::sign(
        &golden_key(),
        "hello",
        Bytes::from_static(value),
        seq,
        expires,
    )
    .expect("valid name")
    .into()
}

fn tombstone(seq: u64, expires: u64) -> Item {
    Tombstone::sign(&golden_key(), "hello", seq, expires)
        .expect("valid name")
        .into()
}

const NOW: Time = Time::from_secs(1_800_000_000);

#[test]
fn golden_vectors() {
    let key = golden_key();
    let item = SignedItem::sign(
        &key,
        "hello",
        Bytes::from_static(b"world"),
        7,
        1_900_000_000,
    )
    .expect("valid name");
    let hex = crate::id::to_hex;
    assert_eq!(hex(item.public_key()), GOLDEN_PUBLIC_KEY);
    assert_eq!(item.key().to_hex(), GOLDEN_SIGNED_KEY);
    assert_eq!(
        hex(&signature_preimage(item.key(), 7, 1_900_000_000, b"world")),
        GOLDEN_PREIMAGE
    );
    assert_eq!(hex(item.signature()), GOLDEN_SIGNATURE);
    assert_eq!(
        ImmutableItem::new(Bytes::from_static(b"world"))
            .key()
            .to_hex(),
        GOLDEN_IMMUTABLE_KEY
    );
    assert_eq!(
        Id::of_public_key(item.public_key()).to_hex(),
        GOLDEN_NODE_ID
    );
}

const GOLDEN_PUBLIC_KEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const GOLDEN_SIGNED_KEY: &str = "61a218b17af39a96c595416ba1e08bd446fab1886826372a0a02d88783046d1706003b9b3a917d22396c42425d58716993bbb9e51e211b5807e958250be62124";
const GOLDEN_PREIMAGE: &str = "636169726e2d6974656d2d763161a218b17af39a96c595416ba1e08bd446fab1886826372a0a02d88783046d1706003b9b3a917d22396c42425d58716993bbb9e51e211b5807e958250be62124000000000000000700000000713fb30000000005776f726c64";
const GOLDEN_SIGNATURE: &str = "abb4846bf8d1a7532a0d6ea81851f734e5c07d281b3f8c04fa5cc6581c73e862d40bb32f754c6b5d54266fdec24a5a5367800de1b62ea14c78e982c7d8a22b0d";
const GOLDEN_IMMUTABLE_KEY: &str = "11853df40f4b2b919d3815f64792e58d08663767a494bcbb38c0b2389d9140bbb170281b4a847be7757bde12c9cd0054ce3652d0ad3a1a0c92babb69798246ee";
const GOLDEN_NODE_ID: &str = "ed4242ead4ac69486ebba1694968b592f3cd476b24e813e73b1abeb1aebf8aa07dab554799893a1e66449b6e4bde234aa9a215f92251b7efd377211bbbaca1f9";

#[test]
fn a_signed_item_verifies_and_any_changed_field_breaks_it() {
    let Item::Signed(item) = signed(7, b"world", 1_900_000_000) else {
        unreachable!()
    };
    let parts = || {
        (
            item.public_key,
            item.name.clone(),
            item.value.clone(),
            item.seq,
            item.expires,
            item.signature,
        )
    };
    let (pk, name, value, seq, expires, sig) = parts();
    assert_eq!(
        SignedItem::verify(pk, name, value, seq, expires, sig),
        Ok(item.clone())
    );

    let mut other_pk = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
    let (_, name, value, seq, expires, sig) = parts();
    assert_eq!(
        SignedItem::verify(other_pk, name, value, seq, expires, sig),
        Err(ItemError::BadSignature)
    );
    other_pk[0] ^= 1;
    let (_, name, value, seq, expires, sig) = parts();
    assert!(SignedItem::verify(other_pk, name, value, seq, expires, sig).is_err());

    let (pk, _, value, seq, expires, sig) = parts();
    assert_eq!(
        SignedItem::verify(pk, "hellp".into(), value, seq, expires, sig),
        Err(ItemError::BadSignature)
    );
    let (pk, name, _, seq, expires, sig) = parts();
    assert_eq!(
        SignedItem::verify(pk, name, Bytes::from_static(b"worle"), seq, expires, sig),
        Err(ItemError::BadSignature)
    );
    let (pk, name, value, _, expires, sig) = parts();
    assert_eq!(
        SignedItem::verify(pk, name, value, 8, expires, sig),
        Err(ItemError::BadSignature)
    );
    let (pk, name, value, seq, _, sig) = parts();
    assert_eq!(
        SignedItem::verify(pk, name, value, seq, 0, sig),
        Err(ItemError::BadSignature)
    );
    for byte in 0..64 {
        let (pk, name, value, seq, expires, mut sig) = parts();
        sig[byte] ^= 0x10;
        assert!(SignedItem::verify(pk, name, value, seq, expires, sig).is_err());
    }
}

#[test]
fn names_must_be_1_to_255_bytes() {
    let key = golden_key();
    assert_eq!(
        SignedItem::sign(&key, "", Bytes::new(), 1, 0),
        Err(ItemError::NameLength(0))
    );
    assert!(SignedItem::sign(&key, &"x".repeat(255), Bytes::new(), 1, 0).is_ok());
    assert_eq!(
        SignedItem::sign(&key, &"x".repeat(256), Bytes::new(), 1, 0),
        Err(ItemError::NameLength(256))
    );
}

#[test]
fn higher_seq_replaces_lower_is_stale() {
    let old = signed(5, b"a", 0);
    assert_eq!(resolve::<Item>(None, &old, NOW), Ok(Resolution::Insert));
    assert_eq!(
        resolve(Some(&old), &signed(6, b"b", 0), NOW),
        Ok(Resolution::Replace)
    );
    assert_eq!(
        resolve(Some(&old), &signed(4, b"b", 0), NOW),
        Err(Refusal::Stale { held: 5 })
    );
}

#[test]
fn equal_seq_same_value_later_expiry_is_a_refresh() {
    let soon = NOW.as_secs() + 60;
    let later = NOW.as_secs() + 3600;
    let held = signed(5, b"a", soon);
    assert_eq!(
        resolve(Some(&held), &signed(5, b"a", later), NOW),
        Ok(Resolution::Replace)
    );
    assert_eq!(
        resolve(Some(&held), &signed(5, b"a", 0), NOW),
        Ok(Resolution::Replace)
    );
    assert_eq!(
        resolve(Some(&held), &signed(5, b"a", soon), NOW),
        Ok(Resolution::Unchanged)
    );
    let forever = signed(5, b"a", 0);
    assert_eq!(
        resolve(Some(&forever), &signed(5, b"a", later), NOW),
        Ok(Resolution::Unchanged)
    );
}

#[test]
fn equal_seq_different_value_is_a_conflict() {
    let held = signed(5, b"a", 0);
    assert_eq!(
        resolve(Some(&held), &signed(5, b"b", 0), NOW),
        Err(Refusal::Conflict { seq: 5 })
    );
}

#[test]
fn expired_items_are_refused_and_do_not_block() {
    let past = NOW.as_secs() - 1;
    assert_eq!(
        resolve::<Item>(None, &signed(5, b"a", past), NOW),
        Err(Refusal::Expired)
    );
    assert_eq!(
        resolve::<Item>(None, &signed(5, b"a", NOW.as_secs()), NOW),
        Err(Refusal::Expired)
    );
    // An expired held copy does not make a lower seq stale.
    let held = signed(9, b"a", past);
    assert_eq!(
        resolve(Some(&held), &signed(1, b"b", 0), NOW),
        Ok(Resolution::Insert)
    );
    assert!(held.is_expired(NOW));
    assert!(!signed(1, b"a", 0).is_expired(NOW));
}

#[test]
fn immutable_copies_never_conflict_and_key_is_the_hash() {
    let item: Item = ImmutableItem::new(Bytes::from_static(b"blob")).into();
    assert_eq!(item.key(), &Id::hash(b"blob"));
    assert_eq!(resolve::<Item>(None, &item, NOW), Ok(Resolution::Insert));
    assert_eq!(resolve(Some(&item), &item, NOW), Ok(Resolution::Unchanged));
    // A copy whose hash differs from the key asked for is another key entirely.
    let other: Item = ImmutableItem::new(Bytes::from_static(b"blob!")).into();
    assert_ne!(other.key(), item.key());
}

#[test]
fn a_summary_decides_exactly_as_the_whole_item_does() {
    let later = NOW.as_secs() + 100;
    let past = NOW.as_secs() - 1;
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"a")).into();
    let copies = [
        signed(5, b"a", 0),
        signed(5, b"a", later),
        signed(5, b"b", 0),
        signed(4, b"a", 0),
        signed(6, b"a", later),
        signed(5, b"a", past),
        blob,
        tombstone(5, 0),
        tombstone(5, later),
        tombstone(6, 0),
        tombstone(4, past),
    ];
    for held in &copies {
        for incoming in &copies {
            assert_eq!(
                resolve(Some(&Summary::of(held)), incoming, NOW),
                resolve(Some(held), incoming, NOW),
                "held {held:?}, incoming {incoming:?}"
            );
        }
    }
    assert_eq!(Summary::of(&copies[0]).size(), copies[0].size());
}

#[test]
fn tombstone_golden_vectors() {
    let Item::Tombstone(t) = tombstone(8, 1_900_000_000) else {
        unreachable!()
    };
    let hex = crate::id::to_hex;
    assert_eq!(
        t.key().to_hex(),
        GOLDEN_SIGNED_KEY,
        "the deleted item's key"
    );
    assert_eq!(
        hex(&tombstone_preimage(t.key(), 8, 1_900_000_000)),
        GOLDEN_TOMBSTONE_PREIMAGE
    );
    assert_eq!(hex(t.signature()), GOLDEN_TOMBSTONE_SIGNATURE);
    assert_eq!(t.name(), "hello");
    assert_eq!((t.seq(), t.expires()), (8, 1_900_000_000));
}

const GOLDEN_TOMBSTONE_PREIMAGE: &str = "636169726e2d746f6d6273746f6e652d763161a218b17af39a96c595416ba1e08bd446fab1886826372a0a02d88783046d1706003b9b3a917d22396c42425d58716993bbb9e51e211b5807e958250be62124000000000000000800000000713fb300";
const GOLDEN_TOMBSTONE_SIGNATURE: &str = "ccce75ac8933d3f65ba7a128740d957223f4bc1c8da1d52a3af499578b9e7d36d632418b9c24f70b27cef2bbccca37be6cbf093f7a837d4384c9720e14c68d0f";

#[test]
fn a_tombstone_verifies_and_any_changed_field_breaks_it() {
    let Item::Tombstone(t) = tombstone(8, 1_900_000_000) else {
        unreachable!()
    };
    let ok = Tombstone::verify(t.public_key, t.name.clone(), 8, 1_900_000_000, t.signature);
    assert_eq!(ok, Ok(t.clone()));
    let other = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
    let broken = [
        Tombstone::verify(other, t.name.clone(), 8, 1_900_000_000, t.signature),
        Tombstone::verify(t.public_key, "hellp".into(), 8, 1_900_000_000, t.signature),
        Tombstone::verify(t.public_key, t.name.clone(), 9, 1_900_000_000, t.signature),
        Tombstone::verify(t.public_key, t.name.clone(), 8, 0, t.signature),
    ];
    for result in broken {
        assert_eq!(result, Err(ItemError::BadSignature));
    }
    // A signed item's signature over the same key, seq and expiry is not a tombstone's: the
    // tags keep the two apart.
    let Item::Signed(item) = signed(8, b"", 1_900_000_000) else {
        unreachable!()
    };
    assert_eq!(
        Tombstone::verify(
            t.public_key,
            t.name.clone(),
            8,
            1_900_000_000,
            item.signature
        ),
        Err(ItemError::BadSignature)
    );
    assert_eq!(
        Tombstone::sign(&golden_key(), "", 1, 0),
        Err(ItemError::NameLength(0))
    );
}

/// Every case of section "Which copy wins" between signed items and tombstones of one key.
#[test]
fn tombstones_and_signed_items_compete_by_seq() {
    let later = NOW.as_secs() + 3600;
    let past = NOW.as_secs() - 1;
    let cases: &[(Item, Item, Result<Resolution, Refusal>, &str)] = &[
        (
            signed(5, b"a", 0),
            tombstone(6, 0),
            Ok(Resolution::Replace),
            "a delete replaces an older version",
        ),
        (
            tombstone(6, 0),
            signed(5, b"a", 0),
            Err(Refusal::Stale { held: 6 }),
            "a stale replica is refused",
        ),
        (
            tombstone(6, 0),
            signed(7, b"b", 0),
            Ok(Resolution::Replace),
            "a later put brings it back",
        ),
        (
            signed(7, b"a", 0),
            tombstone(6, 0),
            Err(Refusal::Stale { held: 7 }),
            "an old delete is stale",
        ),
        (
            signed(6, b"", 0),
            tombstone(6, 0),
            Err(Refusal::Conflict { seq: 6 }),
            "same seq, other kind",
        ),
        (
            tombstone(6, 0),
            signed(6, b"", 0),
            Err(Refusal::Conflict { seq: 6 }),
            "same seq, other kind",
        ),
        (
            tombstone(6, later),
            tombstone(6, 0),
            Ok(Resolution::Replace),
            "a tombstone refreshed",
        ),
        (
            tombstone(6, 0),
            tombstone(6, later),
            Ok(Resolution::Unchanged),
            "an earlier expiry changes nothing",
        ),
        (
            tombstone(6, 0),
            tombstone(6, 0),
            Ok(Resolution::Unchanged),
            "the same tombstone again",
        ),
        (
            tombstone(6, 0),
            tombstone(5, 0),
            Err(Refusal::Stale { held: 6 }),
            "an older tombstone",
        ),
        (
            tombstone(5, 0),
            tombstone(6, 0),
            Ok(Resolution::Replace),
            "a newer tombstone",
        ),
        (
            tombstone(9, past),
            signed(1, b"a", 0),
            Ok(Resolution::Insert),
            "an expired tombstone protects nothing",
        ),
        (
            signed(5, b"a", 0),
            tombstone(6, past),
            Err(Refusal::Expired),
            "an expired tombstone is refused",
        ),
    ];
    for (held, incoming, expected, why) in cases {
        assert_eq!(resolve(Some(held), incoming, NOW), *expected, "{why}");
        let summary = Summary::of(held);
        assert_eq!(
            resolve(Some(&summary), incoming, NOW),
            *expected,
            "{why}, by summary"
        );
    }
    assert_eq!(
        resolve::<Item>(None, &tombstone(1, 0), NOW),
        Ok(Resolution::Insert)
    );
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"a")).into();
    assert_eq!(
        resolve(Some(&blob), &tombstone(1, 0), NOW),
        Err(Refusal::Conflict { seq: 1 }),
        "an immutable item cannot be deleted"
    );
    let t = tombstone(1, 0);
    assert!(t.is_tombstone() && t.value().is_empty() && t.kind() == Kind::Tombstone);
    assert_eq!(t.size(), 64 + 32 + 5 + 8 + 8 + 64);
}
