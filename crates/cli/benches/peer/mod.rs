//! A peer written for the benchmarks: a TCP connection to a node that has completed the
//! handshake, with cairn's own codec (the wire tests use a hand-built one instead).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use bytes::BytesMut;
use cairn_node::cairn_core::handshake::{Role, Transcript};
use cairn_node::cairn_core::message::{Auth, Hello, Message, NetworkName, PROTOCOL_VERSION};
use cairn_node::cairn_core::netstring::{self, NetstringDecoder};
use cairn_node::cairn_core::wire;
use ed25519_dalek::SigningKey;

/// A connection past the handshake.
pub struct Peer {
    stream: TcpStream,
    decoder: NetstringDecoder,
    buf: BytesMut,
}

impl Peer {
    /// Connects to `addr` (from `source`, a loopback address, if given) and completes the
    /// handshake under a key made from `seed`.
    pub fn connect(addr: SocketAddr, source: Option<&str>, seed: u8) -> Self {
        let stream = match source {
            None => TcpStream::connect(addr).expect("connects"),
            Some(source) => connect_from(addr, source),
        };
        stream.set_nodelay(true).expect("nodelay");
        let mut peer = Peer {
            stream,
            decoder: NetstringDecoder::new(1 << 20),
            buf: BytesMut::new(),
        };
        let key = SigningKey::from_bytes(&[seed; 32]);
        let network = NetworkName::default();
        let hello = Hello {
            version: PROTOCOL_VERSION,
            network: network.clone(),
            public_key: key.verifying_key().to_bytes(),
            nonce: [seed; 32],
            port: 0,
        };
        peer.send(&Message::Hello(hello.clone()));
        let Message::Welcome(welcome) = peer.receive() else {
            panic!("expected welcome")
        };
        let transcript = Transcript {
            network: network.as_str(),
            dialer_key: hello.public_key,
            dialer_nonce: hello.nonce,
            listener_key: welcome.public_key,
            listener_nonce: welcome.nonce,
        };
        let signature = transcript.sign(Role::Dialer, &key);
        peer.send(&Message::Auth(Auth { signature }));
        peer
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) {
        let mut frame = BytesMut::new();
        netstring::encode(&wire::encode(message).expect("encodes"), &mut frame);
        self.stream.write_all(&frame).expect("writes");
    }

    /// The next message from the node.
    pub fn receive(&mut self) -> Message {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("valid frames") {
                return wire::decode(&frame).expect("valid messages");
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).expect("reads");
            assert!(n > 0, "the node closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A blocking TCP connection from a given loopback source address.
fn connect_from(addr: SocketAddr, source: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let source: SocketAddr = format!("{source}:0").parse().expect("address");
        socket.bind(source).expect("binds the source address");
        socket.connect(addr).await.expect("connects")
    });
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}
