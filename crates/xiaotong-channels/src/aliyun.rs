//! Aliyun (Alibaba Cloud) SMS `SendSms`, RPC style, version 2017-05-25.
//!
//! Signed with ACS3-HMAC-SHA256 (the current V3 scheme, the default) or the
//! legacy RPC V1 HMAC-SHA1 scheme; both signers are checked against the
//! documented vectors in [`crate::sign`].

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions};
use crate::model::{
    group_by_message, reports, Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport,
    Idempotency, RateLimit,
};
use crate::secret::Secret;
use crate::sign;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
/// `PhoneNumbers` accepts at most 1000 numbers per call.
pub const ALIYUN_MAX_NUMBERS: usize = 1000;

/// Which Aliyun signature scheme to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AliyunSignatureVersion {
    /// ACS3-HMAC-SHA256 (headers + `Authorization`), recommended.
    #[default]
    V3,
    /// RPC signature V1 (HMAC-SHA1 in the `Signature` query parameter).
    V1,
}

/// Aliyun SMS configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliyunSmsConfig {
    /// AccessKey id.
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: Secret,
    /// Approved signature (签名), e.g. `校通`.
    pub sign_name: String,
    /// STS security token, when using temporary credentials.
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// API endpoint; override for tests.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// `RegionId` (V1 only).
    #[serde(default = "default_region")]
    pub region_id: String,
    /// Signature scheme.
    #[serde(default)]
    pub signature_version: AliyunSignatureVersion,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_endpoint() -> String {
    "https://dysmsapi.aliyuncs.com".to_owned()
}
fn default_region() -> String {
    "cn-hangzhou".to_owned()
}

/// Aliyun SMS adapter.
#[derive(Debug)]
pub struct AliyunSmsChannel {
    config: AliyunSmsConfig,
    endpoint: String,
    host: String,
    client: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct SendSmsResponse {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "BizId")]
    biz_id: Option<String>,
}

impl AliyunSmsChannel {
    /// Builds the adapter.
    pub fn new(config: AliyunSmsConfig) -> Result<Self> {
        let endpoint = http::base_url(&config.endpoint, "aliyun endpoint")?;
        let url = url::Url::parse(&endpoint).map_err(|e| ChannelError::Config(e.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(ChannelError::Config("aliyun endpoint has no host".into())),
        };
        let client = http::client(&config.http)?;
        Ok(Self {
            config,
            endpoint,
            host,
            client,
        })
    }

    /// Business parameters of one SendSms call.
    fn business_params(&self, group: &[&Delivery]) -> Result<Vec<(String, String)>> {
        let first = group
            .first()
            .ok_or_else(|| ChannelError::InvalidMessage("empty group".into()))?;
        let tpl = first.message.sms.as_ref().ok_or_else(|| {
            ChannelError::InvalidMessage("SMS needs a template (message.sms)".into())
        })?;
        let params: serde_json::Map<String, serde_json::Value> = tpl
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let phones: Vec<&str> = group.iter().map(|d| d.to.trim()).collect();
        let mut out = vec![
            ("PhoneNumbers".to_owned(), phones.join(",")),
            ("SignName".to_owned(), self.config.sign_name.clone()),
            ("TemplateCode".to_owned(), tpl.template_id.clone()),
        ];
        if !params.is_empty() {
            out.push((
                "TemplateParam".to_owned(),
                serde_json::Value::Object(params).to_string(),
            ));
        }
        if let [only] = group {
            out.push(("OutId".to_owned(), only.id.clone()));
        }
        Ok(out)
    }

    fn request(&self, business: Vec<(String, String)>) -> reqwest::RequestBuilder {
        let secret = self.config.access_key_secret.expose();
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        match self.config.signature_version {
            AliyunSignatureVersion::V3 => {
                let query = business;
                let hashed_payload = sign::sha256_hex(b"");
                let mut headers = vec![
                    ("host".to_owned(), self.host.clone()),
                    ("x-acs-action".to_owned(), ACTION.to_owned()),
                    ("x-acs-version".to_owned(), VERSION.to_owned()),
                    ("x-acs-date".to_owned(), date),
                    ("x-acs-signature-nonce".to_owned(), http::nonce_hex(16)),
                    ("x-acs-content-sha256".to_owned(), hashed_payload.clone()),
                ];
                if let Some(t) = &self.config.security_token {
                    headers.push(("x-acs-security-token".to_owned(), t.expose().to_owned()));
                }
                let req = sign::AcsRequest {
                    method: "POST",
                    path: "/",
                    query: &query,
                    headers: &headers,
                    hashed_payload: &hashed_payload,
                };
                let auth = sign::aliyun_v3_authorization(&self.config.access_key_id, secret, &req);
                let url = format!("{}/?{}", self.endpoint, sign::canonical_query(&query));
                let mut rb = self.client.post(url).header("authorization", auth);
                for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
                    rb = rb.header(k.as_str(), v.as_str());
                }
                rb
            }
            AliyunSignatureVersion::V1 => {
                let mut params = business;
                let common = [
                    ("AccessKeyId", self.config.access_key_id.clone()),
                    ("Action", ACTION.to_owned()),
                    ("Format", "JSON".to_owned()),
                    ("RegionId", self.config.region_id.clone()),
                    ("SignatureMethod", "HMAC-SHA1".to_owned()),
                    ("SignatureNonce", http::nonce_hex(16)),
                    ("SignatureVersion", "1.0".to_owned()),
                    ("Timestamp", date),
                    ("Version", VERSION.to_owned()),
                ];
                params.extend(common.into_iter().map(|(k, v)| (k.to_owned(), v)));
                if let Some(t) = &self.config.security_token {
                    params.push(("SecurityToken".to_owned(), t.expose().to_owned()));
                }
                let sig = sign::aliyun_v1_signature(secret, "GET", &params);
                let url = format!(
                    "{}/?Signature={}&{}",
                    self.endpoint,
                    sign::percent_encode(&sig),
                    sign::canonical_query(&params)
                );
                self.client.get(url)
            }
        }
    }

    /// One SendSms call; the same outcome for every number in the call.
    async fn call(&self, group: &[&Delivery]) -> DeliveryOutcome {
        let business = match self.business_params(group) {
            Ok(b) => b,
            Err(e) => return DeliveryOutcome::failed(false, "invalid_message", e.to_string()),
        };
        let (status, headers, body) = match http::execute(self.request(business)).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        match serde_json::from_str::<SendSmsResponse>(&body) {
            Ok(SendSmsResponse {
                code: Some(code),
                message,
                biz_id,
            }) => map_code(
                &code,
                message.unwrap_or_default(),
                biz_id,
                status.is_server_error(),
            ),
            _ if !status.is_success() => http::status_outcome(status, &headers, &body),
            _ => {
                DeliveryOutcome::failed(true, "protocol", format!("unexpected answer: {body:.200}"))
            }
        }
    }

    async fn send_group(&self, group: &[&Delivery]) -> Vec<DeliveryOutcome> {
        let outcome = self.call(group).await;
        let is_bad_number = matches!(&outcome, DeliveryOutcome::UnknownRecipient { .. });
        if is_bad_number && group.len() > 1 {
            // The whole call was refused for one bad number and nothing was
            // sent: retry one by one to find which.
            let mut out = Vec::with_capacity(group.len());
            for d in group {
                out.push(self.call(std::slice::from_ref(d)).await);
            }
            return out;
        }
        vec![outcome; group.len()]
    }
}

fn map_code(
    code: &str,
    message: String,
    biz_id: Option<String>,
    server_error: bool,
) -> DeliveryOutcome {
    match code {
        "OK" => DeliveryOutcome::Sent {
            provider_message_id: biz_id,
        },
        "isv.BUSINESS_LIMIT_CONTROL" => {
            DeliveryOutcome::retry_after(Duration::from_secs(60), code, message)
        }
        c if c.starts_with("Throttling") => {
            DeliveryOutcome::retry_after(Duration::from_secs(5), code, message)
        }
        "isv.MOBILE_NUMBER_ILLEGAL" | "isv.MOBILE_COUNT_OVER_LIMIT" => {
            DeliveryOutcome::unknown_recipient(code, message)
        }
        "InvalidTimeStamp.Expired"
        | "SignatureNonceUsed"
        | "isp.SYSTEM_ERROR"
        | "ServiceUnavailable" => DeliveryOutcome::failed(true, code, message),
        c if c.starts_with("isp.") && c != "isp.RAM_PERMISSION_DENY" => {
            DeliveryOutcome::failed(true, code, message)
        }
        _ => DeliveryOutcome::failed(server_error, code, message),
    }
}

#[async_trait::async_trait]
impl Channel for AliyunSmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::AliyunSms
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            calls: 5000,
            per_secs: 1,
        })
    }

    fn max_batch_size(&self) -> usize {
        ALIYUN_MAX_NUMBERS
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
        for group in group_by_message(batch) {
            for chunk in group.chunks(ALIYUN_MAX_NUMBERS) {
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
    fn code_mapping() {
        assert!(map_code("OK", String::new(), Some("b".into()), false).is_sent());
        assert!(matches!(
            map_code("isv.BUSINESS_LIMIT_CONTROL", String::new(), None, false),
            DeliveryOutcome::RetryAfter { .. }
        ));
        assert!(matches!(
            map_code("isv.MOBILE_NUMBER_ILLEGAL", String::new(), None, false),
            DeliveryOutcome::UnknownRecipient { .. }
        ));
        assert!(!map_code("isv.AMOUNT_NOT_ENOUGH", String::new(), None, false).is_retryable());
        assert!(!map_code("isp.RAM_PERMISSION_DENY", String::new(), None, false).is_retryable());
        assert!(map_code("isp.SYSTEM_ERROR", String::new(), None, false).is_retryable());
    }

    #[test]
    fn debug_hides_secret() {
        let c: AliyunSmsConfig = serde_json::from_value(serde_json::json!({
            "access_key_id": "id", "access_key_secret": "topsecret", "sign_name": "校通"
        }))
        .expect("config");
        assert!(!format!("{c:?}").contains("topsecret"));
        assert_eq!(c.endpoint, "https://dysmsapi.aliyuncs.com");
        let ch = AliyunSmsChannel::new(c).expect("channel");
        assert_eq!(ch.host, "dysmsapi.aliyuncs.com");
    }
}
