//! One TCP connection: the handshake (`docs/protocol.md`, "Handshake"), then frames in and
//! out, in one task.
//!
//! Each connection task owns its socket. It decodes and verifies every payload itself, so
//! signature checks run on the runtime's worker threads in parallel and never on the driver's
//! event loop. It talks to the driver over channels: requests and responses up, frames to send
//! down. A dialed connection tracks the requests in flight on it, and when it ends for any
//! reason it reports every one of them as failed, so the node never waits on a dead socket.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_core::netstring::{self, NetstringDecoder};
use cairn_core::wire;
use cairn_core::{
    Auth, Contact, ErrorCode, ErrorReply, Hello, Message, NetworkName, NodeId, PROTOCOL_VERSION,
    Request, Requester, Response, Role, Transcript, Welcome,
};
use rand::RngCore;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use crate::driver::inbox::{Outgoing, ToDriver};
use crate::error::SeedFailure;
use crate::inbound::Place;
use crate::shared::Shared;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("framing: {0}")]
    Frame(#[from] netstring::FrameError),
    /// A message of this node's could not be encoded.
    #[error(transparent)]
    Encode(#[from] wire::EncodeError),
    #[error("timed out")]
    Timeout,
    /// The dialer did not complete the handshake within `handshake_timeout`.
    #[error("the handshake was not done in time")]
    HandshakeTimeout,
    /// A newcomer took this connection's place.
    #[error("evicted to make room for a newcomer")]
    Evicted,
    #[error("closed by peer")]
    Eof,
    /// The dialer's first frame was not a valid `hello`.
    #[error("the first frame is not hello")]
    NotHello,
    /// The dialer speaks another version or network; it was answered 426.
    #[error("the dialer speaks version {version} on network {network:?}")]
    Mismatch { version: u64, network: NetworkName },
    /// The dialer's `auth` signature does not verify against the transcript.
    #[error("the auth signature does not verify")]
    BadAuth,
    /// The peer sent `max_invalid_messages` frames that were not valid messages.
    #[error("{0} invalid messages")]
    TooManyInvalid(u32),
    /// The listener answered `hello` with an error (426: version or network mismatch).
    #[error("refused ({code}): {message}")]
    Refused { code: ErrorCode, message: String },
    /// The listener answered `hello` with something other than `welcome` or an error.
    #[error("the answer to hello is not welcome")]
    NotWelcome,
    /// The `welcome` names another network than this node's.
    #[error("the listener is on network {0:?}")]
    WrongNetwork(NetworkName),
    /// The `welcome` signature does not verify against the transcript.
    #[error("the welcome signature does not verify")]
    BadWelcome,
    /// The listener proved to be another node than the one the dialer meant to reach.
    #[error("{addr} is node {found}, not the one expected")]
    UnexpectedPeer { addr: SocketAddr, found: NodeId },
    /// The listener sent a frame that is not a response.
    #[error("the listener sent a {0}, not a response")]
    NotAResponse(&'static str),
    /// A response that could not be decoded and whose request id is unknown.
    #[error("undecodable response: {0}")]
    BadResponse(wire::DecodeError),
}

impl ConnError {
    /// What a dial that failed with this error tells a bootstrap about its address.
    fn seed_failure(&self) -> SeedFailure {
        match self {
            ConnError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                SeedFailure::Refused
            }
            ConnError::Timeout | ConnError::HandshakeTimeout => SeedFailure::TimedOut,
            ConnError::Refused { code, message } if *code == ErrorCode::MISMATCH => {
                SeedFailure::WrongNetwork(message.clone())
            }
            ConnError::WrongNetwork(network) => {
                SeedFailure::WrongNetwork(format!("it is on network {network:?}"))
            }
            ConnError::Frame(_)
            | ConnError::NotWelcome
            | ConnError::BadWelcome
            | ConnError::NotAResponse(_)
            | ConnError::BadResponse(_)
            | ConnError::Eof => SeedFailure::NotCairn(self.to_string()),
            other => SeedFailure::Other(other.to_string()),
        }
    }
}

/// How long a connection may take, once the node shuts down, to answer what it was asked.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How many `notify` frames may wait to be written on one incoming connection; past that the
/// driver drops them (the dialer, not reading, will get the newest at its next renewal).
pub(crate) const NOTIFY_QUEUE: usize = 64;

/// How much the reader asks the socket for at a time.
const READ_CHUNK: usize = 2 * 1024;

/// Reads netstring frames, closing on idle or mid-frame stalls.
struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    decoder: NetstringDecoder,
    last_read: Instant,
    /// Set while the connection carries a `listen` subscription: silence is then expected for
    /// up to the subscription's ttl, and the idle limit is this instead of `idle_timeout`.
    quiet: Option<Duration>,
}

impl FrameReader {
    fn new(half: OwnedReadHalf, max_frame: usize) -> Self {
        FrameReader {
            half,
            buf: BytesMut::new(),
            decoder: NetstringDecoder::new(max_frame),
            last_read: Instant::now(),
            quiet: None,
        }
    }

    /// The next frame among the bytes that have already arrived (buffered, or readable without
    /// waiting), if there is a whole one.
    fn arrived(&mut self) -> Result<Option<Bytes>, ConnError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(_) => self.last_read = Instant::now(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next frame. Waits at most `idle` after the last byte when no frame is under way,
    /// and `stall` when one is (cancel-safe: a partial frame stays buffered).
    async fn next(&mut self, shared: &Shared) -> Result<Bytes, ConnError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(frame);
            }
            let limit = if self.buf.is_empty() {
                // Between frames the connection holds no buffer at all: wait for readiness
                // first and allocate only for bytes that are there.
                self.buf = BytesMut::new();
                self.quiet.unwrap_or(shared.config.idle_timeout)
            } else {
                shared.config.read_timeout
            };
            timeout_at(self.last_read + limit, self.half.readable())
                .await
                .map_err(|_| ConnError::Timeout)??;
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => return Err(ConnError::Eof),
                Ok(_) => self.last_read = Instant::now(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

async fn write_message(half: &mut OwnedWriteHalf, message: &Message) -> Result<(), ConnError> {
    let mut frame = BytesMut::new();
    netstring::encode(&wire::encode(message)?, &mut frame);
    half.write_all(&frame).await?;
    Ok(())
}

/// Writes a message to a dialer, which must take it within `read_timeout`: a peer that stops
/// reading its answers would otherwise hold its connection (and its slot) for ever.
async fn write_within(
    half: &mut OwnedWriteHalf,
    message: &Message,
    shared: &Shared,
) -> Result<(), ConnError> {
    timeout(shared.config.read_timeout, write_message(half, message))
        .await
        .map_err(|_| ConnError::Timeout)?
}

/// How long a connection carrying subscriptions may stay silent: until they all ran out
/// (`listen_ttl`), plus the usual idle time.
fn quiet_limit(shared: &Shared) -> Duration {
    shared.config.protocol.listen_ttl + shared.config.idle_timeout
}

fn nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

/// Serves one accepted connection until it closes.
/// Serves one accepted connection until it closes, is evicted, or misses its handshake
/// deadline; `place` is its place in the inbound table, freed when this ends.
pub(crate) async fn serve_inbound(
    stream: TcpStream,
    peer: SocketAddr,
    place: Place,
    shared: Arc<Shared>,
) {
    let mut listened = false;
    let result = tokio::select! {
        result = serve_inbound_inner(stream, peer, &place, &shared, &mut listened) => result,
        () = place.evicted() => Err(ConnError::Evicted),
    };
    if listened {
        // Its subscriptions end with it.
        let _ = shared
            .tell(ToDriver::InboundClosed {
                connection: place.id(),
            })
            .await;
    }
    match result {
        Err(ConnError::HandshakeTimeout) => {
            shared.metrics.handshake_timeouts.inc();
            tracing::debug!(%peer, "inbound connection closed: handshake not done in time");
        }
        Err(e) => tracing::debug!(%peer, "inbound connection closed: {e}"),
        Ok(()) => {}
    }
}

/// What the listener's side of the handshake leaves for serving: the socket halves, the
/// transcript (to check `auth` against) and who the dialer claims to be.
type Accepted<'a> = (FrameReader, OwnedWriteHalf, Transcript<'a>, Requester);

/// The listener's side of the handshake: `hello` in, `welcome` (or 426) out.
async fn accept_handshake(
    stream: TcpStream,
    peer: SocketAddr,
    connection: u64,
    shared: &Shared,
) -> Result<Accepted<'_>, ConnError> {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, shared.config.max_frame);
    let first = timeout(shared.config.read_timeout, reader.next(shared))
        .await
        .map_err(|_| ConnError::Timeout)??;
    let hello = match wire::decode(&first) {
        Ok(Message::Hello(hello)) => hello,
        _ => return Err(ConnError::NotHello),
    };
    if hello.version != PROTOCOL_VERSION || hello.network != shared.config.network {
        let reply = ErrorReply::new(
            ErrorCode::MISMATCH,
            format!(
                "this node speaks version {PROTOCOL_VERSION} on network {:?}",
                shared.config.network.as_str()
            ),
        );
        write_message(
            &mut write,
            &Message::Response {
                id: 0,
                response: Response::Error(reply),
            },
        )
        .await?;
        return Err(ConnError::Mismatch {
            version: hello.version,
            network: hello.network,
        });
    }
    let transcript = Transcript {
        network: shared.config.network.as_str(),
        dialer_key: hello.public_key,
        dialer_nonce: hello.nonce,
        listener_key: shared.identity.public_key(),
        listener_nonce: nonce(),
    };
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        network: shared.config.network.clone(),
        public_key: transcript.listener_key,
        nonce: transcript.listener_nonce,
        port: shared.listen_port,
        signature: transcript.sign(Role::Listener, shared.identity.signing_key()),
    };
    write_message(&mut write, &Message::Welcome(welcome)).await?;

    let requester = Requester {
        id: NodeId::of_public_key(&hello.public_key),
        addr: (hello.port != 0).then(|| SocketAddr::new(peer.ip(), hello.port)),
        verified: false,
        source: peer.ip(),
        connection,
    };
    Ok((reader, write, transcript, requester))
}

/// An authenticated-or-not inbound connection past `welcome`: what serving it needs.
struct Inbound<'a> {
    place: &'a Place,
    /// The dialer's address, for its host's rate limits.
    ip: IpAddr,
    write: OwnedWriteHalf,
    transcript: Transcript<'a>,
    requester: Requester,
    /// Where the driver sends this connection's answers.
    reply: mpsc::Sender<Box<Message>>,
    invalid: u32,
    /// Requests handed to the driver and not yet answered.
    outstanding: usize,
    /// Whether the dialer ever sent `listen`: the connection may then carry subscriptions.
    listened: bool,
}

impl Inbound<'_> {
    /// The 429 a request earns when its host is over a rate limit, counted.
    fn over_rate(&self, id: u64, request: &Request, shared: &Shared) -> Option<Message> {
        let (limit, counter, what) = if !shared.request_limit.allow(self.ip) {
            (
                shared.config.request_rate,
                &shared.metrics.requests_rate_limited,
                "requests",
            )
        } else if matches!(request, Request::Store { .. }) && !shared.store_limit.allow(self.ip) {
            (
                shared.config.store_rate,
                &shared.metrics.stores_rate_limited,
                "stores",
            )
        } else {
            return None;
        };
        counter.inc();
        let message = format!(
            "over the limit of {} {what} per second from one host; slow down",
            limit.per_second
        );
        let reply = ErrorReply::new(ErrorCode::OVER_LIMIT, message);
        Some(Message::Response {
            id,
            response: Response::Error(reply),
        })
    }

    /// Handles one frame from the dialer: `auth`, a request (handed to the driver), or
    /// something invalid (answered 400, counted).
    async fn on_frame(&mut self, frame: &[u8], shared: &Shared) -> Result<(), ConnError> {
        let answer = match wire::decode(frame) {
            Ok(Message::Auth(Auth { signature })) if !self.requester.verified => {
                if !self.transcript.verify(Role::Dialer, &signature) {
                    return Err(ConnError::BadAuth);
                }
                self.requester.verified = true;
                self.place.authenticated();
                // The requests it pipelined ahead of `auth` were answered unverified, so it
                // did not enter the routing table then; it does now.
                if self.requester.addr.is_some() {
                    let verified = ToDriver::Verified {
                        requester: self.requester,
                    };
                    let _ = shared.tell(verified).await;
                }
                return Ok(());
            }
            Ok(Message::Request { id, request }) => {
                if let Some(refusal) = self.over_rate(id, &request, shared) {
                    return write_within(&mut self.write, &refusal, shared).await;
                }
                self.listened |= matches!(request, Request::Listen { .. });
                let up = ToDriver::Request {
                    requester: self.requester,
                    id,
                    request: Box::new(request),
                    reply: self.reply.clone(),
                };
                if shared.tell(up).await.is_ok() {
                    self.outstanding += 1;
                }
                return Ok(());
            }
            Ok(other) => wire::DecodeError {
                id: None,
                code: ErrorCode::BAD_REQUEST,
                reason: match other {
                    Message::Auth(_) => "a second auth".to_owned(),
                    other => format!("unexpected {} from the dialer", kind(&other)),
                },
            },
            Err(e) => e,
        };
        self.invalid += 1;
        shared.metrics.invalid_messages.inc();
        write_within(&mut self.write, &answer.reply(), shared).await?;
        if self.invalid >= shared.config.max_invalid_messages {
            return Err(ConnError::TooManyInvalid(self.invalid));
        }
        Ok(())
    }
}

async fn serve_inbound_inner(
    stream: TcpStream,
    peer: SocketAddr,
    place: &Place,
    shared: &Shared,
    listened: &mut bool,
) -> Result<(), ConnError> {
    // `hello` and a verified `auth` must both arrive by this deadline.
    let handshake_deadline = Instant::now() + shared.config.handshake_timeout;
    // Boxed: the handshake's state is freed once it is done, rather than kept inline in a
    // task that may idle for a minute.
    let (mut reader, write, transcript, requester) = timeout_at(
        handshake_deadline,
        Box::pin(accept_handshake(stream, peer, place.id(), shared)),
    )
    .await
    .map_err(|_| ConnError::HandshakeTimeout)??;
    // Room for every answer owed, so the driver never finds this queue full of answers, and
    // for `NOTIFY_QUEUE` notifications on top (the driver leaves the answers' room free).
    let in_service = shared.config.max_requests_per_connection.max(1);
    let (reply, mut replies) = mpsc::channel::<Box<Message>>(in_service + NOTIFY_QUEUE);
    let mut conn = Inbound {
        place,
        ip: peer.ip(),
        write,
        transcript,
        requester,
        reply,
        invalid: 0,
        outstanding: 0,
        listened: false,
    };
    let Some(mut shutdown) = shared.shutdown_signal() else {
        return Ok(());
    };
    // At shutdown the connection reads no new frames, but hands the driver those that had
    // already arrived, and stays until every request is answered, for at most
    // `SHUTDOWN_GRACE`.
    let mut draining: Option<Instant> = None;
    // What the inbound table last heard: it is told only of changes, since every request moves
    // the count (up when handed over, down when answered) and each report takes its lock.
    let mut reported = None;
    loop {
        if draining.is_some() && conn.outstanding == 0 {
            return Ok(());
        }
        if reported != Some(conn.outstanding) {
            place.active(conn.outstanding);
            reported = Some(conn.outstanding);
        }
        tokio::select! {
            () = tokio::time::sleep_until(handshake_deadline), if !conn.requester.verified => {
                return Err(ConnError::HandshakeTimeout);
            }
            _ = shutdown.changed(), if draining.is_none() => {
                draining = Some(Instant::now() + SHUTDOWN_GRACE);
                while conn.outstanding < in_service {
                    let Some(frame) = reader.arrived()? else { break };
                    conn.on_frame(&frame, shared).await?;
                }
            }
            () = tokio::time::sleep_until(draining.unwrap_or_else(Instant::now)), if draining.is_some() => {
                return Ok(());
            }
            Some(message) = replies.recv() => {
                if !matches!(*message, Message::Notify { .. }) {
                    conn.outstanding = conn.outstanding.saturating_sub(1);
                }
                write_within(&mut conn.write, &message, shared).await?;
            }
            // At `in_service` requests in service, reading stops: backpressure, not drops.
            frame = reader.next(shared), if draining.is_none() && conn.outstanding < in_service => {
                conn.on_frame(&frame?, shared).await?;
                if conn.listened && !*listened {
                    *listened = true;
                    reader.quiet = Some(quiet_limit(shared));
                }
            }
        }
    }
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Hello(_) => "hello",
        Message::Welcome(_) => "welcome",
        Message::Auth(_) => "auth",
        Message::Request { .. } => "request",
        Message::Response { .. } => "response",
        Message::Notify { .. } => "notify",
    }
}

/// Opens a connection to `addr` and carries `requests` over it until the pool drops its
/// sender and nothing is in flight, or the connection fails.
pub(crate) async fn dial(
    addr: SocketAddr,
    expected: Option<NodeId>,
    conn: u64,
    mut requests: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut in_flight = HashSet::new();
    let mut subscriptions = DialedSubscriptions::default();
    let permit = match &shared.connection_budget {
        None => None,
        Some(budget) => match timeout(
            shared.config.protocol.request_timeout,
            budget.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                shared.metrics.budget_exhausted.inc();
                tracing::warn!(%addr, "connection budget exhausted: request fails instead of opening a connection");
                None
            }
        },
    };
    let budget_ok = permit.is_some() || shared.connection_budget.is_none();
    let mut failure = None;
    if budget_ok {
        match Box::pin(connect(
            addr,
            expected,
            &mut requests,
            &mut in_flight,
            &shared,
        ))
        .await
        {
            Ok((reader, write, peer)) => {
                shared.metrics.connections_opened.inc();
                let carried = carry(
                    reader,
                    write,
                    peer,
                    &mut requests,
                    &mut in_flight,
                    &mut subscriptions,
                    &shared,
                )
                .await;
                if let Err(e) = carried {
                    tracing::debug!(%addr, "outbound connection closed: {e}");
                }
                // The subscriptions it carried are lost with it: the node hears of them as
                // failed `listen` requests.
                in_flight.extend(subscriptions.live.into_keys());
            }
            Err(e) => {
                shared.metrics.dial_failures.inc();
                tracing::debug!(%addr, "cannot connect: {e}");
                failure = Some(e.seed_failure());
            }
        }
    }
    drop(permit);
    requests.close();
    while let Ok((id, _)) = requests.try_recv() {
        in_flight.insert(id);
    }
    let closed = ToDriver::Closed {
        addr,
        conn,
        failure,
    };
    let _ = shared.tell(closed).await;
    if !in_flight.is_empty() {
        let ids = in_flight.into_iter().collect();
        let _ = shared.tell(ToDriver::Failed { ids }).await;
    }
}

/// Opens a TCP connection to `addr`. A node that listens on a specific address dials from it
/// too (from the one of its listen addresses of the same family, when both are loopback or
/// both not), so that its peers see it at the host it announces: on a host with several
/// addresses, and in a test network of many loopback addresses, its connections then count
/// against its own address, not another's. A dual-stack node dials IPv6 peers from its IPv6
/// address, so that they store it under that address.
async fn open(addr: SocketAddr, listening: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let same_kind = |listen: &IpAddr| {
        listen.is_loopback() == addr.ip().is_loopback() && listen.is_ipv4() == addr.ip().is_ipv4()
    };
    let Some(listen) = listening
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| same_kind(ip) && !ip.is_unspecified())
    else {
        return TcpStream::connect(addr).await;
    };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(listen, 0))?;
    socket.connect(addr).await
}

/// Connects and runs the dialer's side of the handshake.
///
/// The requests already queued go out right behind `hello`, before `welcome` has come back
/// (pipelining): a request to a new contact costs one round trip after the TCP handshake, not
/// two. If the welcome then fails (426, a bad signature, another node than expected), the
/// connection ends before any answer is read, and those requests fail.
async fn connect(
    addr: SocketAddr,
    expected: Option<NodeId>,
    requests: &mut mpsc::Receiver<Outgoing>,
    in_flight: &mut HashSet<u64>,
    shared: &Shared,
) -> Result<(FrameReader, OwnedWriteHalf, Contact), ConnError> {
    let stream = timeout(
        shared.config.protocol.request_timeout,
        open(addr, &shared.listening),
    )
    .await
    .map_err(|_| ConnError::Timeout)??;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, shared.config.max_frame);
    let hello = Hello {
        version: PROTOCOL_VERSION,
        network: shared.config.network.clone(),
        public_key: shared.identity.public_key(),
        nonce: nonce(),
        port: shared.listen_port,
    };
    let mut burst = BytesMut::new();
    netstring::encode(&wire::encode(&Message::Hello(hello.clone()))?, &mut burst);
    while let Ok((id, request)) = requests.try_recv() {
        let message = Message::Request {
            id,
            request: *request,
        };
        netstring::encode(&wire::encode(&message)?, &mut burst);
        in_flight.insert(id);
    }
    write.write_all(&burst).await?;
    let frame = timeout(shared.config.read_timeout, reader.next(shared))
        .await
        .map_err(|_| ConnError::Timeout)??;
    let welcome = match wire::decode(&frame) {
        Ok(Message::Welcome(welcome)) => welcome,
        Ok(Message::Response {
            response: Response::Error(e),
            ..
        }) => {
            return Err(ConnError::Refused {
                code: e.code,
                message: e.message,
            });
        }
        _ => return Err(ConnError::NotWelcome),
    };
    let transcript = Transcript {
        network: shared.config.network.as_str(),
        dialer_key: hello.public_key,
        dialer_nonce: hello.nonce,
        listener_key: welcome.public_key,
        listener_nonce: welcome.nonce,
    };
    if welcome.network != shared.config.network {
        return Err(ConnError::WrongNetwork(welcome.network));
    }
    if !transcript.verify(Role::Listener, &welcome.signature) {
        return Err(ConnError::BadWelcome);
    }
    let id = NodeId::of_public_key(&welcome.public_key);
    if expected.is_some_and(|e| e != id) {
        return Err(ConnError::UnexpectedPeer { addr, found: id });
    }
    let signature = transcript.sign(Role::Dialer, shared.identity.signing_key());
    write_message(&mut write, &Message::Auth(Auth { signature })).await?;
    Ok((reader, write, Contact::new(id, addr)))
}

/// The subscriptions a dialed connection carries: the `listen` requests answered
/// `listening`, one per key (a renewal replaces the one before), and those still in flight.
#[derive(Default)]
struct DialedSubscriptions {
    live: std::collections::HashMap<u64, cairn_core::Key>,
    asked: std::collections::HashMap<u64, cairn_core::Key>,
}

impl DialedSubscriptions {
    fn sent(&mut self, id: u64, request: &Request) {
        match request {
            Request::Listen { key, .. } => {
                self.asked.insert(id, *key);
            }
            Request::Unlisten { listen } => {
                self.live.remove(listen);
            }
            _ => {}
        }
    }

    fn answered(&mut self, id: u64, response: &Response) {
        if let Some(key) = self.asked.remove(&id) {
            if matches!(response, Response::Listening { .. }) {
                self.live.retain(|_, k| *k != key);
                self.live.insert(id, key);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Sends requests and hands responses (and `notify` frames) up until the pool lets go and
/// nothing is in flight or subscribed.
async fn carry(
    mut reader: FrameReader,
    mut write: OwnedWriteHalf,
    peer: Contact,
    requests: &mut mpsc::Receiver<Outgoing>,
    in_flight: &mut HashSet<u64>,
    subscriptions: &mut DialedSubscriptions,
    shared: &Shared,
) -> Result<(), ConnError> {
    let mut released = false;
    let Some(mut shutdown) = shared.shutdown_signal() else {
        return Ok(());
    };
    loop {
        // Silence is expected while a subscription waits for news.
        reader.quiet = (!subscriptions.is_empty()).then(|| quiet_limit(shared));
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            next = requests.recv(), if !released => match next {
                Some((id, request)) => {
                    in_flight.insert(id);
                    subscriptions.sent(id, &request);
                    write_message(&mut write, &Message::Request { id, request: *request }).await?;
                }
                None if in_flight.is_empty() && subscriptions.is_empty() => return Ok(()),
                None => released = true,
            },
            frame = reader.next(shared) => {
                let (id, response) = match wire::decode(&frame?) {
                    Ok(Message::Response { id, response }) => (id, response),
                    Ok(Message::Notify { id, item }) => {
                        if subscriptions.live.contains_key(&id) {
                            let up = ToDriver::Notify { from: peer, id, item: Box::new(item) };
                            let _ = shared.tell(up).await;
                        }
                        continue;
                    }
                    Ok(other) => return Err(ConnError::NotAResponse(kind(&other))),
                    // An answer that fails to decode (say, a forged item) fails its request.
                    Err(e) => match e.id {
                        Some(id) if in_flight.remove(&id) => {
                            let _ = shared.tell(ToDriver::Failed { ids: vec![id] }).await;
                            continue;
                        }
                        _ => return Err(ConnError::BadResponse(e)),
                    },
                };
                if in_flight.remove(&id) {
                    subscriptions.answered(id, &response);
                    let _ = shared.tell(ToDriver::Response { from: peer, id, response: Box::new(response) }).await;
                }
                if released && in_flight.is_empty() && subscriptions.is_empty() {
                    return Ok(());
                }
            }
        }
    }
}
