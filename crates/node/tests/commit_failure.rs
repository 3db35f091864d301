//! A store whose disk fails: nothing that failed to commit is acknowledged or served.
//!
//! The node runs on a redb storage backend that fails every write and sync on demand (the
//! fault injection redb's own crash tests use, `faulty`), through the real TCP path and the
//! `Dht` handle.

mod common;
mod faulty;

use cairn_core::{Message, Response, StoreLimits};
use cairn_node::store::{RedbStore, StorageState};
use cairn_node::{Config, GetError, Identity, PutError};
use common::*;
use faulty::{Disk, backends};
use std::sync::atomic::Ordering;

fn find_value(id: u64, key: &cairn_core::Key) -> Vec<u8> {
    msg(vec![
        ("type", V::Str("find_value")),
        ("id", V::Uint(id)),
        ("key", V::Bin(key.as_bytes())),
    ])
}

fn code_of(message: Option<Message>) -> u16 {
    match message {
        Some(Message::Response {
            response: Response::Error(e),
            ..
        }) => e.code.0,
        Some(Message::Response { .. }) => 0,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn key_of(value: &[u8]) -> cairn_core::Key {
    *cairn_core::ImmutableItem::new(bytes::Bytes::copy_from_slice(value)).key()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_refused_to_peers_and_callers_and_never_served() {
    let dir = std::env::temp_dir().join(format!("cairn-commit-failure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("items.redb");
    let disk = Disk::new(&path);
    let fail = disk.broken.clone();
    let (store, commits) =
        RedbStore::open_with_backend(&path, backends(&disk), StoreLimits::default())
            .expect("opens");
    let config = Config::default().listen("127.0.0.1:0".parse().expect("valid"));
    let dht = cairn_node::start_with_store(config, Identity::generate(), store, Some(commits))
        .await
        .expect("starts");
    let addr = dht.status().await.expect("running").listen;
    let mut c = Client::connect(addr).await;
    c.handshake().await;

    // While the disk works, a store is acknowledged.
    c.send(&store_message(1, b"before the fault")).await;
    let stored = Some(Message::Response {
        id: 1,
        response: Response::Stored,
    });
    assert_eq!(read_message(&mut c.stream).await, stored);

    // A signed item whose first version is committed before the fault.
    let publisher = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let version = |seq: u64, value: &'static [u8]| -> Vec<u8> {
        let item: cairn_core::Item =
            cairn_core::SignedItem::sign(&publisher, "doc", value.into(), seq, 0)
                .expect("valid")
                .into();
        let mut frame = Vec::new();
        let message = Message::Request {
            id: seq,
            request: cairn_core::Request::Store { item },
        };
        let payload = cairn_core::wire::encode(&message).expect("encodes");
        frame.extend(format!("{}:", payload.len()).into_bytes());
        frame.extend(payload);
        frame.push(b',');
        frame
    };
    let doc = cairn_core::signed_key(&publisher.verifying_key().to_bytes(), "doc");
    c.send(&version(10, b"first")).await;
    assert_eq!(code_of(read_message(&mut c.stream).await), 0);

    fail.store(true, Ordering::SeqCst);
    // A newer version that cannot be committed is refused, and the first is still served.
    c.send(&version(11, b"second")).await;
    assert_eq!(code_of(read_message(&mut c.stream).await), 500);
    // While the disk fails the store may not be able to read it back (redb refuses every
    // transaction after an I/O error until it is reopened): then it says so, 503, never
    // "not found" and never the second version.
    c.send(&find_value(12, &doc)).await;
    match read_message(&mut c.stream).await {
        Some(Message::Response {
            response: Response::Value { item, .. },
            ..
        }) => assert_eq!(item.value().as_ref(), b"first"),
        Some(Message::Response {
            response: Response::Error(e),
            ..
        }) => assert_eq!(e.code, cairn_core::ErrorCode::UNAVAILABLE, "{e:?}"),
        other => panic!("expected the first version or 503, got {other:?}"),
    }
    // A peer's store that cannot be committed is answered 500, not `stored`.
    c.send(&store_message(2, b"during the fault")).await;
    assert_eq!(error_code(read_message(&mut c.stream).await), (2, 500));
    // A local put fails the same way.
    let put = dht.put_immutable(b"a local put".as_slice().into()).await;
    // One error, whether the commit failed while the put's lookup ran or after it.
    assert!(
        matches!(put, Err(PutError::NotDurable(_))),
        "the put is not acknowledged: {put:?}"
    );

    // Neither copy is served afterwards, to peers or to the node's own gets.
    c.send(&find_value(3, &key_of(b"during the fault"))).await;
    assert!(matches!(
        read_message(&mut c.stream).await,
        Some(Message::Response {
            id: 3,
            response: Response::Nodes(_)
        })
    ));
    let got = dht.get(key_of(b"a local put")).await;
    assert!(matches!(got, Err(GetError::NotFound { .. })), "{got:?}");
    // Once the disk works again the store reopens by itself, and what was committed before
    // the fault is served: the first version, not the second.
    fail.store(false, Ordering::SeqCst);
    wait_for(
        "the store reopens",
        || async { dht.status().await.expect("running").storage.state },
        |state| *state == StorageState::Ok,
    )
    .await;
    c.send(&find_value(4, &key_of(b"before the fault"))).await;
    assert!(matches!(
        read_message(&mut c.stream).await,
        Some(Message::Response {
            id: 4,
            response: Response::Value { .. }
        })
    ));
    c.send(&find_value(13, &doc)).await;
    match read_message(&mut c.stream).await {
        Some(Message::Response {
            response: Response::Value { item, .. },
            ..
        }) => assert_eq!(item.value().as_ref(), b"first"),
        other => panic!("expected the first version, got {other:?}"),
    }
    dht.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
