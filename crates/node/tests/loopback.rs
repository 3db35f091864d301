//! Real nodes over TCP on 127.0.0.1.

use std::time::Duration;

use cairn_node::{Config, Dht};

fn loopback() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("valid"),
        ..Config::default()
    }
}

async fn listen_addr(dht: &Dht) -> std::net::SocketAddr {
    dht.status().await.expect("running").listen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_put_and_get() {
    let a = cairn_node::start(loopback()).await.expect("a starts");
    let b = cairn_node::start(loopback()).await.expect("b starts");
    let joined = b
        .bootstrap(vec![listen_addr(&a).await])
        .await
        .expect("b joins");
    assert_eq!(joined, 1);
    let receipt = a
        .put_signed("hello", "world".into(), Some(Duration::from_secs(60)))
        .await
        .expect("put");
    assert_eq!(receipt.replicas, 2);
    let found = b.get(receipt.key).await.expect("found");
    assert_eq!(found.item.value().as_ref(), b"world");
    let blob = b.put_immutable("blob".into()).await.expect("put blob");
    assert_eq!(
        a.get(blob.key)
            .await
            .expect("found blob")
            .item
            .value()
            .as_ref(),
        b"blob"
    );
    assert_eq!(a.status().await.expect("running").peers, 1);
    a.shutdown().await;
    b.shutdown().await;
    assert!(a.status().await.is_none(), "a stopped");
}
