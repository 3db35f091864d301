//! A peer of a node, for measuring it: a blocking TCP connection that has completed the
//! handshake, speaking with cairn's own codec (the wire tests use a hand-built one instead).
//! `cairn bench` and the benchmarks in `crates/cli/benches` drive nodes with it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use bytes::BytesMut;
use cairn_node::cairn_core::datagram::Real;
use cairn_node::cairn_core::netstring::{self, NetstringDecoder};
use cairn_node::cairn_core::wire;
use cairn_node::cairn_core::{Dialing, Greeting, Message, NetworkName, NodeId};
use ed25519_dalek::SigningKey;

/// A connection past the handshake.
pub struct Peer {
    stream: TcpStream,
    decoder: NetstringDecoder,
    buf: BytesMut,
    /// The node's public key, from its `welcome`.
    node_key: [u8; 32],
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Peer {
    /// Connects to `addr` (from `source`, a loopback address, if given) and completes the
    /// handshake under a key made from `seed`. Call it outside any async runtime.
    pub fn connect(addr: SocketAddr, source: Option<&str>, seed: u8) -> io::Result<Self> {
        let stream = match source {
            None => TcpStream::connect(addr)?,
            Some(source) => connect_from(addr, source)?,
        };
        stream.set_nodelay(true)?;
        let mut peer = Peer {
            stream,
            decoder: NetstringDecoder::new(1 << 20),
            buf: BytesMut::new(),
            node_key: [0; 32],
        };
        let suite = Real::new(SigningKey::from_bytes(&[seed; 32]));
        let greeting = Greeting {
            network: NetworkName::default(),
            port: 0,
            datagrams: false,
        };
        let mut handshake = Dialing::new(&suite, greeting, [seed; 32], addr, None);
        while let Some(message) = handshake.poll_message() {
            peer.send(&message)?;
        }
        let welcome = peer.receive()?;
        let dialed = handshake.handle_message(&suite, welcome).map_err(invalid)?;
        while let Some(message) = handshake.poll_message() {
            peer.send(&message)?;
        }
        peer.node_key = dialed.public_key;
        Ok(peer)
    }

    /// The id of the node at the other end, as its `welcome` proved it.
    #[allow(dead_code, reason = "the benches that include this file do not ask")]
    pub fn node_id(&self) -> NodeId {
        NodeId::of_public_key(&self.node_key)
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) -> io::Result<()> {
        let mut frame = BytesMut::new();
        netstring::encode(&wire::encode(message).map_err(invalid)?, &mut frame);
        self.stream.write_all(&frame)
    }

    /// The next message from the node.
    pub fn receive(&mut self) -> io::Result<Message> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).map_err(invalid)? {
                return wire::decode(&frame).map_err(invalid);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A blocking TCP connection from a given loopback source address.
fn connect_from(addr: SocketAddr, source: &str) -> io::Result<TcpStream> {
    let source: SocketAddr = format!("{source}:0")
        .parse()
        .map_err(|_| invalid(format!("{source:?} is not an IP address")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = rt.block_on(async {
        let socket = match source {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(source)?;
        socket.connect(addr).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}
