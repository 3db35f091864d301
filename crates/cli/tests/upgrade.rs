//! The new binary opens a data directory of the format before versions (format 0, the
//! fixture of `crates/node/tests/fixtures/v0-datadir`) with the same identity, and refuses
//! one of a newer format with a message naming both versions.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{free_addr, temp_dir};

fn copy_of_fixture(name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/tests/fixtures/v0-datadir");
    let to = temp_dir(name);
    std::fs::create_dir_all(&to).expect("a temp dir");
    for file in ["node.key", "items.redb", "routing.snapshot"] {
        std::fs::copy(from.join(file), to.join(file)).expect("the fixture is complete");
    }
    to
}

#[test]
fn the_binary_opens_a_format_0_directory_with_its_identity_and_items() {
    let dir = copy_of_fixture("upgrade-v0");
    let (listen, api) = (free_addr(), free_addr());
    let mut node = common::spawn_node(&dir, listen, api, &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let status = common::wait_for_api(&rt, api);
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(
        status.node_id.to_string(),
        "91c2f86cf5d927083f47d03f04ad13eb73d2de36d0848278376b44e32d89a8d2ba3443ab1f502ac34493b12a3d18cf056dfb230f7a06a1fd09c1fa255c04eb98"
    );
    assert_eq!(status.items, 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("format")).expect("written"),
        "1\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_binary_refuses_a_newer_format_naming_both_versions() {
    let dir = copy_of_fixture("upgrade-newer");
    std::fs::write(dir.join("format"), "2\n").expect("written");
    let (listen, api) = (free_addr(), free_addr());
    let output = common::node_command(&dir, listen, api)
        .stdin(Stdio::null())
        .output()
        .expect("cairn node runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("cairn: data directory")
            && last.contains("has format 2")
            && last.contains("reads format 1 at most"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
