//! The protocol's messages as domain types (`docs/protocol.md`, sections 5 and 6).
//!
//! These types say what a message means; [`crate::wire`] is the only code that knows how one is
//! laid out in bytes. Every field here is already checked: ids are 64 bytes, keys 32, items
//! verified, addresses parsed.

use std::fmt;
use std::net::SocketAddr;

use crate::id::{Key, NodeId};
use crate::item::Item;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// A node as others reach it: its id and the address it accepts connections on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Contact {
    /// `SHA-512` of the node's public key.
    pub id: NodeId,
    /// Where the node listens.
    pub addr: SocketAddr,
}

impl Contact {
    /// The contact with this id and address.
    pub fn new(id: NodeId, addr: SocketAddr) -> Self {
        Contact { id, addr }
    }
}

/// Where a request goes: an address, and the id expected there when it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The node id expected to answer; `None` for a bootstrap address.
    pub id: Option<NodeId>,
    /// Where to connect.
    pub addr: SocketAddr,
}

impl From<Contact> for Peer {
    fn from(c: Contact) -> Self {
        Peer {
            id: Some(c.id),
            addr: c.addr,
        }
    }
}

/// A network name: 1 to [`MAX_NETWORK_LEN`] bytes of UTF-8. Nodes of different networks refuse
/// each other in the handshake. Checked once, where it is made; default `"cairn"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct NetworkName(String);

/// The longest network name, in bytes.
pub const MAX_NETWORK_LEN: usize = 64;

/// Why a network name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a network name must be 1 to {MAX_NETWORK_LEN} bytes, got {0}")]
pub struct NetworkNameError(pub usize);

impl NetworkName {
    /// The name, if it is 1 to 64 bytes long.
    pub fn new(name: impl Into<String>) -> Result<Self, NetworkNameError> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_NETWORK_LEN {
            return Err(NetworkNameError(name.len()));
        }
        Ok(NetworkName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NetworkName {
    fn default() -> Self {
        NetworkName("cairn".to_owned())
    }
}

impl TryFrom<String> for NetworkName {
    type Error = NetworkNameError;
    fn try_from(name: String) -> Result<Self, NetworkNameError> {
        NetworkName::new(name)
    }
}

impl std::str::FromStr for NetworkName {
    type Err = NetworkNameError;
    fn from_str(name: &str) -> Result<Self, NetworkNameError> {
        NetworkName::new(name)
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The dialer's first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version; must equal the listener's.
    pub version: u64,
    /// Network name; must equal the listener's.
    pub network: NetworkName,
    /// The dialer's ed25519 public key.
    pub public_key: [u8; 32],
    /// Fresh random bytes for this connection.
    pub nonce: [u8; 32],
    /// Where the dialer accepts connections, 0 if nowhere.
    pub port: u16,
    /// Whether the dialer also speaks datagrams (`docs/protocol.md` section 11): the key
    /// `datagrams: true`, absent from a version-1 node's `hello`.
    pub datagrams: bool,
}

/// The listener's answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version.
    pub version: u64,
    /// Network name.
    pub network: NetworkName,
    /// The listener's ed25519 public key.
    pub public_key: [u8; 32],
    /// Fresh random bytes for this connection.
    pub nonce: [u8; 32],
    /// Where the listener accepts connections.
    pub port: u16,
    /// Whether the listener also speaks datagrams (the key `datagrams: true`).
    pub datagrams: bool,
    /// The listener's signature over `L` and the transcript ([`Transcript`](crate::Transcript)).
    pub signature: [u8; 64],
}

/// The dialer's proof of identity, closing the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// The dialer's signature over `D` and the transcript.
    pub signature: [u8; 64],
}

/// A request, sent only by the side that dialed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Are you there?
    Ping,
    /// Which nodes do you know closest to `target`?
    FindNode {
        /// The id to find neighbours of.
        target: NodeId,
    },
    /// The item under `key`, or else the nodes you know closest to it.
    FindValue {
        /// The key sought.
        key: Key,
    },
    /// Keep this item.
    Store {
        /// The verified item.
        item: Item,
    },
    /// Tell me, on this connection, of every copy of `key` newer than `seq`.
    Listen {
        /// The key to watch.
        key: Key,
        /// The newest `seq` the dialer has; 0 for none.
        seq: u64,
    },
    /// End the subscription made by the `listen` request with id `listen`.
    Unlisten {
        /// The id of that `listen` request.
        listen: u64,
    },
    /// Datagrams only: have a third node send a `probe` datagram carrying `nonce` to the
    /// address this request came from (`docs/protocol.md`, "Reachability"). The address is
    /// the session's, never one the asker writes.
    Reach {
        /// Fresh random bytes the probe datagram carries back.
        nonce: [u8; 16],
    },
    /// Send one `probe` datagram carrying `nonce` to `to`: asked by a server for the node at
    /// `to`, which asked it `reach`.
    Probe {
        /// Where the probe goes: the source address of the `reach` request.
        to: SocketAddr,
        /// The nonce of that `reach` request.
        nonce: [u8; 16],
    },
    /// Datagrams only, to a server: "keep me reachable through you": introduce to me, at
    /// the address this request came from, whoever asks for me by id in the next
    /// [`REGISTRATION_TTL`] seconds (`docs/protocol.md`, "Rendezvous and punching").
    Register,
    /// Datagrams only, to a server the node `target` registered with: have `target` open its
    /// NAT to the address this request came from, and tell me where `target` is.
    Introduce {
        /// The id of the node to reach.
        target: NodeId,
    },
    /// Datagrams only, to a server the node `target` registered with: open a circuit to
    /// `target` through you, for a NAT no punch gets through.
    Relay {
        /// The id of the node to reach.
        target: NodeId,
    },
    /// Datagrams only, from a server this node registered with: send one `punch` datagram
    /// carrying `nonce` to `to` from the node's socket, which opens this node's NAT to `to`.
    Meet {
        /// The address of the node that asked to be introduced, as the server saw it.
        to: SocketAddr,
        /// Random bytes the punch carries.
        nonce: [u8; 16],
    },
}

/// How long a registration lasts unless renewed, in seconds: the `ttl` of `registered`.
pub const REGISTRATION_TTL: u32 = 60;

impl Request {
    /// The request's `type` on the wire (`ping`, `find_node`, `find_value`, `store`, `listen`,
    /// `unlisten`): the name logs and metrics use.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::FindNode { .. } => "find_node",
            Request::FindValue { .. } => "find_value",
            Request::Store { .. } => "store",
            Request::Listen { .. } => "listen",
            Request::Unlisten { .. } => "unlisten",
            Request::Reach { .. } => "reach",
            Request::Probe { .. } => "probe",
            Request::Register => "register",
            Request::Introduce { .. } => "introduce",
            Request::Meet { .. } => "meet",
            Request::Relay { .. } => "relay",
        }
    }
}

/// A response, sent only by the side that listened.
// An answer lives for one message; boxing its item would cost an allocation per answer.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to `ping`.
    Pong,
    /// At most k contacts, closest to the target first.
    Nodes(Vec<Contact>),
    /// The item asked for by `find_value`.
    Value {
        /// The copy held.
        item: Item,
        /// The answering node has held this copy since before its last start and has not yet
        /// checked it against the other replicas (`docs/protocol.md`, `unchecked`): it may be
        /// a version replaced while the node was away. A getter takes it as a copy but does not
        /// count it toward its quorum.
        unchecked: bool,
    },
    /// The item of a `store` is durably kept.
    Stored,
    /// The `listen` is in force for `ttl` seconds.
    Listening {
        /// Seconds until the subscription ends unless renewed; at most [`MAX_LISTEN_TTL`].
        ttl: u32,
    },
    /// The `unlisten` is done.
    Unlistened,
    /// Answer to `reach` and `probe`: the probe datagram went out.
    Probed,
    /// Answer to `register`: the registration lasts `ttl` seconds unless renewed.
    Registered {
        /// Seconds; [`REGISTRATION_TTL`] from cairn.
        ttl: u32,
    },
    /// Answer to `introduce`: the target sent its punch, and is at `addr` (the source address
    /// of its registration, as the server sees it).
    Introduced {
        /// Where to send to the target.
        addr: SocketAddr,
    },
    /// Answer to `meet`: the punch went out.
    Met,
    /// Answer to `relay`: the circuit is open; the asker's `relayed` datagrams carry
    /// `circuit`.
    Relaying {
        /// The circuit's id on the asker's side.
        circuit: u64,
    },
    /// The request failed.
    Error(ErrorReply),
}

impl Response {
    /// A `value` answer carrying a checked copy (the usual case; see [`Response::Value`]).
    pub fn value(item: Item) -> Self {
        Response::Value {
            item,
            unchecked: false,
        }
    }
}

/// What a node says it is, in the `role` key of every message it sends (`docs/protocol.md`,
/// "Roles"): a server takes requests at its address and may enter routing tables; a client
/// only asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Takes requests, stores items for others, enters routing tables.
    #[default]
    Server,
    /// Asks only: announces no address, stores nothing for others, enters no routing table.
    Client,
}

impl Mode {
    /// `server` or `client`, as on the wire and in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Server => "server",
            Mode::Client => "client",
        }
    }

    /// The mode a `role` value names, if it names one.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "server" => Some(Mode::Server),
            "client" => Some(Mode::Client),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A numeric error code (`docs/protocol.md`, "Requests and responses").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Malformed or invalid.
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    /// Signature invalid, or the sender may not ask this.
    pub const BAD_SIGNATURE: ErrorCode = ErrorCode(403);
    /// What was asked for is not here: an `introduce` for a node not registered here.
    pub const NOT_FOUND: ErrorCode = ErrorCode(404);
    /// Stale `seq` or conflicting value.
    pub const CONFLICT: ErrorCode = ErrorCode(409);
    /// Value above `max_value_size`.
    pub const TOO_LARGE: ErrorCode = ErrorCode(413);
    /// Version or network mismatch.
    pub const MISMATCH: ErrorCode = ErrorCode(426);
    /// Over a quota or rate limit.
    pub const OVER_LIMIT: ErrorCode = ErrorCode(429);
    /// The node failed internally; nothing was stored.
    pub const INTERNAL: ErrorCode = ErrorCode(500);
    /// The node's storage cannot serve now: it holds the item asked for but cannot read it,
    /// or its disk is full, so nothing was stored. The condition is expected to pass; ask
    /// another replica, or again later. A node that does not know this code takes it as any
    /// other error: this replica failed.
    pub const UNAVAILABLE: ErrorCode = ErrorCode(503);
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest a subscription may last before it is renewed, in seconds.
pub const MAX_LISTEN_TTL: u32 = 600;

/// The most live subscriptions one connection may hold.
pub const MAX_LISTENS_PER_CONNECTION: usize = 64;

/// The longest error message sent, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 256;

/// An `error` response: a code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong, at most [`MAX_ERROR_MESSAGE`] bytes.
    pub message: String,
}

impl ErrorReply {
    /// An error reply, its message cut at a character boundary to fit the limit.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE {
            let mut end = MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        ErrorReply { code, message }
    }
}

/// Any message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Handshake, dialer to listener.
    Hello(Hello),
    /// Handshake, listener to dialer.
    Welcome(Welcome),
    /// Handshake, dialer to listener.
    Auth(Auth),
    /// A request and the id its response will echo.
    Request {
        /// Chosen by the dialer, unique among its requests in flight on the connection.
        id: u64,
        /// What is asked.
        request: Request,
    },
    /// A response to the request with the same id (0 for a handshake refusal).
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        response: Response,
    },
    /// A newer copy of a key the dialer listens to, sent by the listener at any time.
    Notify {
        /// The id of the `listen` request that made the subscription.
        id: u64,
        /// The newer copy.
        item: Item,
    },
}
