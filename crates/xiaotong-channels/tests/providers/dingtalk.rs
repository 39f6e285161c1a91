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

// ---- work notification (asyncsend_v2) ----

use std::sync::Mutex;
use xiaotong_channels::{Delivery, DingtalkWorkChannel, DingtalkWorkConfig, Idempotency};

const APP_KEY: &str = "ding-app-key";
const APP_SECRET: &str = "ding-app-secret";

#[derive(Default)]
struct Work {
    issued: u32,
    valid: String,
    revoke: bool,
}

async fn work_mock() -> (Mock, Arc<Mutex<Work>>) {
    let state: Arc<Mutex<Work>> = Arc::default();
    let s = state.clone();
    let mock = Mock::start(move |req, p| {
        let mut st = s.lock().expect("lock");
        match req.path.as_str() {
            "/gettoken" => {
                check_eq(p, req.method.as_str(), "GET", "gettoken method");
                if req.q("appkey").as_deref() != Some(APP_KEY) || req.q("appsecret").as_deref() != Some(APP_SECRET) {
                    return Reply::json(serde_json::json!({"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"}));
                }
                st.issued += 1;
                st.valid = format!("dt-{}", st.issued);
                Reply::json(serde_json::json!({"errcode": 0, "errmsg": "ok", "access_token": st.valid, "expires_in": 7200}))
            }
            "/topapi/message/corpconversation/asyncsend_v2" => {
                check_eq(p, req.method.as_str(), "POST", "method");
                let token = req.q("access_token").unwrap_or_default();
                if token != st.valid || st.revoke {
                    st.revoke = false;
                    st.valid = String::new();
                    return Reply::json(serde_json::json!({"errcode": 88, "sub_code": "42001", "errmsg": "ding talk error[subcode=42001,submsg=access_token超时]"}));
                }
                let b = req.json();
                check_eq(p, b["agent_id"].as_i64(), Some(123), "agent_id integer");
                let list = b["userid_list"].as_str().unwrap_or_default();
                let users: Vec<&str> = list.split(',').collect();
                check(p, !list.is_empty() && users.len() <= 5000, "userid_list 1..=5000 comma-separated");
                let t = b["msg"]["msgtype"].as_str().unwrap_or_default().to_owned();
                match t.as_str() {
                    "text" => check(p, b["msg"]["text"]["content"].is_string(), "text.content"),
                    "markdown" => check(p, b["msg"]["markdown"]["title"].is_string() && b["msg"]["markdown"]["text"].is_string(), "markdown"),
                    "action_card" => check(
                        p,
                        b["msg"]["action_card"]["title"].is_string()
                            && b["msg"]["action_card"]["markdown"].is_string()
                            && b["msg"]["action_card"]["single_url"].is_string(),
                        "action_card",
                    ),
                    other => p.push(format!("msgtype {other}")),
                }
                if users.contains(&"busy") {
                    return Reply::json(serde_json::json!({"errcode": 143103, "errmsg": "超过应用每分钟推送人次上限"}));
                }
                Reply::json(serde_json::json!({"errcode": 0, "task_id": 256271667526_i64 + users.len() as i64, "request_id": "r"}))
            }
            "/topapi/message/corpconversation/getsendresult" => {
                check_eq(p, req.method.as_str(), "POST", "method");
                if req.q("access_token").unwrap_or_default() != st.valid {
                    return Reply::json(serde_json::json!({"errcode": 40014, "errmsg": "不合法的access_token"}));
                }
                let b = req.json();
                check_eq(p, b["agent_id"].as_i64(), Some(123), "agent_id");
                check(p, b["task_id"].is_i64(), "task_id must be a number");
                Reply::json(serde_json::json!({"errcode": 0, "request_id": "r", "send_result": {
                    "invalid_user_id_list": ["ghost"], "forbidden_user_id_list": ["tired"],
                    "failed_user_id_list": [], "read_user_id_list": ["user1"], "unread_user_id_list": ["user2"],
                    "invalid_dept_id_list": [], "forbidden_list": []}}))
            }
            other => {
                p.push(format!("unexpected path {other}"));
                Reply::json(serde_json::json!({"errcode": 404}))
            }
        }
    })
    .await;
    (mock, state)
}

fn work(base: &str, secret: &str) -> DingtalkWorkChannel {
    DingtalkWorkChannel::new(DingtalkWorkConfig {
        app_key: APP_KEY.into(),
        app_secret: Secret::new(secret),
        agent_id: 123,
        base_url: base.into(),
        token_refresh_margin_secs: 300,
        http: Default::default(),
    })
    .expect("work channel")
}

#[tokio::test]
async fn work_notification_batches_and_refreshes_token() {
    let (mock, state) = work_mock().await;
    let ch = work(&mock.base, APP_SECRET);
    assert_eq!(
        ch.idempotency(),
        Idempotency::ContentWindow {
            window_secs: 86_400
        }
    );
    let batch: Vec<Delivery> = (0..30)
        .map(|i| delivery(&format!("d{i}"), &format!("user{i}"), "放假"))
        .collect();
    let out = ch.send(&batch).await;
    assert!(
        out.iter().all(|r| r.outcome
            == DeliveryOutcome::Sent {
                provider_message_id: Some("256271667556".into())
            }),
        "{out:?}"
    );
    assert_eq!(
        mock.count("/topapi/message/corpconversation/asyncsend_v2"),
        1
    );
    let users = mock.requests()[1].json()["userid_list"]
        .as_str()
        .map(|s| s.split(',').count());
    assert_eq!(users, Some(30));

    state.lock().expect("lock").revoke = true;
    let mut card = delivery("c", "user1", "详情见链接");
    card.message.url = Some("https://school.example/m/3".into());
    let out = ch.send(&[card, delivery("bad", "a,b", "x")]).await;
    assert!(out[0].outcome.is_sent(), "{out:?}");
    assert!(matches!(
        out[1].outcome,
        DeliveryOutcome::UnknownRecipient { .. }
    ));
    assert_eq!(mock.count("/gettoken"), 2);

    let result = ch.send_result("256271667556").await.expect("send result");
    assert_eq!(result.invalid, ["ghost"]);
    assert_eq!(result.forbidden, ["tired"]);
    assert_eq!(result.read, ["user1"]);
    assert_eq!(result.unread, ["user2"]);
    assert!(ch.send_result("not-a-number").await.is_err());

    let out = ch.send(&[delivery("b", "busy", "x")]).await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::RetryAfter { code, .. } if code == "143103")
    );
    mock.assert_clean();

    let out = work(&mock.base, "wrong")
        .send(&[delivery("w", "user1", "x")])
        .await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "40089")
    );
}
