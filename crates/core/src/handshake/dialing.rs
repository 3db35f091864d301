//! The dialer's side: `hello` out, `welcome` in and checked, `auth` out.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::{Greeting, HandshakeError, Role, Transcript};
use crate::NodeId;
use crate::datagram::Suite;
use crate::message::{Auth, Hello, Message, PROTOCOL_VERSION, Response};

/// The dialer's side of one connection's handshake.
///
/// [`Dialing::new`] queues `hello`; the driver sends it, and may send requests right behind
/// it (pipelining). The first message back goes to [`Dialing::handle_message`]: a `welcome`
/// that verifies, from the node the dialer meant to reach, queues `auth` and says who answered;
/// anything else is a [`HandshakeError`], and the connection closes.
#[derive(Debug)]
pub struct Dialing {
    hello: Hello,
    /// Where the connection goes.
    to: SocketAddr,
    /// The node the dialer means to reach there, if it knows which.
    expected: Option<NodeId>,
    /// Messages to send, in order.
    outbox: VecDeque<Message>,
    /// The `welcome` came (whatever it held): nothing more is taken.
    answered: bool,
}

/// Who answered a dial, as its `welcome` proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialed {
    /// The listener's node id: the hash of the key its signature verified under.
    pub id: NodeId,
    /// The listener's public key.
    pub public_key: [u8; 32],
    /// Whether the listener speaks datagrams; `false` is a version-1 node.
    pub datagrams: bool,
}

impl Dialing {
    /// A dial to `to` (the node `expected`, if known) by the node holding `suite`'s key,
    /// saying `greeting`, with this connection's fresh random `nonce`. Queues `hello`.
    pub fn new<C: Suite>(
        suite: &C,
        greeting: Greeting,
        nonce: [u8; 32],
        to: SocketAddr,
        expected: Option<NodeId>,
    ) -> Self {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            network: greeting.network,
            public_key: suite.public_key(),
            nonce,
            port: greeting.port,
            datagrams: greeting.datagrams,
        };
        Dialing {
            outbox: VecDeque::from([Message::Hello(hello.clone())]),
            hello,
            to,
            expected,
            answered: false,
        }
    }

    /// The next message to send.
    pub fn poll_message(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// The listener's first message arrived: a `welcome` is checked (network, signature, the
    /// node expected) and answered with `auth`; an error (426) or anything else ends the dial.
    pub fn handle_message<C: Suite>(
        &mut self,
        suite: &C,
        message: Message,
    ) -> Result<Dialed, HandshakeError> {
        if std::mem::replace(&mut self.answered, true) {
            return Err(HandshakeError::NotWelcome);
        }
        let welcome = match message {
            Message::Welcome(welcome) => welcome,
            Message::Response {
                response: Response::Error(e),
                ..
            } => {
                return Err(HandshakeError::Refused {
                    code: e.code,
                    message: e.message,
                });
            }
            _ => return Err(HandshakeError::NotWelcome),
        };
        if welcome.network != self.hello.network {
            return Err(HandshakeError::WrongNetwork(welcome.network));
        }
        let transcript = Transcript {
            network: self.hello.network.as_str(),
            dialer_key: self.hello.public_key,
            dialer_nonce: self.hello.nonce,
            listener_key: welcome.public_key,
            listener_nonce: welcome.nonce,
        };
        if !transcript.verify_with::<C>(Role::Listener, &welcome.signature) {
            return Err(HandshakeError::BadWelcome);
        }
        let id = NodeId::of_public_key(&welcome.public_key);
        if self.expected.is_some_and(|expected| expected != id) {
            return Err(HandshakeError::UnexpectedPeer {
                addr: self.to,
                found: id,
            });
        }
        let signature = transcript.sign_with(Role::Dialer, suite);
        self.outbox.push_back(Message::Auth(Auth { signature }));
        Ok(Dialed {
            id,
            public_key: welcome.public_key,
            datagrams: welcome.datagrams,
        })
    }
}
