//! Tencent Cloud SMS `SendSms` (API 2021-01-11) signed with TC3-HMAC-SHA256.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions};
use crate::model::{
    group_by_message, reports, Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport,
    Idempotency, RateLimit,
};
use crate::secret::Secret;
use crate::sign;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// `PhoneNumberSet` accepts at most 200 numbers per call.
pub const TENCENT_MAX_NUMBERS: usize = 200;
const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const SERVICE: &str = "sms";

/// Tencent Cloud SMS configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TencentSmsConfig {
    /// SecretId.
    pub secret_id: String,
    /// SecretKey.
    pub secret_key: Secret,
    /// `SmsSdkAppId`, e.g. `1400006666`.
    pub sms_sdk_app_id: String,
    /// Approved signature (签名).
    pub sign_name: String,
    /// `X-TC-Region`.
    #[serde(default = "default_region")]
    pub region: String,
    /// API endpoint; override for tests.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_region() -> String {
    "ap-guangzhou".to_owned()
}
fn default_endpoint() -> String {
    "https://sms.tencentcloudapi.com".to_owned()
}

/// Tencent Cloud SMS adapter.
#[derive(Debug)]
pub struct TencentSmsChannel {
    config: TencentSmsConfig,
    endpoint: String,
    host: String,
    client: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: ResponseBody,
}

#[derive(Debug, Deserialize)]
struct ResponseBody {
    #[serde(rename = "Error")]
    error: Option<ApiError>,
    #[serde(rename = "SendStatusSet", default)]
    send_status_set: Vec<SendStatus>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct SendStatus {
    #[serde(rename = "SerialNo", default)]
    serial_no: String,
    #[serde(rename = "PhoneNumber", default)]
    phone_number: String,
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

/// Mainland numbers without a country code get `+86`; `86…` becomes `+86…`.
pub(crate) fn normalize_phone(raw: &str) -> String {
    let p: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if p.starts_with('+') {
        p
    } else if p.len() == 13 && p.starts_with("86") {
        format!("+{p}")
    } else if p.len() == 11 && p.starts_with('1') {
        format!("+86{p}")
    } else {
        p
    }
}

impl TencentSmsChannel {
    /// Builds the adapter.
    pub fn new(config: TencentSmsConfig) -> Result<Self> {
        let endpoint = http::base_url(&config.endpoint, "tencent endpoint")?;
        let url = url::Url::parse(&endpoint).map_err(|e| ChannelError::Config(e.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(ChannelError::Config("tencent endpoint has no host".into())),
        };
        let client = http::client(&config.http)?;
        Ok(Self {
            config,
            endpoint,
            host,
            client,
        })
    }

    fn body(&self, group: &[&Delivery]) -> Result<Vec<u8>> {
        let first = group
            .first()
            .ok_or_else(|| ChannelError::InvalidMessage("empty group".into()))?;
        let tpl = first.message.sms.as_ref().ok_or_else(|| {
            ChannelError::InvalidMessage("SMS needs a template (message.sms)".into())
        })?;
        let mut body = serde_json::json!({
            "PhoneNumberSet": group.iter().map(|d| normalize_phone(&d.to)).collect::<Vec<_>>(),
            "SmsSdkAppId": self.config.sms_sdk_app_id,
            "SignName": self.config.sign_name,
            "TemplateId": tpl.template_id,
            "TemplateParamSet": tpl.params.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        });
        if let ([only], Some(obj)) = (group, body.as_object_mut()) {
            obj.insert(
                "SessionContext".into(),
                serde_json::Value::String(only.id.clone()),
            );
        }
        Ok(serde_json::to_vec(&body)?)
    }

    async fn call(&self, group: &[&Delivery]) -> Vec<DeliveryOutcome> {
        let body = match self.body(group) {
            Ok(b) => b,
            Err(e) => {
                return vec![
                    DeliveryOutcome::failed(false, "invalid_message", e.to_string());
                    group.len()
                ]
            }
        };
        let ts = http::now_secs();
        let signed_headers = [
            ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
            ("host".to_owned(), self.host.clone()),
            ("x-tc-action".to_owned(), ACTION.to_owned()),
        ];
        let auth = sign::tc3_authorization(
            &self.config.secret_id,
            self.config.secret_key.expose(),
            SERVICE,
            ts,
            &signed_headers,
            &body,
        );
        let req = self
            .client
            .post(format!("{}/", self.endpoint))
            .header("content-type", CONTENT_TYPE)
            .header("x-tc-action", ACTION)
            .header("x-tc-version", VERSION)
            .header("x-tc-timestamp", ts.to_string())
            .header("x-tc-region", self.config.region.as_str())
            .header("authorization", auth)
            .body(body);
        let (status, headers, text) = match http::execute(req).await {
            Ok(r) => r,
            Err(o) => return vec![o; group.len()],
        };
        let env = match serde_json::from_str::<Envelope>(&text) {
            Ok(e) => e,
            Err(_) if !status.is_success() => {
                return vec![http::status_outcome(status, &headers, &text); group.len()]
            }
            Err(_) => {
                return vec![
                    DeliveryOutcome::failed(
                        true,
                        "protocol",
                        format!("unexpected answer: {text:.200}")
                    );
                    group.len()
                ]
            }
        };
        if let Some(err) = env.response.error {
            return vec![map_error(&err.code, err.message); group.len()];
        }
        // Match statuses back to deliveries by phone number (in order, so a
        // number listed twice gets both statuses).
        let mut by_phone: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (i, d) in group.iter().enumerate() {
            by_phone
                .entry(normalize_phone(&d.to))
                .or_default()
                .push_back(i);
        }
        let mut out: Vec<Option<DeliveryOutcome>> = vec![None; group.len()];
        for st in env.response.send_status_set {
            let idx = by_phone
                .get_mut(&normalize_phone(&st.phone_number))
                .and_then(|q| q.pop_front());
            if let Some(slot) = idx.and_then(|i| out.get_mut(i)) {
                *slot = Some(map_status(&st.code, st.message, st.serial_no));
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    DeliveryOutcome::failed(true, "protocol", "number missing from SendStatusSet")
                })
            })
            .collect()
    }

    async fn send_group(&self, group: &[&Delivery]) -> Vec<DeliveryOutcome> {
        let outcomes = self.call(group).await;
        let whole_rejected = group.len() > 1
            && outcomes
                .iter()
                .all(|o| matches!(o, DeliveryOutcome::UnknownRecipient { code, .. } if code.starts_with("InvalidParameterValue")))
            && outcomes.windows(2).all(|w| w.first() == w.get(1));
        if whole_rejected {
            // A request-level phone number error: nothing was sent, find the bad ones.
            let mut out = Vec::with_capacity(group.len());
            for d in group {
                out.extend(self.call(std::slice::from_ref(d)).await);
            }
            return out;
        }
        outcomes
    }
}

fn map_status(code: &str, message: String, serial_no: String) -> DeliveryOutcome {
    match code {
        "Ok" => DeliveryOutcome::Sent {
            provider_message_id: Some(serial_no).filter(|s| !s.is_empty()),
        },
        _ => map_error(code, message),
    }
}

fn map_error(code: &str, message: String) -> DeliveryOutcome {
    let secs = |s| Duration::from_secs(s);
    match code {
        "LimitExceeded.PhoneNumberThirtySecondLimit" => {
            DeliveryOutcome::retry_after(secs(30), code, message)
        }
        "LimitExceeded.PhoneNumberOneHourLimit" => {
            DeliveryOutcome::retry_after(secs(3600), code, message)
        }
        "LimitExceeded.DeliveryFrequencyLimit" => {
            DeliveryOutcome::retry_after(secs(60), code, message)
        }
        "RequestLimitExceeded" | "RequestLimitExceeded.UinLimitExceeded" => {
            DeliveryOutcome::retry_after(secs(1), code, message)
        }
        "InvalidParameterValue.IncorrectPhoneNumber"
        | "FailedOperation.ContainSensitiveWord_PhoneNumber" => {
            DeliveryOutcome::unknown_recipient(code, message)
        }
        c if c.starts_with("InternalError")
            || c == "AuthFailure.SignatureExpire"
            || c == "ResourceUnavailable" =>
        {
            DeliveryOutcome::failed(true, code, message)
        }
        _ => DeliveryOutcome::failed(false, code, message),
    }
}

#[async_trait::async_trait]
impl Channel for TencentSmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::TencentSms
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            calls: 3000,
            per_secs: 1,
        })
    }

    fn max_batch_size(&self) -> usize {
        TENCENT_MAX_NUMBERS
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
        // One call takes only mainland numbers or only international ones.
        let is_mainland = |i: &usize| {
            batch
                .get(*i)
                .is_some_and(|d| normalize_phone(&d.to).starts_with("+86"))
        };
        let groups = group_by_message(batch).into_iter().flat_map(|g| {
            let (mainland, international): (Vec<usize>, Vec<usize>) =
                g.into_iter().partition(is_mainland);
            [mainland, international]
                .into_iter()
                .filter(|g| !g.is_empty())
        });
        for group in groups {
            for chunk in group.chunks(TENCENT_MAX_NUMBERS) {
                let ds: Vec<&Delivery> = chunk.iter().filter_map(|&i| batch.get(i)).collect();
                for (&i, o) in chunk.iter().zip(self.send_group(&ds).await) {
                    if let Some(slot) = outcomes.get_mut(i) {
                        *slot = Some(o);
                    }
                }
            }
        }
        reports(batch, outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_normalisation() {
        assert_eq!(normalize_phone("13800000000"), "+8613800000000");
        assert_eq!(normalize_phone("8613800000000"), "+8613800000000");
        assert_eq!(normalize_phone("+852 6123-4567"), "+85261234567");
    }

    #[test]
    fn code_mapping() {
        assert!(map_status("Ok", String::new(), "s".into()).is_sent());
        assert!(matches!(
            map_status("LimitExceeded.PhoneNumberThirtySecondLimit", String::new(), String::new()),
            DeliveryOutcome::RetryAfter { after, .. } if after == Duration::from_secs(30)
        ));
        assert!(matches!(
            map_status(
                "InvalidParameterValue.IncorrectPhoneNumber",
                String::new(),
                String::new()
            ),
            DeliveryOutcome::UnknownRecipient { .. }
        ));
        assert!(!map_error("AuthFailure.SignatureFailure", String::new()).is_retryable());
        assert!(map_error("InternalError.Timeout", String::new()).is_retryable());
    }
}
