//! The TCP handshake (`docs/protocol.md`, "Handshake") as two state machines, one per side,
//! with no I/O: [`Dialing`] for the side that opened the connection, [`Accepting`] for the side
//! that accepted it. Each takes the messages that arrive (`handle_*`) and hands out the
//! messages to send (`poll_message`); the listener's deadline is passed in as [`Time`]. The
//! node's connection tasks only move their frames, `cairn bench`'s peer dials with the same
//! [`Dialing`], and the simulator runs both on every connection it opens.
//!
//! Both sides sign one [`Transcript`] binding the network name, both public keys and both
//! connection nonces; a role byte (`L` for the listener, `D` for the dialer) keeps one side's
//! signature from being replayed as the other's. The signatures go through a
//! [`Suite`], as the datagram plane's do, so that the simulator can run the rules without
//! paying for real public-key operations.

mod accepting;
mod dialing;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use ed25519_dalek::SigningKey;

use crate::NodeId;
use crate::datagram::{Real, Suite};
use crate::message::{ErrorCode, NetworkName};

pub use accepting::{Accepting, Welcomed};
pub use dialing::{Dialed, Dialing};

/// Domain separation tag at the start of the transcript.
pub const HANDSHAKE_TAG: &[u8] = b"cairn-handshake-v1";

/// Which side of a connection signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that accepted the connection; signs `L || transcript` in `welcome`.
    Listener,
    /// The side that opened the connection; signs `D || transcript` in `auth`.
    Dialer,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Listener => b'L',
            Role::Dialer => b'D',
        }
    }
}

/// The public parts both sides know once `hello` and `welcome` are exchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript<'a> {
    /// The network name (1 to 64 bytes).
    pub network: &'a str,
    /// The dialer's public key.
    pub dialer_key: [u8; 32],
    /// The dialer's nonce.
    pub dialer_nonce: [u8; 32],
    /// The listener's public key.
    pub listener_key: [u8; 32],
    /// The listener's nonce.
    pub listener_nonce: [u8; 32],
}

impl Transcript<'_> {
    /// The bytes `role` signs: the role byte, then the transcript.
    pub fn signed_bytes(&self, role: Role) -> Vec<u8> {
        let network = self.network.as_bytes();
        let mut out = Vec::with_capacity(1 + HANDSHAKE_TAG.len() + 1 + network.len() + 128);
        out.push(role.byte());
        out.extend_from_slice(HANDSHAKE_TAG);
        // Network names are at most 64 bytes (checked at decode), so the length fits a byte.
        out.push(u8::try_from(network.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(network);
        out.extend_from_slice(&self.dialer_key);
        out.extend_from_slice(&self.dialer_nonce);
        out.extend_from_slice(&self.listener_key);
        out.extend_from_slice(&self.listener_nonce);
        out
    }

    /// Signs the transcript as `role`.
    pub fn sign(&self, role: Role, key: &SigningKey) -> [u8; 64] {
        self.sign_with(role, &Real::new(key.clone()))
    }

    /// Signs the transcript as `role` with `suite`'s key.
    pub fn sign_with<C: Suite>(&self, role: Role, suite: &C) -> [u8; 64] {
        suite.sign(&self.signed_bytes(role))
    }

    /// Whether `signature` is `role`'s valid signature over the transcript (`verify_strict`).
    pub fn verify(&self, role: Role, signature: &[u8; 64]) -> bool {
        self.verify_with::<Real>(role, signature)
    }

    /// Whether `signature` is `role`'s valid signature over the transcript, as `C` checks it.
    pub fn verify_with<C: Suite>(&self, role: Role, signature: &[u8; 64]) -> bool {
        let public_key = match role {
            Role::Listener => &self.listener_key,
            Role::Dialer => &self.dialer_key,
        };
        C::verify(public_key, &self.signed_bytes(role), signature)
    }
}

/// What a node says of itself in its `hello` or `welcome`, besides its key and nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// The network the node is on.
    pub network: NetworkName,
    /// Where the node accepts connections, 0 if nowhere (a dialer that is a client).
    pub port: u16,
    /// Whether the node also speaks datagrams (`docs/protocol.md` section 11).
    pub datagrams: bool,
}

/// Why a handshake failed; the connection closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The dialer's first frame was not a valid `hello`.
    #[error("the first frame is not hello")]
    NotHello,
    /// The dialer speaks another version or network; it was answered 426.
    #[error("the dialer speaks version {version} on network {network:?}")]
    Mismatch {
        /// The version the dialer said.
        version: u64,
        /// The network the dialer said.
        network: NetworkName,
    },
    /// The dialer's `auth` signature does not verify against the transcript.
    #[error("the auth signature does not verify")]
    BadAuth,
    /// An `auth` after one verified: refused, the handshake stands.
    #[error("a second auth")]
    SecondAuth,
    /// The dialer did not complete the handshake by its deadline.
    #[error("the handshake was not done in time")]
    Timeout,
    /// The listener answered `hello` with an error (426: version or network mismatch).
    #[error("refused ({code}): {message}")]
    Refused {
        /// The error's code.
        code: ErrorCode,
        /// The error's message.
        message: String,
    },
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
    UnexpectedPeer {
        /// Where the dialer dialed.
        addr: SocketAddr,
        /// Who answered there.
        found: NodeId,
    },
}
