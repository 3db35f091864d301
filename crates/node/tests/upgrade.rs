//! Upgrades lose nothing: a data directory written before the format had a version (format 0,
//! `tests/fixtures/v0-datadir`, made by `tests/fixtures/make-v0-datadir.sh` with the cairn of
//! commit 9077886) opens with its key, its items and its routing table; a directory of the
//! current format opens as it is; one of a newer format is refused before anything is read.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_node::cairn_core::{Key, NodeId, Store, StoreLimits, Time};
use cairn_node::datadir::{FORMAT, FORMAT_FILE, FormatError};
use cairn_node::store::RedbStore;
use cairn_node::{Config, StartError};

/// What `make-v0-datadir.sh` printed when it made the fixture.
const NODE_ID: &str = "91c2f86cf5d927083f47d03f04ad13eb73d2de36d0848278376b44e32d89a8d2ba3443ab1f502ac34493b12a3d18cf056dfb230f7a06a1fd09c1fa255c04eb98";
const PUBLIC_KEY: &str = "bc905a49f424658f9c5730a66f1a0d8a486234ae2f3238f6e9cc0e07b744c8bd";
/// `PUBLIC_KEY/greeting`, value "hello from format 0".
const SIGNED: &str = "ba965352cf2c92c246d7c8855d7fceb75d026d9f8919adb5414fd45acd132eb195481f38e580d687aa41f4d5780c52e79ea30fc7575ec4ed12b68ad79a3b1805";
/// The immutable item "immutable v0 value\n".
const IMMUTABLE: &str = "c7fb90fc85258dd7e6537bc22a34fddafca2908d34580ac782c2e71cde7bcdd75f666a8b6f5f5d7903634dae230bb725c3bb5462116d11b226c064cb4fb7e9aa";
/// The one contact of its routing table (node B of the script, long gone).
const CONTACT: &str = "fac2c4d9360ce5a5a27d4a345dae94a4ac2b8be3850aca000a8ca952069c3085ec74952c70af6df912f203a300ecd607c05c80b3bbb8e653b959756ed17d880f";

/// A copy of the fixture in a fresh temporary directory (opening it writes there).
fn copy_of_fixture(name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0-datadir");
    let to = std::env::temp_dir().join(format!("cairn-upgrade-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).expect("a temp dir");
    for file in ["node.key", "items.redb", "routing.snapshot"] {
        std::fs::copy(from.join(file), to.join(file)).expect("the fixture is complete");
    }
    to
}

fn config(dir: &Path) -> Config {
    Config::default()
        .listen("127.0.0.1:0".parse().expect("an address"))
        .data_dir(dir)
}

fn now() -> Time {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Time::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn value_of(dir: &Path, key: &str) -> Vec<u8> {
    let (store, _commits) = RedbStore::open(dir, StoreLimits::default()).expect("the store opens");
    let key = Key::from_hex(key).expect("a key");
    let item = store.get(&key, now()).expect("readable").expect("held");
    item.value().to_vec()
}

#[tokio::test]
async fn a_format_0_directory_opens_with_its_key_items_and_routing_table() {
    let dir = copy_of_fixture("v0");
    assert!(
        !dir.join(FORMAT_FILE).exists(),
        "format 0 has no version file"
    );
    let dht = cairn_node::start(config(&dir))
        .await
        .expect("the old directory opens");

    let status = dht.status().await.expect("running");
    assert_eq!(status.node_id.to_string(), NODE_ID, "the same identity");
    assert_eq!(
        cairn_node::cairn_core::to_hex(&status.public_key),
        PUBLIC_KEY
    );
    let held: Vec<String> = dht
        .items(None, 10)
        .await
        .expect("running")
        .into_iter()
        .map(|item| item.key)
        .collect();
    let mut expected = vec![SIGNED.to_owned(), IMMUTABLE.to_owned()];
    expected.sort();
    assert_eq!(held, expected, "the same items");
    let peers = dht.peers().await.expect("running");
    let contact = NodeId::from_hex(CONTACT).expect("an id");
    assert!(
        peers
            .iter()
            .any(|p| p.node_id == contact && p.addr.port() == 47400),
        "the saved routing table: {peers:?}"
    );
    dht.shutdown().await;

    // The directory now says its format, and opens again as the current one.
    let version = std::fs::read_to_string(dir.join(FORMAT_FILE)).expect("written");
    assert_eq!(version.trim(), FORMAT.to_string());
    assert_eq!(value_of(&dir, SIGNED), b"hello from format 0");
    assert_eq!(value_of(&dir, IMMUTABLE), b"immutable v0 value\n");
    let dht = cairn_node::start(config(&dir))
        .await
        .expect("format 1 opens");
    assert_eq!(
        dht.status().await.expect("running").node_id.to_string(),
        NODE_ID
    );
    assert_eq!(dht.status().await.expect("running").items, 2);
    dht.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_directory_of_a_newer_format_is_refused_and_left_alone() {
    let dir = copy_of_fixture("newer");
    let newer = FORMAT + 1;
    std::fs::write(dir.join(FORMAT_FILE), format!("{newer}\n")).expect("written");
    let before = std::fs::read(dir.join("items.redb")).expect("readable");

    let Err(error) = cairn_node::start(config(&dir)).await else {
        panic!("a newer format is refused");
    };
    assert!(
        matches!(error, StartError::Format(FormatError::Newer { found, .. }) if found == newer),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("format {newer}"))
            && message.contains(&format!("format {FORMAT}")),
        "names both versions: {message}"
    );
    // Nothing was opened, so nothing was rewritten.
    assert_eq!(
        std::fs::read(dir.join("items.redb")).expect("readable"),
        before
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(FORMAT_FILE)).expect("kept"),
        format!("{newer}\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
