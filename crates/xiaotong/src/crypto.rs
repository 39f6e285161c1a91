//! Field encryption (AES-256-GCM with key ids, for rotation) and blind
//! indexes (HMAC-SHA256) so encrypted fields can still be found by exact value.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The process's keys, derived from `XIAOTONG_SECRET_KEY`.
#[derive(Clone)]
pub struct Keys {
    key_id: String,
    cipher: Aes256Gcm,
    index_key: [u8; 32],
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Keys {
    /// Parse a base64 secret of 32 bytes.
    pub fn from_base64(secret: &str) -> Result<Keys> {
        let raw = B64.decode(secret.trim()).map_err(|e| {
            Error::BadRequest(format!("XIAOTONG_SECRET_KEY is not valid base64: {e}"))
        })?;
        if raw.len() != 32 {
            return Err(Error::BadRequest(format!(
                "XIAOTONG_SECRET_KEY must decode to 32 bytes, got {}",
                raw.len()
            )));
        }
        Ok(Self::from_bytes(&raw))
    }

    pub fn from_bytes(secret: &[u8]) -> Keys {
        let enc = derive(secret, "xiaotong/field-encryption/v1");
        // The key id is a short fingerprint, so a rotation can tell old ciphertexts apart.
        let key_id = hex::encode(&Sha256::digest(enc)[..4]);
        Keys {
            key_id,
            cipher: Aes256Gcm::new_from_slice(&enc).expect("32-byte key"),
            index_key: derive(secret, "xiaotong/blind-index/v1"),
            mac_key: derive(secret, "xiaotong/mac/v1"),
        }
    }

    /// A fresh random secret, base64, for `demo` and first installs.
    pub fn generate_base64() -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        B64.encode(raw)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `<key id>:<base64(nonce || ciphertext)>`.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of in-memory data cannot fail");
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!("{}:{}", self.key_id, B64.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String> {
        let (kid, body) = stored
            .split_once(':')
            .ok_or_else(|| Error::Other(anyhow::anyhow!("encrypted field without key id")))?;
        if kid != self.key_id {
            return Err(Error::Other(anyhow::anyhow!(
                "field encrypted with key {kid}, but the configured key is {}",
                self.key_id
            )));
        }
        let raw = B64
            .decode(body)
            .map_err(|e| Error::Other(anyhow::anyhow!("corrupt encrypted field: {e}")))?;
        if raw.len() < 12 {
            return Err(Error::Other(anyhow::anyhow!("corrupt encrypted field")));
        }
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(&raw[..12]), &raw[12..])
            .map_err(|_| Error::Other(anyhow::anyhow!("encrypted field failed authentication")))?;
        String::from_utf8(pt)
            .map_err(|e| Error::Other(anyhow::anyhow!("corrupt encrypted field: {e}")))
    }

    /// Deterministic keyed digest of a normalized value, for equality search.
    pub fn blind_index(&self, kind: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key).expect("32-byte key");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A keyed MAC for signed values (cookies, webhook secrets).
    pub fn mac(&self, data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key).expect("32-byte key");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// SHA-256 hex digest, used to store session and API token secrets.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips_and_detects_tampering() {
        let keys = Keys::from_bytes(&[7u8; 32]);
        let c1 = keys.encrypt("13800138000");
        let c2 = keys.encrypt("13800138000");
        assert_ne!(c1, c2, "nonces must differ");
        assert_eq!(keys.decrypt(&c1).unwrap(), "13800138000");
        let mut tampered = c1.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.decrypt(&tampered).is_err());
        let other = Keys::from_bytes(&[8u8; 32]);
        assert!(other.decrypt(&c1).is_err());
    }

    #[test]
    fn blind_index_is_deterministic_and_keyed() {
        let a = Keys::from_bytes(&[1u8; 32]);
        let b = Keys::from_bytes(&[2u8; 32]);
        assert_eq!(a.blind_index("phone", "1"), a.blind_index("phone", "1"));
        assert_ne!(a.blind_index("phone", "1"), b.blind_index("phone", "1"));
        assert_ne!(a.blind_index("phone", "1"), a.blind_index("id", "1"));
    }
}
