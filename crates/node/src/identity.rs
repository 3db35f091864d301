//! The node's key pair: created on first run, kept in the data directory with mode 0600.
//!
//! The file `node.key` holds the 32-byte ed25519 secret seed as 64 hex digits and a newline.
//! A file that exists but cannot be read or parsed is an error: replacing it would silently
//! give the node a new identity.
//!
//! Beside it, `api.token` ([`ApiToken`]) holds the HTTP API's bearer token, made the same
//! way on first run: 32 random bytes as 64 hex digits, mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_core::NodeId;
use ed25519_dalek::SigningKey;
use rand::RngCore;

/// The name of the key file inside the data directory.
pub const KEY_FILE: &str = "node.key";

/// The name of the API token file inside the data directory.
pub const TOKEN_FILE: &str = "api.token";

/// A node's key pair and the id derived from it.
#[derive(Clone)]
pub struct Identity {
    signing_key: SigningKey,
    node_id: NodeId,
}

/// Why the key pair could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The data directory or key file could not be read or written.
    #[error("cannot use key file {path}: {error}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The key file is not 64 hex digits.
    #[error(
        "key file {path} is corrupt (expected 64 hex digits); move it away to start with a new identity"
    )]
    Corrupt {
        /// The key file.
        path: PathBuf,
    },
    /// The API token file is not 64 hex digits.
    #[error(
        "API token file {path} is corrupt (expected 64 hex digits); delete it and start the node again to make a new one"
    )]
    CorruptToken {
        /// The token file.
        path: PathBuf,
    },
}

/// The HTTP API's bearer token: whoever sends it may change things through a node whose API
/// is bound beyond loopback. Its `Debug` form hides it, so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// A token given by the operator (say, from `CAIRN_API_TOKEN`), surrounding blanks
    /// removed.
    pub fn new(text: &str) -> Self {
        ApiToken(text.trim().to_owned())
    }

    /// The token's text, for an `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this token, compared in time independent of where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Reads `dir/api.token`, if it exists.
    pub fn load(dir: &Path) -> Result<Option<Self>, IdentityError> {
        let path = dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                if text.len() != 64 || cairn_core::from_hex(text).is_none() {
                    return Err(IdentityError::CorruptToken { path });
                }
                Ok(Some(ApiToken(text.to_owned())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(IdentityError::Io { path, error }),
        }
    }

    /// Loads `dir/api.token`, or creates it (and `dir`) with a fresh random token.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        if let Some(token) = Self::load(dir)? {
            return Ok(token);
        }
        let path = dir.join(TOKEN_FILE);
        let io = |error| IdentityError::Io {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        write_private(&path, &bytes).map_err(io)?;
        Ok(ApiToken(cairn_core::to_hex(&bytes)))
    }
}

impl Identity {
    /// The identity of this secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing_key = SigningKey::from_bytes(&seed);
        let node_id = NodeId::of_public_key(&signing_key.verifying_key().to_bytes());
        Identity {
            signing_key,
            node_id,
        }
    }

    /// A fresh random identity, kept nowhere.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// Loads `dir/node.key`, or creates it (and `dir`) with a fresh key if it does not exist.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(KEY_FILE);
        let io = |error| IdentityError::Io {
            path: path.clone(),
            error,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = cairn_core::from_hex(text.trim())
                    .ok_or_else(|| IdentityError::Corrupt { path: path.clone() })?;
                let seed: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| IdentityError::Corrupt { path: path.clone() })?;
                Ok(Self::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let identity = Self::generate();
                write_private(&path, &identity.signing_key.to_bytes()).map_err(io)?;
                Ok(identity)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The cryptography the handshake and the datagram plane sign with, under this key.
    pub fn suite(&self) -> cairn_core::datagram::Real {
        cairn_core::datagram::Real::new(self.signing_key.clone())
    }

    /// The ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// `SHA-512(public_key)`.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
}

/// Writes a new file readable by its owner only, never overwriting one that exists.
fn write_private(path: &Path, seed: &[u8; 32]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{}", cairn_core::to_hex(seed))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cairn-identity-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn created_once_then_loaded_with_mode_0600() {
        let dir = temp_dir("create");
        let first = Identity::load_or_create(&dir).expect("created");
        let second = Identity::load_or_create(&dir).expect("loaded");
        assert_eq!(first.node_id(), second.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_api_token_is_made_once_with_mode_0600_and_compared_whole() {
        let dir = temp_dir("token");
        assert_eq!(ApiToken::load(&dir).expect("no file is no token"), None);
        let first = ApiToken::load_or_create(&dir).expect("created");
        let second = ApiToken::load_or_create(&dir).expect("loaded");
        assert_eq!(first, second);
        assert_eq!(first.as_str().len(), 64);
        assert!(first.matches(second.as_str()));
        assert!(!first.matches(&first.as_str()[1..]));
        assert!(!first.matches(""));
        assert_eq!(format!("{first:?}"), "ApiToken(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(TOKEN_FILE))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join(TOKEN_FILE), "short\n").expect("written");
        let err = ApiToken::load_or_create(&dir).expect_err("refused");
        assert!(matches!(err, IdentityError::CorruptToken { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_and_is_kept() {
        let dir = temp_dir("corrupt");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(KEY_FILE), "not a key").expect("written");
        let err = Identity::load_or_create(&dir).err().expect("refused");
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join(KEY_FILE)).expect("kept"),
            "not a key"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
