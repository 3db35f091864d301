//! The durable store: items in a redb database, with only what the rules need of each kept
//! in memory, and group commit.
//!
//! Implementation notes:
//! - The rules (which copy wins, limits, shares) run on a [`Ledger`] of [`Summary`]s, on the
//!   driver's thread, so they see every accepted write at once, committed or not. A summary is
//!   about 70 bytes whatever the value's size; values live on disk and are read back when
//!   served, recognised by the summary's hashes as the copy verified when it was stored
//!   (`wire::decode_known_item`), or else verified again.
//! - An item accepted but not yet committed is served from memory (`pending`) until its
//!   commit is reported, then from disk.
//! - Every accepted write gets a [`CommitId`] and goes to one writer thread, which takes
//!   everything queued, encodes it, writes it in one transaction and commits once
//!   (`Durability::Immediate`: fsync). It then reports the outcome of each write's commit on
//!   the [`CommitReceiver`] returned at open; the driver feeds it to `Node::handle_commit`,
//!   which calls [`Store::committed`], and only then answers `stored` or a local put.
//!   Concurrent stores therefore share commits instead of paying one fsync each.
//! - Until its commit is reported, each write keeps what it replaced (the undo log). A failed
//!   commit puts the ledger and `pending` back as they were; the disk, whose transaction was
//!   aborted, already is. An item that is not on disk is never served.
//! - On open, every item is read back and verified, in chunks on all cores; an item that fails
//!   is dropped with a warning, never served.
//! - redb's own page cache is bounded ([`CACHE_BYTES`]); the operating system's file cache
//!   does the rest.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use ::redb::{Database, ReadableTable, StorageBackend, TableDefinition};
use cairn_core::item::{Resolution, Summary};
use cairn_core::store::{
    CommitId, CommitOutcome, Holdings, Ledger, Origin, ReadError, StoreError, StoreLimits, Written,
};
use cairn_core::subnet::Prefix;
use cairn_core::{Item, Key, Store, Time, wire};
use tokio::sync::mpsc;

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const OWN: TableDefinition<&[u8], ()> = TableDefinition::new("own");

/// The name of the database file inside the data directory.
pub const STORE_FILE: &str = "items.redb";

/// The most memory redb's page cache takes (its default is 1 GiB).
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Items read and verified at a time when opening a store.
const OPEN_CHUNK: usize = 4_096;

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
    /// How long the transaction took to write and sync.
    pub took: std::time::Duration,
}

/// Where a durable store reports its commits. Unbounded, but it holds at most one message per
/// write the store has accepted and not yet reported, and each of those writes is held in
/// memory (the undo log) until then anyway.
pub type CommitReceiver = mpsc::UnboundedReceiver<Committed>;

enum Op {
    /// Write an item, with its own mark.
    Put {
        key: Key,
        item: Box<Item>,
        own: bool,
    },
    /// Set or clear the own mark of an item already written.
    Own {
        key: Key,
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
    previous: Option<Summary>,
    /// The copy that was still waiting for its own commit, if any.
    previous_pending: Option<Item>,
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

/// Items in redb, with their summaries in memory.
pub struct RedbStore {
    ledger: Ledger<Summary>,
    /// Items accepted whose commit has not been reported: served from here until then.
    pending: HashMap<Key, Item>,
    db: Arc<Database>,
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
    /// Opens (or creates) `dir/items.redb` and reads every item's summary. Commit outcomes
    /// arrive on the returned receiver.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<(Self, CommitReceiver), OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| db_error(dir, e))?;
        let path = dir.join(STORE_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| db_error(&path, e))?;
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
            .set_cache_size(CACHE_BYTES)
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

        let (ledger, dropped) = read_ledger(&db, limits).map_err(|e| db_error(path, e))?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "items in the store no longer verify and were dropped"
            );
        }
        let db = Arc::new(db);
        let (notify, commits) = mpsc::unbounded_channel();
        let (writer, batches) = std_mpsc::channel();
        let (report, writes) = (notify.clone(), db.clone());
        let thread = std::thread::Builder::new()
            .name("cairn-store".into())
            .spawn(move || write_loop(&writes, batches, report))
            .map_err(|e| db_error(path, e))?;
        let store = RedbStore {
            ledger,
            pending: HashMap::new(),
            db,
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
                    took: std::time::Duration::ZERO,
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

    /// The item under `key` as committed on disk: the copy `summary` describes, which was
    /// verified when it was stored or when the store opened, is recognised by hashes; any other
    /// bytes are verified again, and not served unless they verify.
    fn read(&self, key: &Key, summary: &Summary) -> Result<Option<Item>, ReadError> {
        let found = (|| -> Result<Option<Vec<u8>>, ::redb::Error> {
            let read = self.db.begin_read()?;
            let table = read.open_table(ITEMS)?;
            let value = table.get(key.as_bytes().as_slice())?;
            Ok(value.map(|v| v.value().to_vec()))
        })();
        let bytes = match found {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(%key, "cannot read an item from the store: {e}");
                let source = Arc::new(e);
                return Err(ReadError::Storage { key: *key, source });
            }
        };
        match wire::decode_known_item(&bytes, key, summary) {
            Ok(item) if item.key() == key && summary.describes(&item) => Ok(Some(item)),
            _ => {
                tracing::warn!(%key, "an item on disk no longer verifies; not served");
                Ok(None)
            }
        }
    }

    /// A commit is durable: its writes are on disk, so their items are served from there.
    fn durable(&mut self, commit: CommitId) {
        let mut done = Vec::new();
        self.undo.retain(|u| {
            let ours = u.commit == commit;
            if ours {
                done.push(u.key);
            }
            !ours
        });
        for key in done {
            if !self.undo.iter().any(|u| u.key == key) {
                self.pending.remove(&key);
            }
        }
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
                    later.previous_pending = undo.previous_pending;
                    later.own = undo.own;
                    later.stored_by = undo.stored_by;
                }
                None => {
                    let key = undo.key;
                    self.ledger
                        .revert(key, undo.previous, undo.own, undo.stored_by);
                    match undo.previous_pending {
                        Some(item) => self.pending.insert(key, item),
                        None => self.pending.remove(&key),
                    };
                }
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

/// Reads every item back, verifying them in chunks on all cores, into a ledger of summaries.
/// Returns the ledger and how many items failed.
fn read_ledger(db: &Database, limits: StoreLimits) -> Result<(Ledger<Summary>, usize), String> {
    let read = db.begin_read().map_err(db_text)?;
    let own_table = read.open_table(OWN).map_err(db_text)?;
    let mut own = HashSet::new();
    for entry in own_table.iter().map_err(db_text)? {
        let (key, _) = entry.map_err(db_text)?;
        if let Some(key) = Key::from_slice(key.value()) {
            own.insert(key);
        }
    }
    let mut ledger = Ledger::new(limits);
    let mut dropped = 0;
    let mut absorb = |chunk: Vec<Vec<u8>>, ledger: &mut Ledger<Summary>| {
        let (items, failed) = verify_all(chunk);
        dropped += failed;
        for item in items {
            let key = *item.key();
            ledger.restore(key, Summary::of(&item), own.contains(&key));
        }
    };
    let items = read.open_table(ITEMS).map_err(db_text)?;
    let mut chunk = Vec::with_capacity(OPEN_CHUNK);
    for entry in items.iter().map_err(db_text)? {
        let (_, value) = entry.map_err(db_text)?;
        chunk.push(value.value().to_vec());
        if chunk.len() == OPEN_CHUNK {
            absorb(std::mem::take(&mut chunk), &mut ledger);
        }
    }
    absorb(chunk, &mut ledger);
    Ok((ledger, dropped))
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
    db: &Database,
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
        let began = std::time::Instant::now();
        let result = commit(db, &group);
        let took = began.elapsed();
        if let Err(e) = &result {
            tracing::error!("store commit failed: {e}");
        }
        let commits: Vec<CommitId> = group.iter().filter_map(|b| b.commit).collect();
        if !commits.is_empty() {
            let _ = report.send(Committed {
                commits,
                result,
                took,
            });
        }
    }
}

fn commit(db: &Database, group: &[Batch]) -> Result<(), CommitError> {
    let txn = db.begin_write()?;
    {
        let mut items = txn.open_table(ITEMS)?;
        let mut own = txn.open_table(OWN)?;
        let mut mark = |key: &Key, mine: bool| -> Result<(), CommitError> {
            if mine {
                own.insert(key.as_bytes().as_slice(), ())?;
            } else {
                own.remove(key.as_bytes().as_slice())?;
            }
            Ok(())
        };
        for op in group.iter().flat_map(|b| &b.ops) {
            match op {
                Op::Put { key, item, own } => {
                    let bytes =
                        wire::encode_item(item).map_err(|e| CommitError::Encode(Arc::new(e)))?;
                    items.insert(key.as_bytes().as_slice(), bytes.as_slice())?;
                    mark(key, *own)?;
                }
                Op::Own { key, own } => mark(key, *own)?,
                Op::Delete(key) => {
                    items.remove(key.as_bytes().as_slice())?;
                    mark(key, false)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

impl Store for RedbStore {
    fn get(&self, key: &Key, now: Time) -> Result<Option<Item>, ReadError> {
        let Some(summary) = self.ledger.live(key, now).copied() else {
            return Ok(None);
        };
        match self.pending.get(key) {
            Some(item) => Ok(Some(item.clone())),
            None => self.read(key, &summary),
        }
    }

    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        let key = *item.key();
        let previous = self.ledger.held(&key).copied();
        let was_own = self.ledger.is_own(&key);
        let stored_by = self.ledger.stored_by(&key);
        let resolution = self
            .ledger
            .admit(&item, || Summary::of(&item), now, origin)?;
        let own = self.ledger.is_own(&key);
        if resolution == Resolution::Unchanged && own == was_own {
            // Nothing new to write, but the copy held may still be on its way to disk.
            let commit = self.pending_commit(&key);
            return Ok(Written { resolution, commit });
        }
        let commit = CommitId(self.next_commit);
        self.next_commit += 1;
        self.undo.push_back(Undo {
            commit,
            key,
            previous,
            previous_pending: self.pending.get(&key).cloned(),
            own: was_own,
            stored_by,
        });
        let op = if resolution == Resolution::Unchanged {
            Op::Own { key, own }
        } else {
            self.pending.insert(key, item.clone());
            let item = Box::new(item);
            Op::Put { key, item, own }
        };
        self.submit(Batch {
            commit: Some(commit),
            ops: vec![op],
        });
        Ok(Written {
            resolution,
            commit: Some(commit),
        })
    }

    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        match outcome {
            CommitOutcome::Durable => self.durable(commit),
            CommitOutcome::Failed => self.undo(commit),
        }
    }

    fn expire(&mut self, now: Time) -> usize {
        let gone = self.ledger.drain_expired(now);
        let count = gone.len();
        for key in &gone {
            self.pending.remove(key);
        }
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

    fn holdings(&self) -> &dyn Holdings {
        &self.ledger
    }
}

#[cfg(test)]
mod tests;
