//! The durable store: an in-memory [`MemoryStore`] mirrored to a redb database, with
//! group commit.
//!
//! Implementation notes:
//! - The rules (which copy wins, limits) run on the in-memory mirror, on the driver's thread,
//!   so they see every accepted write at once, committed or not.
//! - Every accepted write gets a [`CommitId`] and goes to one writer thread, which takes
//!   everything queued, encodes it, writes it in one transaction and commits once
//!   (`Durability::Immediate`: fsync). It then reports the outcome of each write's commit on
//!   the [`CommitReceiver`] returned at open; the driver feeds it to `Node::handle_commit`,
//!   which calls [`Store::committed`], and only then answers `stored` or a local put.
//!   Concurrent stores therefore share commits instead of paying one fsync each.
//! - Until its commit is reported, each write keeps what it replaced (the undo log). A failed
//!   commit puts the mirror back as it was, so an item that is not on disk is never served.
//! - On open, every item is read back and verified again (the one path from bytes to an
//!   item), on all cores; an item that fails is dropped with a warning, never served.
//! - The mirror costs memory equal to the store's size, bounded by `max_store_bytes`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use ::redb::{Database, ReadableTable, StorageBackend, TableDefinition};
use cairn_core::item::Resolution;
use cairn_core::store::{CommitId, CommitOutcome, Origin, StoreError, StoreLimits, Written};
use cairn_core::subnet::Prefix;
use cairn_core::{Item, Key, MemoryStore, Store, Time, wire};
use tokio::sync::mpsc;

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const OWN: TableDefinition<&[u8], ()> = TableDefinition::new("own");

/// The name of the database file inside the data directory.
pub const STORE_FILE: &str = "items.redb";

/// Why a commit failed. Every write of that commit was undone in memory.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CommitError {
    /// The database refused the transaction (an I/O error, a full disk).
    #[error("the database failed: {0}")]
    Database(Arc<::redb::Error>),
    /// An item could not be encoded for disk.
    #[error("an item could not be encoded: {0}")]
    Encode(Arc<wire::EncodeError>),
    /// The writer thread has stopped; nothing more can be made durable.
    #[error("the store's writer has stopped")]
    Stopped,
}

impl<E: Into<::redb::Error>> From<E> for CommitError {
    fn from(error: E) -> Self {
        CommitError::Database(Arc::new(error.into()))
    }
}

/// The outcome of one group commit: every write in `commits` is durable, or none is.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The writes the commit carried.
    pub commits: Vec<CommitId>,
    /// Whether they are on disk.
    pub result: Result<(), CommitError>,
}

/// Where a durable store reports its commits. Unbounded, but it holds at most one message per
/// write the store has accepted and not yet reported, and each of those writes is held in
/// memory (the undo log) until then anyway.
pub type CommitReceiver = mpsc::UnboundedReceiver<Committed>;

enum Op {
    Put {
        key: Key,
        item: Box<Item>,
        own: bool,
    },
    Delete(Key),
}

struct Batch {
    /// `None` for writes nobody waits on (expiry).
    commit: Option<CommitId>,
    ops: Vec<Op>,
}

/// What a write replaced, to put back if its commit fails.
struct Undo {
    commit: CommitId,
    key: Key,
    previous: Option<Item>,
    own: bool,
    /// The network the replaced copy counted against.
    stored_by: Option<Prefix>,
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
    /// Where commit outcomes go; the writer thread holds a clone.
    notify: mpsc::UnboundedSender<Committed>,
    next_commit: u64,
    /// Writes whose commit has not been reported yet, oldest first.
    undo: VecDeque<Undo>,
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
    /// Opens (or creates) `dir/items.redb` and loads every item into memory. Commit outcomes
    /// arrive on the returned receiver.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<(Self, CommitReceiver), OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| db_error(dir, e))?;
        let path = dir.join(STORE_FILE);
        let db = Database::create(&path).map_err(|e| db_error(&path, e))?;
        Self::with_database(&path, db, limits)
    }

    /// Opens a store kept in `backend` instead of a file (fault injection, tests); `name` is
    /// what errors call it.
    pub fn open_with_backend(
        name: &Path,
        backend: impl StorageBackend,
        limits: StoreLimits,
    ) -> Result<(Self, CommitReceiver), OpenError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| db_error(name, e))?;
        Self::with_database(name, db, limits)
    }

    fn with_database(
        path: &Path,
        db: Database,
        limits: StoreLimits,
    ) -> Result<(Self, CommitReceiver), OpenError> {
        let setup = db.begin_write().map_err(|e| db_error(path, e))?;
        setup.open_table(ITEMS).map_err(|e| db_error(path, e))?;
        setup.open_table(OWN).map_err(|e| db_error(path, e))?;
        setup.commit().map_err(|e| db_error(path, e))?;

        let (records, own) = read_all(&db).map_err(|e| db_error(path, e))?;
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
        let (notify, commits) = mpsc::unbounded_channel();
        let (writer, batches) = std_mpsc::channel();
        let report = notify.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-store".into())
            .spawn(move || write_loop(db, batches, report))
            .map_err(|e| db_error(path, e))?;
        let store = RedbStore {
            memory,
            writer: Some(writer),
            thread: Some(thread),
            notify,
            next_commit: 1,
            undo: VecDeque::new(),
            dropped_at_open: dropped,
        };
        Ok((store, commits))
    }

    /// Queues a batch for the writer. If the writer has stopped, the commit is reported
    /// failed at once, so nobody waits for it.
    fn submit(&mut self, batch: Batch) {
        let commit = batch.commit;
        let sent = self.writer.as_ref().is_some_and(|w| w.send(batch).is_ok());
        if !sent {
            tracing::error!("the store's writer has stopped; a write was not made durable");
            if let Some(commit) = commit {
                let _ = self.notify.send(Committed {
                    commits: vec![commit],
                    result: Err(CommitError::Stopped),
                });
            }
        }
    }

    /// The commit of the latest write of `key` not yet reported, if any.
    fn pending_commit(&self, key: &Key) -> Option<CommitId> {
        self.undo
            .iter()
            .rev()
            .find(|u| u.key == *key)
            .map(|u| u.commit)
    }

    /// Undoes the writes of a failed commit, newest first. A later write of the same key that
    /// is still pending inherits what this one replaced, so that undoing it too restores the
    /// state from before both.
    fn undo(&mut self, commit: CommitId) {
        let mut at = self.undo.len();
        while at > 0 {
            at -= 1;
            if self.undo[at].commit != commit {
                continue;
            }
            let Some(undo) = self.undo.remove(at) else {
                continue;
            };
            match self.undo.iter_mut().skip(at).find(|u| u.key == undo.key) {
                Some(later) => {
                    later.previous = undo.previous;
                    later.own = undo.own;
                    later.stored_by = undo.stored_by;
                }
                None => self
                    .memory
                    .revert(undo.key, undo.previous, undo.own, undo.stored_by),
            }
        }
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

/// A redb error as text, for open errors (which only a person reads).
fn db_text(error: impl Into<::redb::Error>) -> String {
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

/// The writer thread: one transaction and one commit for everything queued, then one report.
fn write_loop(
    db: Database,
    batches: std_mpsc::Receiver<Batch>,
    report: mpsc::UnboundedSender<Committed>,
) {
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
        let commits: Vec<CommitId> = group.iter().filter_map(|b| b.commit).collect();
        if !commits.is_empty() {
            let _ = report.send(Committed { commits, result });
        }
    }
}

fn commit(db: &Database, group: &[Batch]) -> Result<(), CommitError> {
    let txn = db.begin_write()?;
    {
        let mut items = txn.open_table(ITEMS)?;
        let mut own = txn.open_table(OWN)?;
        for op in group.iter().flat_map(|b| &b.ops) {
            match op {
                Op::Put {
                    key,
                    item,
                    own: mine,
                } => {
                    let bytes =
                        wire::encode_item(item).map_err(|e| CommitError::Encode(Arc::new(e)))?;
                    items.insert(key.as_bytes().as_slice(), bytes.as_slice())?;
                    if *mine {
                        own.insert(key.as_bytes().as_slice(), ())?;
                    } else {
                        own.remove(key.as_bytes().as_slice())?;
                    }
                }
                Op::Delete(key) => {
                    items.remove(key.as_bytes().as_slice())?;
                    own.remove(key.as_bytes().as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

impl Store for RedbStore {
    fn get(&self, key: &Key, now: Time) -> Option<Item> {
        self.memory.get(key, now)
    }

    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        let key = *item.key();
        let previous = self.memory.held(&key).cloned();
        let was_own = self.memory.is_own(&key);
        let stored_by = self.memory.stored_by(&key);
        let written = self.memory.put(item, now, origin)?;
        let is_own = self.memory.is_own(&key);
        if written.resolution == Resolution::Unchanged && is_own == was_own {
            // Nothing new to write, but the copy held may still be on its way to disk.
            return Ok(Written {
                commit: self.pending_commit(&key),
                ..written
            });
        }
        let Some(stored) = self.memory.held(&key).cloned() else {
            return Ok(written);
        };
        let commit = CommitId(self.next_commit);
        self.next_commit += 1;
        self.undo.push_back(Undo {
            commit,
            key,
            previous,
            own: was_own,
            stored_by,
        });
        self.submit(Batch {
            commit: Some(commit),
            ops: vec![Op::Put {
                key,
                item: Box::new(stored),
                own: is_own,
            }],
        });
        Ok(Written {
            commit: Some(commit),
            ..written
        })
    }

    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        match outcome {
            CommitOutcome::Durable => self.undo.retain(|u| u.commit != commit),
            CommitOutcome::Failed => self.undo(commit),
        }
    }

    fn len(&self) -> usize {
        self.memory.len()
    }

    fn keys(&self) -> Vec<Key> {
        self.memory.keys()
    }

    fn expire(&mut self, now: Time) -> usize {
        let gone = self.memory.drain_expired(now);
        let count = gone.len();
        if count > 0 {
            // Nobody waits on an expiry's commit; if it fails, the next open drops the items
            // as expired anyway.
            self.submit(Batch {
                commit: None,
                ops: gone.into_iter().map(Op::Delete).collect(),
            });
        }
        count
    }

    fn own_keys(&self) -> Vec<Key> {
        self.memory.own_keys()
    }
}

#[cfg(test)]
mod tests;
