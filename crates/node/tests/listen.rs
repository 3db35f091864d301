//! Tombstones and `listen`/`unlisten`/`notify` (`docs/protocol.md`, "Deletion and listening")
//! through the real TCP path, with the hand-built client of `common`.

mod common;

use std::time::Duration;

use cairn_core::{Id, Item, Message, Response};
use cairn_node::Config;
use common::{Client, V, msg, read_message};
use ed25519_dalek::{Signer, SigningKey};

/// The key of signed item `name` of `public_key`, derived by hand.
fn item_key(public_key: &[u8; 32], name: &str) -> Id {
    let mut preimage = Id::hash(public_key).as_bytes().to_vec();
    preimage.extend(Id::hash(name.as_bytes()).as_bytes());
    Id::hash(&preimage)
}

/// A `store` of a signed item or (with `value` `None`) a tombstone, signed by hand.
fn store(id: u64, key: &SigningKey, name: &str, value: Option<&[u8]>, seq: u64) -> Vec<u8> {
    let public_key = key.verifying_key().to_bytes();
    let item_key = item_key(&public_key, name);
    let mut preimage = match value {
        Some(_) => b"cairn-item-v1".to_vec(),
        None => b"cairn-tombstone-v1".to_vec(),
    };
    preimage.extend(item_key.as_bytes());
    preimage.extend(seq.to_be_bytes());
    preimage.extend(0u64.to_be_bytes());
    if let Some(value) = value {
        preimage.extend((value.len() as u32).to_be_bytes());
        preimage.extend(value);
    }
    let signature = key.sign(&preimage).to_bytes();
    let mut fields = vec![
        (
            "kind",
            V::Str(if value.is_some() {
                "signed"
            } else {
                "tombstone"
            }),
        ),
        ("public_key", V::Bin(&public_key)),
        ("name", V::Str(name)),
        ("seq", V::Uint(seq)),
        ("expires", V::Uint(0)),
        ("signature", V::Bin(&signature)),
    ];
    if let Some(value) = value {
        fields.push(("value", V::Bin(value)));
    }
    let item = V::Map(fields);
    msg(vec![
        ("type", V::Str("store")),
        ("id", V::Uint(id)),
        ("item", item),
    ])
}

fn listen(id: u64, key: &Id, seq: u64) -> Vec<u8> {
    msg(vec![
        ("type", V::Str("listen")),
        ("id", V::Uint(id)),
        ("key", V::Bin(key.as_bytes())),
        ("seq", V::Uint(seq)),
    ])
}

fn unlisten(id: u64, listen: u64) -> Vec<u8> {
    msg(vec![
        ("type", V::Str("unlisten")),
        ("id", V::Uint(id)),
        ("listen", V::Uint(listen)),
    ])
}

async fn answer(client: &mut Client) -> (u64, Response) {
    match read_message(&mut client.stream).await {
        Some(Message::Response { id, response }) => (id, response),
        other => panic!("expected a response, got {other:?}"),
    }
}

async fn notify(client: &mut Client) -> (u64, Item) {
    match read_message(&mut client.stream).await {
        Some(Message::Notify { id, item }) => (id, item),
        other => panic!("expected a notify, got {other:?}"),
    }
}

/// Nothing was sent to `client` before the answer to a ping: no notify is pending.
async fn nothing_pending(client: &mut Client, ping: u64) {
    assert_eq!(client.ping(ping).await, common::pong(ping));
}

async fn node_with(protocol: cairn_core::Config) -> (cairn_node::Dht, std::net::SocketAddr) {
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .protocol(protocol);
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

#[tokio::test]
async fn a_tombstone_by_hand_deletes_and_stale_copies_are_refused() {
    let (dht, addr) = common::node().await;
    let mut client = Client::connect(addr).await;
    client.handshake().await;
    let publisher = SigningKey::from_bytes(&[5; 32]);
    client
        .send(&store(1, &publisher, "doc", Some(b"v1"), 5))
        .await;
    assert_eq!(answer(&mut client).await, (1, Response::Stored));
    client.send(&store(2, &publisher, "doc", None, 6)).await;
    assert_eq!(answer(&mut client).await, (2, Response::Stored));
    // The stale replica is refused; so is another kind at the same seq.
    client
        .send(&store(3, &publisher, "doc", Some(b"v1"), 5))
        .await;
    assert_eq!(
        common::error_code(Some(answer_message(&mut client).await)),
        (3, 409)
    );
    client
        .send(&store(4, &publisher, "doc", Some(b"x"), 6))
        .await;
    assert_eq!(
        common::error_code(Some(answer_message(&mut client).await)),
        (4, 409)
    );
    // `find_value` answers with the tombstone; a get reports the deletion.
    let key = item_key(&publisher.verifying_key().to_bytes(), "doc");
    client
        .send(&msg(vec![
            ("type", V::Str("find_value")),
            ("id", V::Uint(5)),
            ("key", V::Bin(key.as_bytes())),
        ]))
        .await;
    let (_, Response::Value { item: found, .. }) = answer(&mut client).await else {
        panic!("the tombstone is served")
    };
    assert!(found.is_tombstone() && found.seq() == Some(6));
    let got = dht.get(key).await;
    assert_eq!(
        got.map(|f| f.item),
        Err(cairn_node::GetError::Deleted { key, seq: 6 })
    );
    // A newer version brings it back.
    client
        .send(&store(6, &publisher, "doc", Some(b"v3"), 7))
        .await;
    assert_eq!(answer(&mut client).await, (6, Response::Stored));
    let back = dht.get(key).await.expect("found again");
    assert_eq!(back.item.value().as_ref(), b"v3");
    dht.shutdown().await;
}

async fn answer_message(client: &mut Client) -> Message {
    read_message(&mut client.stream).await.expect("an answer")
}

#[tokio::test]
async fn listen_notifies_each_newer_version_then_unlisten_ends_it() {
    let (dht, addr) = common::node().await;
    let public_key = dht.status().await.expect("running").public_key;
    let key = item_key(&public_key, "doc");
    let first = dht.put_signed("doc", "v1".into(), None).await.expect("put");

    let mut client = Client::connect(addr).await;
    client.handshake().await;
    client.send(&listen(1, &key, 0)).await;
    let (id, response) = answer(&mut client).await;
    let Response::Listening { ttl } = response else {
        panic!("expected listening, got {response:?}")
    };
    assert_eq!(id, 1);
    assert!(ttl > 0 && ttl <= 600, "ttl {ttl}");
    // The copy held goes out at once, after `listening`.
    let (id, item) = notify(&mut client).await;
    assert_eq!(
        (id, item.seq(), item.value().as_ref()),
        (1, first.seq, &b"v1"[..])
    );

    dht.put_signed("doc", "v2".into(), None).await.expect("put");
    let (id, item) = notify(&mut client).await;
    assert_eq!((id, item.value().as_ref()), (1, &b"v2"[..]));
    let deleted = dht.delete("doc", None).await.expect("deleted");
    let (id, item) = notify(&mut client).await;
    assert_eq!(id, 1);
    assert!(item.is_tombstone());
    assert_eq!(item.seq(), deleted.seq);

    // A listen that already has the newest seq gets nothing at once.
    client
        .send(&listen(2, &key, deleted.seq.expect("seq")))
        .await;
    assert!(matches!(
        answer(&mut client).await,
        (2, Response::Listening { .. })
    ));
    nothing_pending(&mut client, 3).await;

    client.send(&unlisten(4, 1)).await;
    assert_eq!(answer(&mut client).await, (4, Response::Unlistened));
    client.send(&unlisten(5, 2)).await;
    assert_eq!(answer(&mut client).await, (5, Response::Unlistened));
    dht.put_signed("doc", "v3".into(), None).await.expect("put");
    nothing_pending(&mut client, 6).await;
    assert_eq!(dht.status().await.expect("running").subscriptions, 0);
    dht.shutdown().await;
}

#[tokio::test]
async fn listens_over_the_limits_get_429_and_other_peers_are_still_served() {
    let protocol = cairn_core::Config {
        max_subscriptions: 70,
        ..cairn_core::Config::default()
    };
    let (dht, addr) = node_with(protocol).await;
    let mut greedy = Client::connect(addr).await;
    greedy.handshake().await;
    for n in 0..64u64 {
        greedy
            .send(&listen(n + 1, &Id::hash(&n.to_be_bytes()), 0))
            .await;
        assert!(matches!(
            answer(&mut greedy).await.1,
            Response::Listening { .. }
        ));
    }
    // The 65th on one connection is refused; the connection stays usable.
    greedy.send(&listen(100, &Id::hash(b"one more"), 0)).await;
    assert_eq!(
        common::error_code(Some(answer_message(&mut greedy).await)),
        (100, 429)
    );
    nothing_pending(&mut greedy, 101).await;

    // Another host fills the node-wide cap of 70, and is refused past it.
    let mut other = Client::connect_from("127.0.0.2", addr).await;
    other.handshake().await;
    for n in 0..6u64 {
        other
            .send(&listen(n + 1, &Id::hash(&[n as u8, 1]), 0))
            .await;
        assert!(matches!(
            answer(&mut other).await.1,
            Response::Listening { .. }
        ));
    }
    other.send(&listen(7, &Id::hash(b"past the cap"), 0)).await;
    assert_eq!(
        common::error_code(Some(answer_message(&mut other).await)),
        (7, 429)
    );

    // The subscriptions held are still served: a new copy reaches its listener.
    let blob = dht.put_immutable("served".into()).await.expect("put");
    let mut honest = Client::connect_from("127.0.0.3", addr).await;
    honest.handshake().await;
    honest.send(&listen(1, &blob.key, 0)).await;
    assert_eq!(
        common::error_code(Some(answer_message(&mut honest).await)),
        (1, 429)
    );
    // Once a subscription ends, the honest peer gets its place and its value.
    other.send(&unlisten(8, 1)).await;
    assert_eq!(answer(&mut other).await, (8, Response::Unlistened));
    honest.send(&listen(2, &blob.key, 0)).await;
    assert!(matches!(
        answer(&mut honest).await.1,
        Response::Listening { .. }
    ));
    let (id, item) = notify(&mut honest).await;
    assert_eq!((id, item.value().as_ref()), (2, &b"served"[..]));
    dht.shutdown().await;
}

/// That a subscription past its ttl is not notified is shown on virtual time, with this
/// test's ttl of 1 s, in `crates/sim/tests/listen_ttl.rs`; here, that the node grants the ttl
/// it is configured with.
#[tokio::test]
async fn a_closed_connection_ends_its_subscriptions_and_the_configured_ttl_is_granted() {
    let protocol = cairn_core::Config {
        listen_ttl: Duration::from_secs(1),
        ..cairn_core::Config::default()
    };
    let (dht, addr) = node_with(protocol).await;
    let key = Id::hash(b"some key");
    let mut client = Client::connect(addr).await;
    client.handshake().await;
    client.send(&listen(1, &key, 0)).await;
    assert_eq!(
        answer(&mut client).await,
        (1, Response::Listening { ttl: 1 })
    );
    assert_eq!(dht.status().await.expect("running").subscriptions, 1);
    drop(client);
    let left = common::wait_for(
        "the connection's subscription ended with it",
        || async { dht.status().await.expect("running").subscriptions },
        |&left| left == 0,
    )
    .await;
    assert_eq!(left, 0, "the connection's subscription ended with it");
    dht.shutdown().await;
}
