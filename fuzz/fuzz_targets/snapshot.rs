//! The routing-table snapshot loader (`cairn_node::snapshot::load`) on arbitrary file
//! contents, through a real file as a node reads it at start.
//!
//! Holds: no panic; a file that is not UTF-8 is an error (`InvalidData`), never an empty
//! table; a text file loads, at most one contact a line; what loads saves and loads back the
//! same (round trip through `snapshot::save`).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use cairn_node::snapshot::{self, SNAPSHOT_FILE};
use libfuzzer_sys::fuzz_target;

/// A directory of this process's own, on tmpfs where there is one.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("cairn-fuzz-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
});

fuzz_target!(|data: &[u8]| {
    let dir = DIR.as_path();
    std::fs::write(dir.join(SNAPSHOT_FILE), data).expect("written");
    match (snapshot::load(dir), std::str::from_utf8(data)) {
        (Ok(contacts), Ok(text)) => {
            assert!(contacts.len() <= text.lines().count());
            snapshot::save(dir, &contacts).expect("saved");
            assert_eq!(snapshot::load(dir).expect("loads"), contacts, "round trip");
        }
        (Err(e), Err(_)) => assert_eq!(e.error.kind(), std::io::ErrorKind::InvalidData),
        (Ok(_), Err(_)) => panic!("a file that is not UTF-8 loaded"),
        (Err(e), Ok(_)) => panic!("a text file was refused: {e}"),
    }
});
