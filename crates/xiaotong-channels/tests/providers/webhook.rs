use crate::common::*;
use axum::http::StatusCode;
use std::time::Duration;
use xiaotong_channels::sign::verify_webhook_signature;
use xiaotong_channels::{
    Channel, DeliveryOutcome, Idempotency, Secret, WebhookChannel, WebhookConfig,
};

const SECRET: &str = "whsec_integration";

async fn receiver() -> Mock {
    Mock::start(|req, p| {
        check_eq(p, req.method.as_str(), "POST", "method");
        check_eq(
            p,
            req.header("content-type").as_deref(),
            Some("application/json"),
            "content-type",
        );
        let ts = req.header("x-xiaotong-timestamp").unwrap_or_default();
        let sig = req.header("x-xiaotong-signature").unwrap_or_default();
        let id = req.header("x-xiaotong-delivery").unwrap_or_default();
        // Independent recomputation: hex(HMAC-SHA256(secret, ts + "." + body)).
        let mut msg = format!("{ts}.").into_bytes();
        msg.extend_from_slice(&req.body);
        let want = format!("v1={}", hex::encode(hmac256(SECRET.as_bytes(), &msg)));
        check_eq(p, sig.clone(), want, "signature");
        // And the helper receivers may use.
        check(
            p,
            verify_webhook_signature(SECRET, &ts, &sig, &req.body, now(), 300),
            "verify helper",
        );
        let b = req.json();
        check_eq(
            p,
            b["id"].as_str(),
            Some(id.as_str()),
            "id header = body id",
        );
        check_eq(p, b["type"].as_str(), Some("message.delivery"), "type");
        check(
            p,
            b["created_at"].is_string() && b["message"]["subject"].is_string(),
            "created_at, message",
        );
        match b["recipient"].as_str().unwrap_or_default() {
            "busy" => Reply::status_json(StatusCode::TOO_MANY_REQUESTS, serde_json::json!({}))
                .with_header("retry-after", "7"),
            "down" => Reply::status_json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({})),
            "reject" => Reply::status_json(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({"error": "no"}),
            ),
            _ => Reply::json(serde_json::json!({"ok": true})),
        }
    })
    .await
}

fn hook(url: &str) -> WebhookChannel {
    WebhookChannel::new(WebhookConfig {
        url: url.into(),
        secret: Secret::new(SECRET),
        parallelism: 4,
        http: Default::default(),
    })
    .expect("webhook")
}

#[tokio::test]
async fn signed_deliveries_and_status_mapping() {
    let mock = receiver().await;
    let ch = hook(&format!("{}/hooks/xiaotong", mock.base));
    assert_eq!(ch.idempotency(), Idempotency::DeliveryIdKey);
    let mut rich = delivery("ok", "alice", "正文");
    rich.message.data = Some(serde_json::json!({"message_id": 42}));
    let out = ch
        .send(&[
            rich,
            delivery("busy", "busy", "x"),
            delivery("down", "down", "x"),
            delivery("rej", "reject", "x"),
        ])
        .await;
    mock.assert_clean();
    assert_eq!(
        out.iter()
            .map(|r| r.delivery_id.as_str())
            .collect::<Vec<_>>(),
        ["ok", "busy", "down", "rej"]
    );
    assert!(out[0].outcome.is_sent());
    assert!(
        matches!(&out[1].outcome, DeliveryOutcome::RetryAfter { after, code, .. } if *after == Duration::from_secs(7) && code == "429")
    );
    assert!(
        matches!(&out[2].outcome, DeliveryOutcome::Failed { retryable: true, code, .. } if code == "503")
    );
    assert!(
        matches!(&out[3].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "422")
    );
    let first = mock
        .requests()
        .into_iter()
        .find(|r| r.json()["id"] == "ok")
        .expect("request");
    assert_eq!(first.path, "/hooks/xiaotong");
    assert_eq!(first.json()["message"]["data"]["message_id"], 42);
}

#[tokio::test]
async fn unreachable_receiver_is_retryable() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = hook(&format!("http://127.0.0.1:{port}/x"))
        .send(&[delivery("a", "b", "c")])
        .await;
    assert!(
        matches!(
            &out[0].outcome,
            DeliveryOutcome::Failed {
                retryable: true,
                ..
            }
        ),
        "{out:?}"
    );
}
