//! Messages as a datagram carries them (`docs/protocol.md`, "Datagrams"): one message per
//! datagram, except that a `nodes` answer too large for one is split in parts, and that a
//! `find_value` whose item does not fit is answered `held`.

use super::{DecodeError, EncodeError, MAX_DEPTH, WireMessage, depth, from_wire, peek_id, to_wire};
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

/// Encodes one datagram body as its MessagePack map.
pub fn encode_body(body: &Body) -> Result<Vec<u8>, EncodeError> {
    let wire = match body {
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
    rmp_serde::to_vec_named(&wire).map_err(EncodeError)
}

/// Decodes and verifies one datagram body: the path [`decode`](super::decode) takes, plus the
/// parts of a split `nodes` answer and `held`.
pub fn decode_body(payload: &[u8]) -> Result<Body, DecodeError> {
    depth::check(payload, MAX_DEPTH).map_err(|e| DecodeError::bad(None, format!("{e:?}")))?;
    let mut wire: WireMessage = rmp_serde::from_slice(payload)
        .map_err(|e| DecodeError::bad(peek_id(payload), format!("malformed message: {e}")))?;
    let id = wire.id;
    if wire.kind == "held" {
        let id = id.ok_or_else(|| DecodeError::bad(None, "missing field `id`"))?;
        return Ok(Body::Held { id });
    }
    let split = (wire.part.take(), wire.parts.take());
    let message = from_wire(wire)?;
    match (split, message) {
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
    }
}
