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
