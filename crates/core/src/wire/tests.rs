//! Round trips, exact bytes, and hostile payloads.

use super::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

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
        network: "cairn".into(),
        public_key: [1; 32],
        nonce: [2; 32],
        port: 7400,
    };
    let welcome = Welcome {
        version: 1,
        network: "cairn".into(),
        public_key: [3; 32],
        nonce: [4; 32],
        port: 0,
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
        response(3, Response::Value(signed_item())),
        response(4, Response::Stored),
        response(
            0,
            Response::Error(ErrorReply::new(ErrorCode::MISMATCH, "wrong network")),
        ),
    ]
}

#[test]
fn every_message_round_trips() {
    for message in every_message() {
        let bytes = encode(&message);
        assert_eq!(decode(&bytes), Ok(message.clone()), "{message:?}");
    }
}

#[test]
fn exact_bytes_of_a_ping() {
    let bytes = encode(&Message::Request {
        id: 1,
        request: Request::Ping,
    });
    // {"type": "ping", "id": 1}: a fixmap of 2, fixstr keys, positive fixint id.
    assert_eq!(bytes, b"\x82\xa4type\xa4ping\xa2id\x01");
    let big = encode(&Message::Request {
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
    let bytes = encode(&Message::Request {
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
    let mut bytes = encode(&Message::Request {
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
    let bytes = encode(&Message::Response {
        id: 1,
        response: Response::Nodes(nodes),
    });
    assert!(decode(&bytes).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn random_maps_never_panic(tail in prop::collection::vec(any::<u8>(), 0..256), n in 0u8..16) {
        let mut bytes = vec![0x80 | n];
        bytes.extend(tail);
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..14,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode(&every_message()[which]);
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(message) = decode(&bytes) {
            // Whatever decodes must encode again to something that decodes the same.
            prop_assert_eq!(decode(&encode(&message)), Ok(message));
        }
    }
}
