use crate::common::*;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Key, Nonce};
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use std::sync::Arc;
use std::time::Duration;
use xiaotong_channels::{
    generate_vapid_keys, Channel, DeliveryOutcome, Urgency, WebPushChannel, WebPushConfig,
};

/// The browser side: a P-256 key pair and an auth secret.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        Browser {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
            auth: rand::random(),
        }
    }

    fn subscription(&self, endpoint: &str) -> String {
        serde_json::json!({"endpoint": endpoint, "keys": {
            "p256dh": B64URL.encode(self.secret.public_key().to_encoded_point(false).as_bytes()),
            "auth": B64URL.encode(self.auth),
        }})
        .to_string()
    }

    /// RFC 8291 decryption, written independently of the adapter.
    fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let salt = body.get(..16).ok_or("short body")?;
        let rs = u32::from_be_bytes(
            body.get(16..20)
                .ok_or("short")?
                .try_into()
                .map_err(|_| "rs")?,
        );
        if rs != 4096 {
            return Err(format!("rs {rs}"));
        }
        if body.get(20) != Some(&65) {
            return Err("idlen must be 65".into());
        }
        let as_pub_bytes = body.get(21..86).ok_or("short keyid")?;
        let as_pub = p256::PublicKey::from_sec1_bytes(as_pub_bytes).map_err(|_| "bad as_pub")?;
        let ua_pub = self.secret.public_key().to_encoded_point(false);
        let ecdh = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), as_pub.as_affine());
        let prk_key = hmac256(&self.auth, ecdh.raw_secret_bytes());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(ua_pub.as_bytes());
        info.extend_from_slice(as_pub_bytes);
        info.push(1);
        let ikm = hmac256(&prk_key, &info);
        let prk = hmac256(salt, &ikm);
        let cek = hmac256(&prk, b"Content-Encoding: aes128gcm\0\x01");
        let nonce = hmac256(&prk, b"Content-Encoding: nonce\0\x01");
        let cipher = Aes128Gcm::new(Key::<Aes128Gcm>::from_slice(&cek[..16]));
        let mut plain = cipher
            .decrypt(Nonce::from_slice(&nonce[..12]), &body[86..])
            .map_err(|_| "aes-gcm authentication failed".to_string())?;
        while plain.last() == Some(&0) {
            plain.pop();
        }
        if plain.pop() != Some(2) {
            return Err("missing last-record delimiter".into());
        }
        Ok(plain)
    }
}

fn verify_vapid(req: &Req, p: &mut Problems, origin: &str) {
    let auth = req.header("authorization").unwrap_or_default();
    let Some(rest) = auth.strip_prefix("vapid ") else {
        p.push(format!("authorization scheme: {auth}"));
        return;
    };
    let f = auth_fields(rest, "", ", ");
    let (Some(t), Some(k)) = (f.get("t"), f.get("k")) else {
        p.push("vapid t= and k= required".into());
        return;
    };
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() != 3 {
        p.push("JWT must have 3 parts".into());
        return;
    }
    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(parts[0]).unwrap_or_default()).unwrap_or_default();
    check_eq(p, header["alg"].as_str(), Some("ES256"), "JWT alg");
    let claims: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
    check_eq(
        p,
        claims["aud"].as_str(),
        Some(origin),
        "aud = push service origin",
    );
    let exp = claims["exp"].as_i64().unwrap_or(0);
    check(p, exp > now() && exp <= now() + 86_400, "exp within 24 h");
    check(
        p,
        claims["sub"]
            .as_str()
            .is_some_and(|s| s.starts_with("mailto:")),
        "sub",
    );
    let key = B64URL
        .decode(k)
        .ok()
        .and_then(|k| p256::ecdsa::VerifyingKey::from_sec1_bytes(&k).ok());
    let sig = B64URL
        .decode(parts[2])
        .ok()
        .and_then(|s| p256::ecdsa::Signature::from_slice(&s).ok());
    match (key, sig) {
        (Some(key), Some(sig)) => check(
            p,
            key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_ok(),
            "VAPID JWT signature",
        ),
        _ => p.push("bad k or signature encoding".into()),
    }
}

#[tokio::test]
async fn encrypted_vapid_push_and_status_mapping() {
    let browser = Arc::new(Browser::new());
    let b = browser.clone();
    let origin = Arc::new(std::sync::Mutex::new(String::new()));
    let o = origin.clone();
    let mock = Mock::start(move |req, p| {
        check_eq(p, req.method.as_str(), "POST", "method");
        check_eq(
            p,
            req.header("content-encoding").as_deref(),
            Some("aes128gcm"),
            "Content-Encoding",
        );
        check_eq(p, req.header("ttl").as_deref(), Some("600"), "TTL");
        check_eq(p, req.header("urgency").as_deref(), Some("high"), "Urgency");
        check(
            p,
            req.header("topic").is_some_and(|t| t.len() <= 32),
            "Topic <= 32 chars",
        );
        verify_vapid(req, p, &o.lock().expect("lock"));
        match b.decrypt(&req.body) {
            Ok(plain) => {
                let v: serde_json::Value = serde_json::from_slice(&plain).unwrap_or_default();
                check_eq(p, v["title"].as_str(), Some("通知"), "title");
                check(
                    p,
                    v["body"].as_str().is_some_and(|s| s.starts_with("家长会")),
                    "body",
                );
            }
            Err(e) => p.push(format!("decrypt: {e}")),
        }
        match req.path.as_str() {
            "/gone" => Reply::status_json(StatusCode::GONE, serde_json::json!({})),
            "/busy" => Reply::status_json(StatusCode::TOO_MANY_REQUESTS, serde_json::json!({}))
                .with_header("retry-after", "11"),
            _ => Reply::status_json(StatusCode::CREATED, serde_json::json!({}))
                .with_header("location", "/m/123"),
        }
    })
    .await;
    *origin.lock().expect("lock") = mock.base.clone();
    let (private, _) = generate_vapid_keys();
    let ch = WebPushChannel::new(WebPushConfig {
        vapid_private_key: private,
        subject: "mailto:ops@school.example".into(),
        ttl_secs: 600,
        urgency: Some(Urgency::High),
        parallelism: 2,
        http: Default::default(),
    })
    .expect("channel");
    let ok = delivery(
        "ok",
        &browser.subscription(&format!("{}/push/abc", mock.base)),
        "家长会周五举行",
    );
    let gone = delivery(
        "gone",
        &browser.subscription(&format!("{}/gone", mock.base)),
        "家长会",
    );
    let busy = delivery(
        "busy",
        &browser.subscription(&format!("{}/busy", mock.base)),
        "家长会",
    );
    let junk = delivery("junk", "not json", "家长会");
    let out = ch.send(&[ok, gone, busy, junk]).await;
    mock.assert_clean();
    assert_eq!(
        out[0].outcome,
        DeliveryOutcome::Sent {
            provider_message_id: Some("/m/123".into())
        }
    );
    assert!(
        matches!(&out[1].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "410")
    );
    assert!(
        matches!(&out[2].outcome, DeliveryOutcome::RetryAfter { after, .. } if *after == Duration::from_secs(11))
    );
    assert!(
        matches!(&out[3].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "invalid_subscription")
    );
    assert_eq!(mock.requests().len(), 3);
}
