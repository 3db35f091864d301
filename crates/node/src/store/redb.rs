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
//! - A read on the driver's thread (a `find_value` hit) costs one redb read transaction; see
//!   `benches/store.rs` for its measured cost and why it stays on the driver.
//!
//! - After an I/O error (a full disk among them) redb refuses every transaction until the
//!   database is reopened. The writer thread reopens it on a schedule (see `writer`); while
//!   it is down, every commit fails ([`CommitError::Unavailable`], which says whether the
//!   disk is full) and an item held that cannot be read is an error ([`ReadError`]), never
//!   "not found". The state is in [`StorageHealth`].
//!
//! Files: `open` reads and verifies the store at open, `writer` is the writer thread.

mod open;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use ::redb::{Database, StorageBackend, TableDefinition};
use cairn_core::wire;
use cairn_core::{
    CommitId, CommitOutcome, Holdings, Item, Key, Ledger, Origin, Prefix, ReadError, Resolution,
    Store, StoreError, StoreLimits, Summary, Time, Written,
};
use tokio::sync::mpsc;

pub use self::open::OpenError;
pub use self::writer::{CommitError, CommitReceiver, Committed};
use crate::store::health::{StorageDown, StorageHealth};
use open::read_ledger;
use writer::{Batch, Op, Work, Writer, write_loop};

/// The database, shared by the store's reads and the writer thread; `None` while the writer
/// has closed it to reopen it.
type SharedDatabase = Arc<RwLock<Option<Database>>>;

/// Opens the database (again): at start, and after a failure.
type Opener = Box<dyn Fn() -> Result<Database, Box<::redb::Error>> + Send>;

const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
const OWN: TableDefinition<&[u8], ()> = TableDefinition::new("own");

/// The name of the database file inside the data directory.
pub const STORE_FILE: &str = "items.redb";

/// The most memory redb's page cache takes (its default is 1 GiB).
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

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

/// Items in redb, with their summaries in memory.
pub struct RedbStore {
    ledger: Ledger<Summary>,
    /// Items accepted whose commit has not been reported: served from here until then.
    pending: HashMap<Key, Item>,
    db: SharedDatabase,
    writer: Option<std_mpsc::Sender<Work>>,
    /// Whether the storage works; the writer thread and the reads report to it.
    health: StorageHealth,
    thread: Option<JoinHandle<()>>,
    /// Where commit outcomes go; the writer thread holds a clone.
    notify: mpsc::UnboundedSender<Committed>,
    next_commit: u64,
    /// Writes whose commit has not been reported yet, oldest first.
    undo: VecDeque<Undo>,
    /// Items dropped at open because they no longer verified.
    pub dropped_at_open: usize,
}

impl RedbStore {
    /// Opens (or creates) `dir/items.redb` and reads every item's summary. Commit outcomes
    /// arrive on the returned receiver.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<(Self, CommitReceiver), OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(STORE_FILE);
        let file = path.clone();
        let opener: Opener = Box::new(move || {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&file)
                .map_err(boxed)
        });
        Self::with_opener(&path, opener, limits)
    }

    /// Opens a store kept in a storage backend instead of a file (fault injection, tests):
    /// `backend` makes one, at open and again whenever the store reopens its database after
    /// a failure (the database holding the previous one is dropped first). `name` is what
    /// errors call it.
    pub fn open_with_backend<B, F>(
        name: &Path,
        backend: F,
        limits: StoreLimits,
    ) -> Result<(Self, CommitReceiver), OpenError>
    where
        B: StorageBackend,
        F: Fn() -> std::io::Result<B> + Send + 'static,
    {
        let opener: Opener = Box::new(move || {
            let backend = backend().map_err(boxed)?;
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(backend)
                .map_err(boxed)
        });
        Self::with_opener(name, opener, limits)
    }

    fn with_opener(
        path: &Path,
        opener: Opener,
        limits: StoreLimits,
    ) -> Result<(Self, CommitReceiver), OpenError> {
        let db = opener().map_err(|e| OpenError::database(path, *e))?;
        let setup = db.begin_write().map_err(|e| OpenError::database(path, e))?;
        setup
            .open_table(ITEMS)
            .map_err(|e| OpenError::database(path, e))?;
        setup
            .open_table(OWN)
            .map_err(|e| OpenError::database(path, e))?;
        setup.commit().map_err(|e| OpenError::database(path, e))?;

        let (ledger, dropped) = read_ledger(path, &db, limits)?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "items in the store no longer verify and were dropped"
            );
        }
        let db = Arc::new(RwLock::new(Some(db)));
        let health = StorageHealth::default();
        let (notify, commits) = mpsc::unbounded_channel();
        let (writer, batches) = std_mpsc::channel();
        let work = Writer {
            db: db.clone(),
            opener,
            report: notify.clone(),
            health: health.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("cairn-store".into())
            .spawn(move || write_loop(&work, batches))
            .map_err(|source| OpenError::Writer {
                path: path.to_owned(),
                source,
            })?;
        let store = RedbStore {
            ledger,
            pending: HashMap::new(),
            db,
            writer: Some(writer),
            health: health.clone(),
            thread: Some(thread),
            notify,
            next_commit: 1,
            undo: VecDeque::new(),
            dropped_at_open: dropped,
        };
        Ok((store, CommitReceiver::new(commits, health)))
    }

    /// The storage's health: what `/v1/status` and `/metrics` show.
    pub fn health(&self) -> StorageHealth {
        self.health.clone()
    }

    /// Queues a batch for the writer. If the writer has stopped, the commit is reported
    /// failed at once, so nobody waits for it.
    fn submit(&mut self, batch: Batch) {
        let commit = batch.commit;
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|w| w.send(Work::Batch(batch)).is_ok());
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
        let bytes = match self.read_bytes(key)? {
            Some(bytes) => bytes,
            None => return Ok(None),
        };
        match wire::decode_known_item(&bytes, key, summary) {
            Ok(item) if item.key() == key && summary.describes(&item) => Ok(Some(item)),
            _ => {
                tracing::warn!(%key, "an item on disk no longer verifies; not served");
                Ok(None)
            }
        }
    }

    /// The bytes stored under `key`. While the writer reopens the database (or waits to), the
    /// item cannot be read; a read that fails tells the health and has the writer check
    /// whether the database must be reopened.
    fn read_bytes(&self, key: &Key) -> Result<Option<Vec<u8>>, ReadError> {
        let unavailable = |down: StorageDown| ReadError::Storage {
            key: *key,
            source: Arc::new(down),
        };
        // Never wait on the writer's reopen: the driver's thread reads.
        let Ok(db) = self.db.try_read() else {
            return Err(unavailable(StorageDown::Failed));
        };
        let Some(db) = db.as_ref() else {
            let down = self.health.state().down().unwrap_or(StorageDown::Failed);
            return Err(unavailable(down));
        };
        let found = (|| -> Result<Option<Vec<u8>>, Box<::redb::Error>> {
            let read = db.begin_read().map_err(boxed)?;
            let table = read.open_table(ITEMS).map_err(boxed)?;
            let value = table.get(key.as_bytes().as_slice()).map_err(boxed)?;
            Ok(value.map(|v| v.value().to_vec()))
        })();
        found.map_err(|e| {
            tracing::debug!(%key, "cannot read an item from the store: {e}");
            self.health.failed("read", &e, false);
            if let Some(writer) = &self.writer {
                let _ = writer.send(Work::Check);
            }
            ReadError::Storage {
                key: *key,
                source: Arc::new(*e),
            }
        })
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
        if let Some(Err(panic)) = self.thread.take().map(|thread| thread.join()) {
            // The writer reports a commit that panics; this is a panic outside of one.
            let panic = writer::panic_text(panic.as_ref());
            tracing::error!("the store's writer thread panicked: {panic}");
        }
    }
}

/// A redb error of any operation, boxed (they are large).
fn boxed(error: impl Into<::redb::Error>) -> Box<::redb::Error> {
    Box::new(error.into())
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.close();
    }
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
