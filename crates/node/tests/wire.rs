//! A live node against a client written from `docs/protocol.md` alone (`common`): frames and
//! MessagePack are built by hand, not with cairn's codec, so these tests check the contract.

mod common;

use std::time::Duration;

use cairn_core::{signature_preimage, signed_key};
use cairn_node::{Config, Dht};
use common::*;
use ed25519_dalek::{Signer, SigningKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn handshake_ping_store_and_find_by_hand() {
    let (_dht, addr) = node().await;
    let mut c = Client::connect(addr).await;
    c.handshake().await;
    assert_eq!(c.ping(1).await, pong(1));

    // Store a signed item built by hand from `docs/protocol.md`, "Items".
    let publisher = SigningKey::from_bytes(&[9; 32]);
    let public_key = publisher.verifying_key().to_bytes();
    let key = signed_key(&public_key, "note");
    let signature = publisher
        .sign(&signature_preimage(&key, 5, 0, b"hi"))
        .to_bytes();
    let item = V::Map(vec![
        ("kind", V::Str("signed")),
        ("public_key", V::Bin(&public_key)),
        ("name", V::Str("note")),
        ("value", V::Bin(b"hi")),
        ("seq", V::Uint(5)),
        ("expires", V::Uint(0)),
        ("signature", V::Bin(&signature)),
    ]);
    c.send(&msg(vec![
        ("type", V::Str("store")),
        ("id", V::Uint(2)),
        ("item", item),
    ]))
    .await;
    assert_eq!(
        read_message(&mut c.stream).await,
        Some(cairn_core::Message::Response {
            id: 2,
            response: cairn_core::Response::Stored
        })
    );

    c.send(&msg(vec![
        ("type", V::Str("find_value")),
        ("id", V::Uint(3)),
        ("key", V::Bin(key.as_bytes())),
    ]))
    .await;
    match read_message(&mut c.stream).await {
        Some(cairn_core::Message::Response {
            id: 3,
            response: cairn_core::Response::Value { item, .. },
        }) => {
            assert_eq!(item.value().as_ref(), b"hi");
            assert_eq!(item.seq(), Some(5));
        }
        other => panic!("expected the value, got {other:?}"),
    }

    c.send(&msg(vec![
        ("type", V::Str("find_node")),
        ("id", V::Uint(4)),
        ("target", V::Bin(&[0; 64])),
    ]))
    .await;
    match read_message(&mut c.stream).await {
        // A lone node knows nobody; the requester (port 0) never appears.
        Some(cairn_core::Message::Response {
            id: 4,
            response: cairn_core::Response::Nodes(nodes),
        }) => {
            assert!(nodes.is_empty())
        }
        other => panic!("expected nodes, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_pipelined_before_auth_are_answered() {
    let (_dht, addr) = node().await;
    let mut c = Client::connect(addr).await;
    let mut burst = c.hello("cairn", 1);
    burst.extend(msg(vec![("type", V::Str("ping")), ("id", V::Uint(9))]));
    c.send(&burst).await;
    assert!(matches!(
        read_message(&mut c.stream).await,
        Some(cairn_core::Message::Welcome(_))
    ));
    assert_eq!(read_message(&mut c.stream).await, pong(9));
}

#[tokio::test]
async fn invalid_messages_get_400_and_the_connection_stays_until_16() {
    let (dht, addr) = node().await;
    let mut c = Client::connect(addr).await;
    c.handshake().await;
    c.send(&frame(b"\xc1")).await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (0, 400),
        "not MessagePack"
    );
    c.send(&msg(vec![("type", V::Str("jump")), ("id", V::Uint(5))]))
        .await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (5, 400),
        "unknown type, id echoed"
    );
    c.send(&msg(vec![
        ("type", V::Str("find_node")),
        ("id", V::Uint(6)),
        ("target", V::Bin(&[1; 3])),
    ]))
    .await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (6, 400),
        "short target"
    );
    // A second `auth`, even a valid one, is out of place: 400, and the handshake stands.
    c.auth().await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (0, 400),
        "a second auth"
    );
    assert_eq!(c.ping(7).await, pong(7), "still usable");
    for n in 4..16 {
        c.send(&frame(b"\x90")).await;
        assert_eq!(
            error_code(read_message(&mut c.stream).await).1,
            400,
            "error {n}"
        );
    }
    assert!(
        c.ping(8).await.is_none() || closed(&mut c.stream).await,
        "closed after 16"
    );
    let status = dht.status().await.expect("running");
    assert_eq!(
        status.invalid_messages, 16,
        "every invalid frame is counted"
    );
}

#[tokio::test]
async fn store_refusals_have_their_codes() {
    let (_dht, addr) = node().await;
    let mut c = Client::connect(addr).await;
    c.handshake().await;
    let publisher = SigningKey::from_bytes(&[9; 32]);
    let public_key = publisher.verifying_key().to_bytes();
    let key = signed_key(&public_key, "n");
    let store = |id: u64, seq: u64, value: &[u8], signature: &[u8; 64]| {
        let item = V::Map(vec![
            ("kind", V::Str("signed")),
            ("public_key", V::Bin(&public_key)),
            ("name", V::Str("n")),
            ("value", V::Bin(value)),
            ("seq", V::Uint(seq)),
            ("expires", V::Uint(0)),
            ("signature", V::Bin(signature)),
        ]);
        msg(vec![
            ("type", V::Str("store")),
            ("id", V::Uint(id)),
            ("item", item),
        ])
    };
    let sign = |seq, value: &[u8]| {
        publisher
            .sign(&signature_preimage(&key, seq, 0, value))
            .to_bytes()
    };

    c.send(&store(1, 10, b"a", &sign(10, b"a"))).await;
    assert!(matches!(
        read_message(&mut c.stream).await,
        Some(cairn_core::Message::Response { id: 1, .. })
    ));
    c.send(&store(2, 10, b"b", &sign(10, b"a"))).await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (2, 403),
        "forged signature"
    );
    c.send(&store(3, 9, b"a", &sign(9, b"a"))).await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (3, 409),
        "stale seq"
    );
    c.send(&store(4, 10, b"b", &sign(10, b"b"))).await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (4, 409),
        "conflict"
    );
    let big = vec![0u8; 65_537];
    c.send(&store(5, 11, &big, &sign(11, &big))).await;
    assert_eq!(
        error_code(read_message(&mut c.stream).await),
        (5, 413),
        "too large"
    );
}

#[tokio::test]
async fn framing_errors_close_the_connection() {
    let (_dht, addr) = node().await;
    for bad in [&b"01:a,"[..], b"3:abc;", b"2000000:", b"x:"] {
        let mut c = Client::connect(addr).await;
        c.handshake().await;
        c.send(bad).await;
        assert!(
            closed(&mut c.stream).await,
            "{:?} closes",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn a_forged_auth_closes_the_connection() {
    let (_dht, addr) = node().await;
    let mut c = Client::connect(addr).await;
    c.hello_welcome().await;
    c.send(&msg(vec![
        ("type", V::Str("auth")),
        ("signature", V::Bin(&[1; 64])),
    ]))
    .await;
    assert!(closed(&mut c.stream).await);
}

#[tokio::test]
async fn wrong_network_or_version_gets_426() {
    let (_dht, addr) = node().await;
    for (network, version) in [("other", 1), ("cairn", 2)] {
        let mut c = Client::connect(addr).await;
        let hello = c.hello(network, version);
        c.send(&hello).await;
        assert_eq!(error_code(read_message(&mut c.stream).await), (0, 426));
        assert!(closed(&mut c.stream).await);
    }
}

/// A `welcome` whose signature is wrong.
fn forged_welcome() -> Vec<u8> {
    let public_key = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
    msg(vec![
        ("type", V::Str("welcome")),
        ("version", V::Uint(1)),
        ("network", V::Str("cairn")),
        ("public_key", V::Bin(&public_key)),
        ("nonce", V::Bin(&[0; 32])),
        ("port", V::Uint(1)),
        ("signature", V::Bin(&[5; 64])),
    ])
}

#[tokio::test]
async fn a_listener_with_a_forged_welcome_is_not_joined() {
    // A fake listener that answers hello with a welcome whose signature is wrong.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let fake = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = read_frame(&mut stream).await;
            let welcome = forged_welcome();
            let _ = stream.write_all(&welcome).await;
        }
    });
    let (dht, _) = node().await;
    assert!(dht.bootstrap(vec![fake]).await.is_err());
    let status = dht.status().await.expect("running");
    assert_eq!(status.peers, 0);
    assert_eq!(
        status.dial_failures, 1,
        "the forged welcome is a failed dial"
    );
}

async fn node_with(read_timeout: Duration, idle_timeout: Duration) -> (Dht, std::net::SocketAddr) {
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .read_timeout(read_timeout)
        .idle_timeout(idle_timeout);
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

#[tokio::test]
async fn a_frame_stalled_past_the_read_timeout_closes_the_connection() {
    // The idle timeout is far beyond `closed`'s 5 s wait: only the read timeout can act.
    let (_dht, addr) = node_with(Duration::from_millis(300), Duration::from_secs(600)).await;
    let mut stalled = Client::connect(addr).await;
    stalled.handshake().await;
    stalled.send(b"10:abc").await;
    assert!(closed(&mut stalled.stream).await);
}

#[tokio::test]
async fn a_connection_idle_past_the_idle_timeout_is_closed() {
    let (_dht, addr) = node_with(Duration::from_secs(600), Duration::from_secs(2)).await;
    let mut idle = Client::connect(addr).await;
    idle.handshake().await;
    assert_eq!(idle.ping(1).await, pong(1), "open while in use");
    assert!(closed(&mut idle.stream).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_flight_at_shutdown_is_still_answered() {
    let (dht, dir) = durable_node("wire-shutdown").await;
    let addr = dht.status().await.expect("running").listen;
    let mut c = Client::connect(addr).await;
    c.handshake().await;
    assert_eq!(c.ping(1).await, pong(1));
    // A durable store, then shutdown at once: the answer waits for the commit, and the
    // connection stays until it has sent it.
    let handled = dht.status().await.expect("running").requests_handled;
    let item = V::Map(vec![
        ("kind", V::Str("immutable")),
        ("value", V::Bin(&[9; 4096])),
    ]);
    c.send(&msg(vec![
        ("type", V::Str("store")),
        ("id", V::Uint(2)),
        ("item", item),
    ]))
    .await;
    // Shut down once the node has the request (its bytes may otherwise still be in transit,
    // and a request that never arrived cannot be answered), while its commit is under way.
    common::wait_for(
        "the node has the store",
        || async { dht.status().await.expect("running").requests_handled },
        |&now| now > handled,
    )
    .await;
    let stopping = tokio::spawn(async move { dht.shutdown().await });
    assert_eq!(
        read_message(&mut c.stream).await,
        Some(cairn_core::Message::Response {
            id: 2,
            response: cairn_core::Response::Stored
        })
    );
    stopping.await.expect("shut down");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn at_max_inbound_an_idle_connection_makes_way_and_is_counted() {
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .max_inbound(1);
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    let mut first = Client::connect(addr).await;
    first.handshake().await;
    assert_eq!(first.ping(1).await, pong(1));
    // The first holds the one place but serves nothing: a newcomer takes it.
    let mut second = Client::connect(addr).await;
    second.handshake().await;
    assert_eq!(second.ping(2).await, pong(2));
    assert!(closed(&mut first.stream).await, "the idle one was evicted");
    let status = dht.status().await.expect("running");
    assert_eq!(status.connections_evicted, 1);
    assert_eq!(status.connections_accepted, 2);
}

/// A fake listener that reads `hello` and the frame after it before answering with `answer`;
/// it reports the type of that second frame.
async fn fake_listener(
    answer: Vec<u8>,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let (seen, report) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let _hello = read_frame(&mut stream).await;
        // A dialer that waited for `welcome` would send nothing more: this would time out.
        let second = read_frame(&mut stream)
            .await
            .map(|f| cairn_core::wire::decode(&f));
        let kind = match second {
            Some(Ok(cairn_core::Message::Request { request, .. })) => format!("{request:?}"),
            other => format!("{other:?}"),
        };
        let _ = seen.send(kind);
        let _ = stream.write_all(&answer).await;
        // Answer nothing else, and hold the connection until the dialer drops it: a dialer
        // must not wait on this connection any more.
        let mut rest = [0; 256];
        while stream.read(&mut rest).await.is_ok_and(|n| n > 0) {}
    });
    (addr, report)
}

#[tokio::test]
async fn requests_pipelined_behind_hello_fail_cleanly_on_a_refusal_or_a_forged_welcome() {
    let forged = forged_welcome();
    let refusal = msg(vec![
        ("type", V::Str("error")),
        ("id", V::Uint(0)),
        ("code", V::Uint(426)),
        ("message", V::Str("another network")),
    ]);
    for (answer, what) in [(forged, "a forged welcome"), (refusal, "a 426")] {
        let (fake, seen) = fake_listener(answer).await;
        let (dht, _) = node().await;
        assert!(dht.bootstrap(vec![fake]).await.is_err(), "{what}: no join");
        let second = seen.await.expect("the fake saw a second frame");
        assert!(
            second.starts_with("FindNode"),
            "{what}: the request went out before the answer to hello: {second}"
        );
        let status = dht.status().await.expect("running");
        assert_eq!(status.peers, 0, "{what}: nothing applied");
        assert_eq!(
            status.dial_failures, 1,
            "{what}: the connection, and its request, failed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_whose_requests_came_before_auth_enters_the_table_when_auth_verifies() {
    let (dht, addr) = common::node().await;
    let mut c = Client::connect(addr).await;
    c.port = 7999; // it accepts connections, so it may enter a routing table
    c.hello_welcome().await;
    // Pipelined ahead of `auth`: answered, but the dialer is not proved yet.
    assert_eq!(c.ping(1).await, common::pong(1));
    assert!(
        dht.peers().await.expect("running").is_empty(),
        "not before auth"
    );
    c.auth().await;
    let id = cairn_core::NodeId::of_public_key(&c.key.verifying_key().to_bytes());
    let is_known = |peers: &Result<Vec<cairn_node::PeerInfo>, cairn_node::Stopped>| {
        peers.as_ref().is_ok_and(|peers| {
            peers
                .iter()
                .any(|p| p.node_id == id && p.addr.port() == 7999)
        })
    };
    let peers = common::wait_for(
        "the verified dialer enters the table",
        || dht.peers(),
        is_known,
    )
    .await;
    assert!(is_known(&peers), "the verified dialer is in the table");
    dht.shutdown().await;
}
