//! Feishu / Lark custom bot webhook with signature.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions, DEFAULT_RATE_LIMIT_DELAY};
use crate::model::{
    Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency, OutgoingMessage,
    RateLimit,
};
use crate::secret::Secret;
use crate::sign;
use crate::wecom::{robot_answer, send_distinct};
use serde::{Deserialize, Serialize};

/// Feishu custom bot configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeishuBotConfig {
    /// The hook id: the last path segment of the webhook URL.
    pub hook_id: Secret,
    /// The signature secret; unsigned when absent.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// API base URL (`https://open.larksuite.com` for Lark); override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_base_url() -> String {
    "https://open.feishu.cn".to_owned()
}

/// Feishu custom bot adapter. Every delivery goes to the bot's group;
/// identical content in one batch is posted once.
#[derive(Debug)]
pub struct FeishuBotChannel {
    config: FeishuBotConfig,
    base: String,
    client: reqwest::Client,
}

fn map_code(code: i64, msg: &str) -> DeliveryOutcome {
    match code {
        11232 => DeliveryOutcome::retry_after(DEFAULT_RATE_LIMIT_DELAY, code.to_string(), msg),
        _ => DeliveryOutcome::failed(false, code.to_string(), msg),
    }
}

/// The message part of the body: `post` (rich text with a title) when there
/// is a subject, else `text`.
fn content(m: &OutgoingMessage) -> serde_json::Value {
    if m.subject.is_empty() {
        return serde_json::json!({"msg_type": "text", "content": {"text": m.text}});
    }
    let mut line = vec![serde_json::json!({"tag": "text", "text": m.text})];
    if let Some(url) = &m.url {
        line.push(serde_json::json!({"tag": "a", "text": " 详情", "href": url}));
    }
    serde_json::json!({
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": m.subject, "content": [line]}}},
    })
}

impl FeishuBotChannel {
    /// Builds the adapter.
    pub fn new(config: FeishuBotConfig) -> Result<Self> {
        let base = http::base_url(&config.base_url, "feishu base_url")?;
        if config.hook_id.is_empty() {
            return Err(ChannelError::Config("feishu hook_id is required".into()));
        }
        let client = http::client(&config.http)?;
        Ok(Self {
            config,
            base,
            client,
        })
    }

    async fn post(&self, m: &OutgoingMessage) -> DeliveryOutcome {
        let mut body = content(m);
        if let (Some(secret), Some(obj)) = (&self.config.secret, body.as_object_mut()) {
            let ts = http::now_secs();
            obj.insert("timestamp".into(), ts.to_string().into());
            obj.insert(
                "sign".into(),
                sign::feishu_bot_sign(ts, secret.expose()).into(),
            );
        }
        let url = format!(
            "{}/open-apis/bot/v2/hook/{}",
            self.base,
            sign::percent_encode(self.config.hook_id.expose())
        );
        let req = self.client.post(url).json(&body);
        robot_answer(http::execute(req).await, "code", "msg", map_code)
    }
}

#[async_trait::async_trait]
impl Channel for FeishuBotChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::FeishuBot
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            calls: 100,
            per_secs: 60,
        })
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
    fn content_shapes() {
        let mut m = OutgoingMessage {
            text: "hi".into(),
            ..Default::default()
        };
        assert_eq!(content(&m)["content"]["text"], "hi");
        m.subject = "t".into();
        assert_eq!(content(&m)["content"]["post"]["zh_cn"]["title"], "t");
        assert!(matches!(
            map_code(11232, ""),
            DeliveryOutcome::RetryAfter { .. }
        ));
    }
}
