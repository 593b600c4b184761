//! Connection settings are stored encrypted with AES-256-GCM under a master key that never
//! enters the database: `FLOWBOT_SECRET_KEY` (base64 of 32 bytes), or a key file created
//! with mode 0600 in the data directory on first start.
//!
//! A sealed box is `nonce (12 bytes) || ciphertext+tag`, stored with the id of the key that
//! sealed it, so a rotation interrupted half-way can be finished: during a rotation the next
//! key waits in `secret.key.next` until every box has been resealed with it.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::{Result, StoreError};

pub const KEY_FILE: &str = "secret.key";
pub const NEXT_KEY_FILE: &str = "secret.key.next";

/// One master key.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
}

// Never print key material.
impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<MasterKey> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| StoreError::Key("the key is not base64".into()))?;
        if bytes.len() != 32 {
            return Err(StoreError::Key(format!(
                "the key must be 32 bytes (44 base64 characters), not {}",
                bytes.len()
            )));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
        // A fingerprint that names the key without revealing it: the first bytes of a
        // fixed message sealed under a fixed nonce.
        let probe = cipher
            .encrypt(Nonce::from_slice(&[0u8; 12]), b"flowbot key id".as_ref())
            .map_err(|_| StoreError::Key("the key cannot encrypt".into()))?;
        let id = probe[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(MasterKey { cipher, id })
    }

    pub fn generate() -> String {
        B64.encode(Aes256Gcm::generate_key(OsRng))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plaintext)
                .expect("AES-GCM encryption of an in-memory buffer cannot fail"),
        );
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 12 {
            return Err(StoreError::Corrupt("a sealed secret is too short".into()));
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| {
                StoreError::Key(
                    "a secret cannot be opened with this key (wrong key, or altered data)".into(),
                )
            })
    }
}

/// The keys in force: the current one, and the next one while a rotation is under way.
#[derive(Clone, Debug)]
pub struct Cipher {
    pub(crate) current: MasterKey,
    pub(crate) next: Option<MasterKey>,
    /// The key file, when the key came from one (rotation rewrites it).
    pub(crate) key_file: Option<PathBuf>,
}

impl Cipher {
    /// The key from `FLOWBOT_SECRET_KEY` if given, else from (or newly into) the key file.
    pub fn load(env_key: Option<&str>, data_dir: &Path) -> Result<Cipher> {
        if let Some(k) = env_key {
            return Ok(Cipher {
                current: MasterKey::from_base64(k)
                    .map_err(|e| StoreError::Key(format!("FLOWBOT_SECRET_KEY: {e}")))?,
                next: None,
                key_file: None,
            });
        }
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            write_key_file(&path, &MasterKey::generate())?;
            tracing::info!(path = %path.display(), "created a new secret key file");
        }
        let current = read_key_file(&path)?;
        let next_path = data_dir.join(NEXT_KEY_FILE);
        let next = if next_path.exists() {
            Some(read_key_file(&next_path)?)
        } else {
            None
        };
        Ok(Cipher {
            current,
            next,
            key_file: Some(path),
        })
    }

    /// Seal with the key new secrets should use.
    pub fn seal(&self, plaintext: &[u8]) -> (Vec<u8>, String) {
        let key = self.next.as_ref().unwrap_or(&self.current);
        (key.seal(plaintext), key.id().to_string())
    }

    /// Open a box sealed by any key in force.
    pub fn open(&self, sealed: &[u8], key_id: &str) -> Result<Vec<u8>> {
        for key in std::iter::once(&self.current).chain(self.next.as_ref()) {
            if key.id() == key_id {
                return key.open(sealed);
            }
        }
        Err(StoreError::Key(format!(
            "a secret was sealed with key {key_id}, which is not the configured key ({}): \
             start flowbot with the key it was stored under",
            self.current.id()
        )))
    }
}

pub(crate) fn read_key_file(path: &Path) -> Result<MasterKey> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    MasterKey::from_base64(&text).map_err(|e| StoreError::Key(format!("{}: {e}", path.display())))
}

/// Write a key file readable by its owner only, replacing any file there atomically.
pub(crate) fn write_key_file(path: &Path, key_b64: &str) -> Result<()> {
    use std::io::Write;
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(key_b64.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Lower-case hex of bytes (a digest as stored and compared).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes` in hex: how tokens are kept (sessions, API tokens, invitations,
/// outsiders' links) and how a file's bytes are checked.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let a = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        let b = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        let sealed = a.seal(b"token=s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(a.open(&sealed).unwrap(), b"token=s3cret");
        assert!(b.open(&sealed).is_err());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        let e = MasterKey::from_base64("AAAA").unwrap_err().to_string();
        assert!(e.contains("32 bytes"), "{e}");
    }

    #[test]
    fn the_key_file_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cipher::load(None, dir.path()).unwrap();
        let again = Cipher::load(None, dir.path()).unwrap();
        assert_eq!(
            c.current.id(),
            again.current.id(),
            "the same key on the next start"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
