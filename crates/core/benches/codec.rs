//! How long decoding takes, with and without a signature to verify: the figures behind the
//! driver's choice to decode (and verify) in connection tasks rather than on its event loop.
//!
//! Run: `cargo bench -p cairn-core --bench codec`

// A benchmark reads the clock by definition; the sans-IO rule is for the library itself.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use cairn_core::wire;
use cairn_core::{Contact, Id, ImmutableItem, Message, Request, Response, SignedItem};
use ed25519_dalek::SigningKey;

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per_op = start.elapsed() / iterations;
    println!(
        "{name:<40} {:>8.2} µs/op  ({:>9.0} ops/s)",
        per_op.as_secs_f64() * 1e6,
        1.0 / per_op.as_secs_f64()
    );
}

fn main() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let value = Bytes::from(vec![7u8; 1024]);
    let signed = SignedItem::sign(&key, "bench", value.clone(), 1, 0).expect("valid");
    let store_signed = wire::encode(&Message::Request {
        id: 1,
        request: Request::Store {
            item: signed.into(),
        },
    })
    .expect("encodes");
    let store_blob = wire::encode(&Message::Request {
        id: 1,
        request: Request::Store {
            item: ImmutableItem::new(value).into(),
        },
    })
    .expect("encodes");
    let nodes: Vec<Contact> = (0..20u8)
        .map(|n| {
            Contact::new(
                Id::from_bytes([n; 64]),
                "127.0.0.1:7400".parse().expect("valid"),
            )
        })
        .collect();
    let nodes_reply = wire::encode(&Message::Response {
        id: 1,
        response: Response::Nodes(nodes),
    })
    .expect("encodes");
    let ping = wire::encode(&Message::Request {
        id: 1,
        request: Request::Ping,
    })
    .expect("encodes");

    println!("cairn-core codec (1 KiB values, one thread)");
    measure("decode ping", 200_000, || {
        black_box(wire::decode(black_box(&ping)).is_ok());
    });
    measure("decode nodes (20 contacts)", 50_000, || {
        black_box(wire::decode(black_box(&nodes_reply)).is_ok());
    });
    measure("decode store, immutable (hash)", 50_000, || {
        black_box(wire::decode(black_box(&store_blob)).is_ok());
    });
    measure("decode store, signed (verify_strict)", 5_000, || {
        black_box(wire::decode(black_box(&store_signed)).is_ok());
    });
    measure("sign an item", 5_000, || {
        black_box(SignedItem::sign(&key, "bench", Bytes::from_static(b"v"), 1, 0).is_ok());
    });
}
