//! A full disk, then space again, on a storage backend that fails with `ENOSPC` on demand
//! (`faulty`): the node refuses stores saying the disk is full, answers reads of the items it
//! holds "unavailable" (503), never "not found", shows the condition in `/v1/status` and
//! `/metrics`, and once space is back reopens its store by itself and serves every item it
//! acknowledged, without a restart. Through the real paths: the HTTP API, a peer over TCP
//! (raw frames, and a TCP-only node), and a peer over datagrams.

mod common;
mod faulty;

use bytes::Bytes;
use cairn_core::{ErrorCode, Key, Message, Response, StoreLimits};
use cairn_node::client::{ApiClient, ClientError};
use cairn_node::store::{RedbStore, StorageState, StorageStatus};
use cairn_node::{Config, Dht, GetError, Identity};
use common::*;
use faulty::{Disk, backends};
use hyper::StatusCode;

/// The most puts tried to fill the disk.
const MAX_FILL: usize = 400;

fn find_value(id: u64, key: &Key) -> Vec<u8> {
    msg(vec![
        ("type", V::Str("find_value")),
        ("id", V::Uint(id)),
        ("key", V::Bin(key.as_bytes())),
    ])
}

async fn storage(dht: &Dht) -> StorageStatus {
    dht.status().await.expect("running").storage
}

async fn metric(dht: &Dht, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(
        &samples(&dht.metrics().await.expect("running")),
        name,
        labels,
    )
}

/// A node joined to `seed` (with datagrams or over TCP only).
async fn peer(seed: std::net::SocketAddr, datagrams: bool) -> Dht {
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .datagrams(datagrams);
    let dht = cairn_node::start(config).await.expect("starts");
    dht.bootstrap(vec![seed]).await.expect("joins");
    dht
}

/// Puts items through the API until the disk refuses one; returns those acknowledged and the
/// refusal.
async fn fill(api: &ApiClient) -> (Vec<(String, Bytes)>, ClientError) {
    let mut acknowledged = Vec::new();
    for n in 0..MAX_FILL {
        let name = format!("filler {n}");
        let value = Bytes::from(vec![n as u8; 16 * 1024]);
        match api.put(&name, value.clone(), None).await {
            Ok(_) => acknowledged.push((name, value)),
            Err(refused) => return (acknowledged, refused),
        }
    }
    panic!("{MAX_FILL} puts did not fill the disk");
}

/// A refusal for a full disk: 507, saying so.
fn assert_disk_full(refused: &ClientError) {
    match refused {
        ClientError::Api { status, message } => {
            assert_eq!(*status, StatusCode::INSUFFICIENT_STORAGE, "{message}");
            assert!(message.contains("the disk is full"), "{message}");
        }
        other => panic!("expected a 507, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_stores_saying_so_and_the_node_serves_again_once_space_is_back() {
    let dir = std::env::temp_dir().join(format!("cairn-disk-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("items.redb");
    let disk = Disk::new(&path);
    let (store, commits) =
        RedbStore::open_with_backend(&path, backends(&disk), StoreLimits::default())
            .expect("opens");
    let config = Config::default().listen("127.0.0.1:0".parse().expect("valid"));
    let identity = Identity::generate();
    let public_key = identity.public_key();
    let dht = cairn_node::start_with_store(config, identity, store, Some(commits))
        .await
        .expect("starts");
    let addr = dht.status().await.expect("running").listen;
    let (_server, api) = serve_api(&dht).await;

    // The node alone takes puts until its disk is full.
    disk.fill_after(1024 * 1024);
    let (acknowledged, refused) = fill(&api).await;
    println!(
        "{} items acknowledged before the disk filled",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty(), "the disk filled at the first put");
    assert_disk_full(&refused);
    // Not a byte more: the store stays down until space is back.
    disk.full();
    let refused = api
        .put("after the disk filled", Bytes::from_static(b"v"), None)
        .await
        .expect_err("refused");
    assert_disk_full(&refused);
    let full = wait_for(
        "the store reports a full disk",
        || storage(&dht),
        |s| s.state == StorageState::Full,
    )
    .await;
    assert!(full.since.is_some(), "{full:?}");
    assert!(full.errors.full >= 1, "{full:?}");
    let last_error = full.last_error.clone().unwrap_or_default();
    assert!(last_error.contains("no space left"), "{full:?}");
    assert!(metric(&dht, "cairn_storage_state", &[("state", "full")]).await == 1.0);
    assert!(metric(&dht, "cairn_storage_errors_total", &[("kind", "full")]).await >= 1.0);

    // Peers join now, so that only the full node holds the items.
    let over_datagrams = peer(addr, true).await;
    let over_tcp = peer(addr, false).await;
    let held: Vec<Key> = acknowledged
        .iter()
        .map(|(name, _)| cairn_core::signed_key(&public_key, name))
        .collect();

    // A store from a peer over TCP is refused, saying the disk is full.
    let mut c = Client::connect(addr).await;
    c.handshake().await;
    c.send(&store_message(1, b"from a peer")).await;
    match read_message(&mut c.stream).await {
        Some(Message::Response {
            id: 1,
            response: Response::Error(e),
        }) => {
            assert_eq!(e.code, ErrorCode::UNAVAILABLE);
            assert!(e.message.contains("the disk is full"), "{}", e.message);
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    // Every item held is answered "unavailable", never "not found": to the API, to a peer's
    // find_value, and to the gets of peers over datagrams and over TCP.
    let public_hex = cairn_core::to_hex(&public_key);
    for (n, ((name, _), key)) in acknowledged.iter().zip(&held).enumerate() {
        match api.get_signed(&public_hex, name).await {
            Err(ClientError::Api { status, message }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
            }
            other => panic!("expected a 503 for {name:?}, got {other:?}"),
        }
        c.send(&find_value(100 + n as u64, key)).await;
        match read_message(&mut c.stream).await {
            Some(Message::Response {
                response: Response::Error(e),
                ..
            }) => assert_eq!(e.code, ErrorCode::UNAVAILABLE),
            other => panic!("expected a 503 for {name:?}, got {other:?}"),
        }
    }
    for getter in [&over_datagrams, &over_tcp] {
        let got = getter.get(held[0]).await;
        assert!(
            matches!(got, Err(GetError::Unavailable { .. })),
            "a peer's get: {got:?}"
        );
    }

    // The store tries to reopen while the disk is full, and fails, on its schedule.
    let tried = wait_for(
        "a reopen fails on the full disk",
        || storage(&dht),
        |s| s.reopens_failed >= 1,
    )
    .await;
    assert_eq!(tried.state, StorageState::Full, "{tried:?}");

    // Space again: the node reopens its store by itself; it serves reads, and the next
    // commit shows there is space.
    disk.free();
    let reopened = wait_for(
        "the store reopens",
        || storage(&dht),
        |s| s.state == StorageState::Recovering,
    )
    .await;
    assert!(reopened.reopens >= 1, "{reopened:?}");
    assert!(metric(&dht, "cairn_storage_state", &[("state", "recovering")]).await == 1.0);
    assert!(metric(&dht, "cairn_storage_reopens_total", &[("outcome", "ok")]).await >= 1.0);
    assert!(
        metric(
            &dht,
            "cairn_storage_reopens_total",
            &[("outcome", "failed")]
        )
        .await
            >= 1.0
    );

    // Every acknowledged item is served, and new stores are taken, without a restart.
    for (name, value) in &acknowledged {
        let fetched = api.get_signed(&public_hex, name).await.expect("served");
        assert_eq!(&fetched.value, value, "{name}");
    }
    for getter in [&over_datagrams, &over_tcp] {
        let found = getter.get(held[0]).await.expect("found");
        assert_eq!(found.item.value(), &acknowledged[0].1);
    }
    api.put("after space came back", Bytes::from_static(b"new"), None)
        .await
        .expect("a new put succeeds");
    assert_eq!(storage(&dht).await.state, StorageState::Ok);
    assert!(metric(&dht, "cairn_storage_state", &[("state", "ok")]).await == 1.0);
    c.send(&store_message(2, b"from a peer, later")).await;
    assert_eq!(
        read_message(&mut c.stream).await,
        Some(Message::Response {
            id: 2,
            response: Response::Stored
        })
    );

    over_datagrams.shutdown().await;
    over_tcp.shutdown().await;
    dht.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
