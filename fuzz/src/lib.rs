//! What the fuzz targets share: the fixed keys of `docs/protocol.md`'s test vectors, and the
//! valid inputs the seed corpora are made of (`make-corpus` writes them, the targets' round
//! trips rebuild them).

use bytes::Bytes;
use cairn_core::datagram::{Plane, PlaneConfig, Simulated};
use cairn_core::{
    Contact, ErrorCode, ErrorReply, Hello, ImmutableItem, Item, Message, NetworkName, NodeId,
    Request, Response, Role, SignedItem, Time, Tombstone, Transcript, Welcome,
};
use ed25519_dalek::SigningKey;

/// The key pair of `docs/protocol.md` section 10: seed `00 01 ... 1f` (the dialer, the
/// datagram initiator).
pub fn vector_key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    SigningKey::from_bytes(&seed)
}

/// The listener of section 10's handshake vectors (seed: 32 bytes of `22`).
pub fn listener_key() -> SigningKey {
    SigningKey::from_bytes(&[0x22; 32])
}

/// The network every fixture is on.
pub fn network() -> NetworkName {
    NetworkName::new("cairn").unwrap_or_default()
}

/// A signed item, its tombstone and an immutable item, all valid.
pub fn items() -> Vec<Item> {
    let key = vector_key();
    let mut out = Vec::new();
    if let Ok(signed) = SignedItem::sign(&key, "greeting", Bytes::from_static(b"hello"), 1, 0) {
        out.push(signed.into());
    }
    if let Ok(signed) = SignedItem::sign(&key, "n", Bytes::from(vec![7u8; 300]), 9, 1_900_000_000) {
        out.push(signed.into());
    }
    if let Ok(tombstone) = Tombstone::sign(&key, "greeting", 2, 1_900_000_000) {
        out.push(tombstone.into());
    }
    out.push(ImmutableItem::new(Bytes::from_static(b"immutable")).into());
    out
}

/// The handshake's transcript with the vectors' nonces (`11` and `33` repeated).
pub fn transcript(network: &str) -> Transcript<'_> {
    Transcript {
        network,
        dialer_key: vector_key().verifying_key().to_bytes(),
        dialer_nonce: [0x11; 32],
        listener_key: listener_key().verifying_key().to_bytes(),
        listener_nonce: [0x33; 32],
    }
}

/// The dialer's `hello`.
pub fn hello() -> Hello {
    let t = transcript("cairn");
    Hello {
        version: cairn_core::PROTOCOL_VERSION,
        network: network(),
        public_key: t.dialer_key,
        nonce: t.dialer_nonce,
        port: 7400,
        datagrams: true,
    }
}

/// The listener's `welcome`, signed.
pub fn welcome() -> Welcome {
    let t = transcript("cairn");
    Welcome {
        version: cairn_core::PROTOCOL_VERSION,
        network: network(),
        public_key: t.listener_key,
        nonce: t.listener_nonce,
        port: 7401,
        datagrams: true,
        signature: t.sign(Role::Listener, &listener_key()),
    }
}

/// One message of every kind.
pub fn messages() -> Vec<Message> {
    let target = NodeId::hash(b"target");
    let contact = |n: u8| {
        Contact::new(
            NodeId::hash(&[n]),
            ([127, 0, 0, n], 7400 + u16::from(n)).into(),
        )
    };
    let request = |id, request| Message::Request { id, request };
    let response = |id, response| Message::Response { id, response };
    let t = transcript("cairn");
    let mut out = vec![
        Message::Hello(hello()),
        Message::Welcome(welcome()),
        Message::Auth(cairn_core::Auth {
            signature: t.sign(Role::Dialer, &vector_key()),
        }),
        request(1, Request::Ping),
        request(2, Request::FindNode { target }),
        request(3, Request::FindValue { key: target }),
        request(
            4,
            Request::Listen {
                key: target,
                seq: 3,
            },
        ),
        request(5, Request::Unlisten { listen: 4 }),
        response(1, Response::Pong),
        response(4, Response::Stored),
        response(5, Response::Unlistened),
        response(6, Response::Listening { ttl: 600 }),
        response(2, Response::Nodes((1..=3).map(contact).collect())),
        response(
            7,
            Response::Nodes(vec![Contact::new(
                target,
                "[2001:db8::1]:7400"
                    .parse()
                    .unwrap_or(([0, 0, 0, 0], 0).into()),
            )]),
        ),
        response(
            8,
            Response::Error(ErrorReply::new(ErrorCode::CONFLICT, "older seq")),
        ),
    ];
    for item in items() {
        out.push(request(9, Request::Store { item: item.clone() }));
        out.push(response(10, Response::value(item.clone())));
        out.push(Message::Notify { id: 11, item });
    }
    out
}

/// Plane `n` of a fuzz run (public key and seed `[n; 32]`), with room for `max_sessions`
/// sessions. It runs the simulator's primitives: the plane's rules with every size and every
/// honest check's outcome of the real ones, at a fraction of the cost, so that the fuzzer
/// spends its time on the rules (no input can compute a SHA-512 "signature" either).
pub fn plane(n: u8, max_sessions: usize, now: Time) -> Plane<Simulated> {
    let mut config = PlaneConfig::new(network());
    config.max_sessions = max_sessions;
    Plane::new(Simulated::new([n; 32]), config, [n; 32], now)
}

/// The node id of plane `n`.
pub fn plane_id(n: u8) -> NodeId {
    NodeId::of_public_key(&[n; 32])
}

/// Lowercase hex of the hex cells in `text` (the `| name | n | `hex` |` rows of
/// `docs/vectors/datagram.md`), decoded: `(name, bytes)`.
pub fn hex_rows(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Some(hex) = cells[3].split('`').nth(1).and_then(cairn_core::from_hex) else {
            continue;
        };
        let mut bytes = hex;
        if cells[3].contains("then 960 zero bytes") {
            bytes.resize(bytes.len() + 960, 0);
        }
        out.push((cells[1].to_owned(), bytes));
    }
    out
}

/// The `plane` target's input: a sequence of operations, each an opcode byte (taken modulo
/// 10) and its operands.
///
/// | opcode | operation | operands |
/// |---|---|---|
/// | 0 | A sends a request | `k`: kind `k % 4` (ping, find_node, find_value, store), big value if `k & 4`, to a silent address if `k & 0x10` |
/// | 1 | B sends A a request | `k`, as above |
/// | 2 | A's next datagram to B | `fate % 3`: deliver, drop, deliver twice |
/// | 3 | B's next datagram to A | `fate`, as above |
/// | 4 | the attacker sends A a datagram | `from` (address `from % 4 + 1`; 2 is B's), length (u16 BE), bytes |
/// | 5 | B's datagram `index` again, one byte changed | `index`, `at` (u16 BE), `xor` |
/// | 6 | B's datagram `index` again | `index` |
/// | 7 | time passes | milliseconds (u16 BE) |
/// | 8 | A answers what it was asked | |
/// | 9 | B answers what it was asked | `big`: large answers if odd |
pub mod op {
    /// One operation.
    #[derive(Debug)]
    pub enum Op {
        /// Opcode 0.
        ASend(u8),
        /// Opcode 1.
        BSend(u8),
        /// Opcode 2.
        DeliverToB(u8),
        /// Opcode 3.
        DeliverToA(u8),
        /// Opcode 4.
        Inject {
            /// The source address's last byte, less one.
            from: u8,
            /// The datagram.
            bytes: Vec<u8>,
        },
        /// Opcode 5.
        Mutate {
            /// Which of B's datagrams.
            index: u8,
            /// Which byte.
            at: u16,
            /// What to flip.
            xor: u8,
        },
        /// Opcode 6.
        Replay(u8),
        /// Opcode 7.
        Tick(u16),
        /// Opcode 8.
        AnswerA,
        /// Opcode 9.
        AnswerB(bool),
    }

    impl Op {
        /// The bytes of this operation.
        pub fn encode(&self) -> Vec<u8> {
            match self {
                Op::ASend(k) => vec![0, *k],
                Op::BSend(k) => vec![1, *k],
                Op::DeliverToB(f) => vec![2, *f],
                Op::DeliverToA(f) => vec![3, *f],
                Op::Inject { from, bytes } => {
                    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
                    let mut out = vec![4, *from];
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&bytes[..usize::from(len)]);
                    out
                }
                Op::Mutate { index, at, xor } => {
                    let mut out = vec![5, *index];
                    out.extend_from_slice(&at.to_be_bytes());
                    out.push(*xor);
                    out
                }
                Op::Replay(i) => vec![6, *i],
                Op::Tick(ms) => {
                    let mut out = vec![7];
                    out.extend_from_slice(&ms.to_be_bytes());
                    out
                }
                Op::AnswerA => vec![8],
                Op::AnswerB(big) => vec![9, u8::from(*big)],
            }
        }
    }

    /// Reads operations off the front of an input until it runs out.
    pub struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        /// A reader of `data`.
        pub fn new(data: &'a [u8]) -> Self {
            Reader(data)
        }

        fn byte(&mut self) -> Option<u8> {
            let (first, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(*first)
        }

        fn u16(&mut self) -> Option<u16> {
            Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
        }

        /// The next operation, if the input holds a whole one.
        #[allow(clippy::should_implement_trait)]
        pub fn next(&mut self) -> Option<Op> {
            Some(match self.byte()? % 10 {
                0 => Op::ASend(self.byte()?),
                1 => Op::BSend(self.byte()?),
                2 => Op::DeliverToB(self.byte()?),
                3 => Op::DeliverToA(self.byte()?),
                4 => {
                    let from = self.byte()?;
                    let len = usize::from(self.u16()?).min(self.0.len());
                    let (bytes, rest) = self.0.split_at(len);
                    self.0 = rest;
                    Op::Inject {
                        from,
                        bytes: bytes.to_vec(),
                    }
                }
                5 => Op::Mutate {
                    index: self.byte()?,
                    at: self.u16()?,
                    xor: self.byte()?,
                },
                6 => Op::Replay(self.byte()?),
                7 => Op::Tick(self.u16()?),
                8 => Op::AnswerA,
                _ => Op::AnswerB(self.byte()? % 2 == 1),
            })
        }
    }
}
