//! Opening the durable store: every item is read back and verified, in chunks on all cores,
//! into a ledger of summaries. An item that fails is dropped with a warning, never served.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ::redb::{Database, ReadableTable};
use cairn_core::wire;
use cairn_core::{Item, Key, Ledger, StoreLimits, Summary};

use super::writer::panic_text;
use super::{ITEMS, OWN};

/// Items read and verified at a time when opening a store.
const OPEN_CHUNK: usize = 4_096;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// redb refused the file, or reading it back failed.
    #[error("cannot open the store {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why (boxed: redb's errors are large).
        source: Box<::redb::Error>,
    },
    /// Verifying the items read back panicked, so which of them verify is not known.
    #[error("cannot open the store {path}: verifying its items panicked: {message}")]
    Verify {
        /// The database file.
        path: PathBuf,
        /// What the panic said.
        message: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer of the store {path}: {source}")]
    Writer {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl OpenError {
    /// A redb failure while opening `path`.
    pub(super) fn database(path: &Path, error: impl Into<::redb::Error>) -> Self {
        OpenError::Database {
            path: path.to_owned(),
            source: Box::new(error.into()),
        }
    }
}

/// Reads every item back, verifying them in chunks on all cores, into a ledger of summaries.
/// Returns the ledger and how many items failed.
pub(super) fn read_ledger(
    path: &Path,
    db: &Database,
    limits: StoreLimits,
) -> Result<(Ledger<Summary>, usize), OpenError> {
    let read = db.begin_read().map_err(|e| OpenError::database(path, e))?;
    let own_table = read
        .open_table(OWN)
        .map_err(|e| OpenError::database(path, e))?;
    let mut own = HashSet::new();
    for entry in own_table.iter().map_err(|e| OpenError::database(path, e))? {
        let (key, _) = entry.map_err(|e| OpenError::database(path, e))?;
        if let Some(key) = Key::from_slice(key.value()) {
            own.insert(key);
        }
    }
    let mut ledger = Ledger::new(limits);
    let mut dropped = 0;
    let mut absorb = |chunk: Vec<Vec<u8>>, ledger: &mut Ledger<Summary>| {
        let (items, failed) = verify_all(chunk, decode).map_err(|message| OpenError::Verify {
            path: path.to_owned(),
            message,
        })?;
        dropped += failed;
        for item in items {
            let key = *item.key();
            ledger.restore(key, Summary::of(&item), own.contains(&key));
        }
        Ok::<(), OpenError>(())
    };
    let items = read
        .open_table(ITEMS)
        .map_err(|e| OpenError::database(path, e))?;
    let mut chunk = Vec::with_capacity(OPEN_CHUNK);
    for entry in items.iter().map_err(|e| OpenError::database(path, e))? {
        let (_, value) = entry.map_err(|e| OpenError::database(path, e))?;
        chunk.push(value.value().to_vec());
        if chunk.len() == OPEN_CHUNK {
            absorb(std::mem::take(&mut chunk), &mut ledger)?;
        }
    }
    absorb(chunk, &mut ledger)?;
    Ok((ledger, dropped))
}

/// Decodes and verifies one stored item; `None` if it does not verify.
fn decode(record: &[u8]) -> Option<Item> {
    wire::decode_item(record).ok()
}

/// Decodes and verifies stored items with `decode` on every core. Returns the good ones and
/// how many failed, or what a panicking verifier said: a panic is no verdict on its items.
fn verify_all(
    records: Vec<Vec<u8>>,
    decode: fn(&[u8]) -> Option<Item>,
) -> Result<(Vec<Item>, usize), String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = records.len().div_ceil(threads).max(1);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|r| decode(r)).collect::<Vec<_>>()))
            .collect();
        // Every thread is joined before the first panic is reported: the scope would panic
        // itself on a panicked thread left unjoined.
        let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        joined
            .into_iter()
            .map(|result| result.map_err(|panic| panic_text(panic.as_ref())))
            .collect::<Result<Vec<_>, String>>()
    })?;
    let total = records.len();
    let items: Vec<Item> = results.into_iter().flatten().flatten().collect();
    let dropped = total - items.len();
    Ok((items, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_verifier_fails_the_open_instead_of_dropping_its_items() {
        let records = vec![vec![1u8]; 8];
        assert_eq!(
            verify_all(records.clone(), |_| None).map(|(items, dropped)| (items.len(), dropped)),
            Ok((0, 8))
        );
        let panicked = verify_all(records, |_| panic!("verifier bug")).expect_err("panicked");
        assert!(panicked.contains("verifier bug"), "{panicked}");
    }
}
