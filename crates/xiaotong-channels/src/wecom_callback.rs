//! WeCom callback (接收消息) crypto: `msg_signature` and the AES-256-CBC
//! envelope with PKCS#7 padding to 32-byte blocks. For the main binary's
//! callback endpoint (URL verification and encrypted events).

use crate::error::{ChannelError, Result};
use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

type Dec = cbc::Decryptor<aes::Aes256>;
type Enc = cbc::Encryptor<aes::Aes256>;

/// WeCom pads to multiples of 32 bytes (not the AES block size).
const PAD_BLOCK: usize = 32;

/// `hex(SHA1(sorted(token, timestamp, nonce, msg_encrypt) concatenated))`.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, msg_encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, msg_encrypt];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Constant-time check of a received `msg_signature`.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    msg_encrypt: &str,
    signature: &str,
) -> bool {
    let want = msg_signature(token, timestamp, nonce, msg_encrypt);
    want.len() == signature.len()
        && want
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
            == 0
}

/// EncodingAESKey's 43rd character carries bits beyond the 32 bytes, which
/// a strict base64 decoder rejects.
const LENIENT_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

fn aes_key(encoding_aes_key: &str) -> Result<[u8; 32]> {
    let key = LENIENT_B64
        .decode(format!("{}=", encoding_aes_key.trim()))
        .map_err(|e| ChannelError::Config(format!("EncodingAESKey: {e}")))?;
    key.try_into()
        .map_err(|_| ChannelError::Config("EncodingAESKey must decode to 32 bytes".into()))
}

/// Decrypted callback payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPlaintext {
    /// The message (XML for events, the echo string for URL verification).
    pub msg: String,
    /// corpid (self-built apps) or suite_id (third-party suites).
    pub receive_id: String,
}

/// Decrypts `msg_encrypt` (base64) with the 43-character EncodingAESKey.
/// Rejects the message when `expected_receive_id` is given and differs.
pub fn decrypt(
    encoding_aes_key: &str,
    msg_encrypt: &str,
    expected_receive_id: Option<&str>,
) -> Result<CallbackPlaintext> {
    let key = aes_key(encoding_aes_key)?;
    let bad = |why: &str| ChannelError::InvalidMessage(format!("wecom callback: {why}"));
    let mut buf = B64
        .decode(msg_encrypt.trim())
        .map_err(|_| bad("msg_encrypt is not base64"))?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(bad("ciphertext length is not a multiple of 16"));
    }
    let iv: [u8; 16] = key[..16].try_into().map_err(|_| bad("iv"))?;
    let plain = Dec::new(&key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| bad("decryption failed"))?;
    let pad = usize::from(*plain.last().ok_or_else(|| bad("empty plaintext"))?);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(bad("bad padding"));
    }
    let body = &plain[..plain.len() - pad];
    let len_bytes: [u8; 4] = body
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("plaintext too short"))?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let msg = body
        .get(20..20 + len)
        .ok_or_else(|| bad("message length out of range"))?;
    let receive_id = body.get(20 + len..).ok_or_else(|| bad("no receive id"))?;
    let out = CallbackPlaintext {
        msg: String::from_utf8(msg.to_vec()).map_err(|_| bad("message is not UTF-8"))?,
        receive_id: String::from_utf8(receive_id.to_vec())
            .map_err(|_| bad("receive id is not UTF-8"))?,
    };
    if let Some(expected) = expected_receive_id {
        if out.receive_id != expected {
            return Err(bad("receive id mismatch"));
        }
    }
    Ok(out)
}

/// Encrypts a passive reply: `random(16) ‖ len(4, BE) ‖ msg ‖ receive_id`,
/// PKCS#7-padded to 32 bytes, AES-256-CBC, base64.
pub fn encrypt(encoding_aes_key: &str, msg: &str, receive_id: &str) -> Result<String> {
    let key = aes_key(encoding_aes_key)?;
    let mut random = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut random);
    encrypt_with_random(&key, &random, msg, receive_id)
}

fn encrypt_with_random(
    key: &[u8; 32],
    random: &[u8; 16],
    msg: &str,
    receive_id: &str,
) -> Result<String> {
    let len = u32::try_from(msg.len())
        .map_err(|_| ChannelError::InvalidMessage("message too long".into()))?;
    let mut buf = random.to_vec();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg.as_bytes());
    buf.extend_from_slice(receive_id.as_bytes());
    let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
    // pad is in 1..=32, so it fits a byte
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    let n = buf.len();
    let iv: [u8; 16] = key[..16]
        .try_into()
        .map_err(|_| ChannelError::Protocol("iv".into()))?;
    let ct = Enc::new(key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, n)
        .map_err(|_| ChannelError::Protocol("encryption failed".into()))?;
    Ok(B64.encode(ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHOSTR: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    /// Vector #1.
    #[test]
    fn signature_vector_1() {
        assert_eq!(
            msg_signature("QDG6eK", "1409659589", "263014780", ECHOSTR),
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
        );
        assert!(verify_msg_signature(
            "QDG6eK",
            "1409659589",
            "263014780",
            ECHOSTR,
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
        ));
        assert!(!verify_msg_signature(
            "QDG6eK",
            "1409659590",
            "263014780",
            ECHOSTR,
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
        ));
    }

    /// Vector #2 (pad byte 7).
    #[test]
    fn decrypt_vector_2() {
        let p = decrypt(KEY, ECHOSTR, Some("wx5823bf96d3bd56c7")).expect("decrypt");
        assert_eq!(p.msg, "1616140317555161061");
        assert_eq!(p.receive_id, "wx5823bf96d3bd56c7");
        assert!(decrypt(KEY, ECHOSTR, Some("ww-other")).is_err());
        assert!(decrypt(KEY, "not base64!", None).is_err());
        assert!(decrypt(KEY, "AAAA", None).is_err());
    }

    #[test]
    fn encrypt_round_trip() {
        let c = encrypt(KEY, "<xml>回复</xml>", "ww123").expect("encrypt");
        let p = decrypt(KEY, &c, Some("ww123")).expect("decrypt");
        assert_eq!(p.msg, "<xml>回复</xml>");
    }
}
