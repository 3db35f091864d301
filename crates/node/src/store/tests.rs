//! The durable store: what is committed survives a reopen, with its rules intact.

use bytes::Bytes;
use cairn_core::item::Refusal;
use cairn_core::{ImmutableItem, SignedItem};
use ed25519_dalek::SigningKey;

use super::*;

const NOW: Time = Time::from_secs(1_800_000_000);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn signed(seq: u64, value: &'static [u8], expires: u64) -> Item {
    let key = SigningKey::from_bytes(&[4; 32]);
    SignedItem::sign(&key, "doc", Bytes::from_static(value), seq, expires)
        .expect("valid")
        .into()
}

fn committed(store: &mut RedbStore) {
    let commit = store.take_commit().expect("a write was queued");
    assert_eq!(commit.blocking_recv(), Ok(Ok(())));
}

#[test]
fn items_survive_a_reopen_and_the_highest_seq_still_wins() {
    let dir = temp_dir("reopen");
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"blob")).into();
    {
        let mut store = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        assert_eq!(
            store.put(signed(5, b"five", 0), NOW),
            Ok(Resolution::Insert)
        );
        committed(&mut store);
        store.set_own(*signed(5, b"five", 0).key());
        assert_eq!(store.put(blob.clone(), NOW), Ok(Resolution::Insert));
        committed(&mut store);
    }
    let mut store = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    assert_eq!(store.len(), 2);
    assert_eq!(
        store.get(signed(5, b"five", 0).key(), NOW),
        Some(signed(5, b"five", 0))
    );
    assert_eq!(store.get(blob.key(), NOW), Some(blob));
    assert_eq!(store.own_keys(), vec![*signed(5, b"five", 0).key()]);
    assert_eq!(
        store.put(signed(4, b"four", 0), NOW),
        Err(StoreError::Refused(Refusal::Stale { held: 5 }))
    );
    assert_eq!(store.dropped_at_open, 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expired_items_are_deleted_on_disk_too() {
    let dir = temp_dir("expire");
    {
        let mut store = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        assert!(
            store
                .put(signed(1, b"mortal", NOW.as_secs() + 10), NOW)
                .is_ok()
        );
        committed(&mut store);
        assert_eq!(store.expire(Time::from_secs(NOW.as_secs() + 10)), 1);
        store.close();
    }
    let store = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    assert_eq!(store.len(), 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_that_no_longer_verifies_is_dropped_at_open() {
    let dir = temp_dir("corrupt");
    {
        let mut store = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        assert!(store.put(signed(1, b"fine", 0), NOW).is_ok());
        committed(&mut store);
    }
    {
        // Flip a byte of the stored value behind the store's back.
        let db = Database::create(dir.join(STORE_FILE)).expect("opens");
        let txn = db.begin_write().expect("txn");
        {
            let mut items = txn.open_table(ITEMS).expect("table");
            let key = *signed(1, b"fine", 0).key();
            let mut bytes = items
                .get(key.as_bytes().as_slice())
                .expect("read")
                .expect("there")
                .value()
                .to_vec();
            let at = bytes
                .windows(4)
                .position(|w| w == b"fine")
                .expect("value bytes");
            bytes[at] ^= 1;
            items
                .insert(key.as_bytes().as_slice(), bytes.as_slice())
                .expect("write");
        }
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    assert_eq!((store.len(), store.dropped_at_open), (0, 1));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
