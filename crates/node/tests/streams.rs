//! Byte streams by public key (`docs/design.md`, "Byte streams"), through the real network
//! path: live nodes on loopback, QUIC over their UDP sockets. Loopback has no NAT: a stream to
//! a client goes through the hole its point asked it to punch, as `ping_key` does;
//! `crates/cli/tests/nat.rs` carries streams through real NATs, punched and relayed.

mod common;

use std::net::SocketAddr;

use cairn_node::{
    Config, ConnectError, Dht, ModeSetting, PingError, Route, STREAMS_PER_HOST, Stream,
};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn node_on(ip: &str, mode: ModeSetting) -> (Dht, SocketAddr) {
    start_on(Config::default().mode(mode), ip).await
}

async fn key_of(dht: &Dht) -> [u8; 32] {
    dht.status().await.expect("running").public_key
}

/// `len` bytes that differ from one offset to the next, so that a reordering shows.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ salt)
        .collect()
}

/// Writes `out` on `stream` and ends it while reading everything the peer sends: what came.
async fn exchange(stream: &mut Stream, out: &[u8]) -> Vec<u8> {
    let (mut read, mut write) = tokio::io::split(stream);
    let writing = async {
        write.write_all(out).await.expect("writes");
        write.shutdown().await.expect("ends");
    };
    let mut back = Vec::new();
    let reading = read.read_to_end(&mut back);
    let ((), read) = tokio::join!(writing, reading);
    read.expect("reads");
    back
}

#[tokio::test]
async fn a_stream_to_a_key_carries_bytes_both_ways_intact_and_proves_both_keys() {
    let (a, a_addr) = node_on("127.0.3.1", ModeSetting::Server).await;
    let (b, _) = node_on("127.0.3.2", ModeSetting::Server).await;
    b.bootstrap(vec![a_addr]).await.expect("joins");
    let (a_key, b_key) = (key_of(&a).await, key_of(&b).await);

    let to_b = pattern(3 << 20, 1);
    let to_a = pattern(1 << 20, 2);
    let acceptor = {
        let (b, to_a) = (b.clone(), to_a.clone());
        tokio::spawn(async move {
            let mut stream = b.accept().await.expect("accepts");
            let peer = *stream.peer();
            let route = stream.route();
            let got = exchange(&mut stream, &to_a).await;
            stream.close().await.expect("closes");
            (peer, route, got)
        })
    };
    let mut stream = a.connect(&b_key).await.expect("connects");
    assert_eq!(stream.peer(), &b_key);
    assert_eq!(stream.route(), Some(Route::Direct));
    let got = exchange(&mut stream, &to_b).await;
    assert!(
        got == to_a,
        "A got {} bytes, not B's {}",
        got.len(),
        to_a.len()
    );
    stream.close().await.expect("closes");
    let (peer, route, got) = acceptor.await.expect("accepted");
    assert_eq!(peer, a_key, "B sees A's key");
    assert_eq!(route, None, "it came straight to B");
    assert!(
        got == to_b,
        "B got {} bytes, not A's {}",
        got.len(),
        to_b.len()
    );

    // A key nobody holds, and the node's own, are said so.
    assert!(matches!(
        a.connect(&[9; 32]).await,
        Err(ConnectError::Reach(PingError::NotFound(_)))
    ));
    assert_eq!(
        a.connect(&a_key).await.err(),
        Some(ConnectError::Reach(PingError::Myself))
    );
}

#[tokio::test]
async fn a_node_that_accepts_nothing_refuses_a_stream_and_one_host_gets_only_its_share() {
    let (a, a_addr) = node_on("127.0.3.11", ModeSetting::Server).await;
    let (b, _) = node_on("127.0.3.12", ModeSetting::Server).await;
    b.bootstrap(vec![a_addr]).await.expect("joins");
    let b_key = key_of(&b).await;

    // Nothing listens on B: refused.
    assert_eq!(a.connect(&b_key).await.err(), Some(ConnectError::Refused));

    // B listens: streams wait in its backlog. One host's nodes get `STREAMS_PER_HOST`
    // streams; the next is refused; a node on another host is served.
    let listener = b.listen().expect("listens");
    let mut held = Vec::new();
    for n in 0..=STREAMS_PER_HOST {
        let (dialer, _) = node_on("127.0.3.13", ModeSetting::Server).await;
        dialer.bootstrap(vec![a_addr]).await.expect("joins");
        let opened = dialer.connect(&b_key).await;
        if n < STREAMS_PER_HOST {
            held.push((opened.expect("within the host's share"), dialer));
        } else {
            assert_eq!(opened.err(), Some(ConnectError::Refused), "past the share");
        }
    }
    let (other, _) = node_on("127.0.3.14", ModeSetting::Server).await;
    other.bootstrap(vec![a_addr]).await.expect("joins");
    let mut served = other.connect(&b_key).await.expect("another host is served");
    served.write_all(b"still served").await.expect("writes");
    served.shutdown().await.expect("ends");
    let mut accepted = Vec::new();
    for _ in 0..=STREAMS_PER_HOST {
        accepted.push(listener.accept().await.expect("accepts"));
    }
    assert!(
        accepted[..STREAMS_PER_HOST]
            .iter()
            .all(|s| s.addr().ip().to_string() == "127.0.3.13")
    );
    let last = accepted.last_mut().expect("five");
    assert_eq!(last.peer(), &key_of(&other).await);
    let mut got = Vec::new();
    last.read_to_end(&mut got).await.expect("reads");
    assert_eq!(got, b"still served");

    // Once nothing listens, B refuses again.
    drop(listener);
    assert_eq!(a.connect(&b_key).await.err(), Some(ConnectError::Refused));
}

#[tokio::test]
async fn a_stream_to_a_client_goes_through_the_hole_its_point_asked_it_to_punch() {
    let mut servers = Vec::new();
    for n in 1..=5 {
        servers.push(node_on(&format!("127.0.3.2{n}"), ModeSetting::Server).await);
    }
    for (dht, _) in &servers[1..] {
        dht.bootstrap(vec![servers[0].1]).await.expect("joins");
    }
    let (client, _) = node_on("127.0.3.29", ModeSetting::Client).await;
    client.bootstrap(vec![servers[0].1]).await.expect("joins");
    let key = key_of(&client).await;
    let (asker, _) = &servers[4];
    wait_for(
        "the client's rendezvous record is found",
        || async {
            asker
                .get_signed(&key, cairn_core::RENDEZVOUS_RECORD)
                .await
                .is_ok()
        },
        |found| *found,
    )
    .await;

    let acceptor = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut stream = client.accept().await.expect("accepts");
            let got = exchange(&mut stream, b"from the client").await;
            stream.close().await.expect("closes");
            got
        })
    };
    let mut stream = asker.connect(&key).await.expect("connects");
    assert_eq!(stream.route(), Some(Route::Punched));
    let sent = pattern(256 << 10, 3);
    let got = exchange(&mut stream, &sent).await;
    assert_eq!(got, b"from the client");
    stream.close().await.expect("closes");
    assert!(
        acceptor.await.expect("accepted") == sent,
        "the client got what was sent"
    );
}

#[tokio::test]
async fn a_stream_dropped_before_its_end_fails_the_other_sides_reads_saying_so() {
    let (a, a_addr) = node_on("127.0.3.41", ModeSetting::Server).await;
    let (b, _) = node_on("127.0.3.42", ModeSetting::Server).await;
    b.bootstrap(vec![a_addr]).await.expect("joins");
    let b_key = key_of(&b).await;
    let listener = b.listen().expect("listens");
    let mut stream = a.connect(&b_key).await.expect("connects");
    let accepted = listener.accept().await.expect("accepts");
    drop(accepted);
    let mut got = Vec::new();
    let error = stream
        .read_to_end(&mut got)
        .await
        .expect_err("the stream did not end cleanly");
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted,
        "{error}"
    );
    assert!(error.to_string().contains("before its end"), "{error}");
}

#[tokio::test]
async fn a_node_listening_on_ipv4_first_opens_a_stream_to_an_ipv6_address() {
    // The stream endpoint shares the node's sockets, the first of them IPv4 here: an IPv6
    // destination (a peer's, or a circuit's in 100::/64) must still be dialed.
    let mut config = Config::default().mode(ModeSetting::Server);
    config.also_listen = vec!["[::1]:0".parse().expect("an address")];
    let (a, _) = start_on(config, "127.0.3.51").await;
    let b = cairn_node::start(
        Config::default()
            .mode(ModeSetting::Server)
            .listen("[::1]:0".parse().expect("an address")),
    )
    .await
    .expect("starts");
    let a_v6 = a.status().await.expect("running").listen_addrs;
    let a_v6 = *a_v6
        .iter()
        .find(|addr| addr.is_ipv6())
        .expect("an IPv6 address");
    b.bootstrap(vec![a_v6]).await.expect("joins");
    let b_key = key_of(&b).await;
    let listener = b.listen().expect("listens");
    let mut stream = a.connect(&b_key).await.expect("connects over IPv6");
    assert!(stream.addr().is_ipv6(), "{:?}", stream.addr());
    stream.write_all(b"over IPv6").await.expect("writes");
    stream.shutdown().await.expect("ends");
    let mut accepted = listener.accept().await.expect("accepts");
    let mut got = Vec::new();
    accepted.read_to_end(&mut got).await.expect("reads");
    assert_eq!(got, b"over IPv6");
}

#[tokio::test]
async fn through_the_api_a_stream_the_other_side_dropped_says_why_even_mid_upload() {
    let (a, a_addr) = node_on("127.0.3.61", ModeSetting::Server).await;
    let (b, _) = node_on("127.0.3.62", ModeSetting::Server).await;
    b.bootstrap(vec![a_addr]).await.expect("joins");
    let b_key = cairn_node::cairn_core::to_hex(&key_of(&b).await);
    let (_server, api) = serve_api(&a).await;
    let listener = b.listen().expect("listens");
    // B takes the stream, reads a little of A's upload, and drops it.
    let dropping = tokio::spawn(async move {
        let mut stream = listener.accept().await.expect("accepts");
        let mut some = [0u8; 1024];
        stream.read_exact(&mut some).await.expect("reads");
    });
    let upload = pattern(32 << 20, 4);
    let stream = api.connect_stream(&b_key).await.expect("connects");
    let mut heard = Vec::new();
    let broke = stream
        .pipe(&upload[..], &mut heard)
        .await
        .expect_err("the stream was dropped before its end");
    dropping.await.expect("ran");
    // The API's close reaches the client with its reason, not a reset of the connection.
    assert!(broke.to_string().contains("before its end"), "{broke}");
}

#[tokio::test]
async fn through_the_api_both_sides_send_at_once_and_neither_waits_on_the_other() {
    let (a, a_addr) = node_on("127.0.3.71", ModeSetting::Server).await;
    let (b, _) = node_on("127.0.3.72", ModeSetting::Server).await;
    b.bootstrap(vec![a_addr]).await.expect("joins");
    let b_key = cairn_node::cairn_core::to_hex(&key_of(&b).await);
    let ((_a_server, a_api), (_b_server, b_api)) = (serve_api(&a).await, serve_api(&b).await);
    // More each way than a stream's flow-control window (512 KiB) and the sockets' buffers
    // hold: a pipe that wrote one way before it read the other would block both.
    let (to_b, to_a) = (pattern(8 << 20, 5), pattern(8 << 20, 6));
    let listening = b_api.listen().await.expect("listens");
    let at_b = {
        let to_a = to_a.clone();
        tokio::spawn(async move {
            let stream = listening.accepted().await.expect("a stream arrives");
            let mut heard = Vec::new();
            stream.pipe(&to_a[..], &mut heard).await.expect("pipes");
            heard
        })
    };
    let stream = a_api.connect_stream(&b_key).await.expect("connects");
    let mut heard = Vec::new();
    // Bounded, so that the deadlock this guards against fails the test.
    tokio::time::timeout(PATIENCE, stream.pipe(&to_b[..], &mut heard))
        .await
        .expect("the pipes did not block each other")
        .expect("pipes");
    assert!(
        heard == to_a,
        "A heard {} bytes of B's {}",
        heard.len(),
        to_a.len()
    );
    let b_heard = at_b.await.expect("B's side ran");
    assert!(
        b_heard == to_b,
        "B heard {} bytes of A's {}",
        b_heard.len(),
        to_b.len()
    );
}

#[tokio::test]
async fn a_stopped_node_neither_listens_nor_connects() {
    let (a, _) = node_on("127.0.3.81", ModeSetting::Server).await;
    let listener = a.listen().expect("listens");
    a.shutdown().await;
    assert!(matches!(
        listener.accept().await,
        Err(cairn_node::AcceptError::Stopped)
    ));
    assert!(matches!(a.listen(), Err(cairn_node::AcceptError::Stopped)));
    assert_eq!(
        a.connect(&[5; 32]).await.err(),
        Some(ConnectError::Reach(PingError::Stopped))
    );
}
