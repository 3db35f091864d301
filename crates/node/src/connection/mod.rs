//! One TCP connection: the handshake (`docs/protocol.md`, "Handshake"), then frames in and
//! out, in one task. The handshake's rules are the core's state machines
//! ([`cairn_core::Dialing`], [`cairn_core::Accepting`]); these tasks carry their messages.
//!
//! Each connection task owns its socket. It decodes and verifies every payload itself, so
//! signature checks run on the runtime's worker threads in parallel and never on the driver's
//! event loop. It talks to the driver over channels: requests and responses up, frames to send
//! down. A dialed connection tracks the requests in flight on it, and when it ends for any
//! reason it reports every one of them as failed, so the node never waits on a dead socket.
//!
//! One file per job, from the bytes up:
//! - `frame`: netstring frames off a socket half ([`FrameReader`](frame::FrameReader)) and
//!   messages onto one, with the idle and stall limits;
//! - `serve`: an accepted connection, from `hello` to its last answer: the listener's side of
//!   the handshake (an `Accepting`), the per-host rate limits ([`over_rate`], which any
//!   transport's requests go through) and the hand-over of requests to the driver;
//! - `dial`: opening a connection to a peer and the dialer's side of the handshake (a
//!   `Dialing`), then reporting to the driver how it ended;
//! - `carry`: a dialed connection at work: requests out, answers and `notify` frames up, and
//!   the subscriptions it carries.
//!
//! This file holds what they share: why a connection ended ([`ConnError`]), the queue and
//! grace bounds, and the handshake's nonces.

mod carry;
mod dial;
mod frame;
mod serve;

use std::time::Duration;

use cairn_core::netstring;
use cairn_core::wire;
use cairn_core::{ErrorCode, HandshakeError, Message};
use rand::RngCore;

use crate::error::SeedFailure;

pub(crate) use dial::dial;
pub(crate) use serve::over_rate;
pub(crate) use serve::serve_inbound;

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
    /// A newcomer took this connection's place.
    #[error("evicted to make room for a newcomer")]
    Evicted,
    #[error("closed by peer")]
    Eof,
    /// The handshake failed (`docs/protocol.md`, "Handshake"), on either side.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The peer sent `max_invalid_messages` frames that were not valid messages.
    #[error("{0} invalid messages")]
    TooManyInvalid(u32),
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
            ConnError::Timeout | ConnError::Handshake(HandshakeError::Timeout) => {
                SeedFailure::TimedOut
            }
            ConnError::Handshake(HandshakeError::Refused { code, message })
                if *code == ErrorCode::MISMATCH =>
            {
                SeedFailure::WrongNetwork(message.clone())
            }
            ConnError::Handshake(HandshakeError::WrongNetwork(network)) => {
                SeedFailure::WrongNetwork(format!("it is on network {network:?}"))
            }
            ConnError::Frame(_)
            | ConnError::Handshake(HandshakeError::NotWelcome | HandshakeError::BadWelcome)
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

/// A fresh random nonce for one side of a handshake.
fn nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

/// The message's kind, as errors and refusals name it.
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
