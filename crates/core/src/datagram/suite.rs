//! The cryptography of the datagram plane, behind one trait so that the simulator can run the
//! plane's rules at thousands of nodes without paying for real public-key operations.
//!
//! [`Real`] is what every node uses: ed25519 signatures (checked with `verify_strict`, as
//! everywhere in cairn), X25519 key agreement and ChaCha20-Poly1305. [`Simulated`] keeps every
//! size the same and every check's outcome for honest peers, but anyone can forge it: it
//! exists for `cairn-sim` only, and a node never runs it (the driver names [`Real`]).

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

/// Bytes an AEAD tag adds to a sealed body.
pub const TAG_LEN: usize = 16;

/// The primitives a [`Plane`](super::Plane) needs.
pub trait Suite {
    /// This node's ed25519 public key.
    fn public_key(&self) -> [u8; 32];
    /// This node's signature over `message`.
    fn sign(&self, message: &[u8]) -> [u8; 64];
    /// Whether `signature` is `public_key`'s signature over `message`.
    fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool;
    /// The X25519 public key of the ephemeral `secret`.
    fn ephemeral_public(secret: &[u8; 32]) -> [u8; 32];
    /// The X25519 shared secret of `secret` and the peer's `public`.
    fn agree(secret: &[u8; 32], public: &[u8; 32]) -> [u8; 32];
    /// `plaintext` sealed under `key` with the nonce of packet number `pn`, authenticating
    /// `aad`: the ciphertext followed by a [`TAG_LEN`]-byte tag.
    fn seal(key: &[u8; 32], pn: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8>;
    /// The plaintext of `sealed`, if its tag verifies.
    fn open(key: &[u8; 32], pn: u64, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>>;
}

/// The 12-byte AEAD nonce of packet number `pn`: four zero bytes, then `pn` big-endian.
pub fn nonce(pn: u64) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[4..].copy_from_slice(&pn.to_be_bytes());
    nonce
}

/// The real primitives, with this node's signing key.
pub struct Real {
    key: SigningKey,
}

impl Real {
    /// The suite of the node holding `key`.
    pub fn new(key: SigningKey) -> Self {
        Real { key }
    }
}

impl Suite for Real {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        VerifyingKey::from_bytes(public_key).is_ok_and(|key| {
            key.verify_strict(message, &Signature::from_bytes(signature))
                .is_ok()
        })
    }

    fn ephemeral_public(secret: &[u8; 32]) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(*secret);
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }

    fn agree(secret: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(*secret);
        secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*public))
            .to_bytes()
    }

    fn seal(key: &[u8; 32], pn: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(key.into());
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        // Encryption fails only for a plaintext of over 256 GiB; a datagram is 1,200 bytes.
        cipher
            .encrypt(&nonce(pn).into(), payload)
            .unwrap_or_default()
    }

    fn open(key: &[u8; 32], pn: u64, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new(key.into());
        let payload = Payload { msg: sealed, aad };
        cipher.decrypt(&nonce(pn).into(), payload).ok()
    }
}

/// Primitives with the real sizes and no security, for the simulator: a "signature" is a hash
/// of the public key and the message, the "key agreement" a hash of both public keys, and the
/// "tag" a hash of the key, nonce, data and plaintext. Cheap, deterministic, forgeable.
pub struct Simulated {
    public_key: [u8; 32],
}

impl Simulated {
    /// The suite of a simulated node with this public key.
    pub fn new(public_key: [u8; 32]) -> Self {
        Simulated { public_key }
    }
}

fn hash(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

impl Suite for Simulated {
    fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        hash(&[&self.public_key, message])
    }

    fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        hash(&[public_key, message]) == *signature
    }

    fn ephemeral_public(secret: &[u8; 32]) -> [u8; 32] {
        *secret
    }

    fn agree(secret: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
        let (a, b) = if secret <= public {
            (secret, public)
        } else {
            (public, secret)
        };
        let mut out = [0; 32];
        out.copy_from_slice(&hash(&[a, b])[..32]);
        out
    }

    fn seal(key: &[u8; 32], pn: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let tag = hash(&[key, &nonce(pn), aad, plaintext]);
        let mut out = plaintext.to_vec();
        out.extend_from_slice(&tag[..TAG_LEN]);
        out
    }

    fn open(key: &[u8; 32], pn: u64, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let split = sealed.len().checked_sub(TAG_LEN)?;
        let (plaintext, tag) = sealed.split_at(split);
        (hash(&[key, &nonce(pn), aad, plaintext])[..TAG_LEN] == *tag).then(|| plaintext.to_vec())
    }
}
