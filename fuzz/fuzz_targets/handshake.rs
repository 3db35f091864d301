//! The TCP handshake's checks (`docs/protocol.md`, "Handshake") on arbitrary frames: the
//! dialer reading a `welcome`, the listener reading a `hello` then an `auth`, each as
//! `crates/node/src/connection` does (decode, then `Transcript::verify`).
//!
//! Holds: no panic; a `welcome` verifies only with the listener's key and exactly the
//! signature that key makes over this transcript, never as the dialer's role; an `auth`
//! verifies only with the key its `hello` named, and only as the dialer's signature.
#![no_main]

use cairn_core::{Message, Role, Transcript, wire};
use cairn_fuzz::{listener_key, transcript, vector_key};
use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;

/// The dialer sent the fixture `hello`; `frame` is what came back.
fn dialer_reads(frame: &[u8]) {
    let Ok(Message::Welcome(welcome)) = wire::decode(frame) else {
        return;
    };
    let ours = transcript("cairn");
    let t = Transcript {
        network: welcome.network.as_str(),
        listener_key: welcome.public_key,
        listener_nonce: welcome.nonce,
        ..ours.clone()
    };
    if t.verify(Role::Listener, &welcome.signature) {
        assert_eq!(
            welcome.public_key,
            listener_key().verifying_key().to_bytes()
        );
        let expected = listener_key()
            .sign(&t.signed_bytes(Role::Listener))
            .to_bytes();
        assert_eq!(
            welcome.signature, expected,
            "a welcome verified with a forged signature"
        );
    }
    assert!(
        !t.verify(Role::Dialer, &welcome.signature),
        "a welcome's signature verified as the dialer's"
    );
}

/// The listener (nonce `33`) read `hello`, then `auth`.
fn listener_reads(hello: &[u8], auth: &[u8]) {
    let Ok(Message::Hello(hello)) = wire::decode(hello) else {
        return;
    };
    let Ok(Message::Auth(auth)) = wire::decode(auth) else {
        return;
    };
    let ours = transcript("cairn");
    let t = Transcript {
        network: hello.network.as_str(),
        dialer_key: hello.public_key,
        dialer_nonce: hello.nonce,
        ..ours
    };
    if t.verify(Role::Dialer, &auth.signature) {
        assert_eq!(hello.public_key, vector_key().verifying_key().to_bytes());
        let expected = vector_key().sign(&t.signed_bytes(Role::Dialer)).to_bytes();
        assert_eq!(
            auth.signature, expected,
            "an auth verified with a forged signature"
        );
    }
    assert!(
        !t.verify(Role::Listener, &auth.signature),
        "an auth's signature verified as the listener's"
    );
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
