//! Client mode through the real network path (`docs/design.md`, "Client mode"): live nodes on
//! loopback, one of them a client. A client does everything its user asks and enters no
//! routing table; a node that says `role: "client"` leaves one; a peer that says no role (a
//! node that predates roles) is served and admitted as before, both ways.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use cairn_core::{Message, Mode, NodeId, Role, Transcript};
use cairn_node::{Config, Dht};
use common::*;
use ed25519_dalek::SigningKey;
use tokio::net::TcpListener;

/// A node on `ip`, any free port. Every test node shares 127.0.0.0/24, so the routing
/// table's subnet limits are lifted: a node missing from a table is missing for its role, not
/// because its subnet's places were taken.
async fn start(config: Config, ip: &str) -> (Dht, SocketAddr) {
    start_on(config, ip).await
}

/// `count` servers on 127.0.0.1, 127.0.0.2, ..., each joined through the first.
async fn servers(count: u8) -> Vec<(Dht, SocketAddr)> {
    let mut nodes = Vec::new();
    for n in 1..=count {
        nodes.push(start(Config::default(), &format!("127.0.0.{n}")).await);
    }
    let seed = nodes[0].1;
    for (dht, _) in &nodes[1..] {
        dht.bootstrap(vec![seed]).await.expect("joins");
    }
    nodes
}

async fn holds(dht: &Dht, id: &NodeId) -> bool {
    let peers = dht.peers().await.expect("running");
    peers.iter().any(|p| p.node_id == *id)
}

#[tokio::test]
async fn a_client_does_all_its_user_asks_and_no_server_ever_holds_it() {
    let servers = servers(4).await;
    let (client, _) = start(Config::default().mode(Mode::Client), "127.0.0.9").await;
    let client_status = client.status().await.expect("running");
    assert_eq!(client_status.mode, "client");
    let client_id = client_status.node_id;
    assert!(client.bootstrap(vec![servers[0].1]).await.expect("joins") >= 1);

    // Put, get, watch, delete: each through the servers.
    let put = client
        .put_signed("greeting", Bytes::from_static(b"hello"), None)
        .await
        .expect("put");
    assert!(put.replicas >= 2, "stored at servers: {put:?}");
    let public_key = client_status.public_key;
    let got = client
        .get_signed(&public_key, "greeting")
        .await
        .expect("get");
    assert_eq!(got.item.value(), b"hello".as_slice());
    // A server finds the client's item too: it lives at the servers.
    let (server, _) = &servers[2];
    let found = server
        .get_signed(&public_key, "greeting")
        .await
        .expect("get");
    assert_eq!(found.item.value(), b"hello".as_slice());

    // The client watches a server's item and hears of its new version.
    let (writer, _) = &servers[1];
    let writer_key = writer.status().await.expect("running").public_key;
    writer
        .put_signed("news", Bytes::from_static(b"one"), None)
        .await
        .expect("put");
    let key = cairn_core::signed_key(&writer_key, "news");
    let mut watch = client.watch(key).await.expect("watch");
    let first = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("first copy");
    assert_eq!(first.map(|i| i.value().to_vec()), Some(b"one".to_vec()));
    writer
        .put_signed("news", Bytes::from_static(b"two"), None)
        .await
        .expect("put");
    let second = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("update");
    assert_eq!(second.map(|i| i.value().to_vec()), Some(b"two".to_vec()));

    client.delete("greeting", None).await.expect("delete");
    let gone = client.get_signed(&public_key, "greeting").await;
    assert!(
        matches!(gone, Err(cairn_node::GetError::Deleted { .. })),
        "{gone:?}"
    );

    // The client holds only its own items; its table holds servers.
    assert!(!client.peers().await.expect("running").is_empty());
    // No server holds the client, after all that traffic both ways and a lookup of the
    // client's own id from each (which asks everyone who knows of it).
    for (server, addr) in &servers {
        let _ = server.find_node(client_id).await;
        assert!(!holds(server, &client_id).await, "{addr} holds the client");
    }
    for (dht, _) in servers {
        dht.shutdown().await;
    }
    client.shutdown().await;
}

#[tokio::test]
async fn a_node_that_answers_as_a_client_leaves_every_table() {
    let servers = servers(3).await;
    let dir = std::env::temp_dir().join(format!("cairn-client-mode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The node runs as a server first, and enters the servers' tables.
    let (node, addr) = start(Config::default().data_dir(dir.clone()), "127.0.0.8").await;
    let id = node.status().await.expect("running").node_id;
    node.bootstrap(vec![servers[0].1]).await.expect("joins");
    let round = AtomicU32::new(0);
    let look_up = |dht: &Dht| {
        let n = round.fetch_add(1, Ordering::Relaxed);
        let dht = dht.clone();
        async move {
            let _ = dht.find_node(NodeId::hash(&n.to_be_bytes())).await;
        }
    };
    for (server, _) in &servers {
        wait_for(
            "the server holds the node",
            || async {
                look_up(server).await;
                holds(server, &id).await
            },
            |held| *held,
        )
        .await;
    }
    // Then it comes back at the same address, same key, as a client that asks nothing (a
    // data directory holding only its key: no saved table to rejoin through), so that what
    // the servers learn of its role, they learn from its answers.
    node.shutdown().await;
    let fresh = dir.with_extension("client");
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).expect("a directory");
    std::fs::copy(dir.join("node.key"), fresh.join("node.key")).expect("the key");
    let mut config = Config::default().data_dir(fresh.clone()).mode(Mode::Client);
    config.protocol.diversity = cairn_core::Diversity {
        per_bucket: 20,
        per_table: 1_000,
    };
    let client = cairn_node::start(config.listen(addr))
        .await
        .expect("restarts");
    assert_eq!(client.status().await.expect("running").node_id, id);
    // Each server asks it (it is in their tables) when it looks its id up; the answer says
    // client, and the server drops it.
    for (server, at) in &servers {
        wait_for(
            &format!("{at} drops the node"),
            || async {
                let _ = server.find_node(id).await;
                holds(server, &id).await
            },
            |held| !*held,
        )
        .await;
    }
    let status = client.status().await.expect("running");
    assert!(status.requests_handled > 0, "it was asked, and answered");
    assert_eq!(
        status.requests_sent, 0,
        "it asked nothing: its answers told"
    );
    for (dht, _) in servers {
        dht.shutdown().await;
    }
    client.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&fresh);
}

#[tokio::test]
async fn a_dialer_that_says_client_leaves_the_table() {
    let (server, addr) = start(Config::default(), "127.0.0.1").await;
    // A peer written from the protocol page that announces a port and says no role: a node
    // that predates roles. It is served and admitted as before.
    let mut peer = Client::connect_from("127.0.0.3", addr).await;
    peer.port = 7400;
    peer.handshake().await;
    assert_eq!(peer.ping(1).await, pong(1));
    let peer_id = NodeId::of_public_key(&peer.key.verifying_key().to_bytes());
    wait_for(
        "the legacy peer is admitted",
        || holds(&server, &peer_id),
        |h| *h,
    )
    .await;
    // Someone else claims its key (a `hello` needs no signature; `auth` does) and says
    // `client` without ever sending `auth`: it is answered, and the peer stays. (The request
    // reaches the driver behind what its role made the connection say, so once its answer is
    // back, a removal would have happened.)
    let mut forger = Client::connect_from("127.0.0.6", addr).await;
    forger.hello_welcome().await;
    forger
        .send(&msg(vec![
            ("type", V::Str("ping")),
            ("id", V::Uint(5)),
            ("role", V::Str("client")),
        ]))
        .await;
    assert_eq!(read_message(&mut forger.stream).await, pong(5));
    assert!(
        holds(&server, &peer_id).await,
        "an unverified claim removes nobody"
    );
    // Its next request says `role: "client"`: it leaves the table, and is still answered.
    peer.send(&msg(vec![
        ("type", V::Str("ping")),
        ("id", V::Uint(2)),
        ("role", V::Str("client")),
    ]))
    .await;
    assert_eq!(read_message(&mut peer.stream).await, pong(2));
    wait_for(
        "the client is dropped",
        || holds(&server, &peer_id),
        |h| !*h,
    )
    .await;
    server.shutdown().await;
}

/// A listener that predates roles, written from the protocol page: it completes the handshake
/// and answers every request with an empty `nodes` (no `role` anywhere), for `connections`
/// connections.
async fn legacy_listener(key: SigningKey, connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.4:0").await.expect("binds");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let key = key.clone();
            tokio::spawn(async move {
                let Some(Message::Hello(hello)) = read_message(&mut stream).await else {
                    return;
                };
                let transcript = Transcript {
                    network: "cairn",
                    dialer_key: hello.public_key,
                    dialer_nonce: hello.nonce,
                    listener_key: key.verifying_key().to_bytes(),
                    listener_nonce: [9; 32],
                };
                let signature = transcript.sign(Role::Listener, &key);
                let public_key = key.verifying_key().to_bytes();
                let welcome = msg(vec![
                    ("type", V::Str("welcome")),
                    ("version", V::Uint(1)),
                    ("network", V::Str("cairn")),
                    ("public_key", V::Bin(&public_key)),
                    ("nonce", V::Bin(&[9; 32])),
                    ("port", V::Uint(u64::from(addr.port()))),
                    ("signature", V::Bin(&signature)),
                ]);
                use tokio::io::AsyncWriteExt;
                if stream.write_all(&welcome).await.is_err() {
                    return;
                }
                while let Some(message) = read_message(&mut stream).await {
                    let Message::Request { id, .. } = message else {
                        continue;
                    };
                    let mut nodes = vec![0x83];
                    for (k, v) in [("type", V::Str("nodes")), ("id", V::Uint(id))] {
                        pack(&V::Str(k), &mut nodes);
                        pack(&v, &mut nodes);
                    }
                    pack(&V::Str("nodes"), &mut nodes);
                    nodes.push(0x90);
                    if stream.write_all(&frame(&nodes)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_listener_that_says_no_role_is_admitted_as_before() {
    let key = SigningKey::from_bytes(&[77; 32]);
    let legacy_id = NodeId::of_public_key(&key.verifying_key().to_bytes());
    let legacy = legacy_listener(key, 4).await;
    let (server, _) = start(Config::default(), "127.0.0.1").await;
    // The bootstrap asks it over TCP; its answer has no `role`: it enters the table.
    assert_eq!(server.bootstrap(vec![legacy]).await.expect("joins"), 1);
    assert!(holds(&server, &legacy_id).await);
    // A client admits it too: a peer that says no role is a server, as every node was.
    let (client, _) = start(Config::default().mode(Mode::Client), "127.0.0.5").await;
    assert_eq!(client.bootstrap(vec![legacy]).await.expect("joins"), 1);
    assert!(holds(&client, &legacy_id).await);
    server.shutdown().await;
    client.shutdown().await;
}
