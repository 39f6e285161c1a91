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
