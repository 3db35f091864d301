//! TLS 1.3 for the byte streams (`docs/protocol.md` 12), with raw public keys (RFC 7250): each
//! side presents its node's ed25519 key as a bare SubjectPublicKeyInfo, and proves it holds it by
//! signing the handshake. No certificate, no certificate authority: the key is the identity, as
//! a node id is the hash of it. The dialer accepts only the key it asked for; the acceptor accepts any ed25519 key, which
//! becomes the stream's peer.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The application protocol both sides name in the handshake.
pub(crate) const ALPN: &[u8] = b"cairn-stream/1";

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the key's 32 bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The DER prefix of an ed25519 private key in PKCS #8 v1 (RFC 8410): the 32-byte seed follows.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The SubjectPublicKeyInfo of an ed25519 public key.
pub(crate) fn spki(public: &[u8; 32]) -> Vec<u8> {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    der
}

/// The ed25519 public key of a SubjectPublicKeyInfo, if it is exactly one.
pub(crate) fn key_of(spki: &[u8]) -> Option<[u8; 32]> {
    let key = spki.strip_prefix(&SPKI_PREFIX[..])?;
    key.try_into().ok()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(secret: &[u8; 32], public: &[u8; 32]) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(secret);
    let key = rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(der))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki(public))],
        key,
    )))
}

/// The client side, for dialing the node whose key is `peer`.
pub(crate) fn client(
    secret: &[u8; 32],
    public: &[u8; 32],
    peer: [u8; 32],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = Arc::new(PeerKey {
        expected: Some(peer),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified(secret, public)?),
        ));
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The server side: any ed25519 key may dial.
pub(crate) fn server(
    secret: &[u8; 32],
    public: &[u8; 32],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = provider();
    let verifier = Arc::new(PeerKey {
        expected: None,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified(secret, public)?),
        ));
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Checks the peer's raw public key: an ed25519 key, the one expected if any, whose holder
/// signed the handshake.
#[derive(Debug)]
struct PeerKey {
    expected: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerKey {
    fn check(&self, presented: &CertificateDer<'_>, others: usize) -> Result<(), rustls::Error> {
        let key = key_of(presented.as_ref()).filter(|_| others == 0);
        match (key, self.expected) {
            (None, _) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
            (Some(key), Some(expected)) if key != expected => {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
            _ => Ok(()),
        }
    }

    fn signature(
        &self,
        message: &[u8],
        presented: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
        }
        let spki = SubjectPublicKeyInfoDer::from(presented.as_ref());
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for PeerKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates.len())?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for PeerKey {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates.len())?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

    use super::*;

    fn keys(seed: u8) -> ([u8; 32], [u8; 32]) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        (key.to_bytes(), key.verifying_key().to_bytes())
    }

    fn endpoint(server: Option<rustls::ServerConfig>) -> quinn::Endpoint {
        let server = server.map(|s| {
            quinn::ServerConfig::with_crypto(Arc::new(
                QuicServerConfig::try_from(s).expect("TLS 1.3"),
            ))
        });
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binds");
        quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .expect("an endpoint")
    }

    /// Dials a server holding key 2 from a client holding key 1 that expects `expected`:
    /// the key the server saw, or the client's error.
    async fn dial(expected: [u8; 32]) -> Result<[u8; 32], String> {
        let ((s1, p1), (s2, p2)) = (keys(1), keys(2));
        let server = endpoint(Some(server(&s2, &p2).expect("a config")));
        let addr = server.local_addr().expect("bound");
        let accepting = tokio::spawn(async move {
            let connection = server.accept().await?.await.ok()?;
            let chain = connection
                .peer_identity()?
                .downcast::<Vec<CertificateDer<'static>>>();
            key_of(chain.ok()?.first()?.as_ref())
        });
        let crypto = client(&s1, &p1, expected).expect("a config");
        let crypto = QuicClientConfig::try_from(crypto).expect("TLS 1.3");
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let dialer = endpoint(None);
        let connected = dialer.connect_with(config, addr, "cairn").expect("starts");
        match connected.await {
            Ok(_) => Ok(accepting.await.expect("ran").expect("the server saw a key")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn each_side_proves_its_key_and_a_dialer_takes_only_the_key_it_asked_for() {
        let ((_, p1), (_, p2)) = (keys(1), keys(2));
        assert_eq!(dial(p2).await, Ok(p1), "the server sees the client's key");
        let wrong = dial(p1).await.expect_err("another key is refused");
        assert!(wrong.contains("invalid peer certificate"), "{wrong}");
    }

    #[test]
    fn only_a_bare_ed25519_key_is_taken() {
        let (_, public) = keys(3);
        assert_eq!(key_of(&spki(&public)), Some(public));
        let mut longer = spki(&public);
        longer.push(0);
        assert_eq!(key_of(&longer), None);
        assert_eq!(key_of(&spki(&public)[..40]), None);
        let mut other_algorithm = spki(&public);
        other_algorithm[8] = 0x71;
        assert_eq!(key_of(&other_algorithm), None);
    }
}
