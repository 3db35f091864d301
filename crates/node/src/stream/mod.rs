//! Byte streams between nodes by public key (`docs/design.md`, "Byte streams";
//! `docs/protocol.md` 12): [`Dht::connect`] reaches a node as [`Dht::ping_key`] does (direct,
//! punched or relayed), then opens a QUIC connection to it over the node's own UDP socket,
//! authenticated by both nodes' ed25519 keys ([`tls`]); [`Dht::listen`] and [`Dht::accept`]
//! take those that arrive.
//!
//! The QUIC endpoint ([`quinn`]) is made at the first `connect` or `accept`, or the first
//! connection attempt that arrives: a node that never meets a stream pays nothing for them.
//! A node takes
//! a connection only while something listens, and within bounds
//! ([`MAX_STREAMS`], [`STREAMS_PER_HOST`], [`BACKLOG`]).

mod socket;
mod tls;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::dht::Dht;
use crate::driver::inbox::ToDriver;
use crate::ping::{PingError, Route};
use crate::ratelimit::Limiter;
use crate::udp::Sockets;
use cairn_core::Prefix;

pub(crate) use socket::is_quic;

/// Streams open at once through a node (dialed and accepted together).
pub const MAX_STREAMS: usize = 64;
/// Accepted streams open at once, at most: the rest of [`MAX_STREAMS`] is kept for this
/// node's own `connect`s.
pub const MAX_ACCEPTED: usize = 48;
/// Accepted streams open at once from one host (an IPv4 address, an IPv6 /64).
pub const STREAMS_PER_HOST: usize = 4;
/// Accepted streams held for `accept` callers, at most; one more is refused.
pub const BACKLOG: usize = 16;
/// A stream on which nothing arrived for this long (keep-alives included) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Each side sends a keep-alive this often while a stream is open: within the 30 s that many
/// NATs keep a UDP mapping, and well within [`IDLE_TIMEOUT`].
const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// The bytes a peer may have in flight to this node on a stream (QUIC flow control): about
/// 40 MB/s at a 12 ms round trip, 5 MB/s at 100 ms.
const RECEIVE_WINDOW: u32 = 512 * 1024;
/// QUIC packets queued from the sockets to the endpoint, at most.
const PACKET_QUEUE: usize = 1_024;
/// The application error code of a connection the acceptor took but will not serve: its
/// listener went away, or its backlog is full (`docs/protocol.md` 12).
const NOT_SERVED: u32 = 1;
/// The application error code of a dialer that sent no valid version byte in time.
const BAD_PREAMBLE: u32 = 2;
/// The application error code of a stream ended before its end.
pub(crate) const ABORTED: u32 = 3;
/// The byte a dialer writes first on its stream: the stream protocol's version.
const PREAMBLE: u8 = 0x01;
/// The largest UDP payload QUIC may use: a cairn datagram's.
const MAX_PAYLOAD: u16 = cairn_core::datagram::MAX_DATAGRAM as u16;

/// Why [`Dht::connect`] opened no stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The node could not be reached at all (as [`Dht::ping_key`] says).
    #[error(transparent)]
    Reach(#[from] PingError),
    /// This node runs without datagrams (`datagrams = false`): streams need them.
    #[error("this node runs without datagrams, which streams need")]
    DatagramsOff,
    /// The node was reached but does not accept streams (nothing on it called `accept`), or
    /// is at its bounds.
    #[error("the node refused the stream: it is not accepting, or is at its bounds")]
    Refused,
    /// This node has [`MAX_STREAMS`] streams open already.
    #[error("this node has {MAX_STREAMS} streams open; close one first")]
    Busy,
    /// The QUIC handshake failed (`reason` says how).
    #[error("the stream could not be opened ({route} route): {reason}")]
    Failed {
        /// How the node was reached.
        route: &'static str,
        /// What QUIC said.
        reason: String,
    },
}

/// Why [`Dht::accept`] returned no stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// This node runs without datagrams (`datagrams = false`): streams need them.
    #[error("this node runs without datagrams, which streams need")]
    DatagramsOff,
}

/// An encrypted, authenticated, ordered byte stream to another node: QUIC's first
/// bidirectional stream on a connection of its own. Read and write it with tokio's
/// [`AsyncReadExt`](tokio::io::AsyncReadExt) and [`AsyncWriteExt`](tokio::io::AsyncWriteExt);
/// `shutdown` ends this side's bytes (the peer reads an end), and [`Stream::close`] waits for
/// the peer to have them all before closing. Dropping a stream (or [`Stream::abort`]) ends it
/// at once: bytes still in flight may be lost, and the peer's reads and writes fail.
pub struct Stream {
    peer: [u8; 32],
    route: Option<Route>,
    addr: SocketAddr,
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    _slot: Slot,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &cairn_core::to_hex(&self.peer))
            .field("route", &self.route)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Stream {
    /// The other node's ed25519 public key, proven in the handshake.
    pub fn peer(&self) -> &[u8; 32] {
        &self.peer
    }

    /// How the other node was reached: known to the dialer; to the acceptor, `Relayed` for a
    /// stream that came through a circuit, else `None` (it came straight to this node's
    /// socket, through a punched hole or not).
    pub fn route(&self) -> Option<Route> {
        self.route
    }

    /// Where the other node's packets come from (for a relayed stream, a circuit address in
    /// `100::/64`, `docs/design.md` "Relaying").
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The round trip QUIC measures now.
    pub fn round_trip(&self) -> Duration {
        self.connection.rtt()
    }

    /// Ends this side's bytes, waits until the peer has them all (or has stopped reading, or
    /// the connection is gone; at most [`IDLE_TIMEOUT`]), then closes the connection.
    pub async fn close(mut self) -> io::Result<()> {
        match self.send.finish() {
            Ok(()) | Err(quinn::ClosedStream { .. }) => {}
        }
        // Bounded: a peer that stops reading (without saying so) cannot hold it forever.
        let stopped = tokio::time::timeout(IDLE_TIMEOUT, self.send.stopped()).await;
        match stopped {
            Ok(Ok(_)) => {
                self.connection.close(0u32.into(), b"done");
                Ok(())
            }
            Ok(Err(e)) => Err(self.explain(io::Error::from(e))),
            Err(_) => {
                self.connection
                    .close(ABORTED.into(), b"the bytes were not read in time");
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the other node did not take the last bytes within {IDLE_TIMEOUT:?}"),
                ))
            }
        }
    }

    /// An error from QUIC, said plainly: a relayed stream that stalls has most likely met
    /// its relay's bounds.
    fn explain(&self, error: io::Error) -> io::Error {
        let relayed = self.route == Some(Route::Relayed);
        match self.connection.close_reason() {
            Some(quinn::ConnectionError::TimedOut) if relayed => io::Error::new(
                io::ErrorKind::TimedOut,
                "the relayed stream stalled: its relay stopped carrying it (a relay carries at \
                 most 128 KiB and 2 minutes a circuit, docs/design.md \"Relaying\")",
            ),
            Some(quinn::ConnectionError::TimedOut) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the other node went silent for {IDLE_TIMEOUT:?}"),
            ),
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if close.error_code == NOT_SERVED.into() =>
            {
                let why = String::from_utf8_lossy(&close.reason);
                io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("the other node took the stream but did not serve it: {why}"),
                )
            }
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if close.error_code != 0u32.into() =>
            {
                let why = String::from_utf8_lossy(&close.reason);
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("the other node ended the stream before its end: {why}"),
                )
            }
            _ => error,
        }
    }

    /// A handle on the stream's connection, to close it while the stream is split.
    pub(crate) fn connection_handle(&self) -> quinn::Connection {
        self.connection.clone()
    }

    /// Closes a stream the acceptor took but will not serve.
    fn abandon(self, why: &[u8]) {
        self.connection.close(NOT_SERVED.into(), why);
    }

    /// Ends the stream at once, telling the other node `why` (its reads and writes fail,
    /// saying so).
    pub fn abort(self, why: &str) {
        self.connection.close(ABORTED.into(), why.as_bytes());
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Closed already (`close`, `abort`) or not: the first close is the one sent.
        self.connection
            .close(ABORTED.into(), b"the stream was dropped");
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.explain(e))),
            other => other,
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.explain(e))),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

/// A stream's place within the bounds, given back when it is dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    host: Option<Prefix>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.open = counts.open.saturating_sub(1);
            if let Some(host) = self.host {
                counts.accepted = counts.accepted.saturating_sub(1);
                if let Some(n) = counts.per_host.get_mut(&host) {
                    *n -= 1;
                    if *n == 0 {
                        counts.per_host.remove(&host);
                    }
                }
            }
        }
    }
}

/// Streams open now: in all, accepted, and accepted per host.
#[derive(Default)]
struct Counts {
    open: usize,
    accepted: usize,
    per_host: HashMap<Prefix, usize>,
}

impl Counts {
    /// Takes a slot if the bounds allow one (`host`: an accepted stream's host).
    fn take(counts: &Arc<Mutex<Counts>>, host: Option<Prefix>) -> Option<Slot> {
        let mut c = counts.lock().ok()?;
        if c.open >= MAX_STREAMS || (host.is_some() && c.accepted >= MAX_ACCEPTED) {
            return None;
        }
        if let Some(host) = host {
            let n = c.per_host.entry(host).or_default();
            if *n >= STREAMS_PER_HOST {
                return None;
            }
            *n += 1;
            c.accepted += 1;
        }
        c.open += 1;
        Some(Slot {
            counts: counts.clone(),
            host,
        })
    }
}

/// The node's streams: its QUIC endpoint once made, and what waits for `accept`.
pub(crate) struct Streams {
    secret: [u8; 32],
    public: [u8; 32],
    /// The node's sockets, not kept open by this: a stopped node's port is free at once,
    /// while its `Dht` handles live on.
    udp: Option<Weak<Sockets>>,
    to_driver: mpsc::Sender<Box<ToDriver>>,
    running: Mutex<Option<Running>>,
    /// Set once the node stops: no endpoint is made after it.
    stopped: AtomicBool,
    /// Listeners alive: the node takes streams while there is one. A stream is queued for
    /// them under this lock, so that the last one to go closes every stream queued.
    listeners: Arc<Mutex<usize>>,
    counts: Arc<Mutex<Counts>>,
    /// The node's handshake rate per host, which a QUIC handshake counts against.
    handshake_limit: Arc<Limiter>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Why there is no endpoint.
#[derive(Debug)]
enum NoEndpoint {
    Stopped,
    DatagramsOff,
    Failed(String),
}

impl From<NoEndpoint> for ConnectError {
    fn from(e: NoEndpoint) -> Self {
        match e {
            NoEndpoint::Stopped => ConnectError::Reach(PingError::Stopped),
            NoEndpoint::DatagramsOff => ConnectError::DatagramsOff,
            NoEndpoint::Failed(reason) => ConnectError::Failed {
                route: "no",
                reason,
            },
        }
    }
}

impl From<NoEndpoint> for AcceptError {
    fn from(e: NoEndpoint) -> Self {
        match e {
            NoEndpoint::DatagramsOff => AcceptError::DatagramsOff,
            NoEndpoint::Stopped | NoEndpoint::Failed(_) => AcceptError::Stopped,
        }
    }
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What exists once the endpoint does (made with it, so that a node without streams holds
/// none of it).
struct Running {
    endpoint: quinn::Endpoint,
    packets: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    accepted: Accepted,
}

/// The streams accepted and not yet taken.
type Accepted = Arc<tokio::sync::Mutex<mpsc::Receiver<Stream>>>;

impl Streams {
    pub(crate) fn new(
        identity: &crate::Identity,
        udp: Option<Arc<Sockets>>,
        to_driver: mpsc::Sender<Box<ToDriver>>,
        handshake_limit: Arc<Limiter>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Streams {
        Streams {
            secret: identity.signing_key().to_bytes(),
            public: identity.signing_key().verifying_key().to_bytes(),
            udp: udp.as_ref().map(Arc::downgrade),
            to_driver,
            running: Mutex::new(None),
            stopped: AtomicBool::new(false),
            listeners: Arc::default(),
            counts: Arc::default(),
            handshake_limit,
            metrics,
        }
    }

    /// A QUIC packet arrived from `from` (a circuit address if it came through one): to the
    /// endpoint, if there is one.
    /// The first connection attempt makes the endpoint, so that a node that accepts nothing
    /// refuses it at once rather than leaving the dialer to time out.
    pub(crate) fn deliver(&self, from: SocketAddr, bytes: Vec<u8>) {
        let packets = match self.running.lock() {
            Ok(running) => running.as_ref().map(|r| r.packets.clone()),
            Err(_) => return,
        };
        let packets = match packets {
            Some(packets) => Some(packets),
            // A client's first packet: a long header, padded to the full size.
            None if bytes.first().is_some_and(|b| b & 0x80 != 0)
                && bytes.len() >= usize::from(MAX_PAYLOAD) =>
            {
                self.endpoint().ok().and_then(|_| {
                    self.running
                        .lock()
                        .ok()?
                        .as_ref()
                        .map(|r| r.packets.clone())
                })
            }
            None => None,
        };
        if packets.is_none_or(|p| p.try_send((from, bytes)).is_err()) {
            self.metrics.datagram_refused("no_stream");
        }
    }

    /// Closes the endpoint: every stream ends.
    pub(crate) fn shut_down(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Ok(mut running) = self.running.lock() {
            if let Some(r) = running.take() {
                r.endpoint.close(0u32.into(), b"node stopped");
            }
        }
    }

    /// The endpoint and the streams it accepted, made now if they were not yet.
    fn endpoint(&self) -> Result<(quinn::Endpoint, Accepted), NoEndpoint> {
        let udp = self.udp.clone().ok_or(NoEndpoint::DatagramsOff)?;
        let sockets = udp.upgrade().ok_or(NoEndpoint::Stopped)?;
        let failed = |e: String| NoEndpoint::Failed(e);
        let mut running = self.running.lock().map_err(|_| failed("poisoned".into()))?;
        if self.stopped.load(Ordering::Relaxed) {
            return Err(NoEndpoint::Stopped);
        }
        if let Some(r) = running.as_ref() {
            return Ok((r.endpoint.clone(), r.accepted.clone()));
        }
        let local = sockets.local_addr().ok_or(NoEndpoint::DatagramsOff)?;
        let (packets_tx, packets) = mpsc::channel(PACKET_QUEUE);
        let socket = Arc::new(socket::Shared {
            udp,
            to_driver: self.to_driver.clone(),
            packets: Mutex::new(packets),
            local,
        });
        let mut config = quinn::EndpointConfig::default();
        config.grease_quic_bit(false);
        config
            .max_udp_payload_size(MAX_PAYLOAD)
            .map_err(|e| failed(e.to_string()))?;
        let server = tls::server(&self.secret, &self.public).map_err(|e| failed(e.to_string()))?;
        let server = QuicServerConfig::try_from(server).map_err(|e| failed(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
        server.transport_config(transport());
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| failed(e.to_string()))?;
        let (accepted_tx, accepted) = mpsc::channel(BACKLOG);
        let accepted = Arc::new(tokio::sync::Mutex::new(accepted));
        tokio::spawn(accept_loop(
            endpoint.clone(),
            self.listeners.clone(),
            self.counts.clone(),
            self.handshake_limit.clone(),
            accepted_tx,
        ));
        *running = Some(Running {
            endpoint: endpoint.clone(),
            packets: packets_tx,
            accepted: accepted.clone(),
        });
        Ok((endpoint, accepted))
    }
}

/// What both sides of a stream's QUIC connection use: packets of at most a cairn datagram's
/// size (no path MTU discovery), one bidirectional stream, keep-alives and an idle timeout.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.initial_mtu(MAX_PAYLOAD)
        .min_mtu(MAX_PAYLOAD)
        // What one peer can make the node buffer: a stream window, no DATAGRAM frames.
        .datagram_receive_buffer_size(None)
        .stream_receive_window(RECEIVE_WINDOW.into())
        .receive_window(RECEIVE_WINDOW.into())
        .mtu_discovery_config(None)
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    Arc::new(t)
}

/// Takes the connections that arrive: refused while nothing accepts or past the bounds, else
/// handshaken, and their stream held for `accept`.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    listeners: Arc<Mutex<usize>>,
    counts: Arc<Mutex<Counts>>,
    handshake_limit: Arc<Limiter>,
    accepted: mpsc::Sender<Stream>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let listening = listeners.lock().is_ok_and(|n| *n > 0);
        if !listening || accepted.capacity() == 0 {
            incoming.refuse();
            continue;
        }
        // A dialer proves its address first (QUIC's stateless retry, one more round trip):
        // a spoofer, which never sees the retry, cannot hold a slot while its handshake
        // times out.
        if !incoming.remote_address_validated() {
            if incoming.may_retry() {
                let _ = incoming.retry();
            } else {
                incoming.ignore();
            }
            continue;
        }
        let addr = socket::canonical(incoming.remote_address());
        // A handshake costs a key agreement and signatures, as a datagram session's does:
        // the same rate per host.
        if !handshake_limit.allow(addr.ip()) {
            incoming.refuse();
            continue;
        }
        // A stream through a circuit has the circuit's address: its relay bounds the
        // circuits to one node (4) and held by one host (2).
        let Some(slot) = Counts::take(&counts, Some(Prefix::host(addr.ip()))) else {
            incoming.refuse();
            continue;
        };
        let accepted = accepted.clone();
        let listeners = listeners.clone();
        tokio::spawn(async move {
            let route = crate::driver::circuit_ip(addr.ip()).then_some(Route::Relayed);
            let Some((connection, peer, send, recv)) = handshake(incoming).await else {
                return;
            };
            let stream = Stream {
                peer,
                route,
                addr,
                connection,
                send,
                recv,
                _slot: slot,
            };
            // Queued under the listeners' lock: the last listener, going, closes what is
            // queued, so nothing is queued after it.
            let Ok(listening) = listeners.lock() else {
                return;
            };
            if *listening == 0 {
                stream.abandon(b"not accepting");
            } else if let Err(mpsc::error::TrySendError::Full(stream)) = accepted.try_send(stream) {
                stream.abandon(b"busy");
            }
        });
    }
}

/// An arriving connection's handshake, its peer's key, and its stream once the dialer's
/// version byte arrived, all within [`IDLE_TIMEOUT`]; `None` (the connection closed with
/// [`BAD_PREAMBLE`] if it was made) if not.
async fn handshake(
    incoming: quinn::Incoming,
) -> Option<(
    quinn::Connection,
    [u8; 32],
    quinn::SendStream,
    quinn::RecvStream,
)> {
    let deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
    let connection = tokio::time::timeout_at(deadline, incoming)
        .await
        .ok()?
        .ok()?;
    let opened = tokio::time::timeout_at(deadline, async {
        let peer = peer_key(&connection).ok_or("no ed25519 key")?;
        let (send, mut recv) = connection.accept_bi().await.map_err(|_| "no stream")?;
        let mut preamble = [0u8; 1];
        recv.read_exact(&mut preamble)
            .await
            .map_err(|_| "no version byte")?;
        if preamble[0] != PREAMBLE {
            return Err("unknown stream version");
        }
        Ok((peer, send, recv))
    })
    .await
    .unwrap_or(Err("no version byte in time"));
    match opened {
        Ok((peer, send, recv)) => Some((connection, peer, send, recv)),
        Err(why) => {
            connection.close(BAD_PREAMBLE.into(), why.as_bytes());
            None
        }
    }
}

/// The key the peer proved in the handshake.
fn peer_key(connection: &quinn::Connection) -> Option<[u8; 32]> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::key_of(chain.first()?.as_ref())
}

impl Dht {
    /// Opens a byte stream to the node whose ed25519 public key is `public_key`, wherever it
    /// is: reached as [`Dht::ping_key`] reaches it (directly, through a punched hole, or
    /// relayed by its rendezvous point), then a QUIC connection over this node's UDP socket
    /// whose handshake proves the key. The other node must be listening ([`Dht::listen`]).
    pub async fn connect(&self, public_key: &[u8; 32]) -> Result<Stream, ConnectError> {
        let (endpoint, _) = self.streams.endpoint()?;
        // The slot first: a node at its bounds spends no punch nor circuit on a stream it
        // could not open.
        let slot = Counts::take(&self.streams.counts, None).ok_or(ConnectError::Busy)?;
        let (reached, to) = self.reach(public_key).await?;
        let route = reached.route;
        let failed = |reason: String| ConnectError::Failed {
            route: route.as_str(),
            reason,
        };
        let crypto = tls::client(&self.streams.secret, &self.streams.public, *public_key)
            .map_err(|e| failed(e.to_string()))?;
        let crypto = QuicClientConfig::try_from(crypto).map_err(|e| failed(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport());
        let connecting = endpoint
            .connect_with(config, socket::to_quinn(to), "cairn")
            .map_err(|e| failed(e.to_string()))?;
        let connection = match connecting.await {
            Ok(c) => c,
            Err(quinn::ConnectionError::ApplicationClosed(_)) => {
                return Err(ConnectError::Refused);
            }
            Err(e) if is_refused(&e) => return Err(ConnectError::Refused),
            Err(e) => return Err(failed(e.to_string())),
        };
        let (mut send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| failed(e.to_string()))?;
        send.write_all(&[PREAMBLE])
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(Stream {
            peer: *public_key,
            route: Some(route),
            addr: to,
            connection,
            send,
            recv,
            _slot: slot,
        })
    }

    /// Listens for streams other nodes open to this one ([`Dht::connect`]): the node takes
    /// them while a [`Listener`] is alive (it refuses them otherwise), holding those no
    /// [`Listener::accept`] waits for yet, up to [`BACKLOG`].
    pub fn listen(&self) -> Result<Listener, AcceptError> {
        let (_, accepted) = self.streams.endpoint()?;
        let mut listeners = self
            .streams
            .listeners
            .lock()
            .map_err(|_| AcceptError::Stopped)?;
        *listeners += 1;
        Ok(Listener {
            streams: self.streams.clone(),
            accepted,
        })
    }

    /// Waits for the next stream another node opens to this one: [`Dht::listen`] for one
    /// stream. Between calls nothing listens, and streams that arrive are refused: to take
    /// many, keep a [`Listener`].
    pub async fn accept(&self) -> Result<Stream, AcceptError> {
        self.listen()?.accept().await
    }
}

/// A node takes streams while one of these is alive ([`Dht::listen`]).
#[derive(Debug)]
pub struct Listener {
    streams: Arc<Streams>,
    accepted: Accepted,
}

impl Listener {
    /// The next stream, in the order they arrived.
    pub async fn accept(&self) -> Result<Stream, AcceptError> {
        let mut accepted = self.accepted.lock().await;
        accepted.recv().await.ok_or(AcceptError::Stopped)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Ok(mut listeners) = self.streams.listeners.lock() else {
            return;
        };
        *listeners = listeners.saturating_sub(1);
        if *listeners == 0 {
            // The last one: the streams nobody will take are closed (none is queued while
            // the lock is held).
            if let Ok(mut accepted) = self.accepted.try_lock() {
                while let Ok(stream) = accepted.try_recv() {
                    stream.abandon(b"not accepting");
                }
            }
        }
    }
}

/// Whether the node refused the connection (QUIC's `CONNECTION_REFUSED`).
fn is_refused(error: &quinn::ConnectionError) -> bool {
    matches!(error, quinn::ConnectionError::ConnectionClosed(c)
        if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED)
}
