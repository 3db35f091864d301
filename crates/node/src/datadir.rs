//! The data directory's format version, so that an upgrade loses nothing and a downgrade
//! misreads nothing.
//!
//! The file `format` holds the version of the layout of the whole directory (`node.key`,
//! `items.redb`, `routing.snapshot`) as a decimal number and a newline. [`prepare`] runs
//! before anything else in the directory is read:
//! - no `format` file: the directory is new, or was written before versions existed
//!   (format 0, cairn 0.1.0 before issue 24, the same files as format 1); either way it is
//!   format 1 once `format` is written;
//! - [`FORMAT`]: nothing to do;
//! - a newer version: refused ([`FormatError::Newer`]), before a file is opened, so an older
//!   cairn never misreads (or rewrites) what a newer one wrote.
//!
//! A change of layout bumps [`FORMAT`] and adds its upgrade step here.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The format version this cairn writes and reads.
pub const FORMAT: u32 = 1;

/// The name of the version file inside the data directory.
pub const FORMAT_FILE: &str = "format";

/// Why the data directory cannot be used by this version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A newer cairn wrote the directory.
    #[error(
        "data directory {dir} has format {found}, but this cairn reads format {FORMAT} at most: \
         it was written by a newer cairn; run that version (or newer), or use another data directory"
    )]
    Newer {
        /// The data directory.
        dir: PathBuf,
        /// The version it holds.
        found: u32,
    },
    /// The version file is not a number.
    #[error(
        "data directory {dir}: its {FORMAT_FILE} file does not hold a format version (expected \
         a number like {FORMAT}); it was not written by cairn, or was damaged"
    )]
    Corrupt {
        /// The data directory.
        dir: PathBuf,
    },
    /// The directory or its version file could not be read or written.
    #[error("data directory {dir}: cannot read or write its {FORMAT_FILE} file: {error}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// The format of `dir` as found on disk: `None` when it has no version file (new, or
/// format 0).
pub fn read(dir: &Path) -> Result<Option<u32>, FormatError> {
    match std::fs::read_to_string(dir.join(FORMAT_FILE)) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| FormatError::Corrupt {
                dir: dir.to_owned(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(FormatError::Io {
            dir: dir.to_owned(),
            error,
        }),
    }
}

/// Makes `dir` a data directory of [`FORMAT`]: creates it if need be, upgrades an older one,
/// refuses a newer one. Returns the format it found (0 for a directory without a version).
pub fn prepare(dir: &Path) -> Result<u32, FormatError> {
    let io = |error| FormatError::Io {
        dir: dir.to_owned(),
        error,
    };
    let found = read(dir)?;
    match found {
        Some(FORMAT) => return Ok(FORMAT),
        Some(found) if found > FORMAT => {
            return Err(FormatError::Newer {
                dir: dir.to_owned(),
                found,
            });
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let found = found.unwrap_or(0);
    // Format 0 to 1: the files are the same; only the version is new.
    write(dir).map_err(io)?;
    if dir_has_node_files(dir) {
        tracing::info!(
            dir = %dir.display(),
            from = found,
            to = FORMAT,
            "data directory upgraded"
        );
    }
    Ok(found)
}

fn dir_has_node_files(dir: &Path) -> bool {
    [
        crate::identity::KEY_FILE,
        crate::store::STORE_FILE,
        crate::snapshot::SNAPSHOT_FILE,
    ]
    .iter()
    .any(|name| dir.join(name).exists())
}

/// Writes the version file through a temporary file renamed over it, so a crash leaves the
/// old version or the new one.
fn write(dir: &Path) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{FORMAT}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FORMAT_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cairn-datadir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_new_directory_gets_the_current_format() {
        let dir = temp_dir("new");
        assert_eq!(prepare(&dir).expect("created"), 0);
        assert_eq!(read(&dir).expect("readable"), Some(FORMAT));
        assert_eq!(prepare(&dir).expect("current"), FORMAT);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_newer_or_damaged_version_is_refused_and_kept() {
        let dir = temp_dir("newer");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(FORMAT_FILE), "7\n").expect("written");
        let error = prepare(&dir).expect_err("newer");
        assert!(
            matches!(error, FormatError::Newer { found: 7, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("format 7") && message.contains("format 1"),
            "{message}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(FORMAT_FILE)).expect("kept"),
            "7\n"
        );
        std::fs::write(dir.join(FORMAT_FILE), "seven").expect("written");
        let error = prepare(&dir).expect_err("damaged");
        assert!(matches!(error, FormatError::Corrupt { .. }), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
