use crate::common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xiaotong_channels::{
    Channel, Delivery, DeliveryOutcome, Idempotency, Secret, WecomAppChannel, WecomAppConfig,
    WecomMessageType, WecomRobotChannel, WecomRobotConfig,
};

const CORP: &str = "ww-corp-1";
const SECRET: &str = "wecom-app-secret";
const AGENT: i64 = 1000002;

#[derive(Default)]
struct Server {
    issued: u32,
    valid: String,
    expires_in: u64,
    revoke: bool,
}

async fn wecom_mock(expires_in: u64) -> (Mock, Arc<Mutex<Server>>) {
    let state = Arc::new(Mutex::new(Server {
        expires_in,
        ..Default::default()
    }));
    let s = state.clone();
    let mock = Mock::start(move |req, p| {
        let mut st = s.lock().expect("lock");
        match req.path.as_str() {
            "/cgi-bin/gettoken" => {
                check_eq(p, req.method.as_str(), "GET", "gettoken method");
                if req.q("corpid").as_deref() != Some(CORP) {
                    return Reply::json(serde_json::json!({"errcode": 40013, "errmsg": "invalid corpid"}));
                }
                if req.q("corpsecret").as_deref() != Some(SECRET) {
                    return Reply::json(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
                }
                st.issued += 1;
                st.valid = format!("TOKEN-{}", st.issued);
                Reply::json(serde_json::json!({"errcode": 0, "errmsg": "ok", "access_token": st.valid, "expires_in": st.expires_in}))
            }
            "/cgi-bin/message/send" => {
                check_eq(p, req.method.as_str(), "POST", "send method");
                let token = req.q("access_token").unwrap_or_default();
                if token.is_empty() || !token.starts_with("TOKEN-") {
                    return Reply::json(serde_json::json!({"errcode": 40014, "errmsg": "invalid access_token"}));
                }
                if token != st.valid {
                    return Reply::json(serde_json::json!({"errcode": 42001, "errmsg": "access_token expired"}));
                }
                if st.revoke {
                    // WeCom invalidated the token early.
                    st.revoke = false;
                    st.valid = String::new();
                    return Reply::json(serde_json::json!({"errcode": 42001, "errmsg": "access_token expired"}));
                }
                let b = req.json();
                check_eq(p, b["agentid"].as_i64(), Some(AGENT), "agentid must be an integer");
                let msgtype = b["msgtype"].as_str().unwrap_or_default().to_owned();
                check(p, b[&msgtype].is_object(), format!("{msgtype} body object"));
                match msgtype.as_str() {
                    "text" | "markdown" => check(
                        p,
                        b[&msgtype]["content"].as_str().is_some_and(|c| !c.is_empty() && c.len() <= 2048),
                        "content 1..=2048 bytes",
                    ),
                    "textcard" => check(
                        p,
                        b["textcard"]["title"].is_string() && b["textcard"]["description"].is_string() && b["textcard"]["url"].is_string(),
                        "textcard fields",
                    ),
                    other => p.push(format!("unexpected msgtype {other}")),
                }
                let touser = b["touser"].as_str().unwrap_or_default();
                let users: Vec<&str> = touser.split('|').collect();
                check(p, !touser.is_empty() && users.len() <= 1000, format!("touser has {} ids", users.len()));
                check(p, !users.contains(&"@all"), "@all must never be sent");
                if users.iter().any(|u| u.starts_with("throttled")) {
                    return Reply::json(serde_json::json!({"errcode": 45009, "errmsg": "api freq out of limit"}));
                }
                let lower = |pred: &dyn Fn(&str) -> bool| {
                    users.iter().filter(|u| pred(&u.to_lowercase())).map(|u| u.to_lowercase()).collect::<Vec<_>>()
                };
                let invalid = lower(&|u| u.starts_with("ghost"));
                let unlicensed = lower(&|u| u.starts_with("nolic"));
                if invalid.len() == users.len() {
                    return Reply::json(serde_json::json!({"errcode": 81013, "errmsg": "user & party & tag all invalid"}));
                }
                Reply::json(serde_json::json!({"errcode": 0, "errmsg": "ok",
                    "invaliduser": invalid.join("|"), "unlicenseduser": unlicensed.join("|"),
                    "msgid": format!("msg-{}", users.len())}))
            }
            other => {
                p.push(format!("unexpected path {other}"));
                Reply::json(serde_json::json!({"errcode": 404, "errmsg": "not found"}))
            }
        }
    })
    .await;
    (mock, state)
}

fn app(base: &str, secret: &str, margin: u64) -> WecomAppChannel {
    WecomAppChannel::new(WecomAppConfig {
        corp_id: CORP.into(),
        corp_secret: Secret::new(secret),
        agent_id: AGENT,
        base_url: base.into(),
        message_type: WecomMessageType::Auto,
        duplicate_check_interval_secs: Some(1800),
        token_refresh_margin_secs: margin,
        http: Default::default(),
    })
    .expect("channel")
}

#[tokio::test]
async fn batches_of_1000_with_partial_failures_per_recipient() {
    let (mock, _) = wecom_mock(7200).await;
    let ch = app(&mock.base, SECRET, 300);
    assert_eq!(ch.max_batch_size(), 1000);
    assert_eq!(
        ch.idempotency(),
        Idempotency::ContentWindow { window_secs: 1800 }
    );
    let mut batch: Vec<Delivery> = (0..1497)
        .map(|i| delivery(&format!("d{i}"), &format!("user{i}"), "放假通知"))
        .collect();
    batch.push(delivery("g1", "Ghost1", "放假通知"));
    batch.push(delivery("g2", "ghost2", "放假通知"));
    batch.push(delivery("n1", "NoLic1", "放假通知"));
    let out = ch.send(&batch).await;
    mock.assert_clean();
    assert_eq!(mock.count("/cgi-bin/gettoken"), 1, "token must be cached");
    assert_eq!(mock.count("/cgi-bin/message/send"), 2);
    let sends = mock.requests();
    let body = sends[1].json();
    assert_eq!(body["enable_duplicate_check"], 1);
    assert_eq!(body["duplicate_check_interval"], 1800);
    assert_eq!(body["text"]["content"], "通知\n\n放假通知");
    assert_eq!(out.len(), 1500);
    assert!(out[..1497].iter().all(|r| r.outcome.is_sent()));
    assert!(
        matches!(&out[1497].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "invaliduser")
    );
    assert!(matches!(
        &out[1498].outcome,
        DeliveryOutcome::UnknownRecipient { .. }
    ));
    assert!(
        matches!(&out[1499].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "unlicenseduser")
    );
}

#[tokio::test]
async fn token_invalidated_by_server_is_refreshed_once() {
    let (mock, state) = wecom_mock(7200).await;
    let ch = app(&mock.base, SECRET, 300);
    assert!(ch.send(&[delivery("1", "u1", "a")]).await[0]
        .outcome
        .is_sent());
    state.lock().expect("lock").revoke = true;
    let out = ch.send(&[delivery("2", "u2", "b")]).await;
    mock.assert_clean();
    assert!(out[0].outcome.is_sent(), "{out:?}");
    assert_eq!(mock.count("/cgi-bin/gettoken"), 2);
    assert_eq!(mock.count("/cgi-bin/message/send"), 3);
    let tokens: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|r| r.q("access_token"))
        .collect();
    assert_eq!(tokens, ["TOKEN-1", "TOKEN-1", "TOKEN-2"]);
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires() {
    // expires_in 301 s with a 300 s margin: the cached token is due after 1 s.
    let (mock, _) = wecom_mock(301).await;
    let ch = app(&mock.base, SECRET, 300);
    assert!(ch.send(&[delivery("1", "u1", "a")]).await[0]
        .outcome
        .is_sent());
    assert!(ch.send(&[delivery("2", "u1", "b")]).await[0]
        .outcome
        .is_sent());
    assert_eq!(mock.count("/cgi-bin/gettoken"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ch.send(&[delivery("3", "u1", "c")]).await[0]
        .outcome
        .is_sent());
    mock.assert_clean();
    assert_eq!(mock.count("/cgi-bin/gettoken"), 2);
    assert_eq!(
        mock.count("/cgi-bin/message/send"),
        3,
        "no 42001 round trip"
    );
}

#[tokio::test]
async fn rate_limit_all_invalid_and_bad_secret() {
    let (mock, _) = wecom_mock(7200).await;
    let ch = app(&mock.base, SECRET, 300);
    let out = ch.send(&[delivery("t", "throttled1", "x")]).await;
    assert!(matches!(&out[0].outcome, DeliveryOutcome::RetryAfter { code, .. } if code == "45009"));
    let out = ch
        .send(&[delivery("g1", "ghost1", "y"), delivery("g2", "ghost2", "y")])
        .await;
    assert!(out.iter().all(
        |r| matches!(&r.outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "81013")
    ));
    let out = ch
        .send(&[delivery("bad", "", "z"), delivery("all", "@all", "z")])
        .await;
    assert!(out
        .iter()
        .all(|r| matches!(r.outcome, DeliveryOutcome::UnknownRecipient { .. })));
    mock.assert_clean();

    let wrong = app(&mock.base, "wrong-secret", 300);
    let out = wrong.send(&[delivery("w", "u1", "x")]).await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "40001")
    );
}

#[tokio::test]
async fn textcard_and_markdown_bodies() {
    let (mock, _) = wecom_mock(7200).await;
    let ch = app(&mock.base, SECRET, 300);
    let mut card = delivery("c", "u1", "明天停课");
    card.message.url = Some("https://school.example/m/1".into());
    let mut md = delivery("m", "u1", "明天停课");
    md.message.markdown = Some("**明天停课**".into());
    let out = ch.send(&[card, md]).await;
    mock.assert_clean();
    assert!(out.iter().all(|r| r.outcome.is_sent()));
    let reqs: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/cgi-bin/message/send")
        .collect();
    assert_eq!(
        reqs[0].json()["textcard"]["url"],
        "https://school.example/m/1"
    );
    assert_eq!(reqs[1].json()["markdown"]["content"], "**明天停课**");
}

#[tokio::test]
async fn group_robot() {
    let mock = Mock::start(|req, p| {
        check_eq(p, req.method.as_str(), "POST", "method");
        check_eq(p, req.path.as_str(), "/cgi-bin/webhook/send", "path");
        if req.q("key").as_deref() != Some("robot-key") {
            return Reply::json(
                serde_json::json!({"errcode": 93000, "errmsg": "invalid webhook url"}),
            );
        }
        let b = req.json();
        let t = b["msgtype"].as_str().unwrap_or_default().to_owned();
        check(p, t == "text" || t == "markdown", format!("msgtype {t}"));
        let content = b[&t]["content"].as_str().unwrap_or_default();
        if content.contains("flood") {
            return Reply::json(
                serde_json::json!({"errcode": 45009, "errmsg": "api freq out of limit"}),
            );
        }
        Reply::json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
    })
    .await;
    let robot = |key: &str| {
        WecomRobotChannel::new(WecomRobotConfig {
            key: Secret::new(key),
            base_url: mock.base.clone(),
            http: Default::default(),
        })
        .expect("robot")
    };
    let ch = robot("robot-key");
    let mut md = delivery("m", "", "ignored");
    md.message.markdown = Some("# 通知".into());
    let out = ch
        .send(&[
            delivery("a", "group", "hello"),
            delivery("b", "group", "hello"),
            md,
            delivery("f", "", "flood"),
        ])
        .await;
    mock.assert_clean();
    assert_eq!(mock.requests().len(), 3, "identical content is posted once");
    assert!(out[0].outcome.is_sent() && out[1].outcome.is_sent() && out[2].outcome.is_sent());
    assert!(matches!(out[3].outcome, DeliveryOutcome::RetryAfter { .. }));
    let out = robot("wrong").send(&[delivery("a", "", "x")]).await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "93000")
    );
}
