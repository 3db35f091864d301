//! The routing-table snapshot in the data directory, so a restarted node rejoins on its own.
//!
//! `routing.snapshot` is text, one contact a line: the node id in hex, a space, the address.
//! It is written to a temporary file and renamed over the old one, so a crash leaves either
//! the old snapshot or the new one. Lines that do not parse are skipped.

use std::io::Write;
use std::path::Path;

use cairn_core::NodeId;
use cairn_core::message::Contact;

/// The snapshot's file name inside the data directory.
pub const SNAPSHOT_FILE: &str = "routing.snapshot";

/// The contacts saved in `dir`, or none if there is no snapshot.
pub fn load(dir: &Path) -> Vec<Contact> {
    let text = std::fs::read_to_string(dir.join(SNAPSHOT_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (id, addr) = line.split_once(' ')?;
            Some(Contact::new(
                NodeId::from_hex(id).ok()?,
                addr.trim().parse().ok()?,
            ))
        })
        .collect()
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
        assert!(load(&dir).is_empty());
        let contacts = vec![
            Contact::new(NodeId::hash(b"a"), "127.0.0.1:7400".parse().expect("valid")),
            Contact::new(NodeId::hash(b"b"), "[::1]:7401".parse().expect("valid")),
        ];
        save(&dir, &contacts).expect("saved");
        assert_eq!(load(&dir), contacts);
        std::fs::write(dir.join(SNAPSHOT_FILE), "garbage\nzz 1.2.3.4:5\n").expect("written");
        assert!(load(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
