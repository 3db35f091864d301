//! The durable store's writer thread: group commit, the report of every commit it held, and
//! the reopening of a database that failed.
//!
//! The thread takes everything queued, writes it in one transaction, commits once and sends
//! one [`Committed`]. A commit that panics (inside redb or the backend under it) is reported
//! failed, like one that returns an error, so that nobody waits on it; from then on the thread
//! refuses every batch with [`CommitError::Stopped`], since the database may be left in any
//! state, until the store closes.
//!
//! After an I/O error (a full disk among them) redb refuses every later transaction ("close
//! and re-open the database"). The thread then takes the database away from readers, drops
//! it, and opens it again, which repairs it back to its last commit, on the schedule of
//! [`reopen_delay`]: while it is down every write is refused with
//! [`CommitError::Unavailable`] and every read of an item held is answered "unavailable".
//! What was committed is on disk, and failed commits were undone in memory, so the store's
//! ledger and the reopened database agree without reading it back.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use ::redb::Database;
use cairn_core::wire;
use cairn_core::{CommitId, Item, Key};
use tokio::sync::mpsc;

use super::{ITEMS, OWN, Opener, SharedDatabase};
use crate::store::health::{StorageDown, StorageHealth};

/// The most batches one group commit takes.
const MAX_GROUP: usize = 4_096;

/// Why a commit failed. Every write of that commit was undone in memory.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The database refused the transaction (an I/O error, a full disk).
    #[error("the database failed: {0}")]
    Database(Arc<::redb::Error>),
    /// An item could not be encoded for disk.
    #[error("an item could not be encoded: {0}")]
    Encode(Arc<wire::EncodeError>),
    /// The commit panicked (a bug in redb or in the storage backend); the writer refuses
    /// every later write.
    #[error("the store's writer panicked during a commit: {0}")]
    Panicked(Arc<str>),
    /// The writer thread has stopped; nothing more can be made durable.
    #[error("the store's writer has stopped")]
    Stopped,
    /// The disk is full (`ENOSPC`): the database refused the transaction.
    #[error("the disk is full: {0}")]
    DiskFull(Arc<::redb::Error>),
    /// The store refused the write without trying: its storage is down (a full disk, or a
    /// failure) and is being reopened.
    #[error("the store is not taking writes now: {0}")]
    Unavailable(StorageDown),
}

impl CommitError {
    /// Why the storage is down, if this failure is a storage that cannot take writes for now
    /// (a full disk, or a store being reopened) rather than another failure.
    pub fn down(&self) -> Option<StorageDown> {
        match self {
            CommitError::DiskFull(_) => Some(StorageDown::DiskFull),
            CommitError::Unavailable(down) => Some(*down),
            _ => None,
        }
    }

    /// Whether the commit failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        self.down() == Some(StorageDown::DiskFull)
    }
}

impl<E: Into<::redb::Error>> From<E> for CommitError {
    fn from(error: E) -> Self {
        commit_error(error.into())
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
    pub took: Duration,
}

/// Where a durable store reports its commits, with a handle on its storage's health. The
/// channel is unbounded, but it holds at most one message per write the store has accepted
/// and not yet reported, and each of those writes is held in memory (the undo log) until then
/// anyway.
#[derive(Debug)]
pub struct CommitReceiver {
    commits: mpsc::UnboundedReceiver<Committed>,
    health: StorageHealth,
}

impl CommitReceiver {
    pub(super) fn new(commits: mpsc::UnboundedReceiver<Committed>, health: StorageHealth) -> Self {
        CommitReceiver { commits, health }
    }

    /// The next commit's outcome; `None` once the store has closed and every outcome is in.
    pub async fn recv(&mut self) -> Option<Committed> {
        self.commits.recv().await
    }

    /// The next commit's outcome, blocking the thread (not in an async context).
    pub fn blocking_recv(&mut self) -> Option<Committed> {
        self.commits.blocking_recv()
    }

    /// The store's storage health (what `/v1/status` and `/metrics` show).
    pub fn health(&self) -> StorageHealth {
        self.health.clone()
    }
}

/// One change to the database.
pub(super) enum Op {
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

/// What the writer is sent.
pub(super) enum Work {
    /// Writes to commit.
    Batch(Batch),
    /// A read failed: see whether the database needs reopening.
    Check,
}

/// The changes of one write, committed together with whatever else is queued.
pub(super) struct Batch {
    /// `None` for writes nobody waits on (expiry).
    pub(super) commit: Option<CommitId>,
    pub(super) ops: Vec<Op>,
}

/// The first wait before reopening a database that failed, and the longest: each failed
/// reopen doubles the wait, up to the longest, and a commit that succeeds starts again from
/// the first. A full disk is thus retried at most every 30 s, for as long as it stays full.
pub(super) const REOPEN_FIRST: Duration = Duration::from_millis(250);
/// See [`REOPEN_FIRST`].
pub(super) const REOPEN_LONGEST: Duration = Duration::from_secs(30);

/// The wait before reopen attempt `attempt` (0 first) since the last commit that succeeded:
/// 0.25 s, 0.5 s, 1 s, ... 16 s, then 30 s.
pub(super) fn reopen_delay(attempt: u32) -> Duration {
    REOPEN_FIRST
        .saturating_mul(1u32 << attempt.min(16))
        .min(REOPEN_LONGEST)
}

/// What the writer thread works with: the database it shares with the store's reads, how to
/// open it again, where it reports commits and health.
pub(super) struct Writer {
    pub(super) db: SharedDatabase,
    pub(super) opener: Opener,
    pub(super) report: mpsc::UnboundedSender<Committed>,
    pub(super) health: StorageHealth,
}

/// The writer thread: one transaction and one commit for everything queued, then one report;
/// after an I/O error, the database reopened on [`reopen_delay`]'s schedule. Returns when the
/// store drops its sender.
pub(super) fn write_loop(writer: &Writer, batches: std_mpsc::Receiver<Work>) {
    // Reopen attempts since the last commit that succeeded.
    let mut attempts = 0;
    loop {
        if writer.is_down() {
            if !writer.wait_to_reopen(&batches, reopen_delay(attempts)) {
                return;
            }
            writer.reopen();
            attempts += 1;
            continue;
        }
        let Ok(first) = batches.recv() else {
            return;
        };
        let first = match first {
            Work::Batch(batch) => batch,
            Work::Check => {
                writer.check();
                continue;
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match batches.try_recv() {
                Ok(Work::Batch(more)) => group.push(more),
                Ok(Work::Check) => {}
                Err(_) => break,
            }
        }
        let began = Instant::now();
        let result = writer.with_database(|db| {
            match catch_unwind(AssertUnwindSafe(|| commit(db, &group))) {
                Ok(result) => result,
                Err(panic) => Err(CommitError::Panicked(panic_text(panic.as_ref()).into())),
            }
        });
        let took = began.elapsed();
        match &result {
            Ok(()) => {
                attempts = 0;
                writer.health.recovered();
            }
            Err(e) => writer.failed(e),
        }
        let panicked = matches!(result, Err(CommitError::Panicked(_)));
        send_report(&writer.report, &group, result, took);
        if panicked {
            refuse_all(batches, &writer.report);
            return;
        }
    }
}

impl Writer {
    /// Runs `work` on the database, or says why there is none to run it on.
    fn with_database(
        &self,
        work: impl FnOnce(&Database) -> Result<(), CommitError>,
    ) -> Result<(), CommitError> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        match db.as_ref() {
            Some(db) => work(db),
            None => Err(CommitError::Unavailable(
                self.health.state().down().unwrap_or(StorageDown::Failed),
            )),
        }
    }

    /// Whether the database is closed, to be reopened.
    fn is_down(&self) -> bool {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// A commit failed: if redb now refuses every transaction, the database is closed, to be
    /// reopened, and the health logs the change of state once (not every failed commit of a
    /// full disk). Other failures (an item that does not encode) leave it working, and are
    /// logged each.
    fn failed(&self, error: &CommitError) {
        let (CommitError::Database(redb_error) | CommitError::DiskFull(redb_error)) = error else {
            tracing::error!("store commit failed: {error}");
            return;
        };
        let poisoned = self.poisoned();
        self.health.failed("commit", redb_error, poisoned);
        if poisoned {
            tracing::debug!("store commit failed: {error}");
            self.close();
        } else {
            tracing::error!("store commit failed: {error}");
        }
    }

    /// A read failed on the store's side: the database is closed, to be reopened, if redb
    /// now refuses every transaction.
    fn check(&self) {
        if self.poisoned() {
            // The read's own error was counted where it failed.
            self.health.failed("read", &::redb::Error::PreviousIo, true);
            self.close();
        }
    }

    /// Whether redb refuses every transaction since an I/O error.
    fn poisoned(&self) -> bool {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        db.as_ref().is_some_and(|db| {
            matches!(
                db.begin_write(),
                Err(::redb::TransactionError::Storage(
                    ::redb::StorageError::PreviousIo
                ))
            )
        })
    }

    /// Takes the database away from readers and drops it (it must be closed before it is
    /// opened again: the file is locked while open).
    fn close(&self) {
        let old = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(old);
    }

    /// Waits `delay` before a reopen, refusing every write that arrives meanwhile. Returns
    /// `false` once the store has closed.
    fn wait_to_reopen(&self, batches: &std_mpsc::Receiver<Work>, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match batches.recv_timeout(left) {
                Ok(Work::Batch(batch)) => {
                    let down = self.health.state().down().unwrap_or(StorageDown::Failed);
                    let refused = Err(CommitError::Unavailable(down));
                    send_report(&self.report, &[batch], refused, Duration::ZERO);
                }
                Ok(Work::Check) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => return true,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Opens the database again; redb repairs it back to its last commit.
    fn reopen(&self) {
        match (self.opener)() {
            Ok(db) => {
                *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(db);
                self.health.reopened();
            }
            Err(e) => {
                tracing::debug!("reopening the store failed: {e}");
                self.health.failed("reopen", &e, true);
            }
        }
    }
}

/// After a panic: every later write is reported failed, until the store closes.
fn refuse_all(batches: std_mpsc::Receiver<Work>, report: &mpsc::UnboundedSender<Committed>) {
    for work in batches {
        if let Work::Batch(batch) = work {
            send_report(report, &[batch], Err(CommitError::Stopped), Duration::ZERO);
        }
    }
}

/// Reports the outcome of `group` to whoever waits on its commits.
fn send_report(
    report: &mpsc::UnboundedSender<Committed>,
    group: &[Batch],
    result: Result<(), CommitError>,
    took: Duration,
) {
    let commits: Vec<CommitId> = group.iter().filter_map(|b| b.commit).collect();
    if !commits.is_empty() {
        // The receiver is gone only once the node has stopped: nobody is left to tell.
        let _ = report.send(Committed {
            commits,
            result,
            took,
        });
    }
}

/// What a panic carried, as text.
pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
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

/// A redb error as a commit's failure: a full disk is named as such.
fn commit_error(error: ::redb::Error) -> CommitError {
    match &error {
        ::redb::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            CommitError::DiskFull(Arc::new(error))
        }
        _ => CommitError::Database(Arc::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reopen_schedule_doubles_from_a_quarter_second_up_to_thirty() {
        let ms = |attempt| reopen_delay(attempt).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(6)], [250, 500, 1_000, 16_000]);
        assert_eq!([ms(7), ms(20), ms(u32::MAX)], [30_000; 3]);
    }
}
