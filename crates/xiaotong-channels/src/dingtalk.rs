//! DingTalk (钉钉) custom group robot with 加签 (HMAC-SHA256) signing.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions};
use crate::model::{
    plain_text, Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency,
    OutgoingMessage,
};
use crate::secret::Secret;
use crate::sign;
use crate::wecom::{robot_answer, send_distinct};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// DingTalk custom robot configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DingtalkRobotConfig {
    /// The robot's `access_token` (from its webhook URL).
    pub access_token: Secret,
    /// The 加签 secret (`SEC…`); unsigned when absent (keyword / IP modes).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// API base URL; override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Mention everyone in the group (`at.isAtAll`).
    #[serde(default)]
    pub at_all: bool,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_base_url() -> String {
    "https://oapi.dingtalk.com".to_owned()
}

/// DingTalk custom robot adapter. Every delivery goes to the robot's group;
/// identical content in one batch is posted once.
#[derive(Debug)]
pub struct DingtalkRobotChannel {
    config: DingtalkRobotConfig,
    base: String,
    client: reqwest::Client,
}

fn map_errcode(code: i64, msg: &str) -> DeliveryOutcome {
    match code {
        // "send too fast": the robot is throttled for 10 minutes.
        130101 => DeliveryOutcome::retry_after(Duration::from_secs(600), code.to_string(), msg),
        -1 => DeliveryOutcome::failed(true, code.to_string(), msg),
        _ => DeliveryOutcome::failed(false, code.to_string(), msg),
    }
}

impl DingtalkRobotChannel {
    /// Builds the adapter.
    pub fn new(config: DingtalkRobotConfig) -> Result<Self> {
        let base = http::base_url(&config.base_url, "dingtalk base_url")?;
        if config.access_token.is_empty() {
            return Err(ChannelError::Config(
                "dingtalk access_token is required".into(),
            ));
        }
        let client = http::client(&config.http)?;
        Ok(Self {
            config,
            base,
            client,
        })
    }

    fn body(&self, m: &OutgoingMessage) -> serde_json::Value {
        let at =
            serde_json::json!({"atMobiles": [], "atUserIds": [], "isAtAll": self.config.at_all});
        match m.markdown.as_deref() {
            Some(md) => serde_json::json!({
                "msgtype": "markdown",
                "markdown": {"title": m.subject, "text": md},
                "at": at,
            }),
            None => {
                serde_json::json!({"msgtype": "text", "text": {"content": plain_text(m)}, "at": at})
            }
        }
    }

    async fn post(&self, m: &OutgoingMessage) -> DeliveryOutcome {
        let mut url = format!(
            "{}/robot/send?access_token={}",
            self.base,
            sign::percent_encode(self.config.access_token.expose())
        );
        if let Some(secret) = &self.config.secret {
            let ts = chrono::Utc::now().timestamp_millis();
            let s = sign::dingtalk_robot_sign(ts, secret.expose());
            url.push_str(&format!(
                "&timestamp={ts}&sign={}",
                sign::percent_encode(&s)
            ));
        }
        let body = match serde_json::to_vec(&self.body(m)) {
            Ok(b) => b,
            Err(e) => return DeliveryOutcome::failed(false, "invalid_message", e.to_string()),
        };
        let req = self
            .client
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        robot_answer(http::execute(req).await, "errcode", "errmsg", map_errcode)
    }
}

#[async_trait::async_trait]
impl Channel for DingtalkRobotChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::DingtalkRobot
    }

    fn max_batch_size(&self) -> usize {
        20
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        send_distinct(batch, |m| self.post(m)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_maps_to_retry_after() {
        assert!(matches!(
            map_errcode(130101, "send too fast"),
            DeliveryOutcome::RetryAfter { after, .. } if after == Duration::from_secs(600)
        ));
        assert!(!map_errcode(310000, "sign not match").is_retryable());
    }
}
