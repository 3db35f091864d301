//! The listener's side: `hello` in, `welcome` (or 426) out, then `auth` in and checked, all by
//! a deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Greeting, HandshakeError, Role, Transcript};
use crate::datagram::Suite;
use crate::message::{ErrorCode, ErrorReply, Hello, Message, Mode, PROTOCOL_VERSION, Response};
use crate::message::{NetworkName, Welcome};
use crate::node::Requester;
use crate::{NodeId, Time};

/// The listener's side of one accepted connection's handshake.
///
/// The dialer's first message goes to [`Accepting::handle_hello`], which queues `welcome`, or
/// a 426 refusal to send before closing. Requests may come before `auth` (pipelining) and are
/// served unverified; `auth` goes to [`Accepting::handle_auth`]. A dialer that has not sent a
/// verified `auth` by [`Accepting::poll_timeout`] is timed out by
/// [`Accepting::handle_timeout`].
#[derive(Debug)]
pub struct Accepting {
    greeting: Greeting,
    /// This node's public key and this connection's nonce.
    listener: ([u8; 32], [u8; 32]),
    /// Where the connection comes from.
    peer: SocketAddr,
    /// The connection's number, as the driver numbers its incoming connections.
    connection: u64,
    /// `hello` and a verified `auth` must both arrive by then.
    deadline: Time,
    state: State,
    outbox: VecDeque<Message>,
}

#[derive(Debug)]
enum State {
    /// Nothing has come yet.
    AwaitingHello,
    /// `welcome` went out; the dialer's key and nonce, for its `auth`.
    AwaitingAuth { dialer: ([u8; 32], [u8; 32]) },
    /// `auth` verified.
    Verified,
    /// The handshake failed.
    Failed,
}

/// What a `hello` that was welcomed tells of the dialer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcomed {
    /// Who the dialer claims to be: not verified until its `auth` is.
    pub requester: Requester,
    /// The address its `hello` announced (its source IP and `port`), if any: its contact
    /// address while it does not say it is a client.
    pub announced: Option<SocketAddr>,
    /// The dialer announces an address and does not speak datagrams, though this node does (a
    /// version-1 node): datagrams to that address would go unanswered.
    pub tcp_only: Option<SocketAddr>,
}

impl Accepting {
    /// The handshake of connection number `connection` from `peer`, accepted at `now` by the
    /// node holding `suite`'s key, saying `greeting` and this connection's fresh random
    /// `nonce`; it must be done within `timeout`. The same `suite` signs the `welcome`.
    pub fn new<C: Suite>(
        (suite, nonce): (&C, [u8; 32]),
        greeting: Greeting,
        (peer, connection): (SocketAddr, u64),
        now: Time,
        timeout: Duration,
    ) -> Self {
        Accepting {
            greeting,
            listener: (suite.public_key(), nonce),
            peer,
            connection,
            deadline: now + timeout,
            state: State::AwaitingHello,
            outbox: VecDeque::new(),
        }
    }

    /// The next message to send.
    pub fn poll_message(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// When to call [`Accepting::handle_timeout`]: the deadline, while `auth` has not verified.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.state {
            State::AwaitingHello | State::AwaitingAuth { .. } => Some(self.deadline),
            State::Verified | State::Failed => None,
        }
    }

    /// Time has reached `now`: past the deadline without a verified `auth`, the handshake
    /// fails.
    pub fn handle_timeout(&mut self, now: Time) -> Result<(), HandshakeError> {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                self.state = State::Failed;
                Err(HandshakeError::Timeout)
            }
            _ => Ok(()),
        }
    }

    /// Whether the dialer's `auth` verified.
    pub fn is_verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    /// The dialer's first message, and the role its envelope said (`None` for a node that
    /// predates roles). A `hello` of this node's version and network is welcomed, signed;
    /// another version or network is answered 426 (queued) and fails; anything else fails.
    pub fn handle_hello<C: Suite>(
        &mut self,
        suite: &C,
        message: Message,
        role: Option<Mode>,
    ) -> Result<Welcomed, HandshakeError> {
        let hello = match (&self.state, message) {
            (State::AwaitingHello, Message::Hello(hello)) => hello,
            _ => return Err(self.fail(HandshakeError::NotHello)),
        };
        let Hello {
            version,
            network,
            public_key: dialer_key,
            nonce: dialer_nonce,
            port,
            datagrams,
        } = hello;
        if version != PROTOCOL_VERSION || network != self.greeting.network {
            self.outbox
                .push_back(mismatch_reply(&self.greeting.network));
            return Err(self.fail(HandshakeError::Mismatch { version, network }));
        }
        let transcript = self.transcript(dialer_key, dialer_nonce);
        self.outbox.push_back(Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            network: self.greeting.network.clone(),
            public_key: transcript.listener_key,
            nonce: transcript.listener_nonce,
            port: self.greeting.port,
            datagrams: self.greeting.datagrams,
            signature: transcript.sign_with(Role::Listener, suite),
        }));
        self.state = State::AwaitingAuth {
            dialer: (dialer_key, dialer_nonce),
        };
        let announced = (port != 0).then(|| SocketAddr::new(self.peer.ip(), port));
        let requester = Requester {
            id: NodeId::of_public_key(&dialer_key),
            // A client announces no port; one that did anyway is taken at its word.
            addr: announced.filter(|_| role != Some(Mode::Client)),
            verified: false,
            source: self.peer.ip(),
            connection: self.connection,
        };
        Ok(Welcomed {
            requester,
            announced,
            tcp_only: announced.filter(|_| self.greeting.datagrams && !datagrams),
        })
    }

    /// The dialer's `auth`, arrived at `now`. One that does not verify, or that comes past the
    /// deadline or before `hello`, fails the handshake; a second one once verified is refused
    /// ([`HandshakeError::SecondAuth`], for the driver to answer as an invalid message) and
    /// changes nothing.
    pub fn handle_auth<C: Suite>(
        &mut self,
        now: Time,
        signature: &[u8; 64],
    ) -> Result<(), HandshakeError> {
        let (dialer_key, dialer_nonce) = match self.state {
            State::Verified => return Err(HandshakeError::SecondAuth),
            _ if now >= self.deadline => return Err(self.fail(HandshakeError::Timeout)),
            State::AwaitingAuth { dialer } => dialer,
            State::AwaitingHello | State::Failed => return Err(self.fail(HandshakeError::BadAuth)),
        };
        let transcript = self.transcript(dialer_key, dialer_nonce);
        if !transcript.verify_with::<C>(Role::Dialer, signature) {
            return Err(self.fail(HandshakeError::BadAuth));
        }
        self.state = State::Verified;
        Ok(())
    }

    /// The transcript of this connection with the dialer's key and nonce.
    fn transcript(&self, dialer_key: [u8; 32], dialer_nonce: [u8; 32]) -> Transcript<'_> {
        let (listener_key, listener_nonce) = self.listener;
        Transcript {
            network: self.greeting.network.as_str(),
            dialer_key,
            dialer_nonce,
            listener_key,
            listener_nonce,
        }
    }

    fn fail(&mut self, error: HandshakeError) -> HandshakeError {
        self.state = State::Failed;
        error
    }
}

/// The 426 a dialer of another version or network gets instead of `welcome`.
fn mismatch_reply(network: &NetworkName) -> Message {
    let reply = ErrorReply::new(
        ErrorCode::MISMATCH,
        format!(
            "this node speaks version {PROTOCOL_VERSION} on network {:?}",
            network.as_str()
        ),
    );
    Message::Response {
        id: 0,
        response: Response::Error(reply),
    }
}
