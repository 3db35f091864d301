//! Reaching a node by its key through a rendezvous (`docs/design.md`, "Rendezvous and
//! punching"), through the real network path: live nodes on loopback, one of them a client
//! that no routing table holds. Loopback has no NAT, so what is shown here is the protocol
//! (registration, the record, the introduction, the punch, the ping through it) and its
//! bounds; `crates/cli/tests/nat.rs` shows the punch through real NATs.

mod common;

use std::net::SocketAddr;

use cairn_core::{ErrorCode, Id, Mode, Peer, Request, Response};
use cairn_node::{Config, Dht, ModeSetting, PingError, RendezvousCounts, Route};
use common::plane::Peer2;
use common::*;

fn code(response: &Response) -> Option<ErrorCode> {
    match response {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

/// A node on `ip`, any free port, in `mode`.
async fn node_on(ip: &str, mode: ModeSetting) -> (Dht, SocketAddr) {
    start_on(Config::default().mode(mode), ip).await
}

/// Sends `inner` on `circuit` to the relay at `relay`, from `socket`.
async fn send_on(socket: &tokio::net::UdpSocket, circuit: u64, inner: &[u8], relay: SocketAddr) {
    let wrapped = cairn_core::datagram::relayed(circuit, inner);
    socket.send_to(&wrapped, relay).await.expect("sends");
}

/// What `dht` counts of rendezvous and relaying now.
async fn rendezvous_of(dht: &Dht) -> RendezvousCounts {
    dht.status().await.expect("running").reachability.rendezvous
}

/// `count` servers on 127.0.1.1, 127.0.1.2, ..., joined through the first.
async fn servers(count: u8) -> Vec<(Dht, SocketAddr)> {
    let mut nodes = Vec::new();
    for n in 1..=count {
        nodes.push(node_on(&format!("127.0.1.{n}"), ModeSetting::Server).await);
    }
    for (dht, _) in &nodes[1..] {
        dht.bootstrap(vec![nodes[0].1]).await.expect("joins");
    }
    nodes
}

#[tokio::test]
async fn a_client_no_table_holds_is_reached_by_its_key_through_its_rendezvous() {
    let servers = servers(5).await;
    let (client, client_addr) = node_on("127.0.1.9", ModeSetting::Client).await;
    client.bootstrap(vec![servers[0].1]).await.expect("joins");
    let status = client.status().await.expect("running");
    assert_eq!(status.mode, Mode::Client.as_str());
    let key = status.public_key;

    // It registers with servers near it, and publishes the record naming them.
    let points = wait_for(
        "the client registered with rendezvous points",
        || async { rendezvous_of(&client).await },
        |r| r.points >= 1,
    )
    .await;
    assert!(points.points <= 3, "at most three points: {points:?}");
    let (asker, _) = &servers[4];
    wait_for(
        "the rendezvous record is found",
        || async {
            asker
                .get_signed(&key, cairn_core::RENDEZVOUS_RECORD)
                .await
                .ok()
                .map(|found| found.item.value().clone())
        },
        Option::is_some,
    )
    .await;

    // No table holds it, so a lookup does not find it; its key does.
    let closest = asker.find_node(status.node_id).await.expect("finds");
    assert!(
        closest.iter().all(|c| c.id != status.node_id),
        "a client in a table"
    );
    let pinged = asker.ping_key(&key).await.expect("reached");
    assert_eq!(pinged.route, Route::Punched, "{pinged:?}");
    let via = pinged.via.expect("a rendezvous named");
    assert!(servers.iter().any(|(_, addr)| *addr == via.addr), "{via:?}");
    assert_eq!(
        pinged.addr.ip(),
        "127.0.1.9".parse::<std::net::IpAddr>().expect("an ip")
    );

    // The client punched towards the asker, asked by its point; the point counted it.
    let client_counts = rendezvous_of(&client).await;
    assert!(client_counts.punches_sent >= 1, "{client_counts:?}");
    let mut introduced = 0;
    for (server, _) in &servers {
        introduced += rendezvous_of(server).await.introduced;
    }
    assert!(introduced >= 1, "no server counted an introduction");

    // A server is reached directly; a key nobody holds is not found; its own key is refused.
    let server_key = servers[2].0.status().await.expect("running").public_key;
    let direct = asker.ping_key(&server_key).await.expect("reached");
    assert_eq!(direct.route, Route::Direct, "{direct:?}");
    assert_eq!(direct.addr, servers[2].1);
    assert!(matches!(
        asker.ping_key(&[7; 32]).await,
        Err(PingError::NotFound(_))
    ));
    let own = asker.status().await.expect("running").public_key;
    assert_eq!(asker.ping_key(&own).await, Err(PingError::Myself));

    // A node that is not one of the client's points cannot make it punch: 403, counted, and
    // no punch went out; its points still can (the ping above).
    let mut stranger = Peer2::bind("127.0.1.20", 20, true).await;
    let to_client = Peer {
        id: Some(status.node_id),
        addr: client_addr,
    };
    let victim = "127.0.1.21:9".parse().expect("an address");
    let meet = Request::Meet {
        to: victim,
        nonce: [5; 16],
    };
    let refused = stranger.request(to_client, 1, meet).await;
    assert_eq!(
        code(&refused),
        Some(ErrorCode::BAD_SIGNATURE),
        "{refused:?}"
    );
    let after = rendezvous_of(&client).await;
    assert_eq!(
        after.punches_sent, client_counts.punches_sent,
        "no punch for a stranger"
    );
    assert!(after.meets_refused >= 1, "{after:?}");
}

#[tokio::test]
async fn registrations_past_a_hosts_share_are_refused_while_another_host_registers() {
    let (server, addr) = node_on("127.0.3.1", ModeSetting::Server).await;
    let to = Peer {
        id: Some(server.status().await.expect("running").node_id),
        addr,
    };
    // Four ids from one host register; the fifth from that host is refused.
    for n in 0..4 {
        let mut peer = Peer2::bind("127.0.3.2", 30 + n, false).await;
        let answer = peer.request(to, 1, Request::Register).await;
        assert_eq!(answer, Response::Registered { ttl: 60 }, "registration {n}");
    }
    let mut crowding = Peer2::bind("127.0.3.2", 40, false).await;
    let refused = crowding.request(to, 1, Request::Register).await;
    assert_eq!(code(&refused), Some(ErrorCode::OVER_LIMIT), "{refused:?}");
    // Another host is served.
    let mut other = Peer2::bind("127.0.3.3", 41, false).await;
    let answer = other.request(to, 1, Request::Register).await;
    assert_eq!(answer, Response::Registered { ttl: 60 });
    let counts = rendezvous_of(&server).await;
    assert_eq!(counts.registered, 5, "{counts:?}");
    assert!(counts.refused >= 1, "{counts:?}");

    // An introduction to a node not registered here: 404.
    let mut asker = Peer2::bind("127.0.3.4", 42, false).await;
    let unknown = Request::Introduce {
        target: Id::from_bytes([9; 64]),
    };
    let answer = asker.request(to, 1, unknown).await;
    assert_eq!(code(&answer), Some(ErrorCode::NOT_FOUND), "{answer:?}");
    // Over TCP, neither is served.
    let mut tcp = common::Client::connect(addr).await;
    tcp.handshake().await;
    tcp.send(&msg(vec![("type", V::Str("register")), ("id", V::Uint(3))]))
        .await;
    let (_, refused) = error_code(read_message(&mut tcp.stream).await);
    assert_eq!(refused, 400);
}

/// The next `relayed` datagram `socket` receives: its circuit id, what it carries, and from
/// where.
async fn next_relayed(socket: &tokio::net::UdpSocket) -> (u64, Vec<u8>, SocketAddr) {
    let mut buf = vec![0; cairn_core::datagram::MAX_RELAYED + 1];
    let (len, from) = tokio::time::timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .expect("a datagram within PATIENCE")
        .expect("receives");
    let (circuit, inner) =
        cairn_core::datagram::parse_relayed(&buf[..len]).expect("a relayed datagram");
    (circuit, inner.to_vec(), from)
}

#[tokio::test]
async fn a_circuit_carries_between_its_ends_only_and_only_its_bytes() {
    let (server, relay) = node_on("127.0.5.1", ModeSetting::Server).await;
    let to = Peer {
        id: Some(server.status().await.expect("running").node_id),
        addr: relay,
    };
    // The target registers; the asker opens a circuit to it.
    let mut target = Peer2::bind("127.0.5.2", 50, false).await;
    let target_id: Id = Id::hash(
        &ed25519_dalek::SigningKey::from_bytes(&[50; 32])
            .verifying_key()
            .to_bytes(),
    );
    let registered = target.request(to, 1, Request::Register).await;
    assert_eq!(registered, Response::Registered { ttl: 60 });
    let mut asker = Peer2::bind("127.0.5.3", 51, false).await;
    let relay_request = Request::Relay { target: target_id };
    let Response::Relaying { circuit } = asker.request(to, 1, relay_request).await else {
        panic!("no circuit");
    };

    // Both ways, unchanged, each end on its own id.
    send_on(&asker.socket, circuit, b"hello", relay).await;
    let (back, inner, from) = next_relayed(&target.socket).await;
    assert_eq!((inner.as_slice(), from), (b"hello".as_slice(), relay));
    send_on(&target.socket, back, b"hi", relay).await;
    let (id, inner, _) = next_relayed(&asker.socket).await;
    assert_eq!((id, inner.as_slice()), (circuit, b"hi".as_slice()));

    // A third party on the asker's id is not carried: the target's next datagram is the
    // asker's.
    let intruder = tokio::net::UdpSocket::bind("127.0.5.4:0")
        .await
        .expect("binds");
    send_on(&intruder, circuit, b"junk", relay).await;
    send_on(&asker.socket, circuit, b"after", relay).await;
    let (_, inner, _) = next_relayed(&target.socket).await;
    assert_eq!(inner, b"after");

    // The circuit carries at most its bytes: full datagrams until the next would pass them.
    let full = vec![7u8; cairn_core::datagram::MAX_DATAGRAM];
    let used = (5 + 2 + 5) as u64;
    let fit = (cairn_core::CIRCUIT_BYTES - used) / full.len() as u64;
    for _ in 0..fit {
        send_on(&asker.socket, circuit, &full, relay).await;
        let (_, inner, _) = next_relayed(&target.socket).await;
        assert_eq!(inner.len(), full.len());
    }
    send_on(&asker.socket, circuit, &full, relay).await;
    // Spent: closed both ways. A new circuit still serves the asker.
    let relay_request = Request::Relay { target: target_id };
    let Response::Relaying { circuit: fresh } = asker.request(to, 2, relay_request).await else {
        panic!("no second circuit");
    };
    send_on(&asker.socket, circuit, b"late", relay).await;
    send_on(&asker.socket, fresh, b"fresh", relay).await;
    let (_, inner, _) = next_relayed(&target.socket).await;
    assert_eq!(inner, b"fresh", "nothing more on the spent circuit");
    let counts = rendezvous_of(&server).await;
    assert_eq!(counts.circuits_opened, 2, "{counts:?}");
    assert!(counts.relay_refused >= 3, "{counts:?}");
    assert!(
        counts.relayed_bytes <= 2 * cairn_core::CIRCUIT_BYTES,
        "{counts:?}"
    );
}
