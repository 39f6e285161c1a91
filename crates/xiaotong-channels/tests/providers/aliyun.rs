use crate::common::*;
use axum::http::StatusCode;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xiaotong_channels::{
    AliyunSignatureVersion, AliyunSmsChannel, AliyunSmsConfig, Channel, Delivery, DeliveryOutcome,
    Secret, SmsTemplate,
};

const KEY_ID: &str = "LTAI-test-id";
const SECRET: &str = "aliyun-test-secret";
const BAD_NUMBER: &str = "10000000000";
const LIMITED_NUMBER: &str = "13900000429";

fn sms(id: &str, phone: &str, code: &str) -> Delivery {
    let mut d = delivery(id, phone, "unused by SMS");
    d.message.sms = Some(SmsTemplate {
        template_id: "SMS_71390007".into(),
        params: vec![("code".into(), code.into()), ("name".into(), "张三".into())],
    });
    d
}

/// Checks an ACS3-HMAC-SHA256 request independently; returns the decoded
/// business parameters or `None` when the signature does not match.
fn verify_v3(req: &Req, p: &mut Problems) -> Option<Vec<(String, String)>> {
    check_eq(p, req.method.as_str(), "POST", "method");
    check_eq(p, req.path.as_str(), "/", "path");
    check_eq(p, req.body.len(), 0, "RPC body must be empty");
    check_eq(
        p,
        req.header("x-acs-action").as_deref(),
        Some("SendSms"),
        "x-acs-action",
    );
    check_eq(
        p,
        req.header("x-acs-version").as_deref(),
        Some("2017-05-25"),
        "x-acs-version",
    );
    let empty_hash = sha256_hex(b"");
    check_eq(
        p,
        req.header("x-acs-content-sha256"),
        Some(empty_hash.clone()),
        "x-acs-content-sha256",
    );
    let date = req.header("x-acs-date").unwrap_or_default();
    match chrono::NaiveDateTime::parse_from_str(&date, "%Y-%m-%dT%H:%M:%SZ") {
        Ok(t) => check(
            p,
            (t.and_utc().timestamp() - now()).abs() < 900,
            "x-acs-date skew > 15 min",
        ),
        Err(_) => p.push(format!("x-acs-date not ISO-8601 UTC: {date:?}")),
    }
    check(
        p,
        req.header("x-acs-signature-nonce")
            .is_some_and(|n| !n.is_empty()),
        "missing x-acs-signature-nonce",
    );
    let auth = req.header("authorization").unwrap_or_default();
    check(
        p,
        auth.starts_with("ACS3-HMAC-SHA256 "),
        "authorization scheme",
    );
    check(
        p,
        !auth.contains(", "),
        "V3 authorization uses commas without spaces",
    );
    let f = auth_fields(&auth, "ACS3-HMAC-SHA256", ",");
    check_eq(
        p,
        f.get("Credential").map(String::as_str),
        Some(KEY_ID),
        "Credential",
    );
    let signed = f.get("SignedHeaders").cloned().unwrap_or_default();
    check_eq(
        p,
        signed.as_str(),
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version",
        "SignedHeaders",
    );
    // Canonical request, rebuilt from what arrived.
    let mut q: Vec<(String, String)> = req
        .query()
        .into_iter()
        .map(|(k, v)| (pct(&k), pct(&v)))
        .collect();
    q.sort();
    let cqs = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canon_headers = String::new();
    for name in signed.split(';') {
        let v = req.header(name).unwrap_or_default();
        canon_headers.push_str(&format!("{name}:{}\n", v.trim()));
    }
    let cr = format!("POST\n/\n{cqs}\n{canon_headers}\n{signed}\n{empty_hash}");
    let sts = format!("ACS3-HMAC-SHA256\n{}", sha256_hex(cr.as_bytes()));
    let want = hex::encode(hmac256(SECRET.as_bytes(), sts.as_bytes()));
    if f.get("Signature") != Some(&want) {
        return None;
    }
    Some(req.query())
}

/// Checks an RPC V1 (HMAC-SHA1) request independently.
fn verify_v1(req: &Req, p: &mut Problems) -> Option<Vec<(String, String)>> {
    check_eq(p, req.method.as_str(), "GET", "method");
    let all = req.query();
    let get = |k: &str| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    check_eq(p, get("Action").as_deref(), Some("SendSms"), "Action");
    check_eq(p, get("Version").as_deref(), Some("2017-05-25"), "Version");
    check_eq(
        p,
        get("SignatureMethod").as_deref(),
        Some("HMAC-SHA1"),
        "SignatureMethod",
    );
    check_eq(
        p,
        get("SignatureVersion").as_deref(),
        Some("1.0"),
        "SignatureVersion",
    );
    check_eq(
        p,
        get("AccessKeyId").as_deref(),
        Some(KEY_ID),
        "AccessKeyId",
    );
    check_eq(
        p,
        get("RegionId").as_deref(),
        Some("cn-hangzhou"),
        "RegionId",
    );
    check_eq(p, get("Format").as_deref(), Some("JSON"), "Format");
    let ts = get("Timestamp").unwrap_or_default();
    match chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%dT%H:%M:%SZ") {
        Ok(t) => check(
            p,
            (t.and_utc().timestamp() - now()).abs() < 900,
            "Timestamp skew",
        ),
        Err(_) => p.push(format!("Timestamp format {ts:?}")),
    }
    check(p, get("SignatureNonce").is_some(), "SignatureNonce");
    let mut q: Vec<(String, String)> = all
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (pct(k), pct(v)))
        .collect();
    q.sort();
    let cqs = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let sts = format!("GET&{}&{}", pct("/"), pct(&cqs));
    let want = b64(&hmac1(format!("{SECRET}&").as_bytes(), sts.as_bytes()));
    if get("Signature") != Some(want) {
        return None;
    }
    Some(all)
}

struct Aliyun {
    mock: Mock,
    nonces: Arc<Mutex<HashSet<String>>>,
}

async fn aliyun_mock(v1: bool) -> Aliyun {
    let nonces: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seen = nonces.clone();
    let mock = Mock::start(move |req, p| {
        let params = if v1 { verify_v1(req, p) } else { verify_v3(req, p) };
        let Some(params) = params else {
            return Reply::status_json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched with our calculation.", "RequestId": "r"}),
            );
        };
        let nonce = req.header("x-acs-signature-nonce").or(req.q("SignatureNonce")).unwrap_or_default();
        check(p, seen.lock().expect("lock").insert(nonce), "signature nonce reused");
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        check_eq(p, get("SignName").as_deref(), Some("校通"), "SignName");
        check_eq(p, get("TemplateCode").as_deref(), Some("SMS_71390007"), "TemplateCode");
        // TemplateParam is a JSON *string* whose values are strings.
        let tp: serde_json::Value = serde_json::from_str(&get("TemplateParam").unwrap_or_default()).unwrap_or_default();
        check(p, tp["code"].is_string() && tp["name"] == "张三", format!("TemplateParam {tp}"));
        let phones = get("PhoneNumbers").unwrap_or_default();
        let list: Vec<&str> = phones.split(',').collect();
        check(p, !list.is_empty() && list.len() <= 1000, "PhoneNumbers 1..=1000");
        if list.len() == 1 {
            check(p, get("OutId").is_some(), "OutId carries the delivery id for single sends");
        }
        if list.contains(&BAD_NUMBER) {
            return Reply::json(serde_json::json!({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r"}));
        }
        if list.contains(&LIMITED_NUMBER) {
            return Reply::json(serde_json::json!({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1", "RequestId": "r"}));
        }
        Reply::json(serde_json::json!({"Code": "OK", "Message": "OK", "BizId": format!("biz-{}^0", list.len()), "RequestId": "r"}))
    })
    .await;
    Aliyun { mock, nonces }
}

fn channel(base: &str, secret: &str, version: AliyunSignatureVersion) -> AliyunSmsChannel {
    AliyunSmsChannel::new(AliyunSmsConfig {
        access_key_id: KEY_ID.into(),
        access_key_secret: Secret::new(secret),
        sign_name: "校通".into(),
        security_token: None,
        endpoint: base.into(),
        region_id: "cn-hangzhou".into(),
        signature_version: version,
        http: Default::default(),
    })
    .expect("channel")
}

#[tokio::test]
async fn v3_batches_identical_content_and_maps_outcomes() {
    let m = aliyun_mock(false).await;
    let ch = channel(&m.mock.base, SECRET, AliyunSignatureVersion::V3);
    assert_eq!(ch.max_batch_size(), 1000);
    let batch = vec![
        sms("d1", "13800000001", "1234"),
        sms("d2", "+8613800000002", "1234"),
        sms("d3", "13800000003", "9999"),
        sms("d4", "8613800000004", "1234"),
    ];
    let out = ch.send(&batch).await;
    m.mock.assert_clean();
    // One call for the three identical messages, one for the other.
    assert_eq!(m.mock.requests().len(), 2);
    assert_eq!(
        m.mock.requests()[0].q("PhoneNumbers").as_deref(),
        Some("13800000001,+8613800000002,8613800000004")
    );
    let ids: Vec<&str> = out.iter().map(|r| r.delivery_id.as_str()).collect();
    assert_eq!(ids, ["d1", "d2", "d3", "d4"]);
    assert_eq!(
        out[0].outcome,
        DeliveryOutcome::Sent {
            provider_message_id: Some("biz-3^0".into())
        }
    );
    assert_eq!(
        out[2].outcome,
        DeliveryOutcome::Sent {
            provider_message_id: Some("biz-1^0".into())
        }
    );
    assert_eq!(m.nonces.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn v3_bad_number_is_isolated_and_flow_control_is_retry_after() {
    let m = aliyun_mock(false).await;
    let ch = channel(&m.mock.base, SECRET, AliyunSignatureVersion::V3);
    let batch = vec![
        sms("a", "13800000001", "1"),
        sms("b", BAD_NUMBER, "1"),
        sms("c", "13800000003", "1"),
        sms("limited", LIMITED_NUMBER, "2"),
    ];
    let out = ch.send(&batch).await;
    m.mock.assert_clean();
    // 1 refused group call + 3 single retries + 1 call for the other content
    assert_eq!(m.mock.requests().len(), 5);
    assert!(out[0].outcome.is_sent());
    assert!(
        matches!(&out[1].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "isv.MOBILE_NUMBER_ILLEGAL")
    );
    assert!(out[2].outcome.is_sent());
    assert!(matches!(
        &out[3].outcome,
        DeliveryOutcome::RetryAfter { after, code, .. } if *after == Duration::from_secs(60) && code == "isv.BUSINESS_LIMIT_CONTROL"
    ));
}

#[tokio::test]
async fn v3_wrong_secret_is_rejected_by_the_server() {
    let m = aliyun_mock(false).await;
    let ch = channel(&m.mock.base, "not-the-secret", AliyunSignatureVersion::V3);
    let out = ch.send(&[sms("x", "13800000001", "1")]).await;
    m.mock.assert_clean();
    assert!(matches!(
        &out[0].outcome,
        DeliveryOutcome::Failed { retryable: false, code, .. } if code == "SignatureDoesNotMatch"
    ));
}

#[tokio::test]
async fn v1_signature_is_accepted() {
    let m = aliyun_mock(true).await;
    let ch = channel(&m.mock.base, SECRET, AliyunSignatureVersion::V1);
    let out = ch.send(&[sms("v1", "13800000001", "1")]).await;
    m.mock.assert_clean();
    assert!(out[0].outcome.is_sent(), "{out:?}");
    assert_eq!(m.mock.requests()[0].q("OutId").as_deref(), Some("v1"));
    let bad = channel(&m.mock.base, "wrong", AliyunSignatureVersion::V1);
    let out = bad.send(&[sms("v1", "13800000001", "1")]).await;
    assert!(!out[0].outcome.is_retryable());
}

#[tokio::test]
async fn missing_template_is_a_permanent_failure() {
    let m = aliyun_mock(false).await;
    let ch = channel(&m.mock.base, SECRET, AliyunSignatureVersion::V3);
    let out = ch
        .send(&[delivery("n", "13800000001", "no template")])
        .await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "invalid_message")
    );
    assert_eq!(m.mock.requests().len(), 0);
}
