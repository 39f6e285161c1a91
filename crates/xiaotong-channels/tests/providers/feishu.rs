use crate::common::*;
use xiaotong_channels::{Channel, DeliveryOutcome, FeishuBotChannel, FeishuBotConfig, Secret};

const HOOK: &str = "2f1c8f8e-6b1a-4c7e-9d2b-0123456789ab";
const SECRET: &str = "feishu-test-secret";

async fn feishu_mock() -> Mock {
    Mock::start(|req, p| {
        check_eq(p, req.method.as_str(), "POST", "method");
        if req.path != format!("/open-apis/bot/v2/hook/{HOOK}") {
            return Reply::status_json(
                axum::http::StatusCode::NOT_FOUND,
                serde_json::json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}),
            );
        }
        check(
            p,
            req.header("content-type").is_some_and(|c| c.starts_with("application/json")),
            "content-type json",
        );
        check(p, req.body.len() <= 20 * 1024, "body <= 20 KB");
        let b = req.json();
        // timestamp is a string of seconds, sign is not URL-encoded.
        let ts_str = b["timestamp"].as_str().unwrap_or_default();
        let ts: i64 = ts_str.parse().unwrap_or(0);
        check(p, ts > 0 && ts < 10_000_000_000, "timestamp must be a string of seconds");
        let want = b64(&hmac256(format!("{ts}\n{SECRET}").as_bytes(), b""));
        if (now() - ts).abs() > 3600 || b["sign"].as_str() != Some(want.as_str()) {
            return Reply::json(serde_json::json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}));
        }
        match b["msg_type"].as_str() {
            Some("text") => check(p, b["content"]["text"].is_string(), "content.text (content is an object)"),
            Some("post") => check(
                p,
                b["content"]["post"]["zh_cn"]["title"].is_string() && b["content"]["post"]["zh_cn"]["content"].is_array(),
                "post.zh_cn",
            ),
            other => p.push(format!("msg_type {other:?}")),
        }
        if b.to_string().contains("flood") {
            return Reply::json(serde_json::json!({"code": 11232, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}));
        }
        Reply::json(serde_json::json!({"code": 0, "msg": "success", "data": {}}))
    })
    .await
}

fn bot(base: &str, hook: &str, secret: &str) -> FeishuBotChannel {
    FeishuBotChannel::new(FeishuBotConfig {
        hook_id: Secret::new(hook),
        secret: Some(Secret::new(secret)),
        base_url: base.into(),
        http: Default::default(),
    })
    .expect("bot")
}

#[tokio::test]
async fn signed_post_and_text() {
    let mock = feishu_mock().await;
    let ch = bot(&mock.base, HOOK, SECRET);
    let mut plain = delivery("t", "", "只有正文");
    plain.message.subject.clear();
    let mut post = delivery("p", "", "请查看");
    post.message.url = Some("https://school.example/m/9".into());
    let out = ch.send(&[plain, post, delivery("f", "", "flood")]).await;
    mock.assert_clean();
    assert!(
        out[0].outcome.is_sent() && out[1].outcome.is_sent(),
        "{out:?}"
    );
    assert!(matches!(&out[2].outcome, DeliveryOutcome::RetryAfter { code, .. } if code == "11232"));
    assert_eq!(mock.requests()[0].json()["msg_type"], "text");
    assert_eq!(
        mock.requests()[1].json()["content"]["post"]["zh_cn"]["content"][0][1]["href"],
        "https://school.example/m/9"
    );
}

#[tokio::test]
async fn wrong_secret_and_wrong_hook() {
    let mock = feishu_mock().await;
    let out = bot(&mock.base, HOOK, "wrong")
        .send(&[delivery("a", "", "x")])
        .await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "19021")
    );
    let out = bot(&mock.base, "nope", SECRET)
        .send(&[delivery("a", "", "x")])
        .await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "19001")
    );
    mock.assert_clean();
}

// ---- app bot message (im/v1/messages) ----

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use xiaotong_channels::{FeishuAppChannel, FeishuAppConfig, FeishuReceiveIdType, Idempotency};

#[derive(Default)]
struct App {
    issued: u32,
    valid: String,
    revoke: bool,
    /// uuid → message_id (Feishu dedupes on uuid for 1 h)
    by_uuid: HashMap<String, String>,
}

async fn app_mock() -> (Mock, Arc<Mutex<App>>) {
    let state: Arc<Mutex<App>> = Arc::default();
    let s = state.clone();
    let mock = Mock::start(move |req, p| {
        let mut st = s.lock().expect("lock");
        match req.path.as_str() {
            "/open-apis/auth/v3/tenant_access_token/internal" => {
                check_eq(p, req.method.as_str(), "POST", "token method");
                let b = req.json();
                if b["app_id"] != "cli_test" || b["app_secret"] != "feishu-app-secret" {
                    return Reply::json(serde_json::json!({"code": 10014, "msg": "app secret invalid"}));
                }
                st.issued += 1;
                st.valid = format!("t-{}", st.issued);
                Reply::json(serde_json::json!({"code": 0, "msg": "ok", "tenant_access_token": st.valid, "expire": 7200}))
            }
            "/open-apis/im/v1/messages" => {
                check_eq(p, req.method.as_str(), "POST", "method");
                check_eq(p, req.q("receive_id_type").as_deref(), Some("open_id"), "receive_id_type");
                let bearer = req.header("authorization").unwrap_or_default();
                if bearer != format!("Bearer {}", st.valid) || st.revoke {
                    st.revoke = false;
                    return Reply::status_json(
                        axum::http::StatusCode::BAD_REQUEST,
                        serde_json::json!({"code": 99991663, "msg": "Invalid access token for authorization."}),
                    );
                }
                let b = req.json();
                // content is a JSON *string*
                let content: serde_json::Value = b["content"]
                    .as_str()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default();
                match b["msg_type"].as_str() {
                    Some("text") => check(p, content["text"].is_string(), "text content"),
                    Some("post") => check(p, content["zh_cn"]["title"].is_string(), "post content"),
                    other => p.push(format!("msg_type {other:?}")),
                }
                let uuid = b["uuid"].as_str().unwrap_or_default().to_owned();
                check(p, !uuid.is_empty() && uuid.len() <= 50, "uuid 1..=50 chars");
                let to = b["receive_id"].as_str().unwrap_or_default();
                if to.starts_with("ou_outside") {
                    return Reply::status_json(
                        axum::http::StatusCode::BAD_REQUEST,
                        serde_json::json!({"code": 230013, "msg": "Bot has NO availability to this user."}),
                    );
                }
                if to.starts_with("ou_hot") {
                    return Reply::status_json(
                        axum::http::StatusCode::BAD_REQUEST,
                        serde_json::json!({"code": 230020, "msg": "This operation triggers the frequency limit."}),
                    );
                }
                let next = format!("om_{}", st.by_uuid.len() + 1);
                let id = st.by_uuid.entry(uuid).or_insert(next).clone();
                Reply::json(serde_json::json!({"code": 0, "msg": "success", "data": {"message_id": id}}))
            }
            other => {
                p.push(format!("unexpected path {other}"));
                Reply::json(serde_json::json!({"code": 404}))
            }
        }
    })
    .await;
    (mock, state)
}

#[tokio::test]
async fn app_message_dedupes_on_delivery_id_and_refreshes_token() {
    let (mock, state) = app_mock().await;
    let ch = FeishuAppChannel::new(FeishuAppConfig {
        app_id: "cli_test".into(),
        app_secret: Secret::new("feishu-app-secret"),
        receive_id_type: FeishuReceiveIdType::OpenId,
        base_url: mock.base.clone(),
        token_refresh_margin_secs: 1800,
        parallelism: 2,
        http: Default::default(),
    })
    .expect("channel");
    assert_eq!(ch.idempotency(), Idempotency::DeliveryIdKey);
    let out = ch
        .send(&[
            delivery("d1", "ou_a", "x"),
            delivery("d2", "ou_b", "y"),
            delivery("d3", "ou_outside1", "z"),
        ])
        .await;
    assert!(
        out[0].outcome.is_sent() && out[1].outcome.is_sent(),
        "{out:?}"
    );
    assert!(
        matches!(&out[2].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "230013")
    );
    // A retry of d1 (e.g. after a lost answer) carries the same uuid: same message.
    let again = ch.send(&[delivery("d1", "ou_a", "x")]).await;
    assert_eq!(again[0].outcome, out[0].outcome);
    assert_eq!(state.lock().expect("lock").by_uuid.len(), 2);

    state.lock().expect("lock").revoke = true;
    let out = ch
        .send(&[delivery("d4", "ou_a", "w"), delivery("hot", "ou_hot", "w")])
        .await;
    assert!(out[0].outcome.is_sent(), "{out:?}");
    assert!(
        matches!(&out[1].outcome, DeliveryOutcome::RetryAfter { code, .. } if code == "230020")
    );
    assert_eq!(
        mock.count("/open-apis/auth/v3/tenant_access_token/internal"),
        2
    );
    mock.assert_clean();
}
