//! Messages as a datagram carries them (`docs/protocol.md`, "Datagrams"): one message per
//! datagram, except that a `nodes` answer too large for one is split in parts, and that a
//! `find_value` whose item does not fit is answered `held`; and an answer carries the address
//! its request came from (`observed`, an [`Envelope`] key).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    DecodeError, EncodeError, Envelope, MAX_DEPTH, WireMessage, depth, from_wire, peek_id, to_wire,
};
use crate::message::{Contact, Message, Response};

/// The most parts a `nodes` answer may be split into.
pub const MAX_PARTS: u8 = 4;

/// What one datagram's body holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one body lives for one datagram; boxing the common case would cost an allocation"
)]
pub enum Body {
    /// A whole message.
    Message(Message),
    /// Part `part` (from 0) of the `parts` of a `nodes` answer to request `id`; the contacts
    /// of the parts, in part order, are the answer.
    NodesPart {
        /// The request's id.
        id: u64,
        /// Which part this is, from 0.
        part: u8,
        /// How many parts the answer has: 2 to [`MAX_PARTS`].
        parts: u8,
        /// This part's contacts.
        nodes: Vec<Contact>,
    },
    /// The answer to `find_value` request `id`: the node holds the item, but it does not fit
    /// in a datagram; ask again over TCP.
    Held {
        /// The request's id.
        id: u64,
    },
}

/// An address in compact form: 4 address bytes and the port (u16 big-endian) for IPv4, 16 and
/// the port for IPv6. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket
/// reports an IPv4 peer) is written as the IPv4 address it carries.
pub fn compact_addr(addr: SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip().to_canonical() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// Reads an address in compact form: 6 bytes (IPv4) or 18 (IPv6; an IPv4-mapped one is read as
/// IPv4). Any other length is `None`.
pub fn parse_compact_addr(bytes: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = bytes.split_last_chunk::<2>()?;
    let port = u16::from_be_bytes(*port);
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)).to_canonical(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Encodes one datagram body as its MessagePack map, with no envelope keys.
pub fn encode_body(body: &Body) -> Result<Vec<u8>, EncodeError> {
    encode_body_with(body, &Envelope::default())
}

/// Encodes one datagram body as its MessagePack map, with `envelope`'s keys after the
/// message's own.
pub fn encode_body_with(body: &Body, envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let mut wire = match body {
        Body::Message(message) => to_wire(message),
        Body::NodesPart {
            id,
            part,
            parts,
            nodes,
        } => {
            let mut wire = to_wire(&Message::Response {
                id: *id,
                response: Response::Nodes(nodes.clone()),
            });
            wire.part = Some(*part);
            wire.parts = Some(*parts);
            wire
        }
        Body::Held { id } => WireMessage {
            kind: "held".into(),
            id: Some(*id),
            ..Default::default()
        },
    };
    envelope.write(&mut wire);
    rmp_serde::to_vec_named(&wire).map_err(EncodeError)
}

/// Decodes and verifies one datagram body: the path [`decode`](super::decode) takes, plus the
/// parts of a split `nodes` answer and `held`. Envelope keys are ignored.
pub fn decode_body(payload: &[u8]) -> Result<Body, DecodeError> {
    decode_body_with(payload).map(|(body, _)| body)
}

/// Decodes and verifies one datagram body, and reads its envelope. An `observed` that is not a
/// compact address (another length) is ignored, as the protocol says, not refused.
pub fn decode_body_with(payload: &[u8]) -> Result<(Body, Envelope), DecodeError> {
    depth::check(payload, MAX_DEPTH).map_err(|e| DecodeError::bad(None, format!("{e:?}")))?;
    let mut wire: WireMessage = rmp_serde::from_slice(payload)
        .map_err(|e| DecodeError::bad(peek_id(payload), format!("malformed message: {e}")))?;
    let envelope = Envelope::read(&mut wire);
    let id = wire.id;
    if wire.kind == "held" {
        let id = id.ok_or_else(|| DecodeError::bad(None, "missing field `id`"))?;
        return Ok((Body::Held { id }, envelope));
    }
    let split = (wire.part.take(), wire.parts.take());
    let message = from_wire(wire)?;
    let body = match (split, message) {
        ((None, None), message) => Ok(Body::Message(message)),
        (
            (Some(part), Some(parts)),
            Message::Response {
                id,
                response: Response::Nodes(nodes),
            },
        ) if (2..=MAX_PARTS).contains(&parts) && part < parts => Ok(Body::NodesPart {
            id,
            part,
            parts,
            nodes,
        }),
        _ => Err(DecodeError::bad(
            id,
            format!("`part` and `parts` go together, only on `nodes`, with 2 to {MAX_PARTS} parts"),
        )),
    }?;
    Ok((body, envelope))
}
