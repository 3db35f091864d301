//! The eight datagram layouts (`docs/protocol.md`, "Datagrams"), as bytes: building them and
//! taking them apart, with no state. Every multi-byte integer is big-endian.
//!
//! | kind | name | who sends it |
//! |---|---|---|
//! | `0x01` | initial | a node with no session to a peer, carrying its first request |
//! | `0x02` | accept | the peer, carrying the answer; the session is open |
//! | `0x03` | data | either side, in a session: a request, an answer, or nothing (confirm) |
//! | `0x04` | unknown | either side, to a `data` for a session it does not hold |
//! | `0x05` | refuse | the peer, to an `initial` it cannot take (other version or network) |
//! | `0x06` | probe | a third node, asked by a server, to the address that asked `reach` |
//! | `0x07` | punch | a node asked `meet` by its rendezvous, to the node it is introduced to |
//! | `0x08` | relayed | either end of a circuit, to the relay, and the relay to the other end |

use crate::message::{ErrorCode, MAX_NETWORK_LEN};

/// The largest datagram cairn sends or takes, in bytes of UDP payload. The IPv6 minimum MTU is
/// 1,280 bytes, less 40 of IPv6 header and 8 of UDP: 1,232; QUIC and discv5 take 1,200 for the
/// same reason, leaving room for a tunnel's header. Nothing larger is fragmented on the way.
pub const MAX_DATAGRAM: usize = 1_200;

/// The datagram protocol's version, in `initial`, `accept` and `refuse`.
pub const VERSION: u8 = 2;

/// The domain tag of an `initial`'s signature.
pub const INITIAL_TAG: &[u8] = b"cairn-initial-v2";
/// The domain tag of an `accept`'s signature.
pub const ACCEPT_TAG: &[u8] = b"cairn-accept-v2";
/// The domain tag of the session keys' derivation.
pub const SESSION_TAG: &[u8] = b"cairn-session-v2";

/// Kind bytes.
pub const INITIAL: u8 = 0x01;
/// Kind bytes.
pub const ACCEPT: u8 = 0x02;
/// Kind bytes.
pub const DATA: u8 = 0x03;
/// Kind bytes.
pub const UNKNOWN: u8 = 0x04;
/// Kind bytes.
pub const REFUSE: u8 = 0x05;
/// Kind bytes.
pub const PROBE: u8 = 0x06;

/// Kind bytes.
pub const PUNCH: u8 = 0x07;

/// Kind bytes.
pub const RELAYED: u8 = 0x08;
/// Bytes of a `relayed` datagram before what it carries: its kind and the circuit id.
pub const RELAYED_HEADER: usize = 1 + 8;
/// The largest `relayed` datagram: a header and a whole datagram. 1,209 bytes, still below
/// the 1,232 that cross any IPv6 path unfragmented.
pub const MAX_RELAYED: usize = MAX_DATAGRAM + RELAYED_HEADER;

/// Bytes of a `probe`: its kind and a 16-byte nonce, no session, nothing else.
pub const PROBE_LEN: usize = 1 + 16;
/// Bytes of a `punch`: its kind and a 16-byte nonce, as a `probe`.
pub const PUNCH_LEN: usize = 1 + 16;

/// `initial` flag: the sender takes requests at the address it sends from, and may enter
/// routing tables there.
pub const FLAG_ANNOUNCE: u8 = 0x01;

/// Bytes of an `accept` before its sealed body (all authenticated as its associated data).
pub const ACCEPT_HEADER: usize = 1 + 1 + 8 + 8 + 32 + 32 + 64;
/// Bytes of a `data` before its sealed body (all authenticated as its associated data).
pub const DATA_HEADER: usize = 1 + 8 + 8;

/// The fields of an `initial`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initial {
    /// [`FLAG_ANNOUNCE`] or 0.
    pub flags: u8,
    /// The session id the sender will receive under.
    pub sid: u64,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    /// The sender's ed25519 public key.
    pub public_key: [u8; 32],
    /// The network name (1 to 64 bytes).
    pub network: Vec<u8>,
    /// The request, a MessagePack body, in the clear.
    pub body: Vec<u8>,
    /// The sender's signature over [`INITIAL_TAG`] and every byte before the signature.
    pub signature: [u8; 64],
}

impl Initial {
    /// The bytes before the signature: what the signature covers after [`INITIAL_TAG`].
    pub fn signed_part(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        out.push(INITIAL);
        out.push(VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.sid.to_be_bytes());
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.public_key);
        // Checked at build and at parse: 1 to 64 bytes, and a body that fits a datagram.
        out.push(u8::try_from(self.network.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.network);
        out.extend_from_slice(
            &u16::try_from(self.body.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }

    /// The message a signature covers: the tag, then [`Initial::signed_part`].
    pub fn signed_message(signed_part: &[u8]) -> Vec<u8> {
        [INITIAL_TAG, signed_part].concat()
    }

    /// The largest body an `initial` on `network` can carry.
    pub fn room(network_len: usize) -> usize {
        MAX_DATAGRAM - (3 + 8 + 32 + 32 + 1 + network_len + 2 + 64)
    }

    /// The datagram: the signed part, the signature, then zeros to [`MAX_DATAGRAM`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_part();
        out.extend_from_slice(&self.signature);
        out.resize(MAX_DATAGRAM.max(out.len()), 0);
        out
    }

    /// Takes an `initial` apart (version 2 only; the caller checks the kind byte). `None` if it
    /// is not exactly [`MAX_DATAGRAM`] bytes or its fields do not add up. The padding's bytes
    /// are not checked.
    pub fn parse(bytes: &[u8]) -> Option<Initial> {
        if bytes.len() != MAX_DATAGRAM {
            return None;
        }
        let mut r = Reader(bytes);
        let (_kind, _version, flags) = (r.u8()?, r.u8()?, r.u8()?);
        let sid = r.u64()?;
        let ephemeral = r.array()?;
        let public_key = r.array()?;
        let network_len = usize::from(r.u8()?);
        if network_len == 0 || network_len > MAX_NETWORK_LEN {
            return None;
        }
        let network = r.take(network_len)?.to_vec();
        let body_len = usize::from(u16::from_be_bytes(r.array()?));
        let body = r.take(body_len)?.to_vec();
        let signature = r.array()?;
        Some(Initial {
            flags,
            sid,
            ephemeral,
            public_key,
            network,
            body,
            signature,
        })
    }
}

/// The version byte of an `initial`, `accept` or `refuse`, if the datagram is long enough.
pub fn version(bytes: &[u8]) -> Option<u8> {
    bytes.get(1).copied()
}

/// The fields of an `accept`'s header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accept {
    /// The initiator's session id, echoed.
    pub initiator_sid: u64,
    /// The session id the responder receives under.
    pub sid: u64,
    /// The responder's ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    /// The responder's ed25519 public key.
    pub public_key: [u8; 32],
    /// The responder's signature over [`Accept::signed_message`].
    pub signature: [u8; 64],
}

impl Accept {
    /// What the responder signs: [`ACCEPT_TAG`], the network (its length byte, then its
    /// bytes), the initiator's session id, ephemeral key and public key, then the responder's.
    pub fn signed_message(
        network: &[u8],
        initiator: (u64, &[u8; 32], &[u8; 32]),
        responder: (u64, &[u8; 32], &[u8; 32]),
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(ACCEPT_TAG);
        out.push(u8::try_from(network.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(network);
        for (sid, ephemeral, public_key) in [initiator, responder] {
            out.extend_from_slice(&sid.to_be_bytes());
            out.extend_from_slice(ephemeral);
            out.extend_from_slice(public_key);
        }
        out
    }

    /// The header: the associated data the sealed body authenticates.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ACCEPT_HEADER);
        out.push(ACCEPT);
        out.push(VERSION);
        out.extend_from_slice(&self.initiator_sid.to_be_bytes());
        out.extend_from_slice(&self.sid.to_be_bytes());
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Takes an `accept` apart: its header and its sealed body.
    pub fn parse(bytes: &[u8]) -> Option<(Accept, &[u8], &[u8])> {
        if bytes.len() > MAX_DATAGRAM || bytes.len() < ACCEPT_HEADER {
            return None;
        }
        let (header, sealed) = bytes.split_at(ACCEPT_HEADER);
        let mut r = Reader(header);
        let (_kind, _version) = (r.u8()?, r.u8()?);
        let accept = Accept {
            initiator_sid: r.u64()?,
            sid: r.u64()?,
            ephemeral: r.array()?,
            public_key: r.array()?,
            signature: r.array()?,
        };
        Some((accept, header, sealed))
    }
}

/// A `data` header: the receiver's session id and the packet number.
pub fn data_header(sid: u64, pn: u64) -> [u8; DATA_HEADER] {
    let mut out = [0; DATA_HEADER];
    out[0] = DATA;
    out[1..9].copy_from_slice(&sid.to_be_bytes());
    out[9..17].copy_from_slice(&pn.to_be_bytes());
    out
}

/// Takes a `data` apart: session id, packet number, header, sealed body.
pub fn parse_data(bytes: &[u8]) -> Option<(u64, u64, &[u8], &[u8])> {
    if bytes.len() > MAX_DATAGRAM || bytes.len() < DATA_HEADER {
        return None;
    }
    let (header, sealed) = bytes.split_at(DATA_HEADER);
    let mut r = Reader(&header[1..]);
    Some((r.u64()?, r.u64()?, header, sealed))
}

/// An `unknown`: "I hold no session `sid`".
pub fn unknown(sid: u64) -> Vec<u8> {
    let mut out = vec![UNKNOWN];
    out.extend_from_slice(&sid.to_be_bytes());
    out
}

/// The session id of an `unknown`.
pub fn parse_unknown(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != 9 {
        return None;
    }
    Reader(&bytes[1..]).u64()
}

/// A `refuse` of the `initial` with session id `sid`: a code (426: other version or network)
/// and a message of at most 255 bytes.
pub fn refuse(sid: u64, code: ErrorCode, message: &str) -> Vec<u8> {
    let mut end = message.len().min(255);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = vec![REFUSE, VERSION];
    out.extend_from_slice(&sid.to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.push(u8::try_from(end).unwrap_or(u8::MAX));
    out.extend_from_slice(&message.as_bytes()[..end]);
    out
}

/// Takes a `refuse` apart: the session id, the code and the message.
pub fn parse_refuse(bytes: &[u8]) -> Option<(u64, ErrorCode, String)> {
    let mut r = Reader(bytes.get(2..)?);
    let sid = r.u64()?;
    let code = ErrorCode(u16::from_be_bytes(r.array()?));
    let len = usize::from(r.u8()?);
    let message = String::from_utf8_lossy(r.take(len)?).into_owned();
    Some((sid, code, message))
}

/// A `probe` carrying `nonce`.
pub fn probe(nonce: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROBE_LEN);
    out.push(PROBE);
    out.extend_from_slice(nonce);
    out
}

/// A `punch` carrying `nonce`: it exists to leave its sender's NAT open to its destination,
/// and its receiver drops it.
pub fn punch(nonce: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PUNCH_LEN);
    out.push(PUNCH);
    out.extend_from_slice(nonce);
    out
}

/// A `relayed` datagram carrying `inner` on circuit `circuit`.
pub fn relayed(circuit: u64, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RELAYED_HEADER + inner.len());
    out.push(RELAYED);
    out.extend_from_slice(&circuit.to_be_bytes());
    out.extend_from_slice(inner);
    out
}

/// The circuit id and the datagram a `relayed` carries: at least one byte of it, at most
/// [`MAX_DATAGRAM`].
pub fn parse_relayed(bytes: &[u8]) -> Option<(u64, &[u8])> {
    if bytes.first() != Some(&RELAYED) || bytes.len() > MAX_RELAYED {
        return None;
    }
    let mut r = Reader(&bytes[1..]);
    let circuit = r.u64()?;
    (!r.0.is_empty()).then_some((circuit, r.0))
}

/// The nonce of a `probe`: exactly [`PROBE_LEN`] bytes.
pub fn parse_probe(bytes: &[u8]) -> Option<[u8; 16]> {
    if bytes.len() != PROBE_LEN {
        return None;
    }
    Reader(&bytes[1..]).array()
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
}
