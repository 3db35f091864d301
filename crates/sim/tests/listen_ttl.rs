//! A `listen` subscription ends at the ttl the node is configured to grant, on virtual time:
//! the wall-clock-free half of the node's `listen` test (`crates/node/tests/listen.rs`), with
//! its ttl of 1 s and its immutable item. The core's own test of expiry runs at the default
//! ttl, which is also the most a node grants, so it cannot tell the configured ttl from that
//! cap; this one can.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::{
    Config, Id, ImmutableItem, Item, MemoryStore, Node, Notification, Request, Requester, Response,
};
use cairn_sim::EPOCH;

/// A verified peer on incoming connection `connection`.
fn on(connection: u64) -> Requester {
    Requester {
        id: Id::hash(&connection.to_be_bytes()),
        addr: None,
        verified: true,
        source: IpAddr::from([127, 0, 0, 2]),
        connection,
    }
}

fn notified(node: &mut Node<MemoryStore>) -> Vec<(u64, u64)> {
    std::iter::from_fn(|| node.poll_notification())
        .map(|Notification { connection, id, .. }| (connection, id))
        .collect()
}

#[test]
fn past_its_configured_ttl_a_subscription_is_not_notified() {
    let config = Config {
        listen_ttl: Duration::from_secs(1),
        ..Config::default()
    };
    let mut node = Node::new(Id::hash(b"listener"), config, MemoryStore::default());
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"late")).into();
    let key = *blob.key();
    let listen = Request::Listen { key, seq: 0 };

    // One peer listens at the start; another half a second later.
    let early = node.handle_request(EPOCH, on(7), 1, listen.clone());
    assert_eq!(early.response, Response::Listening { ttl: 1 });
    let half = EPOCH + Duration::from_millis(500);
    let late = node.handle_request(half, on(8), 1, listen);
    assert_eq!(late.response, Response::Listening { ttl: 1 });
    assert!(notified(&mut node).is_empty(), "nothing held yet");

    // 1.2 s in, the first is past its ttl and the second is not: only the second is notified.
    let past = EPOCH + Duration::from_millis(1_200);
    let stored = node.handle_request(past, on(9), 2, Request::Store { item: blob });
    assert_eq!(stored.response, Response::Stored);
    assert_eq!(
        notified(&mut node),
        vec![(8, 1)],
        "the subscription past its ttl of 1 s is not notified"
    );
    assert_eq!(node.subscription_count(), 1, "the expired one is dropped");
}
