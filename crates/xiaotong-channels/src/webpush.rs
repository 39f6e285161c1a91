//! Web Push (RFC 8030) with `aes128gcm` payload encryption (RFC 8291 over
//! RFC 8188) and VAPID authentication (RFC 8292).
//!
//! A delivery's `to` is the browser's subscription as JSON:
//! `{"endpoint": "https://…", "keys": {"p256dh": "<base64url>", "auth": "<base64url>"}}`.
//! Best effort only: Chrome's push service is unreachable from mainland China.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions};
use crate::model::{Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency};
use crate::secret::Secret;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use futures_util::stream::{self, StreamExt};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Record size announced in the `aes128gcm` header.
const RECORD_SIZE: u32 = 4096;
/// Largest plaintext that fits one 4096-byte message (86 B header, 16 B tag, 1 B delimiter).
pub const MAX_PAYLOAD: usize = 3993;

/// Push message urgency (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// `very-low`
    VeryLow,
    /// `low`
    Low,
    /// `normal`
    Normal,
    /// `high`
    High,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// Web Push configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebPushConfig {
    /// VAPID private key: the 32-byte P-256 scalar, base64url (see [`generate_vapid_keys`]).
    pub vapid_private_key: Secret,
    /// VAPID `sub` claim: `mailto:…` or `https://…`.
    pub subject: String,
    /// `TTL` header: seconds the push service keeps an undelivered message.
    #[serde(default = "default_ttl")]
    pub ttl_secs: u32,
    /// `Urgency` header.
    #[serde(default)]
    pub urgency: Option<Urgency>,
    /// Requests in flight at once.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_ttl() -> u32 {
    86_400
}
fn default_parallelism() -> usize {
    8
}

/// A browser push subscription (`PushSubscription.toJSON()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    /// Push service URL.
    pub endpoint: String,
    /// Client keys.
    pub keys: PushKeys,
}

/// The client's keys of a subscription, base64url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushKeys {
    /// Uncompressed P-256 public key (65 bytes).
    pub p256dh: String,
    /// Authentication secret (16 bytes).
    pub auth: String,
}

/// Generates a VAPID key pair: `(private scalar, uncompressed public key)`,
/// both base64url. The public key is the browser's `applicationServerKey`.
pub fn generate_vapid_keys() -> (Secret, String) {
    let sk = SecretKey::random(&mut rand::rngs::OsRng);
    let public = B64URL.encode(sk.public_key().to_encoded_point(false).as_bytes());
    (Secret::new(B64URL.encode(sk.to_bytes())), public)
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn decode_b64url(s: &str, what: &str) -> Result<Vec<u8>> {
    B64URL
        .decode(s.trim().trim_end_matches('='))
        .map_err(|e| ChannelError::InvalidMessage(format!("{what}: bad base64url: {e}")))
}

/// Encrypts `payload` for one subscription (RFC 8291), with the given
/// ephemeral application-server key and salt. Returns the request body.
pub fn encrypt_aes128gcm(
    payload: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
    as_secret: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>> {
    if payload.len() > MAX_PAYLOAD {
        return Err(ChannelError::InvalidMessage(format!(
            "push payload is {} bytes, more than {MAX_PAYLOAD}",
            payload.len()
        )));
    }
    let ua_key = PublicKey::from_sec1_bytes(ua_public)
        .map_err(|_| ChannelError::InvalidMessage("p256dh is not a P-256 public key".into()))?;
    let ua_pub = ua_key.to_encoded_point(false);
    let as_pub = as_secret.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_key.as_affine());
    let prk_key = hmac256(auth_secret, &[shared.raw_secret_bytes().as_slice()]);
    let ikm = hmac256(
        &prk_key,
        &[
            b"WebPush: info\0",
            ua_pub.as_bytes(),
            as_pub.as_bytes(),
            &[1],
        ],
    );
    let prk = hmac256(salt, &[&ikm]);
    let cek = hmac256(&prk, &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce = hmac256(&prk, &[b"Content-Encoding: nonce\0", &[1]]);
    let (Some(cek), Some(nonce)) = (cek.get(..16), nonce.get(..12)) else {
        return Err(ChannelError::Protocol("HMAC output too short".into()));
    };
    let cipher = Aes128Gcm::new(Key::<Aes128Gcm>::from_slice(cek));
    let mut plain = payload.to_vec();
    plain.push(2); // last-record delimiter, no padding
    let ct = cipher
        .encrypt(Nonce::from_slice(nonce), plain.as_slice())
        .map_err(|_| ChannelError::Protocol("aes-gcm encryption failed".into()))?;
    let mut body = Vec::with_capacity(86 + ct.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_pub.as_bytes());
    body.extend_from_slice(&ct);
    Ok(body)
}

/// Web Push adapter: one POST per subscription.
#[derive(Debug)]
pub struct WebPushChannel {
    config: WebPushConfig,
    vapid: SecretKey,
    vapid_public: String,
    client: reqwest::Client,
}

impl WebPushChannel {
    /// Builds the adapter.
    pub fn new(config: WebPushConfig) -> Result<Self> {
        let raw = decode_b64url(config.vapid_private_key.expose(), "vapid_private_key")
            .map_err(|e| ChannelError::Config(e.to_string()))?;
        let vapid = SecretKey::from_slice(&raw)
            .map_err(|_| ChannelError::Config("vapid_private_key is not a P-256 scalar".into()))?;
        if !(config.subject.starts_with("mailto:") || config.subject.starts_with("https://")) {
            return Err(ChannelError::Config(
                "web push subject must be mailto: or https:".into(),
            ));
        }
        let vapid_public = B64URL.encode(vapid.public_key().to_encoded_point(false).as_bytes());
        let client = http::client(&config.http)?;
        Ok(Self {
            config,
            vapid,
            vapid_public,
            client,
        })
    }

    /// The `applicationServerKey` browsers subscribe with (base64url).
    pub fn vapid_public_key(&self) -> &str {
        &self.vapid_public
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a push service origin.
    fn vapid_header(&self, audience: &str, now: i64) -> Result<String> {
        let header = B64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": audience, "exp": now + 12 * 3600, "sub": self.config.subject});
        let claims = B64URL.encode(serde_json::to_vec(&claims)?);
        let input = format!("{header}.{claims}");
        let key = p256::ecdsa::SigningKey::from(&self.vapid);
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        Ok(format!(
            "vapid t={input}.{}, k={}",
            B64URL.encode(sig.to_bytes()),
            self.vapid_public
        ))
    }

    /// The JSON the service worker receives, cut to fit one record.
    fn payload(d: &Delivery) -> Result<Vec<u8>> {
        let m = &d.message;
        let mut body = m.text.clone();
        let mut data = m.data.clone();
        loop {
            let v = serde_json::json!({"id": d.id, "title": m.subject, "body": body, "url": m.url, "data": data});
            let bytes = serde_json::to_vec(&v)?;
            if bytes.len() <= MAX_PAYLOAD {
                return Ok(bytes);
            }
            if data.is_some() {
                data = None;
                continue;
            }
            if body.is_empty() {
                return Err(ChannelError::InvalidMessage("push title too long".into()));
            }
            let over = bytes.len() - MAX_PAYLOAD;
            let keep = body.len().saturating_sub(over + 8);
            body = crate::model::truncate_bytes(&body, keep).to_owned();
        }
    }

    fn prepare(
        &self,
        d: &Delivery,
    ) -> std::result::Result<(PushSubscription, Vec<u8>), DeliveryOutcome> {
        let sub: PushSubscription = serde_json::from_str(&d.to).map_err(|e| {
            DeliveryOutcome::unknown_recipient("invalid_subscription", e.to_string())
        })?;
        let invalid = |e: ChannelError| {
            DeliveryOutcome::unknown_recipient("invalid_subscription", e.to_string())
        };
        let ua_pub = decode_b64url(&sub.keys.p256dh, "p256dh").map_err(invalid)?;
        let auth = decode_b64url(&sub.keys.auth, "auth").map_err(invalid)?;
        let payload = Self::payload(d)
            .map_err(|e| DeliveryOutcome::failed(false, "invalid_message", e.to_string()))?;
        let as_secret = SecretKey::random(&mut rand::rngs::OsRng);
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        let body =
            encrypt_aes128gcm(&payload, &ua_pub, &auth, &as_secret, &salt).map_err(invalid)?;
        Ok((sub, body))
    }

    async fn push(&self, d: &Delivery) -> DeliveryOutcome {
        let (sub, body) = match self.prepare(d) {
            Ok(x) => x,
            Err(o) => return o,
        };
        let audience = match url::Url::parse(&sub.endpoint) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
                u.origin().ascii_serialization()
            }
            _ => {
                return DeliveryOutcome::unknown_recipient(
                    "invalid_subscription",
                    "endpoint is not an http(s) URL",
                )
            }
        };
        let auth = match self.vapid_header(&audience, http::now_secs()) {
            Ok(a) => a,
            Err(e) => return DeliveryOutcome::failed(false, "vapid", e.to_string()),
        };
        // Topic collapses a retried copy that is still queued at the push service.
        let topic = B64URL.encode(&Sha256::digest(d.id.as_bytes())[..24]);
        let mut req = self
            .client
            .post(&sub.endpoint)
            .header("ttl", self.config.ttl_secs.to_string())
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("topic", topic)
            .header("authorization", auth)
            .body(body);
        if let Some(u) = self.config.urgency {
            req = req.header("urgency", u.as_str());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return http::transport_failure(&e),
        };
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        match status.as_u16() {
            200..=299 => DeliveryOutcome::Sent {
                provider_message_id: location,
            },
            404 | 410 => DeliveryOutcome::unknown_recipient(
                status.as_u16().to_string(),
                "subscription expired or unsubscribed: delete it",
            ),
            413 => DeliveryOutcome::failed(false, "413", "payload too large"),
            _ => http::status_outcome(status, &headers, &text),
        }
    }

    async fn report(&self, d: &Delivery) -> DeliveryReport {
        DeliveryReport {
            delivery_id: d.id.clone(),
            outcome: self.push(d).await,
        }
    }
}

#[async_trait::async_trait]
impl Channel for WebPushChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WebPush
    }

    fn max_batch_size(&self) -> usize {
        100
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let futures: Vec<_> = batch.iter().map(|d| self.report(d)).collect();
        stream::iter(futures)
            .buffered(self.config.parallelism.max(1))
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        B64URL.decode(s).expect("base64url")
    }

    /// Vector #6 (RFC 8291 Appendix A).
    #[test]
    fn rfc8291_vector_6() {
        let as_secret =
            SecretKey::from_slice(&b("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).expect("key");
        let salt: [u8; 16] = b("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16 bytes");
        let body = encrypt_aes128gcm(
            b"When I grow up, I want to be a watermelon",
            &b("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            &b("BTBZMqHH6r4Tts7J_aSIgg"),
            &as_secret,
            &salt,
        )
        .expect("encrypt");
        assert_eq!(
            B64URL.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn payload_is_cut_to_one_record() {
        let d = Delivery {
            id: "x".into(),
            to: String::new(),
            message: crate::OutgoingMessage {
                subject: "t".into(),
                text: "长".repeat(3000),
                data: Some(serde_json::json!({"k": "v".repeat(100)})),
                ..Default::default()
            },
        };
        let p = WebPushChannel::payload(&d).expect("payload");
        assert!(p.len() <= MAX_PAYLOAD);
        let v: serde_json::Value = serde_json::from_slice(&p).expect("json");
        assert!(v["data"].is_null());
        assert!(v["body"].as_str().is_some_and(|s| s.starts_with("长长")));
    }

    #[test]
    fn generated_keys_build_a_channel() {
        let (private, public) = generate_vapid_keys();
        let ch = WebPushChannel::new(WebPushConfig {
            vapid_private_key: private,
            subject: "mailto:ops@school.example".into(),
            ttl_secs: 60,
            urgency: None,
            parallelism: 1,
            http: HttpOptions::default(),
        })
        .expect("channel");
        assert_eq!(ch.vapid_public_key(), public);
        assert_eq!(b(&public).len(), 65);
    }
}
