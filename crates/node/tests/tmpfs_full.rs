//! A full disk for real: the node's data directory on a 3 MB tmpfs, next to a filler file.
//! Puts through the HTTP API until the disk is full (refused 507, saying so), then the filler
//! is deleted: the node reopens its store by itself, serves every item it acknowledged and
//! takes new puts, without a restart.
//!
//! Mounting needs root. Without it, or when the mount fails, the test says why and passes,
//! unless `CAIRN_REQUIRE_TMPFS=1`, when that is a failure. What the test mounts is unmounted
//! and removed however it ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use cairn_node::Config;
use cairn_node::client::ClientError;
use cairn_node::store::StorageState;
use common::*;
use hyper::StatusCode;

/// The most puts tried to fill the disk.
const MAX_FILL: usize = 2_000;

/// A tmpfs mounted for the test; unmounted and removed when dropped, panic or not.
struct Mounted {
    dir: PathBuf,
}

impl Mounted {
    /// Mounts a tmpfs of `size` (mount's syntax: `3m`), or says why it cannot.
    fn tmpfs(size: &str) -> Result<Self, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root: mounting a tmpfs needs root".into());
        }
        let dir = std::env::temp_dir().join(format!("cairn-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status();
        match status {
            Ok(s) if s.success() => Ok(Mounted { dir }),
            other => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("mount -t tmpfs failed: {other:?}"))
            }
        }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file there: detach it now, freed once released.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_full_tmpfs_serves_again_once_space_is_freed_without_a_restart() {
    let mounted = match Mounted::tmpfs("3m") {
        Ok(mounted) => mounted,
        Err(why) => {
            assert!(
                std::env::var("CAIRN_REQUIRE_TMPFS").as_deref() != Ok("1"),
                "CAIRN_REQUIRE_TMPFS=1 but the tmpfs test cannot run: {why}"
            );
            println!("skipped: {why}");
            return;
        }
    };
    // A filler takes a third of the disk, to be freed later.
    let filler = mounted.path().join("filler");
    std::fs::write(&filler, vec![0xaa; 1024 * 1024]).expect("the filler is written");
    let data = mounted.path().join("data");
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .data_dir(&data);
    let dht = cairn_node::start(config).await.expect("starts");
    let (_server, api) = serve_api(&dht).await;

    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..MAX_FILL {
        let name = format!("filler {n}");
        let value = Bytes::from(vec![n as u8; 16 * 1024]);
        match api.put(&name, value.clone(), None).await {
            Ok(_) => acknowledged.push((name, value)),
            Err(refused) => {
                refusal = Some(refused);
                break;
            }
        }
    }
    println!(
        "{} items acknowledged before the tmpfs filled",
        acknowledged.len()
    );
    match refusal {
        Some(ClientError::Api { status, message }) => {
            assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
            assert!(message.contains("the disk is full"), "{message}");
        }
        other => panic!("expected the disk to fill with a 507, got {other:?}"),
    }
    assert!(!acknowledged.is_empty(), "the disk filled at the first put");
    // While the disk is full, an item held is served or answered 503, never "not found";
    // the store tries to reopen (and, the disk being full, may fail to).
    let tried = wait_for(
        "the store tries to reopen",
        || async { dht.status().await.expect("running").storage },
        |s| s.reopens + s.reopens_failed >= 1,
    )
    .await;
    println!(
        "storage when full, after a reopen was tried: {}",
        serde_json::to_string(&tried).expect("serializes")
    );
    let public_hex = cairn_core::to_hex(&dht.status().await.expect("running").public_key);
    let mut unavailable = 0;
    for (name, value) in &acknowledged {
        match api.get_signed(&public_hex, name).await {
            Ok(fetched) => assert_eq!(&fetched.value, value, "{name}"),
            Err(ClientError::Api { status, message }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}: {message}");
                unavailable += 1;
            }
            Err(other) => panic!("{name}: {other:?}"),
        }
    }
    println!(
        "while full: {unavailable} of {} items answered 503, the others served",
        acknowledged.len()
    );

    assert_ne!(tried.state, StorageState::Ok, "{tried:?}");

    // Space again: the store, reopened, takes a new put, and is ok.
    std::fs::remove_file(&filler).expect("the filler is deleted");
    let reopened = wait_for(
        "the store is reopened",
        || async { dht.status().await.expect("running").storage },
        |s| s.state == StorageState::Recovering,
    )
    .await;
    println!("storage after the filler was deleted: {reopened:?}");
    api.put("after space came back", Bytes::from_static(b"new"), None)
        .await
        .expect("a new put succeeds");
    let ok = dht.status().await.expect("running").storage;
    assert_eq!(ok.state, StorageState::Ok, "{ok:?}");
    for (name, value) in &acknowledged {
        let fetched = api.get_signed(&public_hex, name).await.expect("served");
        assert_eq!(&fetched.value, value, "{name}");
    }
    dht.shutdown().await;
    drop(mounted);
}
