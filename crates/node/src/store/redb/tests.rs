//! The durable store: what is committed survives a reopen, with its rules intact.

use bytes::Bytes;
use cairn_core::{ImmutableItem, Refusal, SignedItem};
use ed25519_dalek::SigningKey;

use std::path::PathBuf;

use ::redb::ReadableTable;

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

/// Waits for the next group commit and reports it to the store, as the driver does.
fn committed(store: &mut RedbStore, commits: &mut CommitReceiver) {
    let done = commits.blocking_recv().expect("the writer reports");
    assert!(done.result.is_ok(), "commit failed: {:?}", done.result);
    for commit in done.commits {
        store.committed(commit, CommitOutcome::Durable);
    }
}

/// Reports every group commit the writer makes as the driver would, until all of `wanted`.
fn until_committed(store: &mut RedbStore, commits: &mut CommitReceiver, wanted: &[CommitId]) {
    let mut missing: Vec<CommitId> = wanted.to_vec();
    while !missing.is_empty() {
        let done = commits.blocking_recv().expect("the writer reports");
        assert!(done.result.is_ok(), "commit failed: {:?}", done.result);
        for each in &done.commits {
            store.committed(*each, CommitOutcome::Durable);
        }
        missing.retain(|c| !done.commits.contains(c));
    }
}

fn resolution(written: Result<Written, StoreError>) -> Result<Resolution, StoreError> {
    written.map(|w| w.resolution)
}

#[test]
fn items_survive_a_reopen_and_the_highest_seq_still_wins() {
    let dir = temp_dir("reopen");
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"blob")).into();
    {
        let (mut store, mut commits) =
            RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        assert_eq!(
            resolution(store.put(signed(5, b"five", 0), NOW, Origin::Own)),
            Ok(Resolution::Insert)
        );
        committed(&mut store, &mut commits);
        assert_eq!(
            resolution(store.put(blob.clone(), NOW, Origin::Unknown)),
            Ok(Resolution::Insert)
        );
        committed(&mut store, &mut commits);
    }
    let (mut store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    assert_eq!(store.len(), 2);
    assert_eq!(
        store
            .get(signed(5, b"five", 0).key(), NOW)
            .expect("readable"),
        Some(signed(5, b"five", 0))
    );
    assert_eq!(store.get(blob.key(), NOW).expect("readable"), Some(blob));
    assert_eq!(store.own_keys(), vec![*signed(5, b"five", 0).key()]);
    assert_eq!(
        resolution(store.put(signed(4, b"four", 0), NOW, Origin::Unknown)),
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
        let (mut store, mut commits) =
            RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        assert!(
            store
                .put(
                    signed(1, b"mortal", NOW.as_secs() + 10),
                    NOW,
                    Origin::Unknown
                )
                .is_ok()
        );
        committed(&mut store, &mut commits);
        assert_eq!(store.expire(Time::from_secs(NOW.as_secs() + 10)), 1);
        store.close();
    }
    let (store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    assert_eq!(store.len(), 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_that_no_longer_verifies_is_dropped_at_open() {
    let dir = temp_dir("corrupt");
    {
        let (mut store, mut commits) =
            RedbStore::open(&dir, StoreLimits::default()).expect("opens");
        assert!(
            store
                .put(signed(1, b"fine", 0), NOW, Origin::Unknown)
                .is_ok()
        );
        committed(&mut store, &mut commits);
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
    let (store, _commits) = RedbStore::open(&dir, StoreLimits::default()).expect("reopens");
    assert_eq!((store.len(), store.dropped_at_open), (0, 1));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_commit_is_undone_and_a_later_write_of_the_key_inherits_the_undo() {
    let dir = temp_dir("undo");
    let (mut store, mut commits) = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
    let key = *signed(1, b"a", 0).key();
    let first = store
        .put(signed(1, b"a", 0), NOW, Origin::Unknown)
        .expect("kept");
    let second = store
        .put(signed(2, b"b", 0), NOW, Origin::Own)
        .expect("kept");
    let (Some(c1), Some(c2)) = (first.commit, second.commit) else {
        panic!("a durable store returns commits")
    };
    assert!(c1 < c2);
    // Storing the copy held again waits on the commit already under way.
    let again = store
        .put(signed(2, b"b", 0), NOW, Origin::Unknown)
        .expect("kept");
    assert_eq!(
        (again.resolution, again.commit),
        (Resolution::Unchanged, Some(c2))
    );
    // The first commit fails: the second write, still pending, keeps the key.
    store.committed(c1, CommitOutcome::Failed);
    assert_eq!(
        store.get(&key, NOW).expect("readable"),
        Some(signed(2, b"b", 0))
    );
    // The second fails too: the store is as it was before both, own mark included.
    store.committed(c2, CommitOutcome::Failed);
    assert_eq!(store.get(&key, NOW).expect("readable"), None);
    assert!(store.own_keys().is_empty());
    assert_eq!(store.len(), 0);

    // Once a commit is really durable, its item is served from disk, not from memory.
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"blob")).into();
    let kept = store
        .put(signed(3, b"c", 0), NOW, Origin::Unknown)
        .expect("kept");
    let other = store.put(blob.clone(), NOW, Origin::Unknown).expect("kept");
    let wanted = [kept.commit, other.commit].map(|c| c.expect("a commit"));
    until_committed(&mut store, &mut commits, &wanted);
    assert!(
        store.pending.is_empty(),
        "nothing is held in memory any more"
    );
    assert_eq!(
        store.get(&key, NOW).expect("readable"),
        Some(signed(3, b"c", 0))
    );
    assert_eq!(store.get(blob.key(), NOW).expect("readable"), Some(blob));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `bytes` under `key` in the store's file behind its back.
fn overwrite(store: &RedbStore, key: &Key, bytes: &[u8]) {
    let db = store.db.read().expect("not poisoned");
    let write = db.as_ref().expect("open").begin_write().expect("writes");
    {
        let mut table = write.open_table(ITEMS).expect("opens");
        table
            .insert(key.as_bytes().as_slice(), bytes)
            .expect("inserts");
    }
    write.commit().expect("commits");
}

#[test]
fn a_copy_changed_on_disk_after_it_was_verified_is_not_served() {
    let dir = temp_dir("tampered");
    let (mut store, mut commits) = RedbStore::open(&dir, StoreLimits::default()).expect("opens");
    let item = signed(5, b"five", 0);
    let key = *item.key();
    assert!(store.put(item.clone(), NOW, Origin::Unknown).is_ok());
    committed(&mut store, &mut commits);
    // Served from disk, recognised as the copy verified when it was stored.
    assert_eq!(store.get(&key, NOW).expect("readable"), Some(item.clone()));

    // Someone flips a bit of the signature in the file while the node runs.
    let mut bytes = wire::encode_item(&item).expect("encodes");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    overwrite(&store, &key, &bytes);
    assert_eq!(
        store.get(&key, NOW).expect("readable"),
        None,
        "a copy that does not verify"
    );

    // A copy that verifies but is not the one held (an older seq) is not served either.
    let older = wire::encode_item(&signed(4, b"four", 0)).expect("encodes");
    overwrite(&store, &key, &older);
    assert_eq!(
        store.get(&key, NOW).expect("readable"),
        None,
        "a copy other than the one held"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An in-memory backend whose sync panics once `armed` is set.
#[derive(Debug)]
struct PanicOnSync {
    inner: ::redb::backends::InMemoryBackend,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl StorageBackend for PanicOnSync {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
        assert!(
            !self.armed.load(std::sync::atomic::Ordering::SeqCst),
            "injected fault: sync panics"
        );
        self.inner.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write(offset, data)
    }
}

#[test]
fn a_commit_that_panics_is_reported_failed_and_later_writes_are_refused() {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backend = PanicOnSync {
        inner: ::redb::backends::InMemoryBackend::new(),
        armed: armed.clone(),
    };
    let name = Path::new("panicking");
    let once = std::sync::Mutex::new(Some(backend));
    let backend = move || {
        let taken = once.lock().expect("not poisoned").take();
        taken.ok_or_else(|| std::io::Error::other("this backend opens once"))
    };
    let (mut store, mut commits) =
        RedbStore::open_with_backend(name, backend, StoreLimits::default()).expect("opens");
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = store
        .put(signed(1, b"a", 0), NOW, Origin::Own)
        .expect("accepted");
    let done = commits
        .blocking_recv()
        .expect("the panicked commit is reported");
    assert_eq!(done.commits, vec![first.commit.expect("queued")]);
    assert!(
        matches!(done.result, Err(CommitError::Panicked(_))),
        "{:?}",
        done.result
    );
    store.committed(done.commits[0], CommitOutcome::Failed);
    assert_eq!(store.len(), 0, "the failed write is undone");

    let blob: Item = ImmutableItem::new(Bytes::from_static(b"later")).into();
    let later = store.put(blob, NOW, Origin::Own).expect("accepted");
    let done = commits.blocking_recv().expect("a later write is reported");
    assert_eq!(done.commits, vec![later.commit.expect("queued")]);
    assert!(
        matches!(done.result, Err(CommitError::Stopped)),
        "{:?}",
        done.result
    );
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn an_open_that_fails_keeps_its_typed_cause() {
    let dir = temp_dir("not-a-dir");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("file");
    std::fs::write(&file, b"not a directory").expect("written");
    let Err(error) = RedbStore::open(&file.join("store"), StoreLimits::default()) else {
        panic!("a data directory under a file cannot be created");
    };
    match &error {
        OpenError::Directory { path, .. } => assert_eq!(path, &file.join("store")),
        other => panic!("expected a directory error, got {other:?}"),
    }
    assert!(
        std::error::Error::source(&error).is_some(),
        "the cause is kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
