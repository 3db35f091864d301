//! Serving an accepted connection: the listener's side of the handshake (`hello` in,
//! `welcome` out, then `auth`, as the core's [`Accepting`] rules, within its deadline), then
//! requests in and answers out until the dialer leaves, the connection is evicted, or the node
//! shuts down.
//!
//! Each request first meets its host's rate limits ([`over_rate`]); one over them is answered
//! 429 here and never reaches the driver. The rest go to the driver with a reply channel, at
//! most `max_requests_per_connection` at a time: at that many, reading stops (backpressure).
//! [`over_rate`] needs no connection, so requests that arrive by any other transport meet the
//! same limits through it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use cairn_core::datagram::Real;
use cairn_core::wire;
use cairn_core::{
    Accepting, Auth, ErrorCode, ErrorReply, Greeting, HandshakeError, Message, Mode, Request,
    Requester, Response, Welcomed,
};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use super::frame::{FrameReader, quiet_limit, write_message, write_within};
use super::{ConnError, NOTIFY_QUEUE, SHUTDOWN_GRACE, kind, nonce};
use crate::clock::Clock;
use crate::driver::inbox::ToDriver;
use crate::inbound::Place;
use crate::shared::Shared;

/// The 429 a request from `host` earns when the host is over one of its rate limits (every
/// request counts against `request_rate`, a `store` also against `store_rate`), counted in the
/// metrics; `None` when the request may be served. Every request, whatever transport brought
/// it, goes through here once, so that one host meets the same limits on all of them.
pub(crate) fn over_rate(shared: &Shared, host: IpAddr, request: &Request) -> Option<Response> {
    let (limit, counter, what) = if !shared.request_limit.allow(host) {
        (
            shared.config.request_rate,
            &shared.metrics.requests_rate_limited,
            "requests",
        )
    } else if matches!(request, Request::Store { .. }) && !shared.store_limit.allow(host) {
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
    Some(Response::Error(ErrorReply::new(
        ErrorCode::OVER_LIMIT,
        message,
    )))
}

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
        Err(ConnError::Handshake(HandshakeError::Timeout)) => {
            shared.metrics.handshake_timeouts.inc();
            tracing::debug!(%peer, "inbound connection closed: handshake not done in time");
        }
        Err(e) => tracing::debug!(%peer, "inbound connection closed: {e}"),
        Ok(()) => {}
    }
}

/// The listener's side of the handshake up to `welcome`: `hello` in, `welcome` (or 426) out.
/// What is left of it (`auth`, the deadline) stays in `handshake` for serving.
async fn accept_handshake(
    stream: TcpStream,
    peer: SocketAddr,
    (handshake, suite): (&mut Accepting, &Real),
    shared: &Shared,
) -> Result<(FrameReader, OwnedWriteHalf, Welcomed), ConnError> {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, shared.config.max_frame);
    let first = timeout(shared.config.read_timeout, reader.next(shared))
        .await
        .map_err(|_| ConnError::Timeout)??;
    let (message, role) = wire::decode_with(&first)
        .map(|(message, envelope)| (message, envelope.role))
        .map_err(|_| HandshakeError::NotHello)?;
    let welcomed = handshake.handle_hello(suite, message, role);
    while let Some(message) = handshake.poll_message() {
        write_message(&mut write, &message, shared).await?;
    }
    let welcomed = welcomed?;
    if let Some(addr) = welcomed.tcp_only {
        // A version-1 dialer: datagrams to it would go unanswered.
        let _ = shared.tell(ToDriver::TcpOnly { addr }).await;
    }
    tracing::trace!(%peer, "welcomed");
    Ok((reader, write, welcomed))
}

/// An authenticated-or-not inbound connection past `welcome`: what serving it needs.
struct Inbound<'a> {
    place: &'a Place,
    /// The handshake: `auth` still to come, or verified.
    handshake: Accepting,
    /// The clock the handshake's deadline is kept on.
    clock: Clock,
    /// The dialer's address, for its host's rate limits.
    ip: IpAddr,
    write: OwnedWriteHalf,
    requester: Requester,
    /// The address the dialer's `hello` announced, if any: its contact address while its
    /// last message did not say `role: "client"`.
    announced: Option<SocketAddr>,
    /// Whether the dialer's last message said `role: "client"`.
    client: bool,
    /// Whether the driver was told so (once per change, not per frame, and only once `auth`
    /// verified: before, anyone may claim the dialer's key, and must not get it removed).
    told_client: bool,
    /// Where the driver sends this connection's answers.
    reply: mpsc::Sender<Box<Message>>,
    invalid: u32,
    /// Requests handed to the driver and not yet answered.
    outstanding: usize,
    /// Whether the dialer ever sent `listen`: the connection may then carry subscriptions.
    listened: bool,
}

impl Inbound<'_> {
    /// Handles one frame from the dialer: `auth`, a request (handed to the driver), or
    /// something invalid (answered 400, counted).
    async fn on_frame(&mut self, frame: &[u8], shared: &Shared) -> Result<(), ConnError> {
        let decoded = wire::decode_with(frame);
        if let Ok((_, envelope)) = &decoded {
            self.take_role(envelope.role, shared).await;
        }
        let answer = match decoded.map(|(message, _)| message) {
            Ok(Message::Auth(Auth { signature })) => match self
                .handshake
                .handle_auth::<Real>(self.clock.now(), &signature)
            {
                // Out of place, as any other frame would be: 400, and the handshake stands.
                Err(second @ HandshakeError::SecondAuth) => wire::DecodeError {
                    id: None,
                    code: ErrorCode::BAD_REQUEST,
                    reason: second.to_string(),
                },
                verified => {
                    verified?;
                    self.requester.verified = true;
                    self.place.authenticated();
                    self.tell_client(shared).await;
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
            },
            Ok(Message::Request { id, request }) => {
                if let Some(response) = over_rate(shared, self.ip, &request) {
                    let refusal = Message::Response { id, response };
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
                reason: format!("unexpected {} from the dialer", kind(&other)),
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

    /// The dialer's message said `role` (or, a node that predates roles, nothing): its last
    /// word decides whether it may enter a table. A client carries no address, and the
    /// driver removes it from the routing table.
    async fn take_role(&mut self, role: Option<Mode>, shared: &Shared) {
        self.client = role == Some(Mode::Client);
        if self.client {
            self.requester.addr = None;
            self.tell_client(shared).await;
        } else {
            self.told_client = false;
            self.requester.addr = self.announced;
        }
    }

    /// Tells the driver a verified dialer said it is a client, once.
    async fn tell_client(&mut self, shared: &Shared) {
        if self.client && self.requester.verified && !self.told_client {
            self.told_client = true;
            let id = self.requester.id;
            let _ = shared.tell(ToDriver::Client { id }).await;
        }
    }
}

async fn serve_inbound_inner(
    stream: TcpStream,
    peer: SocketAddr,
    place: &Place,
    shared: &Shared,
    listened: &mut bool,
) -> Result<(), ConnError> {
    // `hello` and a verified `auth` must both arrive by the handshake's deadline.
    let clock = Clock::new();
    let greeting = Greeting {
        network: shared.config.network.clone(),
        port: shared.listen_port,
        datagrams: shared.udp.is_some(),
    };
    let suite = shared.identity.suite();
    let mut handshake = Accepting::new(
        (&suite, nonce()),
        greeting,
        (peer, place.id()),
        clock.now(),
        shared.config.handshake_timeout,
    );
    let deadline = handshake
        .poll_timeout()
        .map_or_else(Instant::now, |t| clock.instant(t));
    // Boxed: the handshake's I/O state is freed once it is done, rather than kept inline in a
    // task that may idle for a minute.
    let (mut reader, write, welcomed) = timeout_at(
        deadline,
        Box::pin(accept_handshake(
            stream,
            peer,
            (&mut handshake, &suite),
            shared,
        )),
    )
    .await
    .map_err(|_| HandshakeError::Timeout)??;
    // Room for every answer owed, so the driver never finds this queue full of answers, and
    // for `NOTIFY_QUEUE` notifications on top (the driver leaves the answers' room free).
    let in_service = shared.config.max_requests_per_connection.max(1);
    let (reply, mut replies) = mpsc::channel::<Box<Message>>(in_service + NOTIFY_QUEUE);
    let mut conn = Inbound {
        place,
        handshake,
        clock,
        ip: peer.ip(),
        write,
        requester: welcomed.requester,
        announced: welcomed.announced,
        client: false,
        told_client: false,
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
            () = tokio::time::sleep_until(deadline), if conn.handshake.poll_timeout().is_some() => {
                conn.handshake.handle_timeout(clock.now())?;
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
                    reader.set_quiet(Some(quiet_limit(shared)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_core::{ImmutableItem, NodeId};
    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::Config;
    use crate::ratelimit::{Limiter, Rate};

    /// A node's shared state with no socket, driver or listener behind it.
    fn shared(request_rate: Rate, store_rate: Rate) -> Shared {
        let config = Config {
            request_rate,
            store_rate,
            ..Config::default()
        };
        let metrics = Arc::new(crate::metrics::Metrics::new(&config.limits));
        let identity = crate::Identity::from_seed([7; 32]);
        let to_driver = mpsc::channel(1).0;
        Shared {
            streams: Arc::new(crate::stream::Streams::new(
                &identity,
                None,
                to_driver.clone(),
                Arc::new(Limiter::new(Rate::UNLIMITED)),
                metrics.clone(),
            )),
            metrics,
            config,
            identity,
            listen_port: 0,
            listening: Vec::new(),
            to_driver,
            shutdown: watch::channel(false).0,
            activity: Arc::new(crate::activity::Hub::new()),
            request_limit: Limiter::new(request_rate),
            store_limit: Limiter::new(store_rate),
            handshake_limit: Arc::new(Limiter::new(Rate::UNLIMITED)),
            udp: None,
            inbound: Arc::new(crate::inbound::Inbound::new(1, 1)),
            connection_budget: None,
            mode: crate::mode::ModeCell::new(cairn_core::Mode::Server),
        }
    }

    /// A rate that never refills within a test: `burst` requests, then none.
    fn only(burst: f64) -> Rate {
        Rate {
            per_second: 1e-9,
            burst,
        }
    }

    fn refused(response: Option<Response>) -> bool {
        matches!(response, Some(Response::Error(e)) if e.code == ErrorCode::OVER_LIMIT)
    }

    #[tokio::test]
    async fn one_request_from_one_host_meets_the_limits_without_a_connection() {
        let shared = shared(only(2.0), Rate::UNLIMITED);
        let (flood, other) = (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        let ping = Request::Ping;
        assert!(over_rate(&shared, flood, &ping).is_none());
        assert!(over_rate(&shared, flood, &ping).is_none());
        assert!(refused(over_rate(&shared, flood, &ping)));
        assert!(refused(over_rate(&shared, flood, &ping)));
        assert!(
            over_rate(&shared, other, &ping).is_none(),
            "another host is served"
        );
        assert_eq!(shared.metrics.requests_rate_limited.get(), 2);
        assert_eq!(shared.metrics.stores_rate_limited.get(), 0);
    }

    #[tokio::test]
    async fn stores_meet_their_own_limit_and_other_requests_do_not() {
        let shared = shared(Rate::UNLIMITED, only(1.0));
        let host = "192.0.2.1".parse().unwrap();
        let store = Request::Store {
            item: ImmutableItem::new("value".into()).into(),
        };
        let find = Request::FindNode {
            target: NodeId::from_bytes([1; 64]),
        };
        assert!(over_rate(&shared, host, &store).is_none());
        assert!(refused(over_rate(&shared, host, &store)));
        assert!(over_rate(&shared, host, &find).is_none());
        assert_eq!(shared.metrics.stores_rate_limited.get(), 1);
        assert_eq!(shared.metrics.requests_rate_limited.get(), 0);
    }
}
