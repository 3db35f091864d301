//! The MessagePack payload format (`docs/protocol.md`, "Payload"): the only code that knows how messages look in
//! bytes.
//!
//! Wire structs mirror the bytes: flat maps of optional fields, so that unknown keys are
//! ignored and a missing field is a clear error rather than a serde failure deep inside an
//! enum. [`decode`] is the single path from untrusted bytes to a [`Message`]: it checks the
//! shape without recursion (the `depth` module), deserializes, then converts field by field, verifying
//! every item's signature on the way.

mod datagram;
mod depth;

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::id::{Id, Key};
use crate::item::{ImmutableItem, Item, ItemError, SignedItem, Summary, Tombstone};
use crate::message::{
    Auth, Contact, ErrorCode, ErrorReply, Hello, Message, Mode, NetworkName, Request, Response,
    Welcome,
};

/// The deepest nesting a payload may have; the top-level map is level 1.
const MAX_DEPTH: usize = 16;

/// The most contacts a `nodes` answer may carry (k).
pub const MAX_NODES: usize = 20;

pub use datagram::{
    Body, MAX_PARTS, compact_addr, decode_body, decode_body_with, encode_body, encode_body_with,
    parse_compact_addr,
};

#[derive(Serialize, Deserialize, Default)]
struct WireMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    /// `hello` and `welcome` of a node that speaks datagrams: `true`; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datagrams: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listen: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item: Option<WireItem>,
    /// `value` answers: `true` when the copy is not yet checked since the node's start
    /// (`docs/protocol.md`, section 6); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unchecked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<(ByteBuf, String)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// Datagrams only: which part of a split `nodes` answer this is, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<u8>,
    /// Datagrams only: how many parts a split `nodes` answer has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<u8>,
    /// `probe`: where the probe datagram goes, compact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<ByteBuf>,
    /// `relaying`: the circuit's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    circuit: Option<u64>,
    /// `introduced`: where the target is, compact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addr: Option<ByteBuf>,
    /// Datagram answers: the source address of the session the request came in, compact
    /// (`docs/protocol.md`, "Bodies"). Written last; a receiver takes it in any place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observed: Option<ByteBuf>,
    /// Every message of a node that knows roles: `server` or `client` (`docs/protocol.md`,
    /// "Roles"). Written last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

/// What a message carries beside itself: keys about its sender or the session it travels in,
/// not about the request or answer. A receiver that does not know a key ignores it (section
/// 4), so each is optional on the wire, and a message without them is a valid message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Datagram answers: the source address of the session the request came in, as the
    /// answering node saw it (`observed`). What the asker's NAT, if any, made of its address.
    pub observed: Option<SocketAddr>,
    /// What the sender says it is (`role`): absent from a node that predates roles. A value
    /// other than `server` or `client` is read as absent.
    pub role: Option<Mode>,
}

impl Envelope {
    /// An envelope saying only the sender's role.
    pub fn role(mode: Mode) -> Self {
        Envelope {
            observed: None,
            role: Some(mode),
        }
    }

    fn write(&self, wire: &mut WireMessage) {
        wire.observed = self.observed.map(|a| ByteBuf::from(compact_addr(a)));
        wire.role = self.role.map(|mode| mode.as_str().to_owned());
    }

    fn read(wire: &mut WireMessage) -> Self {
        Envelope {
            observed: wire.observed.take().and_then(|b| parse_compact_addr(&b)),
            role: wire.role.take().and_then(|r| Mode::parse(&r)),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct WireItem {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<ByteBuf>,
}

/// Why a payload is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// The request id, when the payload got far enough to show one; the error reply echoes it.
    pub id: Option<u64>,
    /// The code to answer with: 403 for a bad signature, 400 otherwise.
    pub code: ErrorCode,
    /// What was wrong, for the error reply and logs.
    pub reason: String,
}

impl DecodeError {
    fn bad(id: Option<u64>, reason: impl Into<String>) -> Self {
        DecodeError {
            id,
            code: ErrorCode::BAD_REQUEST,
            reason: reason.into(),
        }
    }

    /// The `error` response this failure earns.
    pub fn reply(&self) -> Message {
        Message::Response {
            id: self.id.unwrap_or(0),
            response: Response::Error(ErrorReply::new(self.code, self.reason.clone())),
        }
    }
}

/// Encodes a message as its MessagePack payload (without the netstring frame).
///
/// MessagePack can represent every message cairn builds, so this fails only if the encoder
/// itself does (say, out of memory); the error says so rather than sending an empty payload.
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    encode_with(message, &Envelope::default())
}

/// Encodes a message with `envelope`'s keys after its own (over TCP: the sender's `role`).
pub fn encode_with(message: &Message, envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let mut wire = to_wire(message);
    envelope.write(&mut wire);
    rmp_serde::to_vec_named(&wire).map_err(EncodeError)
}

/// `addr` as the text a `nodes` answer carries, exactly as `addr.to_string()` writes it. An
/// IPv4 address is written by hand: `fmt`'s general machinery made formatting the contacts
/// of `nodes` answers 4.6% of a node's CPU in a put-heavy `cairn testnet`.
fn addr_text(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut text = String::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        push_decimal(&mut text, octet.into());
    }
    text.push(':');
    push_decimal(&mut text, v4.port());
    text
}

/// Appends `n` in decimal, without leading zeros.
fn push_decimal(text: &mut String, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10` is below 10: the cast keeps every bit.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    text.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Why a message or item could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode as MessagePack: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

/// Decodes and verifies one payload.
pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
    decode_with(payload).map(|(message, _)| message)
}

/// Decodes and verifies one payload, and reads its envelope (the sender's `role`).
pub fn decode_with(payload: &[u8]) -> Result<(Message, Envelope), DecodeError> {
    depth::check(payload, MAX_DEPTH).map_err(|e| DecodeError::bad(None, format!("{e:?}")))?;
    let mut wire: WireMessage = rmp_serde::from_slice(payload)
        .map_err(|e| DecodeError::bad(peek_id(payload), format!("malformed message: {e}")))?;
    let envelope = Envelope::read(&mut wire);
    Ok((from_wire(wire)?, envelope))
}

/// Encodes one item as the MessagePack map the wire uses (for storage on disk).
pub fn encode_item(item: &Item) -> Result<Vec<u8>, EncodeError> {
    rmp_serde::to_vec_named(&item_to_wire(item)).map_err(EncodeError)
}

/// Decodes and verifies one item encoded by [`encode_item`]: the same single path from bytes
/// to a verified item that messages take.
pub fn decode_item(bytes: &[u8]) -> Result<Item, DecodeError> {
    depth::check(bytes, MAX_DEPTH).map_err(|e| DecodeError::bad(None, format!("{e:?}")))?;
    let wire: WireItem = rmp_serde::from_slice(bytes)
        .map_err(|e| DecodeError::bad(None, format!("malformed item: {e}")))?;
    item_from_wire(wire, None)
}

/// Decodes an item encoded by [`encode_item`] that is expected to be the one `summary` was
/// made of, under `key`: a copy the node verified when it stored it and now reads back from
/// its own disk. If the bytes are that copy (the same key, `seq`, `expires`, value and
/// signature, by their hashes) the signature is not checked again; anything else is decoded and
/// verified as [`decode_item`] does, so a changed copy is served only if it verifies.
pub fn decode_known_item(bytes: &[u8], key: &Key, summary: &Summary) -> Result<Item, DecodeError> {
    depth::check(bytes, MAX_DEPTH).map_err(|e| DecodeError::bad(None, format!("{e:?}")))?;
    let wire: WireItem = rmp_serde::from_slice(bytes)
        .map_err(|e| DecodeError::bad(None, format!("malformed item: {e}")))?;
    if let (Some(public_key), Some(name), Some(seq), Some(expires), Some(sig)) = (
        wire.public_key
            .as_deref()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()),
        wire.name.clone(),
        wire.seq,
        wire.expires,
        wire.signature
            .as_deref()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok()),
    ) {
        let candidate = match (wire.kind.as_str(), wire.value.as_deref()) {
            ("signed", Some(value)) => {
                let value = Bytes::copy_from_slice(value);
                SignedItem::unverified(public_key, name, value, seq, expires, sig)
                    .ok()
                    .map(Item::from)
            }
            ("tombstone", _) => Tombstone::unverified(public_key, name, seq, expires, sig)
                .ok()
                .map(Item::from),
            _ => None,
        };
        if let Some(candidate) = candidate {
            if candidate.key() == key && summary.describes(&candidate) {
                return Ok(candidate);
            }
        }
    }
    item_from_wire(wire, None)
}

/// Reads just the `id` of a payload that failed to decode as a whole, to echo it in the error.
fn peek_id(payload: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct JustId {
        id: u64,
    }
    rmp_serde::from_slice::<JustId>(payload).ok().map(|j| j.id)
}

fn to_wire(message: &Message) -> WireMessage {
    let bin = |bytes: &[u8]| Some(ByteBuf::from(bytes.to_vec()));
    match message {
        Message::Hello(h) => WireMessage {
            kind: "hello".into(),
            version: Some(h.version),
            network: Some(h.network.to_string()),
            public_key: bin(&h.public_key),
            nonce: bin(&h.nonce),
            port: Some(h.port),
            datagrams: h.datagrams.then_some(true),
            ..Default::default()
        },
        Message::Welcome(w) => WireMessage {
            kind: "welcome".into(),
            version: Some(w.version),
            network: Some(w.network.to_string()),
            public_key: bin(&w.public_key),
            nonce: bin(&w.nonce),
            port: Some(w.port),
            datagrams: w.datagrams.then_some(true),
            signature: bin(&w.signature),
            ..Default::default()
        },
        Message::Auth(a) => WireMessage {
            kind: "auth".into(),
            signature: bin(&a.signature),
            ..Default::default()
        },
        Message::Request { id, request } => {
            let mut wire = WireMessage {
                id: Some(*id),
                kind: request.name().into(),
                ..Default::default()
            };
            match request {
                Request::Ping => {}
                Request::FindNode { target } => wire.target = bin(target.as_bytes()),
                Request::FindValue { key } => wire.key = bin(key.as_bytes()),
                Request::Store { item } => wire.item = Some(item_to_wire(item)),
                Request::Listen { key, seq } => {
                    wire.key = bin(key.as_bytes());
                    wire.seq = Some(*seq);
                }
                Request::Unlisten { listen } => wire.listen = Some(*listen),
                Request::Reach { nonce } => wire.nonce = bin(nonce),
                Request::Probe { to, nonce } | Request::Meet { to, nonce } => {
                    wire.to = Some(ByteBuf::from(compact_addr(*to)));
                    wire.nonce = bin(nonce);
                }
                Request::Register => {}
                Request::Introduce { target } | Request::Relay { target } => {
                    wire.target = bin(target.as_bytes());
                }
            }
            wire
        }
        Message::Response { id, response } => {
            let mut wire = WireMessage {
                id: Some(*id),
                ..Default::default()
            };
            match response {
                Response::Pong => wire.kind = "pong".into(),
                Response::Stored => wire.kind = "stored".into(),
                Response::Unlistened => wire.kind = "unlistened".into(),
                Response::Probed => wire.kind = "probed".into(),
                Response::Met => wire.kind = "met".into(),
                Response::Relaying { circuit } => {
                    wire.kind = "relaying".into();
                    wire.circuit = Some(*circuit);
                }
                Response::Registered { ttl } => {
                    wire.kind = "registered".into();
                    wire.ttl = Some(*ttl);
                }
                Response::Introduced { addr } => {
                    wire.kind = "introduced".into();
                    wire.addr = Some(ByteBuf::from(compact_addr(*addr)));
                }
                Response::Listening { ttl } => {
                    wire.kind = "listening".into();
                    wire.ttl = Some(*ttl);
                }
                Response::Nodes(nodes) => {
                    wire.kind = "nodes".into();
                    wire.nodes = Some(
                        nodes
                            .iter()
                            .map(|c| (ByteBuf::from(c.id.as_bytes().to_vec()), addr_text(c.addr)))
                            .collect(),
                    );
                }
                Response::Value { item, unchecked } => {
                    wire.kind = "value".into();
                    wire.item = Some(item_to_wire(item));
                    wire.unchecked = unchecked.then_some(true);
                }
                Response::Error(e) => {
                    wire.kind = "error".into();
                    wire.code = Some(e.code.0);
                    wire.message = Some(e.message.clone());
                }
            }
            wire
        }
        Message::Notify { id, item } => WireMessage {
            kind: "notify".into(),
            id: Some(*id),
            item: Some(item_to_wire(item)),
            ..Default::default()
        },
    }
}

fn item_to_wire(item: &Item) -> WireItem {
    let bin = |bytes: &[u8]| Some(ByteBuf::from(bytes.to_vec()));
    match item {
        Item::Signed(s) => WireItem {
            kind: "signed".into(),
            public_key: bin(s.public_key()),
            name: Some(s.name().to_owned()),
            value: bin(s.value()),
            seq: Some(s.seq()),
            expires: Some(s.expires()),
            signature: bin(s.signature()),
        },
        Item::Immutable(i) => WireItem {
            kind: "immutable".into(),
            value: bin(i.value()),
            ..Default::default()
        },
        Item::Tombstone(t) => WireItem {
            kind: "tombstone".into(),
            public_key: bin(t.public_key()),
            name: Some(t.name().to_owned()),
            seq: Some(t.seq()),
            expires: Some(t.expires()),
            signature: bin(t.signature()),
            ..Default::default()
        },
    }
}

/// Takes a required field, or explains which one is missing.
fn field<T>(value: Option<T>, id: Option<u64>, name: &str) -> Result<T, DecodeError> {
    value.ok_or_else(|| DecodeError::bad(id, format!("missing field `{name}`")))
}

/// Takes a required byte field of exactly `N` bytes.
fn fixed<const N: usize>(
    value: Option<ByteBuf>,
    id: Option<u64>,
    name: &str,
) -> Result<[u8; N], DecodeError> {
    let bytes = field(value, id, name)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        DecodeError::bad(
            id,
            format!("field `{name}` must be {N} bytes, got {}", bytes.len()),
        )
    })
}

fn from_wire(w: WireMessage) -> Result<Message, DecodeError> {
    let id = w.id;
    let need_id = || field(id, None, "id");
    Ok(match w.kind.as_str() {
        "hello" => Message::Hello(Hello {
            version: field(w.version, id, "version")?,
            network: network(w.network, id)?,
            public_key: fixed(w.public_key, id, "public_key")?,
            nonce: fixed(w.nonce, id, "nonce")?,
            port: field(w.port, id, "port")?,
            datagrams: w.datagrams == Some(true),
        }),
        "welcome" => Message::Welcome(Welcome {
            version: field(w.version, id, "version")?,
            network: network(w.network, id)?,
            public_key: fixed(w.public_key, id, "public_key")?,
            nonce: fixed(w.nonce, id, "nonce")?,
            port: field(w.port, id, "port")?,
            datagrams: w.datagrams == Some(true),
            signature: fixed(w.signature, id, "signature")?,
        }),
        "auth" => Message::Auth(Auth {
            signature: fixed(w.signature, id, "signature")?,
        }),
        "ping" => Message::Request {
            id: need_id()?,
            request: Request::Ping,
        },
        "find_node" => Message::Request {
            id: need_id()?,
            request: Request::FindNode {
                target: Id::from_bytes(fixed(w.target, id, "target")?),
            },
        },
        "find_value" => Message::Request {
            id: need_id()?,
            request: Request::FindValue {
                key: Id::from_bytes(fixed(w.key, id, "key")?),
            },
        },
        "store" => Message::Request {
            id: need_id()?,
            request: Request::Store {
                item: item_from_wire(field(w.item, id, "item")?, id)?,
            },
        },
        "listen" => Message::Request {
            id: need_id()?,
            request: Request::Listen {
                key: Id::from_bytes(fixed(w.key, id, "key")?),
                seq: field(w.seq, id, "seq")?,
            },
        },
        "unlisten" => Message::Request {
            id: need_id()?,
            request: Request::Unlisten {
                listen: field(w.listen, id, "listen")?,
            },
        },
        "reach" => Message::Request {
            id: need_id()?,
            request: Request::Reach {
                nonce: fixed(w.nonce, id, "nonce")?,
            },
        },
        "probe" => Message::Request {
            id: need_id()?,
            request: Request::Probe {
                to: address(w.to, id, "to")?,
                nonce: fixed(w.nonce, id, "nonce")?,
            },
        },
        "probed" => Message::Response {
            id: need_id()?,
            response: Response::Probed,
        },
        "register" => Message::Request {
            id: need_id()?,
            request: Request::Register,
        },
        "introduce" => Message::Request {
            id: need_id()?,
            request: Request::Introduce {
                target: Id::from_bytes(fixed(w.target, id, "target")?),
            },
        },
        "meet" => Message::Request {
            id: need_id()?,
            request: Request::Meet {
                to: address(w.to, id, "to")?,
                nonce: fixed(w.nonce, id, "nonce")?,
            },
        },
        "registered" => Message::Response {
            id: need_id()?,
            response: Response::Registered {
                ttl: field(w.ttl, id, "ttl")?,
            },
        },
        "introduced" => Message::Response {
            id: need_id()?,
            response: Response::Introduced {
                addr: address(w.addr, id, "addr")?,
            },
        },
        "relay" => Message::Request {
            id: need_id()?,
            request: Request::Relay {
                target: Id::from_bytes(fixed(w.target, id, "target")?),
            },
        },
        "relaying" => Message::Response {
            id: need_id()?,
            response: Response::Relaying {
                circuit: field(w.circuit, id, "circuit")?,
            },
        },
        "met" => Message::Response {
            id: need_id()?,
            response: Response::Met,
        },
        "listening" => Message::Response {
            id: need_id()?,
            response: Response::Listening {
                ttl: field(w.ttl, id, "ttl")?,
            },
        },
        "unlistened" => Message::Response {
            id: need_id()?,
            response: Response::Unlistened,
        },
        "notify" => Message::Notify {
            id: need_id()?,
            item: item_from_wire(field(w.item, id, "item")?, id)?,
        },
        "pong" => Message::Response {
            id: need_id()?,
            response: Response::Pong,
        },
        "stored" => Message::Response {
            id: need_id()?,
            response: Response::Stored,
        },
        "nodes" => Message::Response {
            id: need_id()?,
            response: Response::Nodes(nodes_from_wire(field(w.nodes, id, "nodes")?, id)?),
        },
        "value" => Message::Response {
            id: need_id()?,
            response: Response::Value {
                item: item_from_wire(field(w.item, id, "item")?, id)?,
                unchecked: w.unchecked == Some(true),
            },
        },
        "error" => Message::Response {
            id: need_id()?,
            response: Response::Error(ErrorReply::new(
                ErrorCode(field(w.code, id, "code")?),
                w.message.unwrap_or_default(),
            )),
        },
        other => {
            return Err(DecodeError::bad(
                id,
                format!("unknown message type `{other}`"),
            ));
        }
    })
}

/// Takes a required address in compact form (6 or 18 bytes).
fn address(value: Option<ByteBuf>, id: Option<u64>, name: &str) -> Result<SocketAddr, DecodeError> {
    let bytes = field(value, id, name)?;
    parse_compact_addr(&bytes)
        .ok_or_else(|| DecodeError::bad(id, format!("field `{name}` must be 6 or 18 bytes")))
}

fn network(value: Option<String>, id: Option<u64>) -> Result<NetworkName, DecodeError> {
    NetworkName::new(field(value, id, "network")?).map_err(|e| DecodeError::bad(id, e.to_string()))
}

fn nodes_from_wire(
    nodes: Vec<(ByteBuf, String)>,
    id: Option<u64>,
) -> Result<Vec<Contact>, DecodeError> {
    if nodes.len() > MAX_NODES {
        return Err(DecodeError::bad(id, format!("more than {MAX_NODES} nodes")));
    }
    nodes
        .into_iter()
        .map(|(node_id, addr)| {
            let node_id = Id::from_slice(&node_id)
                .ok_or_else(|| DecodeError::bad(id, "node id must be 64 bytes"))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| DecodeError::bad(id, format!("bad node address `{addr}`")))?;
            Ok(Contact::new(node_id, addr))
        })
        .collect()
}

fn item_from_wire(w: WireItem, id: Option<u64>) -> Result<Item, DecodeError> {
    let value = |value: Option<ByteBuf>| -> Result<Bytes, DecodeError> {
        Ok(Bytes::from(field(value, id, "item.value")?.into_vec()))
    };
    let verified = match w.kind.as_str() {
        "immutable" => return Ok(ImmutableItem::new(value(w.value)?).into()),
        "signed" => SignedItem::verify(
            fixed(w.public_key, id, "item.public_key")?,
            field(w.name, id, "item.name")?,
            value(w.value)?,
            field(w.seq, id, "item.seq")?,
            field(w.expires, id, "item.expires")?,
            fixed(w.signature, id, "item.signature")?,
        )
        .map(Item::from),
        // A `value` on a tombstone is an unknown key to it, and ignored like any other.
        "tombstone" => Tombstone::verify(
            fixed(w.public_key, id, "item.public_key")?,
            field(w.name, id, "item.name")?,
            field(w.seq, id, "item.seq")?,
            field(w.expires, id, "item.expires")?,
            fixed(w.signature, id, "item.signature")?,
        )
        .map(Item::from),
        other => return Err(DecodeError::bad(id, format!("unknown item kind `{other}`"))),
    };
    verified.map_err(|e| match e {
        ItemError::BadSignature | ItemError::BadPublicKey => DecodeError {
            id,
            code: ErrorCode::BAD_SIGNATURE,
            reason: e.to_string(),
        },
        ItemError::NameLength(_) => DecodeError::bad(id, e.to_string()),
    })
}

/// The most rendezvous points a record names.
pub const MAX_RECORD_POINTS: usize = 8;

/// The value of a rendezvous record (`docs/protocol.md`, "Rendezvous and punching"): a
/// MessagePack map whose key `points` holds an array of the points, each an array of its node
/// id (bin 64) and its address in compact form (bin 6 or 18). Other keys are ignored.
pub fn encode_rendezvous_record(points: &[Contact]) -> Result<Vec<u8>, EncodeError> {
    let record = WireRecord {
        points: points
            .iter()
            .take(MAX_RECORD_POINTS)
            .map(|c| {
                let id = ByteBuf::from(c.id.as_bytes().to_vec());
                (id, ByteBuf::from(compact_addr(c.addr)))
            })
            .collect(),
    };
    rmp_serde::to_vec_named(&record).map_err(EncodeError)
}

#[derive(Serialize, Deserialize)]
struct WireRecord {
    points: Vec<(ByteBuf, ByteBuf)>,
}

/// Reads the value of a rendezvous record: the points it names. Entries whose address is not
/// 6 or 18 bytes are skipped (a later version may name other kinds of address); anything else
/// malformed, or more than [`MAX_RECORD_POINTS`] entries, refuses the record.
pub fn decode_rendezvous_record(bytes: &[u8]) -> Result<Vec<Contact>, DecodeError> {
    depth::check(bytes, MAX_DEPTH).map_err(|e| DecodeError::bad(None, format!("{e:?}")))?;
    let record: WireRecord = rmp_serde::from_slice(bytes)
        .map_err(|e| DecodeError::bad(None, format!("malformed rendezvous record: {e}")))?;
    if record.points.len() > MAX_RECORD_POINTS {
        let reason = format!("a rendezvous record names at most {MAX_RECORD_POINTS} points");
        return Err(DecodeError::bad(None, reason));
    }
    let mut points = Vec::with_capacity(record.points.len());
    for (id, addr) in record.points {
        let id = Id::from_slice(&id)
            .ok_or_else(|| DecodeError::bad(None, "a point's node id must be 64 bytes"))?;
        if let Some(addr) = parse_compact_addr(&addr) {
            points.push(Contact::new(id, addr));
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests;
