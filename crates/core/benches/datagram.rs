//! What the datagram plane costs in CPU, both sides together, with the real cryptography: a
//! first exchange (an `initial` answered by an `accept`, then the initiator's confirm, which
//! is when the responder checks the `initial`'s signature), a request in a warm session, and
//! the primitives a first exchange is made of. The figures behind `docs/design.md`
//! ("Datagrams") and the loopback comparison with TCP's handshake.
//!
//! Run: `cargo bench -p cairn-core --bench datagram`

// A benchmark reads the clock by definition; the sans-IO rule is for the library itself.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use cairn_core::datagram::{Plane, PlaneConfig, PlaneEvent, Real, Suite};
use cairn_core::{Id, NetworkName, NodeId, Peer, Request, Response, Time, Transmit};
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
        "{name:<44} {:>8.2} µs/op  ({:>9.0} ops/s)",
        per_op.as_secs_f64() * 1e6,
        1.0 / per_op.as_secs_f64()
    );
}

const NOW: Time = Time::from_millis(1_000_000);

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 4000))
}

fn plane(n: u8, seed: u64) -> Plane<Real> {
    let network = NetworkName::new("cairn").unwrap_or_default();
    let mut seed_bytes = [n; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_be_bytes());
    Plane::new(
        Real::new(SigningKey::from_bytes(&[n; 32])),
        PlaneConfig::new(network),
        seed_bytes,
        NOW,
    )
}

/// Carries datagrams between `a` (at 127.0.0.1) and `b` (at 127.0.0.2) until none is left,
/// `b` answering every request `pong`.
fn exchange(a: &mut Plane<Real>, b: &mut Plane<Real>) -> usize {
    let mut answers = 0;
    loop {
        let mut moved = false;
        while let Some((_, bytes)) = a.poll_datagram() {
            b.handle_datagram(NOW, addr(1), &bytes);
            moved = true;
        }
        while let Some(event) = b.poll_event() {
            if let PlaneEvent::Request { reply, .. } = event {
                b.answer(NOW, reply, Response::Pong);
            }
        }
        while let Some((_, bytes)) = b.poll_datagram() {
            a.handle_datagram(NOW, addr(2), &bytes);
            moved = true;
        }
        while let Some(event) = a.poll_event() {
            answers += usize::from(matches!(event, PlaneEvent::Response { .. }));
        }
        if !moved {
            return answers;
        }
    }
}

fn main() {
    let peer = Peer {
        id: Some(NodeId::of_public_key(
            &SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes(),
        )),
        addr: addr(2),
    };
    let ping = |id| Transmit {
        id,
        to: peer,
        request: Request::Ping,
    };
    let mut a = plane(1, 0);
    let mut b = plane(2, 0);
    let mut n = 0u64;
    measure("first exchange (initial, accept, confirm)", 300, || {
        // A fresh initiator each time: a new session, as with a new contact.
        n += 1;
        let mut fresh = plane(1, n);
        fresh.send(NOW, ping(1));
        black_box(exchange(&mut fresh, &mut b));
    });
    a.send(NOW, ping(1));
    exchange(&mut a, &mut b);
    let mut id = 1;
    measure("request and answer in a warm session", 20_000, || {
        id += 1;
        a.send(NOW, ping(id));
        black_box(exchange(&mut a, &mut b));
    });
    measure("plane::new (key from seed)", 1_000, || {
        black_box(plane(3, 0));
    });
    let key = Real::new(SigningKey::from_bytes(&[1; 32]));
    let signature = key.sign(b"cairn");
    let public_key = key.public_key();
    measure("ed25519 sign", 2_000, || {
        black_box(key.sign(b"cairn"));
    });
    measure("ed25519 verify_strict", 2_000, || {
        black_box(Real::verify(&public_key, b"cairn", &signature));
    });
    measure("x25519 public key", 2_000, || {
        black_box(Real::ephemeral_public(&[7; 32]));
    });
    measure("x25519 agreement", 2_000, || {
        black_box(Real::agree(&[7; 32], &[9; 32]));
    });
    let body = vec![0u8; 1_100];
    measure("chacha20-poly1305 seal, 1,100 bytes", 20_000, || {
        black_box(Real::seal(&[1; 32], 1, b"header", &body));
    });
    black_box(Id::hash(b"end"));
}
