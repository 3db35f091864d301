//! The routing-table snapshot in the data directory, so a restarted node rejoins on its own.
//!
//! `routing.snapshot` is text, one contact a line: the node id in hex, a space, the address.
//! It is written to a temporary file and renamed over the old one, so a crash leaves either
//! the old snapshot or the new one. Lines that do not parse are skipped, counted and logged.
//!
//! Both functions block (file I/O, `fsync`): the driver runs them on a blocking task.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_core::{Contact, NodeId};

/// The snapshot's file name inside the data directory.
pub const SNAPSHOT_FILE: &str = "routing.snapshot";

/// Why a snapshot that exists could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the routing-table snapshot {path}: {error}")]
pub struct SnapshotError {
    /// The snapshot file.
    pub path: PathBuf,
    /// Why (permissions, an I/O error, bytes that are not text).
    pub error: std::io::Error,
}

/// The contacts saved in `dir`: none if there is no snapshot, an error if there is one that
/// cannot be read. Lines that do not parse are skipped with a warning that counts them.
pub fn load(dir: &Path) -> Result<Vec<Contact>, SnapshotError> {
    let path = dir.join(SNAPSHOT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(SnapshotError { path, error }),
    };
    let parsed = parse(&text);
    if parsed.skipped > 0 {
        tracing::warn!(
            skipped = parsed.skipped,
            kept = parsed.contacts.len(),
            "lines of the routing-table snapshot {} do not parse and were skipped",
            path.display()
        );
    }
    Ok(parsed.contacts)
}

/// A snapshot's text, read.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    /// The contacts of the lines that parse, in file order.
    contacts: Vec<Contact>,
    /// How many lines did not parse (an id that is not hex, an address that is not one).
    skipped: usize,
}

fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed {
        contacts: Vec::new(),
        skipped: 0,
    };
    for line in text.lines() {
        match parse_line(line) {
            Some(contact) => parsed.contacts.push(contact),
            None => parsed.skipped += 1,
        }
    }
    parsed
}

fn parse_line(line: &str) -> Option<Contact> {
    let (id, addr) = line.split_once(' ')?;
    Some(Contact::new(
        NodeId::from_hex(id).ok()?,
        addr.trim().parse().ok()?,
    ))
}

/// Saves `contacts` in `dir`, replacing the previous snapshot atomically.
pub fn save(dir: &Path, contacts: &[Contact]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    for contact in contacts {
        writeln!(file, "{} {}", contact.id, contact.addr)?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_contacts_load_back_and_bad_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("cairn-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert!(load(&dir).expect("no snapshot is no error").is_empty());
        let contacts = vec![
            Contact::new(NodeId::hash(b"a"), "127.0.0.1:7400".parse().expect("valid")),
            Contact::new(NodeId::hash(b"b"), "[::1]:7401".parse().expect("valid")),
        ];
        save(&dir, &contacts).expect("saved");
        assert_eq!(load(&dir).expect("readable"), contacts);
        std::fs::write(dir.join(SNAPSHOT_FILE), "garbage\nzz 1.2.3.4:5\n").expect("written");
        assert!(load(&dir).expect("readable").is_empty());
        // Skipped lines are counted; the good ones around them are kept.
        let text = format!(
            "garbage\n{} {}\nzz 1.2.3.4:5\n",
            contacts[0].id, contacts[0].addr
        );
        let parsed = parse(&text);
        assert_eq!((parsed.contacts, parsed.skipped), (vec![contacts[0]], 2));
        // A snapshot that cannot be read is an error, not an empty table.
        std::fs::write(dir.join(SNAPSHOT_FILE), [0xff, 0xfe, 0x00]).expect("written");
        let error = load(&dir).expect_err("not UTF-8");
        assert_eq!(error.error.kind(), std::io::ErrorKind::InvalidData);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
