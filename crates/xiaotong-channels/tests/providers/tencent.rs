use crate::common::*;
use std::time::Duration;
use xiaotong_channels::{
    Channel, Delivery, DeliveryOutcome, Secret, SmsTemplate, TencentSmsChannel, TencentSmsConfig,
};

const SECRET_ID: &str = "AKIDtest";
const SECRET_KEY: &str = "tencent-test-key";

fn sms(id: &str, phone: &str, template: &str) -> Delivery {
    let mut d = delivery(id, phone, "unused");
    d.message.sms = Some(SmsTemplate {
        template_id: template.into(),
        params: vec![
            ("code".into(), "4370".into()),
            ("minutes".into(), "5".into()),
        ],
    });
    d
}

/// Verifies TC3-HMAC-SHA256 independently; `true` when the signature matches.
fn verify_tc3(req: &Req, p: &mut Problems) -> bool {
    check_eq(p, req.method.as_str(), "POST", "method");
    check_eq(p, req.path.as_str(), "/", "path");
    check_eq(p, req.raw_query.as_str(), "", "query");
    check_eq(
        p,
        req.header("content-type").as_deref(),
        Some("application/json; charset=utf-8"),
        "content-type",
    );
    check_eq(
        p,
        req.header("x-tc-action").as_deref(),
        Some("SendSms"),
        "X-TC-Action",
    );
    check_eq(
        p,
        req.header("x-tc-version").as_deref(),
        Some("2021-01-11"),
        "X-TC-Version",
    );
    check_eq(
        p,
        req.header("x-tc-region").as_deref(),
        Some("ap-guangzhou"),
        "X-TC-Region",
    );
    let ts: i64 = req
        .header("x-tc-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    check(p, (ts - now()).abs() <= 300, "X-TC-Timestamp skew > 5 min");
    let auth = req.header("authorization").unwrap_or_default();
    check(
        p,
        auth.starts_with("TC3-HMAC-SHA256 Credential="),
        "authorization scheme",
    );
    let f = auth_fields(&auth, "TC3-HMAC-SHA256", ", ");
    let date = chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    check_eq(
        p,
        f.get("Credential").cloned(),
        Some(format!("{SECRET_ID}/{date}/sms/tc3_request")),
        "Credential",
    );
    let signed = f.get("SignedHeaders").cloned().unwrap_or_default();
    check(
        p,
        signed.split(';').any(|h| h == "content-type") && signed.split(';').any(|h| h == "host"),
        "content-type and host must be signed",
    );
    let mut ch = String::new();
    for name in signed.split(';') {
        ch.push_str(&format!(
            "{name}:{}\n",
            req.header(name).unwrap_or_default().trim().to_lowercase()
        ));
    }
    let cr = format!("POST\n/\n\n{ch}\n{signed}\n{}", sha256_hex(&req.body));
    let sts = format!(
        "TC3-HMAC-SHA256\n{ts}\n{date}/sms/tc3_request\n{}",
        sha256_hex(cr.as_bytes())
    );
    let k_date = hmac256(format!("TC3{SECRET_KEY}").as_bytes(), date.as_bytes());
    let k_svc = hmac256(&k_date, b"sms");
    let k_sign = hmac256(&k_svc, b"tc3_request");
    f.get("Signature") == Some(&hex::encode(hmac256(&k_sign, sts.as_bytes())))
}

async fn tencent_mock() -> Mock {
    Mock::start(|req, p| {
        if !verify_tc3(req, p) {
            return Reply::json(serde_json::json!({"Response": {"Error": {
                "Code": "AuthFailure.SignatureFailure",
                "Message": "The provided credentials could not be validated."}, "RequestId": "r"}}));
        }
        let b = req.json();
        check_eq(p, b["SmsSdkAppId"].as_str(), Some("1400006666"), "SmsSdkAppId");
        check_eq(p, b["SignName"].as_str(), Some("校通"), "SignName");
        check_eq(p, b["TemplateParamSet"].clone(), serde_json::json!(["4370", "5"]), "TemplateParamSet");
        let phones: Vec<String> = b["PhoneNumberSet"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        check(p, !phones.is_empty() && phones.len() <= 200, format!("PhoneNumberSet size {}", phones.len()));
        check(p, phones.iter().all(|n| n.starts_with('+')), "numbers must be E.164");
        let mainland = phones.iter().filter(|n| n.starts_with("+86")).count();
        check(p, mainland == 0 || mainland == phones.len(), "mainland and international numbers mixed in one call");
        if b["TemplateId"] == "LIMIT" {
            return Reply::json(serde_json::json!({"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "too many"}, "RequestId": "r"}}));
        }
        check_eq(p, b["TemplateId"].as_str(), Some("1110"), "TemplateId");
        // Answer in reverse order: the adapter must match by number.
        let set: Vec<serde_json::Value> = phones
            .iter()
            .rev()
            .enumerate()
            .map(|(i, n)| {
                let (code, msg) = match n.as_str() {
                    "+8613800000002" => ("LimitExceeded.PhoneNumberThirtySecondLimit", "30 s limit"),
                    "+8613800000003" => ("InvalidParameterValue.IncorrectPhoneNumber", "bad number"),
                    "+8613800000004" => ("FailedOperation.InsufficientBalanceInSmsPackage", "no balance"),
                    _ => ("Ok", "send success"),
                };
                serde_json::json!({"SerialNo": format!("sn-{i}"), "PhoneNumber": n, "Fee": 1,
                    "SessionContext": b["SessionContext"], "Code": code, "Message": msg, "IsoCode": "CN"})
            })
            .collect();
        Reply::json(serde_json::json!({"Response": {"SendStatusSet": set, "RequestId": "r"}}))
    })
    .await
}

fn channel(base: &str, key: &str) -> TencentSmsChannel {
    TencentSmsChannel::new(TencentSmsConfig {
        secret_id: SECRET_ID.into(),
        secret_key: Secret::new(key),
        sms_sdk_app_id: "1400006666".into(),
        sign_name: "校通".into(),
        region: "ap-guangzhou".into(),
        endpoint: base.into(),
        http: Default::default(),
    })
    .expect("channel")
}

#[tokio::test]
async fn per_number_statuses_are_mapped() {
    let mock = tencent_mock().await;
    let ch = channel(&mock.base, SECRET_KEY);
    let batch = vec![
        sms("hk", "+85261234567", "1110"),
        sms("ok", "13800000001", "1110"),
        sms("limited", "13800000002", "1110"),
        sms("bad", "+8613800000003", "1110"),
        sms("broke", "8613800000004", "1110"),
    ];
    let out = ch.send(&batch).await;
    mock.assert_clean();
    // mainland numbers in one call, the Hong Kong number in another
    assert_eq!(mock.requests().len(), 2);
    assert!(out[0].outcome.is_sent());
    assert!(
        matches!(&out[1].outcome, DeliveryOutcome::Sent { provider_message_id: Some(s) } if s.starts_with("sn-"))
    );
    assert!(
        matches!(&out[2].outcome, DeliveryOutcome::RetryAfter { after, .. } if *after == Duration::from_secs(30))
    );
    assert!(
        matches!(&out[3].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "InvalidParameterValue.IncorrectPhoneNumber")
    );
    assert!(matches!(
        &out[4].outcome,
        DeliveryOutcome::Failed {
            retryable: false,
            ..
        }
    ));
}

#[tokio::test]
async fn large_batches_are_split_at_200() {
    let mock = tencent_mock().await;
    let ch = channel(&mock.base, SECRET_KEY);
    let batch: Vec<Delivery> = (0..250)
        .map(|i| sms(&format!("d{i}"), &format!("1370000{i:04}"), "1110"))
        .collect();
    let out = ch.send(&batch).await;
    mock.assert_clean();
    let sizes: Vec<usize> = mock
        .requests()
        .iter()
        .map(|r| r.json()["PhoneNumberSet"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [200, 50]);
    assert!(out.iter().all(|r| r.outcome.is_sent()));
    // single sends carry the delivery id as SessionContext
    let _ = ch.send(&[sms("single", "13700000001", "1110")]).await;
    assert_eq!(mock.requests()[2].json()["SessionContext"], "single");
}

#[tokio::test]
async fn request_errors_apply_to_every_number() {
    let mock = tencent_mock().await;
    let ch = channel(&mock.base, SECRET_KEY);
    let out = ch
        .send(&[
            sms("a", "13800000001", "LIMIT"),
            sms("b", "13800000005", "LIMIT"),
        ])
        .await;
    mock.assert_clean();
    assert!(out
        .iter()
        .all(|r| matches!(r.outcome, DeliveryOutcome::RetryAfter { .. })));

    let wrong = channel(&mock.base, "wrong-key");
    let out = wrong.send(&[sms("a", "13800000001", "1110")]).await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "AuthFailure.SignatureFailure")
    );
}
