//! The `Dht` handle as a library user meets it: a watch is a `Stream`, `closed` resolves when
//! the node stops, and a stopped node answers every call with one error, `Stopped`.

mod common;

use std::time::Duration;

use cairn_node::{BootstrapError, DeleteError, FindNodeError, GetError, PutError, WatchError};
use futures_util::StreamExt;

/// Long enough for anything on loopback; a test that needs it has failed.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_watch_is_a_stream_of_versions() {
    let (dht, _) = common::node().await;
    let receipt = dht.put_signed("doc", "v1".into(), None).await.expect("put");
    let watch = dht.watch(receipt.key).await.expect("running");
    let mut versions = watch.map(|item| item.seq());
    let first = tokio::time::timeout(BOUND, versions.next()).await;
    assert_eq!(first.expect("within the bound"), Some(receipt.seq));
    dht.shutdown().await;
    let last = tokio::time::timeout(BOUND, versions.next()).await;
    assert_eq!(
        last.expect("within the bound"),
        None,
        "the stream ends with the node"
    );
}

#[tokio::test]
async fn a_stopped_node_is_stopped_for_every_call_and_closed_resolves() {
    let (dht, _) = common::node().await;
    let closed = tokio::spawn({
        let dht = dht.clone();
        async move { dht.closed().await }
    });
    dht.shutdown().await;
    tokio::time::timeout(BOUND, closed)
        .await
        .expect("closed resolves once the node stops")
        .expect("the waiting task ends");
    let key = cairn_core::Id::hash(b"anything");
    assert!(matches!(
        dht.put_immutable("x".into()).await,
        Err(PutError::Stopped)
    ));
    assert!(matches!(dht.get(key).await, Err(GetError::Stopped)));
    assert!(matches!(
        dht.delete("x", None).await,
        Err(DeleteError::Stopped)
    ));
    assert!(matches!(dht.watch(key).await, Err(WatchError::Stopped)));
    assert!(matches!(
        dht.find_node(key).await,
        Err(FindNodeError::Stopped)
    ));
    assert!(matches!(
        dht.bootstrap(Vec::new()).await,
        Err(BootstrapError::Stopped)
    ));
    assert!(dht.status().await.is_err());
    assert!(dht.peers().await.is_err());
    assert!(dht.ring().await.is_err());
    assert!(dht.items(None, 10).await.is_err());
    assert!(dht.metrics().await.is_err());
    // Each converts into the one umbrella error as the same failure.
    let error: cairn_node::Error = dht.get(key).await.expect_err("stopped").into();
    assert!(matches!(error, cairn_node::Error::Stopped));
    // Shutting a stopped node down again returns at once.
    tokio::time::timeout(BOUND, dht.shutdown())
        .await
        .expect("returns");
}
