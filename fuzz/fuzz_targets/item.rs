//! Item decode-and-verify (`wire::decode_item`, `wire::decode_known_item`) on arbitrary bytes:
//! signed items, immutable items and tombstones as the store keeps them.
//!
//! Holds: no panic; a decoded item round-trips through `encode_item`; its key is derived (a
//! signed item's from its public key and name, an immutable one's from its value); a refusal
//! is 400, or 403 for a signature; and `decode_known_item` never hands back an item that did
//! not verify unless it is exactly the copy its summary describes.
#![no_main]

use std::sync::LazyLock;

use cairn_core::{ErrorCode, Item, Summary, signed_key, wire};
use libfuzzer_sys::fuzz_target;

/// The fixtures, with their summaries: the copies a store verified and reads back.
static KNOWN: LazyLock<Vec<(Item, Summary)>> = LazyLock::new(|| {
    cairn_fuzz::items()
        .into_iter()
        .map(|item| {
            let summary = Summary::of(&item);
            (item, summary)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let decoded = wire::decode_item(data);
    match &decoded {
        Ok(item) => {
            let encoded = wire::encode_item(item).expect("a decoded item encodes");
            assert_eq!(wire::decode_item(&encoded).as_ref(), Ok(item));
            let summary = Summary::of(item);
            assert_eq!(
                wire::decode_known_item(&encoded, item.key(), &summary).as_ref(),
                Ok(item)
            );
            match item {
                Item::Signed(s) => assert_eq!(*item.key(), signed_key(s.public_key(), s.name())),
                Item::Tombstone(t) => {
                    assert_eq!(*item.key(), signed_key(t.public_key(), t.name()))
                }
                Item::Immutable(i) => {
                    assert_eq!(*item.key(), cairn_core::Id::hash(i.value()))
                }
            }
        }
        Err(e) => assert!(
            e.code == ErrorCode::BAD_REQUEST || e.code == ErrorCode::BAD_SIGNATURE,
            "refused with {:?}: {}",
            e.code,
            e.reason
        ),
    }
    for (known, summary) in KNOWN.iter() {
        if let Ok(item) = wire::decode_known_item(data, known.key(), summary) {
            assert!(
                item == *known || decoded.as_ref() == Ok(&item),
                "decode_known_item returned an unverified item that is not the known copy"
            );
        }
    }
});
