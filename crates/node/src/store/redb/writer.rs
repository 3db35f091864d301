//! The durable store's writer thread: group commit, and the report of every commit it held.
//!
//! The thread takes everything queued, writes it in one transaction, commits once and sends
//! one [`Committed`]. A commit that panics (inside redb or the backend under it) is reported
//! failed, like one that returns an error, so that nobody waits on it; from then on the thread
//! refuses every batch with [`CommitError::Stopped`], since the database may be left in any
//! state, until the store closes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use ::redb::Database;
use cairn_core::wire;
use cairn_core::{CommitId, Item, Key};
use tokio::sync::mpsc;

use super::{ITEMS, OWN};

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
    pub took: Duration,
}

/// Where a durable store reports its commits. Unbounded, but it holds at most one message per
/// write the store has accepted and not yet reported, and each of those writes is held in
/// memory (the undo log) until then anyway.
pub type CommitReceiver = mpsc::UnboundedReceiver<Committed>;

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

/// The changes of one write, committed together with whatever else is queued.
pub(super) struct Batch {
    /// `None` for writes nobody waits on (expiry).
    pub(super) commit: Option<CommitId>,
    pub(super) ops: Vec<Op>,
}

/// The writer thread: one transaction and one commit for everything queued, then one report.
/// Returns when the store drops its sender.
pub(super) fn write_loop(
    db: &Database,
    batches: std_mpsc::Receiver<Batch>,
    report: mpsc::UnboundedSender<Committed>,
) {
    while let Ok(first) = batches.recv() {
        let mut group = vec![first];
        while let Ok(more) = batches.try_recv() {
            group.push(more);
            if group.len() >= MAX_GROUP {
                break;
            }
        }
        let began = Instant::now();
        let result = match catch_unwind(AssertUnwindSafe(|| commit(db, &group))) {
            Ok(result) => result,
            Err(panic) => Err(CommitError::Panicked(panic_text(panic.as_ref()).into())),
        };
        let took = began.elapsed();
        if let Err(e) = &result {
            tracing::error!("store commit failed: {e}");
        }
        let panicked = matches!(result, Err(CommitError::Panicked(_)));
        send_report(&report, &group, result, took);
        if panicked {
            refuse_all(batches, &report);
            return;
        }
    }
}

/// After a panic: every later write is reported failed, until the store closes.
fn refuse_all(batches: std_mpsc::Receiver<Batch>, report: &mpsc::UnboundedSender<Committed>) {
    for batch in batches {
        let group = [batch];
        send_report(report, &group, Err(CommitError::Stopped), Duration::ZERO);
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
