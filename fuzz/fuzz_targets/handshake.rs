//! The TCP handshake (`docs/protocol.md`, "Handshake") on arbitrary frames, through the core's
//! state machines as the node's connection tasks run them: a `Dialing` (the vectors' dialer,
//! expecting the vectors' listener) reading a first answer, and an `Accepting` (the vectors'
//! listener) reading a `hello` then an `auth`.
//!
//! Holds: no panic; a dial succeeds only with the listener's key and exactly the signature
//! that key makes over this transcript, and only then is an `auth` queued; the listener
//! verifies an `auth` only from the key its `hello` named, with exactly the signature that key
//! makes as the dialer; a welcome's own signature never passes as an `auth`; a refused `hello`
//! is answered by a 426 alone.
#![no_main]

use std::time::Duration;

use cairn_core::datagram::Real;
use cairn_core::{
    Accepting, Dialing, ErrorCode, Greeting, Message, NodeId, Response, Role, Time, wire,
};
use cairn_fuzz::{listener_key, network, transcript, vector_key};
use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;

fn greeting() -> Greeting {
    Greeting {
        network: network(),
        port: 7400,
        datagrams: true,
    }
}

/// The dialer sent the vectors' `hello`; `frame` is what came back.
fn dialer_reads(frame: &[u8]) {
    let Ok(answer) = wire::decode(frame) else {
        return;
    };
    let dialer = Real::new(vector_key());
    let listener_public = listener_key().verifying_key().to_bytes();
    let peer = "192.0.2.1:7401".parse().unwrap();
    let expected = NodeId::of_public_key(&listener_public);
    let mut dial = Dialing::new(&dialer, greeting(), [0x11; 32], peer, Some(expected));
    assert!(matches!(dial.poll_message(), Some(Message::Hello(_))));
    let welcome = match &answer {
        Message::Welcome(welcome) => Some(welcome.clone()),
        _ => None,
    };
    match dial.handle_message(&dialer, answer) {
        Ok(dialed) => {
            let welcome = welcome.expect("only a welcome is accepted");
            assert_eq!(dialed.public_key, listener_public);
            assert_eq!(dialed.id, expected);
            let t = transcript("cairn");
            let t = cairn_core::Transcript {
                listener_nonce: welcome.nonce,
                ..t
            };
            let honest = listener_key().sign(&t.signed_bytes(Role::Listener));
            assert_eq!(
                welcome.signature,
                honest.to_bytes(),
                "a welcome verified with a forged signature"
            );
            assert!(matches!(dial.poll_message(), Some(Message::Auth(_))));
        }
        Err(_) => assert!(dial.poll_message().is_none(), "an auth after a failed dial"),
    }
}

/// The listener (nonce `33`) read `hello`, then `auth`.
fn listener_reads(hello: &[u8], auth: &[u8]) {
    let Ok((hello, envelope)) = wire::decode_with(hello) else {
        return;
    };
    let listener = Real::new(listener_key());
    let peer = "192.0.2.2:40000".parse().unwrap();
    let now = Time::from_secs(1_000);
    let mut accept = Accepting::new(
        (&listener, [0x33; 32]),
        greeting(),
        (peer, 1),
        now,
        Duration::from_secs(5),
    );
    let claimed = match &hello {
        Message::Hello(hello) => Some((hello.public_key, hello.nonce, hello.network.clone())),
        _ => None,
    };
    let Ok(welcomed) = accept.handle_hello(&listener, hello, envelope.role) else {
        assert!(!accept.is_verified());
        // A refused `hello` is answered by the 426 alone, or by nothing.
        if let Some(reply) = accept.poll_message() {
            assert!(
                matches!(&reply, Message::Response { id: 0, response: Response::Error(e) } if e.code == ErrorCode::MISMATCH),
                "{reply:?}"
            );
        }
        assert!(accept.poll_message().is_none());
        return;
    };
    let (dialer_key, dialer_nonce, _) = claimed.expect("only a hello is welcomed");
    assert_eq!(welcomed.requester.id, NodeId::of_public_key(&dialer_key));
    assert!(!welcomed.requester.verified);
    let Some(Message::Welcome(welcome)) = accept.poll_message() else {
        panic!("a welcomed hello is answered with welcome");
    };
    let Ok(Message::Auth(auth)) = wire::decode(auth) else {
        return;
    };
    if auth.signature == welcome.signature {
        // The welcome's own signature, sent back, is no `auth`: the role byte differs.
        assert!(accept.handle_auth::<Real>(now, &auth.signature).is_err());
        return;
    }
    if accept.handle_auth::<Real>(now, &auth.signature).is_ok() {
        assert!(accept.is_verified());
        assert_eq!(dialer_key, vector_key().verifying_key().to_bytes());
        let t = cairn_core::Transcript {
            dialer_key,
            dialer_nonce,
            ..transcript("cairn")
        };
        let honest = vector_key().sign(&t.signed_bytes(Role::Dialer));
        assert_eq!(
            auth.signature,
            honest.to_bytes(),
            "an auth verified with a forged signature"
        );
    } else {
        assert!(!accept.is_verified());
    }
}

fuzz_target!(|data: &[u8]| {
    // Up to the first 0xff 0x00 pair: the first frame; after it: the second.
    let cut = data
        .windows(2)
        .position(|w| w == [0xff, 0x00])
        .unwrap_or(data.len());
    let (first, second) = (&data[..cut], data.get(cut + 2..).unwrap_or_default());
    dialer_reads(first);
    listener_reads(first, second);
});
