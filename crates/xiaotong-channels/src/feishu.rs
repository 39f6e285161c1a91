//! Feishu / Lark custom bot webhook with signature.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions, DEFAULT_RATE_LIMIT_DELAY};
use crate::model::{
    Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency, OutgoingMessage,
    RateLimit,
};
use crate::secret::Secret;
use crate::sign;
use crate::token::TokenCache;
use crate::wecom::{robot_answer, send_distinct};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::time::Duration;

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

// ---------------------------------------------------------------- app message

/// `receive_id_type` of the Feishu send-message API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeishuReceiveIdType {
    /// `open_id` (`ou_…`, per app).
    OpenId,
    /// `union_id` (`on_…`, per developer).
    UnionId,
    /// `user_id` (the tenant's employee id).
    #[default]
    UserId,
    /// E-mail address.
    Email,
    /// Group chat id (`oc_…`).
    ChatId,
}

impl FeishuReceiveIdType {
    fn as_str(self) -> &'static str {
        match self {
            FeishuReceiveIdType::OpenId => "open_id",
            FeishuReceiveIdType::UnionId => "union_id",
            FeishuReceiveIdType::UserId => "user_id",
            FeishuReceiveIdType::Email => "email",
            FeishuReceiveIdType::ChatId => "chat_id",
        }
    }
}

/// Feishu / Lark app bot message configuration (self-built app).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeishuAppConfig {
    /// App ID (`cli_…`).
    pub app_id: String,
    /// App secret.
    pub app_secret: Secret,
    /// What [`Delivery::to`] holds.
    #[serde(default)]
    pub receive_id_type: FeishuReceiveIdType,
    /// API base URL (`https://open.larksuite.com` for Lark); override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Refresh the token this many seconds before it expires (Feishu hands
    /// out a new token once fewer than 30 minutes are left).
    #[serde(default = "default_app_margin")]
    pub token_refresh_margin_secs: u64,
    /// Requests in flight at once.
    #[serde(default = "default_app_parallelism")]
    pub parallelism: usize,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_app_margin() -> u64 {
    1800
}
fn default_app_parallelism() -> usize {
    4
}

/// Feishu app message adapter (`im/v1/messages`), one call per recipient,
/// with our delivery id as the `uuid` dedupe key (Feishu drops a repeat
/// within one hour).
pub struct FeishuAppChannel {
    config: FeishuAppConfig,
    base: String,
    client: reqwest::Client,
    token: TokenCache,
}

impl std::fmt::Debug for FeishuAppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeishuAppChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct FeishuResponse {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    tenant_access_token: Option<String>,
    #[serde(default)]
    expire: Option<u64>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// Token invalid / expired codes from Feishu's generic error page [U: check
/// against the current documentation].
const FEISHU_TOKEN_CODES: [i64; 3] = [99991661, 99991663, 99991668];

fn map_app_code(code: i64, msg: &str) -> DeliveryOutcome {
    match code {
        // frequency limit (generic) [U] and per-user/per-chat 5 QPS
        99991400 | 230020 => {
            DeliveryOutcome::retry_after(Duration::from_secs(1), code.to_string(), msg)
        }
        // "Bot has NO availability to this user" / user id not found
        230013 | 230002 => DeliveryOutcome::unknown_recipient(code.to_string(), msg),
        c if FEISHU_TOKEN_CODES.contains(&c) => {
            DeliveryOutcome::failed(true, code.to_string(), msg)
        }
        _ => DeliveryOutcome::failed(false, code.to_string(), msg),
    }
}

/// The `uuid` for a delivery id: itself when it fits 50 characters, else a
/// stable 50-character digest.
pub(crate) fn feishu_uuid(delivery_id: &str) -> String {
    if delivery_id.len() <= 50 && delivery_id.is_ascii() {
        delivery_id.to_owned()
    } else {
        let digest = hex::encode(sha2::Sha256::digest(delivery_id.as_bytes()));
        digest.chars().take(50).collect()
    }
}

/// `msg_type` and the `content` JSON string.
fn app_content(m: &OutgoingMessage) -> (&'static str, String) {
    if m.subject.is_empty() {
        return ("text", serde_json::json!({"text": m.text}).to_string());
    }
    let mut line = vec![serde_json::json!({"tag": "text", "text": m.text})];
    if let Some(url) = &m.url {
        line.push(serde_json::json!({"tag": "a", "text": " 详情", "href": url}));
    }
    (
        "post",
        serde_json::json!({"zh_cn": {"title": m.subject, "content": [line]}}).to_string(),
    )
}

impl FeishuAppChannel {
    /// Builds the adapter (the token is fetched on first send).
    pub fn new(config: FeishuAppConfig) -> Result<Self> {
        let base = http::base_url(&config.base_url, "feishu base_url")?;
        if config.app_id.is_empty() || config.app_secret.is_empty() {
            return Err(ChannelError::Config(
                "feishu app_id and app_secret are required".into(),
            ));
        }
        let client = http::client(&config.http)?;
        let token = TokenCache::new(Duration::from_secs(config.token_refresh_margin_secs));
        Ok(Self {
            config,
            base,
            client,
            token,
        })
    }

    async fn fetch_token(&self) -> std::result::Result<(String, u64), DeliveryOutcome> {
        let req = self
            .client
            .post(format!("{}/open-apis/auth/v3/tenant_access_token/internal", self.base))
            .json(&serde_json::json!({"app_id": self.config.app_id, "app_secret": self.config.app_secret.expose()}));
        let (status, headers, body) = http::execute(req).await?;
        let resp: FeishuResponse = match serde_json::from_str(&body) {
            Ok(r) => r,
            Err(_) if !status.is_success() => {
                return Err(http::status_outcome(status, &headers, &body))
            }
            Err(_) => {
                return Err(DeliveryOutcome::failed(
                    true,
                    "protocol",
                    "tenant_access_token: unexpected answer",
                ))
            }
        };
        match (resp.code, resp.tenant_access_token) {
            (0, Some(t)) => Ok((t, resp.expire.unwrap_or(7200))),
            (0, None) => Err(DeliveryOutcome::failed(
                true,
                "protocol",
                "no tenant_access_token",
            )),
            (code, _) => Err(map_app_code(code, &resp.msg)),
        }
    }

    async fn post(
        &self,
        token: &Secret,
        body: &serde_json::Value,
    ) -> std::result::Result<FeishuResponse, DeliveryOutcome> {
        let req = self
            .client
            .post(format!("{}/open-apis/im/v1/messages", self.base))
            .query(&[("receive_id_type", self.config.receive_id_type.as_str())])
            .bearer_auth(token.expose())
            .json(body);
        let (status, headers, text) = http::execute(req).await?;
        match serde_json::from_str::<FeishuResponse>(&text) {
            Ok(r) if r.code != 0 || status.is_success() => Ok(r),
            _ => Err(http::status_outcome(status, &headers, &text)),
        }
    }

    async fn send_one(&self, d: &Delivery) -> DeliveryOutcome {
        if d.to.trim().is_empty() {
            return DeliveryOutcome::unknown_recipient("invalid_receive_id", "empty receive_id");
        }
        let (msg_type, content) = app_content(&d.message);
        let body = serde_json::json!({
            "receive_id": d.to.trim(),
            "msg_type": msg_type,
            "content": content,
            "uuid": feishu_uuid(&d.id),
        });
        let result = async {
            let token = self.token.get(|| self.fetch_token()).await?;
            let resp = self.post(&token, &body).await?;
            if FEISHU_TOKEN_CODES.contains(&resp.code) {
                self.token.invalidate(&token).await;
                let token = self.token.get(|| self.fetch_token()).await?;
                return self.post(&token, &body).await;
            }
            Ok(resp)
        }
        .await;
        match result {
            Ok(r) if r.code == 0 => DeliveryOutcome::Sent {
                provider_message_id: r
                    .data
                    .as_ref()
                    .and_then(|d| d.get("message_id"))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned),
            },
            Ok(r) => map_app_code(r.code, &r.msg),
            Err(o) => o,
        }
    }

    async fn report(&self, d: &Delivery) -> DeliveryReport {
        DeliveryReport {
            delivery_id: d.id.clone(),
            outcome: self.send_one(d).await,
        }
    }
}

#[async_trait::async_trait]
impl Channel for FeishuAppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::FeishuApp
    }

    fn max_batch_size(&self) -> usize {
        50
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::DeliveryIdKey
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            calls: 1000,
            per_secs: 60,
        })
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let futures: Vec<_> = batch.iter().map(|d| self.report(d)).collect();
        stream::iter(futures)
            .buffered(self.config.parallelism.max(1))
            .collect()
            .await
    }
}

#[cfg(test)]
mod app_tests {
    use super::*;

    #[test]
    fn uuid_fits_50_chars() {
        assert_eq!(feishu_uuid("d-1"), "d-1");
        let long = "x".repeat(80);
        assert_eq!(feishu_uuid(&long).len(), 50);
        assert_eq!(feishu_uuid(&long), feishu_uuid(&long));
    }

    #[test]
    fn content_is_a_json_string() {
        let m = OutgoingMessage {
            text: "hi".into(),
            ..Default::default()
        };
        let (t, c) = app_content(&m);
        assert_eq!(t, "text");
        assert_eq!(c, r#"{"text":"hi"}"#);
        assert!(matches!(
            map_app_code(230013, ""),
            DeliveryOutcome::UnknownRecipient { .. }
        ));
        assert!(matches!(
            map_app_code(99991400, ""),
            DeliveryOutcome::RetryAfter { .. }
        ));
    }
}
