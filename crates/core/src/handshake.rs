//! The handshake's signatures (`docs/protocol.md`, "Handshake"): what each side signs, and the checks.
//!
//! Both sides sign one transcript binding the network name, both public keys and both
//! connection nonces; a role byte (`L` for the listener, `D` for the dialer) keeps one side's
//! signature from being replayed as the other's. The driver owns the exchange of frames; this
//! module owns only the bytes and the checks, so any driver (or another implementation's test)
//! produces the same signatures.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Domain separation tag at the start of the transcript.
pub const HANDSHAKE_TAG: &[u8] = b"cairn-handshake-v1";

/// Which side of a connection signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that accepted the connection; signs `L || transcript` in `welcome`.
    Listener,
    /// The side that opened the connection; signs `D || transcript` in `auth`.
    Dialer,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Listener => b'L',
            Role::Dialer => b'D',
        }
    }
}

/// The public parts both sides know once `hello` and `welcome` are exchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript<'a> {
    /// The network name (1 to 64 bytes).
    pub network: &'a str,
    /// The dialer's public key.
    pub dialer_key: [u8; 32],
    /// The dialer's nonce.
    pub dialer_nonce: [u8; 32],
    /// The listener's public key.
    pub listener_key: [u8; 32],
    /// The listener's nonce.
    pub listener_nonce: [u8; 32],
}

impl Transcript<'_> {
    /// The bytes `role` signs: the role byte, then the transcript.
    pub fn signed_bytes(&self, role: Role) -> Vec<u8> {
        let network = self.network.as_bytes();
        let mut out = Vec::with_capacity(1 + HANDSHAKE_TAG.len() + 1 + network.len() + 128);
        out.push(role.byte());
        out.extend_from_slice(HANDSHAKE_TAG);
        // Network names are at most 64 bytes (checked at decode), so the length fits a byte.
        out.push(u8::try_from(network.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(network);
        out.extend_from_slice(&self.dialer_key);
        out.extend_from_slice(&self.dialer_nonce);
        out.extend_from_slice(&self.listener_key);
        out.extend_from_slice(&self.listener_nonce);
        out
    }

    /// Signs the transcript as `role`.
    pub fn sign(&self, role: Role, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.signed_bytes(role)).to_bytes()
    }

    /// Whether `signature` is `role`'s valid signature over the transcript (`verify_strict`).
    pub fn verify(&self, role: Role, signature: &[u8; 64]) -> bool {
        let public_key = match role {
            Role::Listener => &self.listener_key,
            Role::Dialer => &self.dialer_key,
        };
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        key.verify_strict(&self.signed_bytes(role), &Signature::from_bytes(signature))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_verifies_and_roles_do_not_mix() {
        let dialer = SigningKey::from_bytes(&[1; 32]);
        let listener = SigningKey::from_bytes(&[2; 32]);
        let t = Transcript {
            network: "cairn",
            dialer_key: dialer.verifying_key().to_bytes(),
            dialer_nonce: [3; 32],
            listener_key: listener.verifying_key().to_bytes(),
            listener_nonce: [4; 32],
        };
        let l = t.sign(Role::Listener, &listener);
        let d = t.sign(Role::Dialer, &dialer);
        assert!(t.verify(Role::Listener, &l));
        assert!(t.verify(Role::Dialer, &d));
        assert!(!t.verify(Role::Dialer, &l));
        assert!(!t.verify(Role::Listener, &t.sign(Role::Dialer, &listener)));
        let other = Transcript {
            dialer_nonce: [5; 32],
            ..t.clone()
        };
        assert!(!other.verify(Role::Listener, &l));
        let other_net = Transcript {
            network: "cairn2",
            ..t.clone()
        };
        assert!(!other_net.verify(Role::Dialer, &d));
        assert_eq!(
            &t.signed_bytes(Role::Listener)[..20],
            b"Lcairn-handshake-v1\x05"
        );
    }
}
