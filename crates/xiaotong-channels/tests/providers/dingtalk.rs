use crate::common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xiaotong_channels::{
    Channel, DeliveryOutcome, DingtalkRobotChannel, DingtalkRobotConfig, Secret,
};

const TOKEN: &str = "dt-access-token";
const SECRET: &str = "SECdingtalk-test-secret";

async fn dingtalk_mock(throttle_after: usize) -> Mock {
    let n = Arc::new(AtomicUsize::new(0));
    Mock::start(move |req, p| {
        check_eq(p, req.method.as_str(), "POST", "method");
        check_eq(p, req.path.as_str(), "/robot/send", "path");
        check_eq(
            p,
            req.header("content-type").as_deref(),
            Some("application/json; charset=utf-8"),
            "content-type",
        );
        if req.q("access_token").as_deref() != Some(TOKEN) {
            return Reply::json(serde_json::json!({"errcode": 300001, "errmsg": "token is not exist"}));
        }
        // The signature must arrive URL-encoded: no raw '+', '/' or '='.
        let raw_sign = req
            .raw_query
            .split('&')
            .find_map(|kv| kv.strip_prefix("sign="))
            .unwrap_or_default()
            .to_owned();
        check(p, !raw_sign.contains(['+', '/', '=']), format!("sign not URL-encoded: {raw_sign}"));
        let ts: i64 = req.q("timestamp").and_then(|t| t.parse().ok()).unwrap_or(0);
        let now_ms = chrono::Utc::now().timestamp_millis();
        check(p, ts > 1_000_000_000_000, "timestamp must be in milliseconds");
        if (now_ms - ts).abs() > 3_600_000 {
            return Reply::json(serde_json::json!({"errcode": 310000, "errmsg": "timestamp invalid"}));
        }
        let want = b64(&hmac256(SECRET.as_bytes(), format!("{ts}\n{SECRET}").as_bytes()));
        if req.q("sign") != Some(want) {
            return Reply::json(serde_json::json!({"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}));
        }
        let b = req.json();
        match b["msgtype"].as_str() {
            Some("text") => check(p, b["text"]["content"].is_string(), "text.content"),
            Some("markdown") => check(
                p,
                b["markdown"]["title"].is_string() && b["markdown"]["text"].is_string(),
                "markdown.title and markdown.text",
            ),
            other => p.push(format!("msgtype {other:?}")),
        }
        check(p, b["at"]["isAtAll"].is_boolean(), "at.isAtAll");
        if n.fetch_add(1, Ordering::SeqCst) >= throttle_after {
            return Reply::json(serde_json::json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}));
        }
        Reply::json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
    })
    .await
}

fn robot(base: &str, secret: &str) -> DingtalkRobotChannel {
    DingtalkRobotChannel::new(DingtalkRobotConfig {
        access_token: Secret::new(TOKEN),
        secret: Some(Secret::new(secret)),
        base_url: base.into(),
        at_all: false,
        http: Default::default(),
    })
    .expect("robot")
}

#[tokio::test]
async fn signed_posts_and_throttling() {
    let mock = dingtalk_mock(2).await;
    let ch = robot(&mock.base, SECRET);
    let mut md = delivery("md", "", "x");
    md.message.markdown = Some("### 考试安排\n- 周一 数学".into());
    // Several sends so that signatures with '+', '/' or '=' are exercised.
    let out = ch
        .send(&[delivery("a", "", "hello"), md, delivery("c", "", "third")])
        .await;
    mock.assert_clean();
    assert!(
        out[0].outcome.is_sent() && out[1].outcome.is_sent(),
        "{out:?}"
    );
    assert!(matches!(
        &out[2].outcome,
        DeliveryOutcome::RetryAfter { after, code, .. } if *after == Duration::from_secs(600) && code == "130101"
    ));
    let md_req = &mock.requests()[1];
    assert_eq!(md_req.json()["markdown"]["title"], "通知");
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let mock = dingtalk_mock(100).await;
    let out = robot(&mock.base, "SECwrong")
        .send(&[delivery("a", "", "hello")])
        .await;
    mock.assert_clean();
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "310000")
    );
}
