//! Round trips, exact bytes, and hostile payloads.

use super::*;
use crate::message::Mode;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn encoded(message: &Message) -> Vec<u8> {
    encode(message).expect("every message encodes")
}

fn signed_item() -> Item {
    let key = SigningKey::from_bytes(&[7; 32]);
    SignedItem::sign(&key, "name", Bytes::from_static(b"value"), 3, 0)
        .expect("valid")
        .into()
}

fn contact(n: u8) -> Contact {
    let addr = if n % 2 == 0 {
        "127.0.0.1:7400"
    } else {
        "[::1]:7401"
    };
    Contact::new(
        Id::from_bytes([n; 64]),
        addr.parse().expect("valid address"),
    )
}

fn every_message() -> Vec<Message> {
    let hello = Hello {
        version: 1,
        network: NetworkName::default(),
        public_key: [1; 32],
        nonce: [2; 32],
        port: 7400,
        datagrams: true,
    };
    let welcome = Welcome {
        version: 1,
        network: NetworkName::default(),
        public_key: [3; 32],
        nonce: [4; 32],
        port: 0,
        datagrams: false,
        signature: [5; 64],
    };
    let request = |id, request| Message::Request { id, request };
    let response = |id, response| Message::Response { id, response };
    vec![
        Message::Hello(hello),
        Message::Welcome(welcome),
        Message::Auth(Auth { signature: [6; 64] }),
        request(1, Request::Ping),
        request(
            2,
            Request::FindNode {
                target: Id::from_bytes([8; 64]),
            },
        ),
        request(
            u64::MAX,
            Request::FindValue {
                key: Id::from_bytes([9; 64]),
            },
        ),
        request(
            4,
            Request::Store {
                item: signed_item(),
            },
        ),
        request(
            5,
            Request::Store {
                item: ImmutableItem::new(Bytes::from_static(b"x")).into(),
            },
        ),
        response(1, Response::Pong),
        response(2, Response::Nodes(vec![contact(1), contact(2)])),
        response(2, Response::Nodes(vec![])),
        response(3, Response::value(signed_item())),
        response(
            3,
            Response::Value {
                item: signed_item(),
                unchecked: true,
            },
        ),
        response(4, Response::Stored),
        request(
            6,
            Request::Listen {
                key: Id::from_bytes([10; 64]),
                seq: 0,
            },
        ),
        request(7, Request::Unlisten { listen: 6 }),
        response(6, Response::Listening { ttl: 600 }),
        response(7, Response::Unlistened),
        Message::Notify {
            id: 6,
            item: signed_item(),
        },
        request(
            8,
            Request::Store {
                item: golden_tombstone(),
            },
        ),
        response(
            0,
            Response::Error(ErrorReply::new(ErrorCode::MISMATCH, "wrong network")),
        ),
        request(9, Request::Register),
        response(9, Response::Registered { ttl: 60 }),
        request(
            10,
            Request::Introduce {
                target: Id::from_bytes([11; 64]),
            },
        ),
        response(
            10,
            Response::Introduced {
                addr: "203.0.113.7:41000".parse().expect("an address"),
            },
        ),
        request(
            11,
            Request::Meet {
                to: "[2001:db8::9]:5000".parse().expect("an address"),
                nonce: [12; 16],
            },
        ),
        response(11, Response::Met),
        request(
            12,
            Request::Relay {
                target: Id::from_bytes([13; 64]),
            },
        ),
        response(12, Response::Relaying { circuit: 258 }),
    ]
}

/// The rendezvous vectors of `docs/protocol.md` (section 11, "Rendezvous and punching"),
/// computed with Python's `msgpack` first.
#[test]
fn golden_rendezvous_messages_and_record() {
    let introduce = encoded(&Message::Request {
        id: 10,
        request: Request::Introduce {
            target: Id::from_bytes([11; 64]),
        },
    });
    let expected = format!(
        "83a474797065a9696e74726f64756365a269640aa6746172676574c440{}",
        "0b".repeat(64)
    );
    assert_eq!(crate::to_hex(&introduce), expected);
    let introduced = encoded(&Message::Response {
        id: 10,
        response: Response::Introduced {
            addr: "203.0.113.7:41000".parse().expect("an address"),
        },
    });
    assert_eq!(
        crate::to_hex(&introduced),
        "83a474797065aa696e74726f6475636564a269640aa461646472c406cb007107a028"
    );
    let meet = encoded(&Message::Request {
        id: 11,
        request: Request::Meet {
            to: "198.51.100.9:5000".parse().expect("an address"),
            nonce: [12; 16],
        },
    });
    let expected = format!(
        "84a474797065a46d656574a269640ba56e6f6e6365c410{}a2746fc406c63364091388",
        "0c".repeat(16)
    );
    assert_eq!(crate::to_hex(&meet), expected);
    let relaying = encoded(&Message::Response {
        id: 12,
        response: Response::Relaying { circuit: 258 },
    });
    assert_eq!(
        crate::to_hex(&relaying),
        "83a474797065a872656c6179696e67a269640ca763697263756974cd0102"
    );
    let wrapped = crate::datagram::relayed(258, &crate::datagram::punch(&[12; 16]));
    let expected = format!("08000000000000010207{}", "0c".repeat(16));
    assert_eq!(crate::to_hex(&wrapped), expected);
    let point = Contact::new(
        Id::from_bytes([1; 64]),
        "198.51.100.1:4000".parse().expect("an address"),
    );
    let record = encode_rendezvous_record(&[point]).expect("encodes");
    let expected = format!(
        "81a6706f696e74739192c440{}c406c63364010fa0",
        "01".repeat(64)
    );
    assert_eq!(crate::to_hex(&record), expected);
}

#[test]
fn a_rendezvous_record_round_trips_and_is_bounded() {
    let points: Vec<Contact> = (1..=3).map(contact).collect();
    let bytes = encode_rendezvous_record(&points).expect("encodes");
    assert_eq!(decode_rendezvous_record(&bytes), Ok(points));
    let many: Vec<Contact> = (1..=9).map(contact).collect();
    let cut = encode_rendezvous_record(&many).expect("encodes");
    assert_eq!(
        decode_rendezvous_record(&cut).map(|p| p.len()),
        Ok(MAX_RECORD_POINTS),
        "a record names at most the bound"
    );
    assert!(decode_rendezvous_record(b"\x90").is_err(), "not a map");
    assert!(
        decode_rendezvous_record(&[0xc1]).is_err(),
        "not MessagePack"
    );
}

#[test]
fn every_message_round_trips() {
    for message in every_message() {
        let bytes = encoded(&message);
        assert_eq!(decode(&bytes), Ok(message.clone()), "{message:?}");
    }
}

#[test]
fn exact_bytes_of_a_ping() {
    let bytes = encoded(&Message::Request {
        id: 1,
        request: Request::Ping,
    });
    // {"type": "ping", "id": 1}: a fixmap of 2, fixstr keys, positive fixint id.
    assert_eq!(bytes, b"\x82\xa4type\xa4ping\xa2id\x01");
    let big = encoded(&Message::Request {
        id: 300,
        request: Request::Ping,
    });
    assert_eq!(
        &big[big.len() - 3..],
        b"\xcd\x01\x2c",
        "smallest integer encoding"
    );
}

#[test]
fn byte_fields_are_bin() {
    let bytes = encoded(&Message::Request {
        id: 1,
        request: Request::FindNode {
            target: Id::from_bytes([0xab; 64]),
        },
    });
    // `target` then bin8 (0xc4) of length 64.
    let at = bytes
        .windows(6)
        .position(|w| w == b"target")
        .expect("has target");
    assert_eq!(&bytes[at + 6..at + 8], &[0xc4, 64]);
}

#[test]
fn unknown_keys_are_ignored() {
    let mut map = b"\x83\xa4type\xa4ping\xa2id\x07".to_vec();
    map.extend_from_slice(b"\xa5extra\x92\x01\xa1x");
    assert_eq!(
        decode(&map),
        Ok(Message::Request {
            id: 7,
            request: Request::Ping
        })
    );
}

#[test]
fn refusals_carry_the_id_and_code() {
    let unknown = decode(b"\x82\xa4type\xa4jump\xa2id\x09").expect_err("unknown type");
    assert_eq!(
        (unknown.id, unknown.code),
        (Some(9), ErrorCode::BAD_REQUEST)
    );
    assert_eq!(
        unknown.reply(),
        Message::Response {
            id: 9,
            response: Response::Error(ErrorReply::new(
                ErrorCode::BAD_REQUEST,
                "unknown message type `jump`"
            )),
        }
    );

    let short = decode(b"\x83\xa4type\xa9find_node\xa2id\x02\xa6target\xc4\x01\x00")
        .expect_err("short target");
    assert_eq!((short.id, short.code), (Some(2), ErrorCode::BAD_REQUEST));

    let no_id = decode(b"\x81\xa4type\xa4ping").expect_err("no id");
    assert_eq!((no_id.id, no_id.code), (None, ErrorCode::BAD_REQUEST));

    let not_a_map = decode(b"\x92\x01\x02").expect_err("array");
    assert_eq!(not_a_map.id, None);

    // A type of the wrong kind: the whole map fails to deserialize, but the id is still read.
    let bad_type = decode(b"\x82\xa4type\x05\xa2id\x03").expect_err("numeric type");
    assert_eq!(bad_type.id, Some(3));
}

#[test]
fn a_forged_item_is_403() {
    let mut bytes = encoded(&Message::Request {
        id: 11,
        request: Request::Store {
            item: signed_item(),
        },
    });
    let at = bytes
        .windows(5)
        .position(|w| w == b"value")
        .expect("has value");
    // Flip the value's first byte: `value`, then bin8 marker and length, then the bytes.
    bytes[at + 7] ^= 1;
    let err = decode(&bytes).expect_err("forged");
    assert_eq!((err.id, err.code), (Some(11), ErrorCode::BAD_SIGNATURE));
}

#[test]
fn nesting_1000_deep_is_refused() {
    let mut bytes = b"\x82\xa4type\xa4ping\xa2id".to_vec();
    bytes.extend(std::iter::repeat_n(0x91u8, 1000));
    bytes.push(0x01);
    let err = decode(&bytes).expect_err("too deep");
    assert_eq!(err.code, ErrorCode::BAD_REQUEST);
    assert!(err.reason.contains("TooDeep"), "{}", err.reason);
}

#[test]
fn too_many_nodes_are_refused() {
    let nodes = (0..21).map(|n| contact(n as u8)).collect();
    let bytes = encoded(&Message::Response {
        id: 1,
        response: Response::Nodes(nodes),
    });
    assert!(decode(&bytes).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn random_bytes_are_refused_with_a_reply(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(refused_with_a_reply(&bytes));
    }

    #[test]
    fn random_maps_are_refused_with_a_reply(
        tail in prop::collection::vec(any::<u8>(), 0..256),
        n in 0u8..16,
    ) {
        let mut bytes = vec![0x80 | n];
        bytes.extend(tail);
        prop_assert!(refused_with_a_reply(&bytes));
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..14,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encoded(&every_message()[which]);
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(message) = decode(&bytes) {
            // Whatever decodes must encode again to something that decodes the same.
            prop_assert_eq!(decode(&encoded(&message)), Ok(message));
        }
    }
}
/// Whether `bytes` fail to decode with an error that yields a well-formed `error` reply: code
/// 400 (or 403 for a bad signature), the id echoed when one was read, a message within 256
/// bytes. (Random bytes that happened to form a valid message would fail this.)
fn refused_with_a_reply(bytes: &[u8]) -> bool {
    let Err(e) = decode(bytes) else {
        return false;
    };
    let code_ok = e.code == ErrorCode::BAD_REQUEST || e.code == ErrorCode::BAD_SIGNATURE;
    match e.reply() {
        Message::Response {
            id,
            response: Response::Error(reply),
        } => {
            code_ok
                && reply.code == e.code
                && id == e.id.unwrap_or(0)
                && reply.message.len() <= crate::message::MAX_ERROR_MESSAGE
        }
        _ => false,
    }
}

/// The golden key pair of `docs/protocol.md` ("Test vectors"): seed bytes 0x00, 0x01, ..., 0x1f.
fn golden_key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8))
}

fn golden_tombstone() -> Item {
    crate::item::Tombstone::sign(&golden_key(), "hello", 8, 1_900_000_000)
        .expect("valid")
        .into()
}

/// The messages of section 4.5, byte for byte (checked with Python's `msgpack` and
/// `cryptography` when written).
#[test]
fn golden_delete_and_listen_messages() {
    let key = *golden_tombstone().key();
    let cases = [
        (
            Message::Request {
                id: 1,
                request: Request::Store {
                    item: golden_tombstone(),
                },
            },
            GOLDEN_TOMBSTONE_STORE,
        ),
        (
            Message::Request {
                id: 2,
                request: Request::Listen { key, seq: 7 },
            },
            "84a474797065a66c697374656ea2696402a36b6579c44061a218b17af39a96c595416ba1e08bd446fab1886826372a0a02d88783046d1706003b9b3a917d22396c42425d58716993bbb9e51e211b5807e958250be62124a373657107",
        ),
        (
            Message::Response {
                id: 2,
                response: Response::Listening { ttl: 600 },
            },
            "83a474797065a96c697374656e696e67a2696402a374746ccd0258",
        ),
        (
            Message::Request {
                id: 3,
                request: Request::Unlisten { listen: 2 },
            },
            "83a474797065a8756e6c697374656ea2696403a66c697374656e02",
        ),
        (
            Message::Response {
                id: 3,
                response: Response::Unlistened,
            },
            "82a474797065aa756e6c697374656e6564a2696403",
        ),
        (
            Message::Notify {
                id: 2,
                item: golden_tombstone(),
            },
            GOLDEN_TOMBSTONE_NOTIFY,
        ),
    ];
    for (message, hex) in cases {
        let bytes = encoded(&message);
        assert_eq!(crate::id::to_hex(&bytes), hex, "{message:?}");
        assert_eq!(decode(&bytes), Ok(message));
    }
    // A tombstone signed as something else does not verify: 403, with the request's id.
    let mut forged = encoded(&Message::Request {
        id: 1,
        request: Request::Store {
            item: golden_tombstone(),
        },
    });
    let at = forged.len() - 1;
    forged[at] ^= 1;
    let refused = decode(&forged).expect_err("forged");
    assert_eq!(
        (refused.id, refused.code),
        (Some(1), ErrorCode::BAD_SIGNATURE)
    );
    // Missing fields are named.
    let no_seq = "83a474797065a66c697374656ea2696402a36b6579c44061a218b17af39a96c595416ba1e08bd446fab1886826372a0a02d88783046d1706003b9b3a917d22396c42425d58716993bbb9e51e211b5807e958250be62124";
    let bytes: Vec<u8> = (0..no_seq.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&no_seq[i..i + 2], 16).expect("hex"))
        .collect();
    let refused = decode(&bytes).expect_err("no seq");
    assert_eq!(refused.id, Some(2));
    assert!(refused.reason.contains("seq"), "{}", refused.reason);
}

const GOLDEN_TOMBSTONE_STORE: &str = "83a474797065a573746f7265a2696401a46974656d86a46b696e64a9746f6d6273746f6e65aa7075626c69635f6b6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a46e616d65a568656c6c6fa373657108a765787069726573ce713fb300a97369676e6174757265c440ccce75ac8933d3f65ba7a128740d957223f4bc1c8da1d52a3af499578b9e7d36d632418b9c24f70b27cef2bbccca37be6cbf093f7a837d4384c9720e14c68d0f";
const GOLDEN_TOMBSTONE_NOTIFY: &str = "83a474797065a66e6f74696679a2696402a46974656d86a46b696e64a9746f6d6273746f6e65aa7075626c69635f6b6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a46e616d65a568656c6c6fa373657108a765787069726573ce713fb300a97369676e6174757265c440ccce75ac8933d3f65ba7a128740d957223f4bc1c8da1d52a3af499578b9e7d36d632418b9c24f70b27cef2bbccca37be6cbf093f7a837d4384c9720e14c68d0f";

/// The golden key pair's item of `docs/protocol.md` ("A signed item"): `hello` = `world`.
fn golden_signed_item() -> Item {
    SignedItem::sign(
        &golden_key(),
        "hello",
        Bytes::from_static(b"world"),
        7,
        1_900_000_000,
    )
    .expect("valid")
    .into()
}

#[test]
fn golden_store_message() {
    let item = golden_signed_item();
    let message = Message::Request {
        id: 1,
        request: Request::Store { item },
    };
    let bytes = encoded(&message);
    assert_eq!(crate::id::to_hex(&bytes), GOLDEN_STORE);
    assert_eq!(decode(&bytes), Ok(message));
}

#[test]
fn golden_unchecked_value_answer() {
    let item = golden_signed_item();
    let message = Message::Response {
        id: 1,
        response: Response::Value {
            item,
            unchecked: true,
        },
    };
    let bytes = encoded(&message);
    assert_eq!(crate::id::to_hex(&bytes), GOLDEN_UNCHECKED_VALUE);
    assert_eq!(decode(&bytes), Ok(message));
    // The same answer with the key left out, or `false`, is a checked copy.
    let without = &bytes[..bytes.len() - 11];
    let mut plain = without.to_vec();
    plain[0] = 0x83;
    let Ok(Message::Response { response, .. }) = decode(&plain) else {
        panic!("a value answer without the key decodes");
    };
    assert!(matches!(
        response,
        Response::Value {
            unchecked: false,
            ..
        }
    ));
    let mut falsy = bytes.clone();
    *falsy.last_mut().expect("not empty") = 0xc2;
    let Ok(Message::Response { response, .. }) = decode(&falsy) else {
        panic!("`unchecked: false` decodes");
    };
    assert!(matches!(
        response,
        Response::Value {
            unchecked: false,
            ..
        }
    ));
}

/// `docs/protocol.md`, "A `value` answer with `unchecked`": computed with Python's `msgpack`
/// from the golden `store` request's item.
const GOLDEN_UNCHECKED_VALUE: &str = "84a474797065a576616c7565a2696401a46974656d87a46b696e64a67369676e6564aa7075626c69635f6b6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a46e616d65a568656c6c6fa576616c7565c405776f726c64a373657107a765787069726573ce713fb300a97369676e6174757265c440abb4846bf8d1a7532a0d6ea81851f734e5c07d281b3f8c04fa5cc6581c73e862d40bb32f754c6b5d54266fdec24a5a5367800de1b62ea14c78e982c7d8a22b0da9756e636865636b6564c3";

#[test]
fn golden_handshake_signatures() {
    use crate::handshake::{Role, Transcript};
    let listener = SigningKey::from_bytes(&[0x22; 32]);
    let t = Transcript {
        network: "cairn",
        dialer_key: golden_key().verifying_key().to_bytes(),
        dialer_nonce: [0x11; 32],
        listener_key: listener.verifying_key().to_bytes(),
        listener_nonce: [0x33; 32],
    };
    assert_eq!(crate::id::to_hex(&t.listener_key), GOLDEN_LISTENER_KEY);
    assert_eq!(
        crate::id::to_hex(&t.sign(Role::Listener, &listener)),
        GOLDEN_WELCOME_SIGNATURE
    );
    assert_eq!(
        crate::id::to_hex(&t.sign(Role::Dialer, &golden_key())),
        GOLDEN_AUTH_SIGNATURE
    );
}

/// The handshake's state machines, given the vectors' keys and nonces, put the vectors'
/// signatures on the wire.
#[test]
fn the_handshake_machines_send_the_golden_signatures() {
    use crate::datagram::Real;
    use crate::handshake::{Accepting, Dialing, Greeting};
    let (dialer, listener) = (
        Real::new(golden_key()),
        Real::new(SigningKey::from_bytes(&[0x22; 32])),
    );
    let greeting = Greeting {
        network: NetworkName::default(),
        port: 4000,
        datagrams: true,
    };
    let peer = "192.0.2.1:4000".parse().unwrap();
    let mut dial = Dialing::new(&dialer, greeting.clone(), [0x11; 32], peer, None);
    let mut accept = Accepting::new(
        (&listener, [0x33; 32]),
        greeting,
        (peer, 1),
        crate::Time::from_secs(0),
        std::time::Duration::from_secs(5),
    );
    let hello = dial.poll_message().expect("hello");
    accept
        .handle_hello(&listener, hello, None)
        .expect("welcomed");
    let Some(Message::Welcome(welcome)) = accept.poll_message() else {
        panic!("a welcome");
    };
    assert_eq!(
        crate::id::to_hex(&welcome.signature),
        GOLDEN_WELCOME_SIGNATURE
    );
    dial.handle_message(&dialer, Message::Welcome(welcome))
        .expect("verifies");
    let Some(Message::Auth(auth)) = dial.poll_message() else {
        panic!("an auth");
    };
    assert_eq!(crate::id::to_hex(&auth.signature), GOLDEN_AUTH_SIGNATURE);
    accept
        .handle_auth::<Real>(crate::Time::from_secs(1), &auth.signature)
        .expect("verifies");
}

const GOLDEN_STORE: &str = "83a474797065a573746f7265a2696401a46974656d87a46b696e64a67369676e6564aa7075626c69635f6b6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8a46e616d65a568656c6c6fa576616c7565c405776f726c64a373657107a765787069726573ce713fb300a97369676e6174757265c440abb4846bf8d1a7532a0d6ea81851f734e5c07d281b3f8c04fa5cc6581c73e862d40bb32f754c6b5d54266fdec24a5a5367800de1b62ea14c78e982c7d8a22b0d";
const GOLDEN_LISTENER_KEY: &str =
    "a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0";
const GOLDEN_WELCOME_SIGNATURE: &str = "2853eb89b385cf4956d187b6e780e5b8252e5d18347afcd094b88b8c4fab931ef7c18e5e44b6da5971aab36d6fe2261db815e0c268df6c948796bdabd270820b";
const GOLDEN_AUTH_SIGNATURE: &str = "4a93d4cd5eb0b3460da28d71e5e7a76f11e1980200d2a43749479e2cd8fa60488ad7b79572bdedd1f37a46d41b4297ec102b593ab0758029937b492cadbe6d06";

#[test]
fn items_round_trip_for_storage_and_corruption_is_caught() {
    let item = signed_item();
    let bytes = encode_item(&item).expect("encodes");
    assert_eq!(decode_item(&bytes), Ok(item));
    let mut corrupt = bytes.clone();
    let at = corrupt.len() - 1;
    corrupt[at] ^= 1;
    assert_eq!(
        decode_item(&corrupt).map_err(|e| e.code),
        Err(ErrorCode::BAD_SIGNATURE)
    );
    assert!(decode_item(&bytes[..bytes.len() - 3]).is_err());
}

#[test]
fn a_known_copy_is_recognised_and_any_other_bytes_are_verified_again() {
    let item = signed_item();
    let (key, summary) = (*item.key(), Summary::of(&item));
    let bytes = encode_item(&item).expect("encodes");
    assert_eq!(decode_known_item(&bytes, &key, &summary), Ok(item.clone()));

    // A flipped bit in the signature: not the copy the summary describes, and it does not
    // verify.
    let mut bad_signature = bytes.clone();
    let at = bad_signature.len() - 1;
    bad_signature[at] ^= 1;
    assert_eq!(
        decode_known_item(&bad_signature, &key, &summary).map_err(|e| e.code),
        Err(ErrorCode::BAD_SIGNATURE)
    );
    // A changed value with the old signature: the same.
    let Item::Signed(original) = &item else {
        unreachable!("signed_item is signed")
    };
    let changed = encode_item(&Item::from(
        SignedItem::unverified(
            *original.public_key(),
            "name".into(),
            Bytes::from_static(b"valuf"),
            3,
            0,
            *original.signature(),
        )
        .expect("a valid name"),
    ))
    .expect("encodes");
    assert_eq!(
        decode_known_item(&changed, &key, &summary).map_err(|e| e.code),
        Err(ErrorCode::BAD_SIGNATURE)
    );
    // Another copy that verifies (an older seq) is decoded, verified, and is not the one the
    // summary describes: the store then refuses to serve it as this one.
    let signer = SigningKey::from_bytes(&[7; 32]);
    let older: Item = SignedItem::sign(&signer, "name", Bytes::from_static(b"value"), 2, 0)
        .expect("valid")
        .into();
    let decoded = decode_known_item(&encode_item(&older).expect("encodes"), &key, &summary);
    assert_eq!(decoded.as_ref(), Ok(&older));
    assert!(!summary.describes(&older));
    // An immutable item round-trips too.
    let immutable: Item = ImmutableItem::new(Bytes::from_static(b"v")).into();
    let bytes = encode_item(&immutable).expect("encodes");
    let found = decode_known_item(&bytes, immutable.key(), &Summary::of(&immutable));
    assert_eq!(found, Ok(immutable));
    // And a tombstone.
    let tombstone = golden_tombstone();
    let bytes = encode_item(&tombstone).expect("encodes");
    let found = decode_known_item(&bytes, tombstone.key(), &Summary::of(&tombstone));
    assert_eq!(found, Ok(tombstone));
}

#[test]
fn observed_addresses_are_compact_and_a_mapped_ipv4_is_sent_as_ipv4() {
    let v4: SocketAddr = "198.51.100.7:7400".parse().expect("valid");
    assert_eq!(compact_addr(v4), [198, 51, 100, 7, 0x1c, 0xe8]);
    let mapped: SocketAddr = "[::ffff:198.51.100.7]:7400".parse().expect("valid");
    assert_eq!(compact_addr(mapped), compact_addr(v4));
    let v6: SocketAddr = "[2001:db8::1]:7400".parse().expect("valid");
    let bytes = compact_addr(v6);
    assert_eq!(bytes.len(), 18);
    assert_eq!(parse_compact_addr(&bytes), Some(v6));
    assert_eq!(parse_compact_addr(&compact_addr(v4)), Some(v4));
    // 18 bytes holding a mapped address are read as IPv4 too.
    let mut long = std::net::Ipv4Addr::new(198, 51, 100, 7)
        .to_ipv6_mapped()
        .octets()
        .to_vec();
    long.extend_from_slice(&7400u16.to_be_bytes());
    assert_eq!(parse_compact_addr(&long), Some(v4));
    for len in [0, 1, 5, 7, 17, 19, 64] {
        assert_eq!(parse_compact_addr(&vec![1; len]), None, "length {len}");
    }
}

#[test]
fn an_answer_with_observed_decodes_on_every_path_and_a_bad_length_is_ignored() {
    let pong = Message::Response {
        id: 2,
        response: Response::Pong,
    };
    let observed: SocketAddr = "198.51.100.7:7400".parse().expect("valid");
    let envelope = Envelope {
        observed: Some(observed),
        role: None,
    };
    let body = encode_body_with(&Body::Message(pong.clone()), &envelope).expect("encodes");
    // The key is written last, 17 bytes for IPv4: `a8 "observed"`, `c4 06`, the address.
    let plain = encoded(&pong);
    assert_eq!(body.len(), plain.len() + 17);
    assert_eq!(
        crate::id::to_hex(&body),
        "83a474797065a4706f6e67a2696402a86f62736572766564c406c63364071ce8"
    );
    // A version-2 plane (decode_body) and the TCP decoder both ignore the key.
    assert_eq!(decode(&body), Ok(pong.clone()));
    assert_eq!(decode_body(&body), Ok(Body::Message(pong.clone())));
    assert_eq!(
        decode_body_with(&body),
        Ok((Body::Message(pong.clone()), envelope))
    );
    // An `observed` of another length is ignored, not refused.
    #[derive(serde::Serialize)]
    struct Odd<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        id: u64,
        observed: serde_bytes::ByteBuf,
    }
    let odd = rmp_serde::to_vec_named(&Odd {
        kind: "pong",
        id: 2,
        observed: serde_bytes::ByteBuf::from(vec![1; 7]),
    })
    .expect("encodes");
    assert_eq!(
        decode_body_with(&odd),
        Ok((Body::Message(pong), Envelope::default()))
    );
}

#[test]
fn role_is_written_last_and_read_on_every_path() {
    let ping = Message::Request {
        id: 1,
        request: Request::Ping,
    };
    let bytes = encode_with(&ping, &Envelope::role(Mode::Client)).expect("encodes");
    // `ping` of section 10 (`82...`) with one more key: `a4 "role"`, `a6 "client"`.
    assert_eq!(
        crate::id::to_hex(&bytes),
        "83a474797065a470696e67a2696401a4726f6c65a6636c69656e74"
    );
    assert_eq!(
        decode(&bytes),
        Ok(ping.clone()),
        "a node that predates roles"
    );
    assert_eq!(
        decode_with(&bytes),
        Ok((ping.clone(), Envelope::role(Mode::Client)))
    );
    // A role it does not know is read as none; so is a message without one.
    #[derive(serde::Serialize)]
    struct Odd<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        id: u64,
        role: &'a str,
    }
    let odd = rmp_serde::to_vec_named(&Odd {
        kind: "ping",
        id: 1,
        role: "relay",
    })
    .expect("encodes");
    assert_eq!(decode_with(&odd), Ok((ping.clone(), Envelope::default())));
    assert_eq!(
        decode_with(&encoded(&ping)),
        Ok((ping, Envelope::default()))
    );
}

proptest! {
    #[test]
    fn a_contacts_address_is_written_as_std_writes_it(
        ip in any::<[u8; 4]>(),
        ip6 in any::<[u16; 8]>(),
        port in any::<u16>(),
    ) {
        let v4 = SocketAddr::from((ip, port));
        prop_assert_eq!(addr_text(v4), v4.to_string());
        let v6 = SocketAddr::from((ip6, port));
        prop_assert_eq!(addr_text(v6), v6.to_string());
    }
}

#[test]
fn a_contacts_address_is_written_as_std_writes_it_at_the_edges() {
    for text in [
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "10.0.0.9:10",
        "1.20.199.3:7400",
    ] {
        let addr: SocketAddr = text.parse().expect("an address");
        assert_eq!(addr_text(addr), text);
    }
}
