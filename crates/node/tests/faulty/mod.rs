//! A redb storage backend whose disk fails on demand (the fault injection redb's own crash
//! tests use): writes and syncs fail with an ordinary I/O error while `broken` is set, and
//! with `ENOSPC` (`io::ErrorKind::StorageFull`) past a size limit, as a full disk does. Reads
//! always work. The store makes one at open and again at each reopen ([`backends`]).

// Each test file uses the part it needs.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;

/// The switches of a faulty disk, shared by every backend made on it.
#[derive(Clone, Debug)]
pub struct Disk {
    /// Writes and syncs fail with an ordinary I/O error while set.
    pub broken: Arc<AtomicBool>,
    /// The most bytes the file may reach: a write or a growth past it fails with `ENOSPC`,
    /// and so does every write and sync while it is 0 (a disk full to the last byte).
    pub limit: Arc<AtomicU64>,
    path: PathBuf,
}

impl Disk {
    /// A disk holding the store file `path`, working.
    pub fn new(path: &Path) -> Self {
        Disk {
            broken: Arc::new(AtomicBool::new(false)),
            limit: Arc::new(AtomicU64::new(u64::MAX)),
            path: path.to_owned(),
        }
    }

    /// Lets the file grow by at most `bytes` from its size now.
    pub fn fill_after(&self, bytes: u64) {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        self.limit.store(len + bytes, Ordering::SeqCst);
    }

    /// No write at all succeeds.
    pub fn full(&self) {
        self.limit.store(0, Ordering::SeqCst);
    }

    /// Space again: no limit.
    pub fn free(&self) {
        self.limit.store(u64::MAX, Ordering::SeqCst);
    }
}

/// What `RedbStore::open_with_backend` takes: makes a backend on `disk`'s file each time.
pub fn backends(disk: &Disk) -> impl Fn() -> io::Result<Faulty> + Send + 'static {
    let disk = disk.clone();
    move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&disk.path)?;
        Ok(Faulty {
            inner: FileBackend::new(file).map_err(io::Error::other)?,
            disk: disk.clone(),
        })
    }
}

/// A file backend on a [`Disk`].
#[derive(Debug)]
pub struct Faulty {
    inner: FileBackend,
    disk: Disk,
}

impl Faulty {
    fn check(&self, end: u64) -> io::Result<()> {
        if self.disk.broken.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fault: the disk refuses writes"));
        }
        let limit = self.disk.limit.load(Ordering::SeqCst);
        if limit == 0 || end > limit {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected fault: no space left on device",
            ));
        }
        Ok(())
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let growing = len > self.inner.len()?;
        self.check(if growing { len } else { 0 })?;
        self.inner.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.check(0)?;
        self.inner.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset + data.len() as u64)?;
        self.inner.write(offset, data)
    }
}
