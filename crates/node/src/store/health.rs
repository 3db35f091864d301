//! Whether a node's storage works: its state (ok, full, failed, recovering), the last error and
//! since when, and the counts of errors by kind and of reopens.
//!
//! The durable store's writer thread and its reads on the driver's thread report here; the
//! driver reads it for `/v1/status` and `/metrics`. A change of state is logged here, once:
//! one warning when the storage stops working, one info when it works again, so that a full
//! disk that refuses every write does not flood the log.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Why a store's storage is down for now: what a refused write or an unreadable item says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageDown {
    /// The disk is full (`ENOSPC`); writes fail until space is freed.
    #[error("the disk is full")]
    DiskFull,
    /// The storage failed (an I/O error) and is being reopened.
    #[error("the storage failed and is being reopened")]
    Failed,
}

/// What state a node's storage is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StorageState {
    /// Reads and writes work.
    #[default]
    Ok,
    /// The disk is full: writes are refused until space is freed and the store reopened.
    Full,
    /// The storage failed (an I/O error): it is reopened on a schedule.
    Failed,
    /// The store was reopened after a full disk and serves reads; the next commit that
    /// succeeds shows there is space again.
    Recovering,
}

impl StorageState {
    /// Every state, for the metrics.
    pub const ALL: [StorageState; 4] = [
        StorageState::Ok,
        StorageState::Full,
        StorageState::Failed,
        StorageState::Recovering,
    ];

    /// The name in `/v1/status` and the metrics' labels.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageState::Ok => "ok",
            StorageState::Full => "full",
            StorageState::Failed => "failed",
            StorageState::Recovering => "recovering",
        }
    }

    /// Why the storage is down in this state, if it is.
    pub fn down(self) -> Option<StorageDown> {
        match self {
            StorageState::Ok | StorageState::Recovering => None,
            StorageState::Full => Some(StorageDown::DiskFull),
            StorageState::Failed => Some(StorageDown::Failed),
        }
    }
}

/// The kinds of storage error counted: a full disk (`ENOSPC`), another I/O error, redb refusing
/// after an earlier I/O error (until the database is reopened), anything else.
pub const ERROR_KINDS: [&str; 4] = ["full", "io", "previous_io", "other"];

/// The kind of a redb error, one of [`ERROR_KINDS`].
pub fn error_kind(error: &::redb::Error) -> &'static str {
    match error {
        ::redb::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => "full",
        ::redb::Error::Io(_) => "io",
        ::redb::Error::PreviousIo => "previous_io",
        _ => "other",
    }
}

/// The storage's state as `GET /v1/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StorageStatus {
    /// `ok`, `full`, `failed` or `recovering`.
    pub state: StorageState,
    /// The last storage error, while the state is not `ok` (and after, until the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix seconds since the state has been what it is (absent for a store that never left
    /// `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Times the store was reopened after an error, successfully.
    #[serde(default)]
    pub reopens: u64,
    /// Reopens that failed (the disk still full or failing); each is tried again later.
    #[serde(default)]
    pub reopens_failed: u64,
    /// Storage errors seen, by kind.
    #[serde(default)]
    pub errors: StorageErrors,
}

/// Storage errors seen since start, by kind ([`ERROR_KINDS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StorageErrors {
    /// The disk was full (`ENOSPC`).
    #[serde(default)]
    pub full: u64,
    /// Another I/O error.
    #[serde(default)]
    pub io: u64,
    /// redb refused because of an earlier I/O error (until the database was reopened).
    #[serde(default)]
    pub previous_io: u64,
    /// Anything else (a damaged database, say).
    #[serde(default)]
    pub other: u64,
}

impl StorageErrors {
    /// Each kind's name ([`ERROR_KINDS`]) and count.
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        [
            ("full", self.full),
            ("io", self.io),
            ("previous_io", self.previous_io),
            ("other", self.other),
        ]
    }

    fn count(&mut self, kind: &str) {
        let counter = match kind {
            "full" => &mut self.full,
            "io" => &mut self.io,
            "previous_io" => &mut self.previous_io,
            _ => &mut self.other,
        };
        *counter += 1;
    }
}

/// A handle on one store's health; clones share it.
#[derive(Clone, Debug, Default)]
pub struct StorageHealth(Arc<Mutex<StorageStatus>>);

impl StorageHealth {
    /// The health now.
    pub fn status(&self) -> StorageStatus {
        self.lock().clone()
    }

    /// The state now.
    pub fn state(&self) -> StorageState {
        self.lock().state
    }

    /// A storage operation (`what`: "commit", "read", "reopen") failed with `error`, counted
    /// by kind. Returns the state it left the storage in. `needs_reopen`: redb refuses every
    /// transaction from now on, so the storage is down (full, if the disk is full); an error
    /// that leaves redb working changes no state.
    pub(crate) fn failed(
        &self,
        what: &str,
        error: &::redb::Error,
        needs_reopen: bool,
    ) -> StorageState {
        let kind = error_kind(error);
        let mut status = self.lock();
        status.errors.count(kind);
        if what == "reopen" {
            status.reopens_failed += 1;
        }
        // A refusal after an earlier error says nothing new about the disk.
        if kind != "previous_io" {
            status.last_error = Some(format!("{what}: {error}"));
        }
        let state = match kind {
            _ if !needs_reopen => status.state,
            "full" => StorageState::Full,
            _ if status.state == StorageState::Full => StorageState::Full,
            _ => StorageState::Failed,
        };
        let was = status.state;
        if state != was && state != StorageState::Ok {
            status.state = state;
            status.since = Some(unix_now());
            if was == StorageState::Ok {
                tracing::warn!(
                    state = state.as_str(),
                    "the store's storage failed ({what}: {error}); refusing writes and \
                     reopening it until it works again"
                );
            }
        }
        status.state
    }

    /// The store was reopened after a failure: it reads again. After a full disk it is
    /// `recovering` until a commit shows there is space; after another failure it is ok.
    pub(crate) fn reopened(&self) {
        let full = {
            let mut status = self.lock();
            status.reopens += 1;
            status.state == StorageState::Full
        };
        if full {
            let mut status = self.lock();
            status.state = StorageState::Recovering;
            status.since = Some(unix_now());
        } else {
            self.recovered();
        }
    }

    /// A commit succeeded (or the store works again): it is ok, and says so once.
    pub(crate) fn recovered(&self) {
        let mut status = self.lock();
        if status.state != StorageState::Ok {
            let down_for = status
                .since
                .map(|since| Duration::from_secs(unix_now().saturating_sub(since)));
            tracing::info!(
                was = status.state.as_str(),
                ?down_for,
                reopens = status.reopens,
                "the store's storage works again"
            );
            status.state = StorageState::Ok;
            status.since = Some(unix_now());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StorageStatus> {
        // The status is plain data, whole after every write: a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> ::redb::Error {
        ::redb::Error::Io(std::io::Error::new(kind, "injected"))
    }

    #[test]
    fn a_full_disk_stays_full_through_later_refusals_until_recovered() {
        let health = StorageHealth::default();
        let full = io(std::io::ErrorKind::StorageFull);
        assert_eq!(health.failed("commit", &full, true), StorageState::Full);
        assert_eq!(
            health.failed("read", &::redb::Error::PreviousIo, true),
            StorageState::Full
        );
        let status = health.status();
        assert_eq!(
            status.errors.by_kind().map(|(_, n)| n),
            [1, 0, 1, 0],
            "{:?}",
            status.errors
        );
        assert!(status.last_error.expect("kept").contains("commit"));
        assert_eq!(status.state.down(), Some(StorageDown::DiskFull));
        health.reopened();
        let status = health.status();
        assert_eq!(
            (status.state, status.reopens),
            (StorageState::Recovering, 1)
        );
        health.recovered();
        assert_eq!(health.state(), StorageState::Ok);
    }

    #[test]
    fn another_io_error_fails_the_storage_until_it_is_reopened() {
        let health = StorageHealth::default();
        let broken = io(std::io::ErrorKind::Other);
        assert_eq!(health.failed("commit", &broken, true), StorageState::Failed);
        assert_eq!(health.state().down(), Some(StorageDown::Failed));
        health.reopened();
        assert_eq!(health.state(), StorageState::Ok);
        // An error that leaves redb working changes nothing.
        let health = StorageHealth::default();
        assert_eq!(health.failed("read", &broken, false), StorageState::Ok);
    }
}
