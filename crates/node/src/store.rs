//! Durable item storage: an in-memory [`MemoryStore`] mirrored to a redb database, with
//! group commit.
//!
//! Implementation notes:
//! - The rules (which copy wins, limits) run on the in-memory mirror, on the driver's thread,
//!   so they see every accepted write at once, committed or not.
//! - Every accepted write goes to one writer thread, which takes everything queued, writes it
//!   in one transaction and commits once (`Durability::Immediate`: fsync). Each write carries a
//!   oneshot that fires after its commit; the driver sends `stored`, or answers a local put,
//!   only then. Concurrent stores therefore share commits instead of paying one fsync each.
//! - On open, every item is read back and verified again (the one path from bytes to an
//!   item), on all cores; an item that fails is dropped with a warning, never served.
//! - The mirror costs memory equal to the store's size, bounded by `max_store_bytes`.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use cairn_core::item::Resolution;
use cairn_core::store::{StoreError, StoreLimits};
use cairn_core::{Item, Key, MemoryStore, Store, Time, wire};
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const OWN: TableDefinition<&[u8], ()> = TableDefinition::new("own");

/// The name of the database file inside the data directory.
pub const STORE_FILE: &str = "items.redb";

/// The outcome of a commit, for whoever waits on it.
pub type Commit = oneshot::Receiver<Result<(), String>>;

enum Op {
    Put { key: Key, bytes: Vec<u8>, own: bool },
    Delete(Key),
}

struct Batch {
    ops: Vec<Op>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// redb refused the file.
    #[error("cannot open the store {path}: {error}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

/// Items in memory, made durable in redb.
pub struct RedbStore {
    memory: MemoryStore,
    writer: Option<std_mpsc::Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
    /// The commit of the last accepted write, until the driver takes it.
    last_commit: Option<Commit>,
    /// Items dropped at open because they no longer verified.
    pub dropped_at_open: usize,
}

fn db_error(path: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::Database {
        path: path.to_owned(),
        error: e.to_string(),
    }
}

impl RedbStore {
    /// Opens (or creates) `dir/items.redb` and loads every item into memory.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| db_error(dir, e))?;
        let path = dir.join(STORE_FILE);
        let db = Database::create(&path).map_err(|e| db_error(&path, e))?;
        let setup = db.begin_write().map_err(|e| db_error(&path, e))?;
        setup.open_table(ITEMS).map_err(|e| db_error(&path, e))?;
        setup.open_table(OWN).map_err(|e| db_error(&path, e))?;
        setup.commit().map_err(|e| db_error(&path, e))?;

        let (records, own) = read_all(&db).map_err(|e| db_error(&path, e))?;
        let (items, dropped) = verify_all(records);
        let mut memory = MemoryStore::new(limits);
        for item in items {
            let mine = own.contains(item.key());
            memory.restore(item, mine);
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "items in the store no longer verify and were dropped"
            );
        }
        let (writer, batches) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cairn-store".into())
            .spawn(move || write_loop(db, batches))
            .map_err(|e| db_error(&path, e))?;
        Ok(RedbStore {
            memory,
            writer: Some(writer),
            thread: Some(thread),
            last_commit: None,
            dropped_at_open: dropped,
        })
    }

    /// The commit of the most recent accepted write, if the caller has not taken it yet.
    pub fn take_commit(&mut self) -> Option<Commit> {
        self.last_commit.take()
    }

    fn submit(&mut self, ops: Vec<Op>) {
        let (done, commit) = oneshot::channel();
        let sent = self.writer.as_ref().is_some_and(|w| {
            w.send(Batch {
                ops,
                done: Some(done),
            })
            .is_ok()
        });
        if !sent {
            tracing::error!("the store's writer has stopped; a write was not made durable");
        }
        self.last_commit = Some(commit);
    }

    /// Finishes every queued write and stops the writer thread.
    pub fn close(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// A redb error as text (redb's error types are large; the text is all anyone needs).
fn db_text(error: impl Into<redb::Error>) -> String {
    error.into().to_string()
}

type Records = (Vec<Vec<u8>>, std::collections::HashSet<Key>);

fn read_all(db: &Database) -> Result<Records, String> {
    let read = db.begin_read().map_err(db_text)?;
    let items = read.open_table(ITEMS).map_err(db_text)?;
    let mut records = Vec::new();
    for entry in items.iter().map_err(db_text)? {
        let (_, value) = entry.map_err(db_text)?;
        records.push(value.value().to_vec());
    }
    let own_table = read.open_table(OWN).map_err(db_text)?;
    let mut own = std::collections::HashSet::new();
    for entry in own_table.iter().map_err(db_text)? {
        let (key, _) = entry.map_err(db_text)?;
        if let Some(key) = Key::from_slice(key.value()) {
            own.insert(key);
        }
    }
    Ok((records, own))
}

/// Decodes and verifies stored items on every core. Returns the good ones and how many failed.
fn verify_all(records: Vec<Vec<u8>>) -> (Vec<Item>, usize) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = records.len().div_ceil(threads).max(1);
    let results: Vec<Vec<Option<Item>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|r| wire::decode_item(r).ok()).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let total = records.len();
    let items: Vec<Item> = results.into_iter().flatten().flatten().collect();
    let dropped = total - items.len();
    (items, dropped)
}

/// The writer thread: one transaction and one commit for everything queued.
fn write_loop(db: Database, batches: std_mpsc::Receiver<Batch>) {
    while let Ok(first) = batches.recv() {
        let mut group = vec![first];
        while let Ok(more) = batches.try_recv() {
            group.push(more);
            if group.len() >= 4_096 {
                break;
            }
        }
        let result = commit(&db, &group);
        if let Err(e) = &result {
            tracing::error!("store commit failed: {e}");
        }
        for batch in group {
            if let Some(done) = batch.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

fn commit(db: &Database, group: &[Batch]) -> Result<(), String> {
    let txn = db.begin_write().map_err(db_text)?;
    {
        let mut items = txn.open_table(ITEMS).map_err(db_text)?;
        let mut own = txn.open_table(OWN).map_err(db_text)?;
        for op in group.iter().flat_map(|b| &b.ops) {
            match op {
                Op::Put {
                    key,
                    bytes,
                    own: mine,
                } => {
                    items
                        .insert(key.as_bytes().as_slice(), bytes.as_slice())
                        .map_err(db_text)?;
                    if *mine {
                        own.insert(key.as_bytes().as_slice(), ()).map_err(db_text)?;
                    }
                }
                Op::Delete(key) => {
                    items.remove(key.as_bytes().as_slice()).map_err(db_text)?;
                    own.remove(key.as_bytes().as_slice()).map_err(db_text)?;
                }
            }
        }
    }
    txn.commit().map_err(db_text)?;
    Ok(())
}

impl Store for RedbStore {
    fn get(&self, key: &Key, now: Time) -> Option<Item> {
        self.memory.get(key, now)
    }

    fn put(&mut self, item: Item, now: Time) -> Result<Resolution, StoreError> {
        let resolution = self.memory.put(item.clone(), now)?;
        if resolution != Resolution::Unchanged {
            let key = *item.key();
            let own = self.memory.is_own(&key);
            self.submit(vec![Op::Put {
                key,
                bytes: wire::encode_item(&item),
                own,
            }]);
        }
        Ok(resolution)
    }

    fn len(&self) -> usize {
        self.memory.len()
    }

    fn keys(&self) -> Vec<Key> {
        self.memory.keys()
    }

    fn expire(&mut self, now: Time) -> usize {
        let gone = self.memory.drain_expired(now);
        if !gone.is_empty() {
            let count = gone.len();
            self.submit(gone.into_iter().map(Op::Delete).collect());
            // Nobody waits on an expiry's commit.
            self.last_commit = None;
            return count;
        }
        0
    }

    fn set_own(&mut self, key: Key) {
        self.memory.set_own(key);
        if let Some(item) = self.memory.get(&key, Time::from_millis(0)) {
            let own = self.memory.is_own(&key);
            // Rewriting the item with its flag is one more write in the same group commit.
            self.submit(vec![Op::Put {
                key,
                bytes: wire::encode_item(&item),
                own,
            }]);
        }
    }

    fn own_keys(&self) -> Vec<Key> {
        self.memory.own_keys()
    }
}

/// The store a node runs with: in memory (tests, the test network, nodes without a data
/// directory) or durable.
pub enum NodeStore {
    /// Items in memory only.
    Memory(MemoryStore),
    /// Items in redb.
    Redb(Box<RedbStore>),
}

impl NodeStore {
    /// The commit of the most recent accepted write (durable stores only).
    pub fn take_commit(&mut self) -> Option<Commit> {
        match self {
            NodeStore::Memory(_) => None,
            NodeStore::Redb(store) => store.take_commit(),
        }
    }

    /// Flushes and closes a durable store.
    pub fn close(&mut self) {
        if let NodeStore::Redb(store) = self {
            store.close();
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            NodeStore::Memory($store) => $call,
            NodeStore::Redb($store) => $call,
        }
    };
}

impl Store for NodeStore {
    fn get(&self, key: &Key, now: Time) -> Option<Item> {
        delegate!(self, s => s.get(key, now))
    }
    fn put(&mut self, item: Item, now: Time) -> Result<Resolution, StoreError> {
        delegate!(self, s => s.put(item, now))
    }
    fn len(&self) -> usize {
        delegate!(self, s => s.len())
    }
    fn keys(&self) -> Vec<Key> {
        delegate!(self, s => s.keys())
    }
    fn expire(&mut self, now: Time) -> usize {
        delegate!(self, s => s.expire(now))
    }
    fn set_own(&mut self, key: Key) {
        delegate!(self, s => s.set_own(key))
    }
    fn own_keys(&self) -> Vec<Key> {
        delegate!(self, s => s.own_keys())
    }
}

#[cfg(test)]
mod tests;
