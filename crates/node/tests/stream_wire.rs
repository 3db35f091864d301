//! `docs/protocol.md` section 12 as an outsider reads it: a QUIC client built here from that
//! page alone (quinn and rustls, none of cairn-node's stream code) opens a byte stream to a
//! live node's UDP port, proving a key of its own, and checks the node's.

mod common;

use std::sync::Arc;

use cairn_node::{Config, Dht};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Section 12: an ed25519 key as a DER SubjectPublicKeyInfo is these 12 bytes, then the key.
const SPKI_PREFIX: &str = "302a300506032b6570032100";

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Takes the server's raw key only if it is `expected`, in the section's encoding.
#[derive(Debug)]
struct Expect(Vec<u8>);

impl ServerCertVerifier for Expect {
    fn verify_server_cert(
        &self,
        presented: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if presented.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the key asked for".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        presented: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let spki = presented.as_ref().into();
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// A client holding the ed25519 key of `seed` (or none), dialing a node whose key is `node`.
fn client(seed: Option<[u8; 32]>, node: &[u8; 32]) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let expected = [unhex(SPKI_PREFIX), node.to_vec()].concat();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Expect(expected)));
    let mut tls = match seed {
        Some(seed) => {
            let public = ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes();
            // PKCS #8 v1 of an ed25519 seed (RFC 8410), for rustls to sign with.
            let pkcs8 = [unhex("302e020100300506032b657004220420"), seed.to_vec()].concat();
            let signer =
                rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8))
                    .expect("an ed25519 key");
            let spki = [unhex(SPKI_PREFIX), public.to_vec()].concat();
            let key = rustls::sign::CertifiedKey::new(vec![CertificateDer::from(spki)], signer);
            builder.with_client_cert_resolver(Arc::new(
                rustls::client::AlwaysResolvesClientRawPublicKeys::new(Arc::new(key)),
            ))
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"cairn-stream/1".to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).expect("a QUIC TLS config"),
    ));
    let mut transport = quinn::TransportConfig::default();
    transport.initial_mtu(1_200).mtu_discovery_config(None);
    config.transport_config(Arc::new(transport));
    config
}

fn endpoint() -> quinn::Endpoint {
    endpoint_on("127.0.4.9")
}

/// A client endpoint on its own socket at `ip`, one host of many on loopback.
fn endpoint_on(ip: &str) -> quinn::Endpoint {
    let mut config = quinn::EndpointConfig::default();
    // Section 12: never `grease_quic_bit`; packets of at most 1,200 bytes.
    config.grease_quic_bit(false);
    config.max_udp_payload_size(1_200).expect("a size");
    let socket = std::net::UdpSocket::bind(format!("{ip}:0")).expect("binds");
    quinn::Endpoint::new(config, None, socket, Arc::new(quinn::TokioRuntime)).expect("an endpoint")
}

/// Opens a stream on `connection` and writes the version byte.
async fn stream_on(connection: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, recv) = connection.open_bi().await.expect("a stream");
    send.write_all(&[0x01]).await.expect("the version byte");
    (send, recv)
}

/// The ed25519 public key of `seed`.
fn public_of(seed: [u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes()
}

/// Dials the node `key` at `addr` holding the key of `seed`, opens the stream and writes the
/// version byte.
async fn opened(
    seed: [u8; 32],
    key: &[u8; 32],
    addr: std::net::SocketAddr,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let connection = endpoint()
        .connect_with(client(Some(seed), key), addr, "cairn")
        .expect("starts")
        .await
        .expect("the handshake proves the node's key");
    let (send, recv) = stream_on(&connection).await;
    (connection, send, recv)
}

async fn node() -> (Dht, std::net::SocketAddr, [u8; 32]) {
    let (dht, addr) = common::start_on(Config::default(), "127.0.4.1").await;
    let key = dht.status().await.expect("running").public_key;
    (dht, addr, key)
}

#[tokio::test]
async fn a_client_written_from_the_page_opens_a_stream_proving_both_keys() {
    let (dht, addr, key) = node().await;
    let listener = dht.listen().expect("listens");
    let (_connection, mut send, mut recv) = opened([42; 32], &key, addr).await;
    send.write_all(b"hello").await.expect("writes");
    send.finish().expect("ends");

    let mut stream = listener.accept().await.expect("accepts");
    assert_eq!(
        stream.peer(),
        &public_of([42; 32]),
        "the node learned the client's key"
    );
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut got)
        .await
        .expect("reads");
    assert_eq!(got, b"hello");
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"world")
        .await
        .expect("writes");
    let closing = tokio::spawn(stream.close());
    let back = recv.read_to_end(1 << 10).await.expect("reads");
    assert_eq!(back, b"world");
    closing.await.expect("ran").expect("closes");
}

#[tokio::test]
async fn the_node_wants_the_dialers_key_and_the_version_byte() {
    let (dht, addr, key) = node().await;
    let listener = dht.listen().expect("listens");

    // No key of its own: the node ends the handshake.
    let anonymous = endpoint()
        .connect_with(client(None, &key), addr, "cairn")
        .expect("starts")
        .await;
    let refused = match anonymous {
        Err(e) => e,
        // TLS 1.3 lets the client finish before the server checks its certificate.
        Ok(connection) => connection.closed().await,
    };
    assert!(
        !matches!(refused, quinn::ConnectionError::TimedOut),
        "the node said no, rather than going silent: {refused:?}"
    );

    // Another version byte: the node closes with application error 2, and accepts nothing.
    let connection = endpoint()
        .connect_with(client(Some([43; 32]), &key), addr, "cairn")
        .expect("starts")
        .await
        .expect("connects");
    let (mut send, _recv) = connection.open_bi().await.expect("a stream");
    send.write_all(&[0x02, b'x']).await.expect("writes");
    match connection.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(2));
        }
        other => panic!("closed by {other:?}"),
    }
    // The next stream, with the right byte, is the one accepted.
    let _opened = opened([44; 32], &key, addr).await;
    let stream = listener.accept().await.expect("accepts");
    assert_eq!(stream.peer(), &public_of([44; 32]));
}

#[tokio::test]
async fn dialers_that_never_prove_their_address_hold_no_slot_and_an_honest_one_is_served() {
    let (dht, addr, key) = node().await;
    let listener = dht.listen().expect("listens");

    // A client's first datagrams, caught by a socket that only listens: each a connection's
    // Initial, as a spoofer would send it from addresses it does not receive at.
    let catcher = tokio::net::UdpSocket::bind("127.0.4.20:0")
        .await
        .expect("binds");
    let catcher_addr = catcher.local_addr().expect("bound");
    let dialer = endpoint();
    let mut initials: Vec<Vec<u8>> = Vec::new();
    let spoofed = cairn_node::MAX_STREAMS + 8;
    let mut attempts = Vec::new();
    while initials.len() < spoofed {
        let connecting = dialer
            .connect_with(client(Some([50; 32]), &key), catcher_addr, "cairn")
            .expect("starts");
        attempts.push(tokio::spawn(connecting));
        let mut buf = vec![0u8; 2048];
        let (n, _) = catcher.recv_from(&mut buf).await.expect("an Initial");
        buf.truncate(n);
        if !initials.contains(&buf) {
            initials.push(buf);
        }
    }
    for attempt in &attempts {
        attempt.abort();
    }
    // Each sent to the node from an address of its own that never answers.
    let mut spoofers = Vec::new();
    for (n, initial) in initials.iter().enumerate() {
        let socket = tokio::net::UdpSocket::bind(format!("127.0.5.{}:0", n + 1))
            .await
            .expect("binds");
        socket.send_to(initial, addr).await.expect("sends");
        spoofers.push(socket);
    }
    // None holds one of the node's `MAX_STREAMS` slots: an honest dialer is served.
    let _opened = opened([51; 32], &key, addr).await;
    let stream = listener.accept().await.expect("accepts");
    assert_eq!(
        stream.peer(),
        &public_of([51; 32]),
        "an honest dialer is served"
    );
    // Each was asked to prove its address first: a Retry, smaller than what asked.
    let mut retry = vec![0u8; 2048];
    let (n, _) = spoofers[0].recv_from(&mut retry).await.expect("an answer");
    assert_eq!(
        retry[0] & 0xf0,
        0xf0,
        "a Retry packet (long header, type 3): {:02x}",
        retry[0]
    );
    assert!(
        n < 200,
        "the Retry is smaller than the 1,200-byte Initial: {n}"
    );
}

#[tokio::test]
async fn a_hosts_stream_handshakes_count_against_its_handshake_rate_and_another_host_is_served() {
    // Three handshakes a host, refilled about once an hour: the fourth from one host is
    // refused, and a dialer on another host is still served.
    let mut config = Config::default();
    config.handshake_rate = cairn_node::Rate {
        per_second: 0.000_3,
        burst: 3.0,
    };
    let (dht, addr) = common::start_on(config, "127.0.4.31").await;
    let key = dht.status().await.expect("running").public_key;
    let listener = dht.listen().expect("listens");
    let dial_from = |ip: &'static str, seed: u8| async move {
        let endpoint = endpoint_on(ip);
        let connecting = endpoint
            .connect_with(client(Some([seed; 32]), &key), addr, "cairn")
            .expect("starts");
        (connecting.await, endpoint)
    };
    let mut held = Vec::new();
    for seed in 60..63 {
        let (connected, endpoint) = dial_from("127.0.4.32", seed).await;
        let connection = connected.expect("within the host's rate");
        let (send, recv) = stream_on(&connection).await;
        held.push((connection, send, recv, endpoint));
    }
    let (refused, _) = dial_from("127.0.4.32", 63).await;
    match refused {
        Err(quinn::ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(
                close.error_code,
                quinn::TransportErrorCode::CONNECTION_REFUSED
            );
        }
        other => panic!("the fourth handshake from one host: {other:?}"),
    }
    let (served, _endpoint) = dial_from("127.0.4.33", 64).await;
    let connection = served.expect("another host is served");
    let _stream = stream_on(&connection).await;
    // The three first, then the other host's: the refused one never queued.
    for _ in 0..3 {
        listener.accept().await.expect("accepts");
    }
    let stream = listener.accept().await.expect("accepts");
    assert_eq!(stream.peer(), &public_of([64; 32]));
}

#[tokio::test]
async fn accepted_streams_leave_room_for_the_nodes_own_and_each_host_gets_its_share() {
    let (dht, addr, key) = node().await;
    let listener = dht.listen().expect("listens");
    // Other hosts open streams until the node has accepted all it takes: `STREAMS_PER_HOST`
    // from each, one more from a host refused, and none from a new host past `MAX_ACCEPTED`.
    let mut held = Vec::new();
    let hosts = cairn_node::MAX_ACCEPTED / cairn_node::STREAMS_PER_HOST;
    for host in 0..=hosts {
        for n in 0..=cairn_node::STREAMS_PER_HOST {
            let seed = [u8::try_from(host * 8 + n).expect("small"); 32];
            let endpoint = endpoint_on(&format!("127.0.6.{}", host + 1));
            let connected = endpoint
                .connect_with(client(Some(seed), &key), addr, "cairn")
                .expect("starts")
                .await;
            let within = host < hosts && n < cairn_node::STREAMS_PER_HOST;
            match connected {
                Ok(connection) if within => {
                    let (send, recv) = stream_on(&connection).await;
                    // Taken at once, so that the backlog (16) is not the bound met.
                    let taken = listener.accept().await.expect("accepts");
                    held.push((connection, send, recv, endpoint, taken));
                }
                Err(quinn::ConnectionError::ConnectionClosed(close)) if !within => {
                    assert_eq!(
                        close.error_code,
                        quinn::TransportErrorCode::CONNECTION_REFUSED
                    );
                }
                other => panic!("host {host}, stream {n} (within the bounds: {within}): {other:?}"),
            }
        }
    }
    assert_eq!(held.len(), cairn_node::MAX_ACCEPTED);
    // The node's own stream to another node still opens: accepted ones cannot take it all.
    let (other, _) = common::start_on(Config::default(), "127.0.4.50").await;
    other.bootstrap(vec![addr]).await.expect("joins");
    let other_key = other.status().await.expect("running").public_key;
    let _other_listens = other.listen().expect("listens");
    let mut own = dht
        .connect(&other_key)
        .await
        .expect("the node's own stream opens");
    tokio::io::AsyncWriteExt::write_all(&mut own, b"mine")
        .await
        .expect("writes");
}
