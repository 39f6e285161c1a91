//! WeCom (企业微信): application messages with a cached access_token, and
//! the group robot webhook.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions, DEFAULT_RATE_LIMIT_DELAY};
use crate::model::{
    group_by_message, plain_text, reports, truncate_bytes, Channel, ChannelKind, Delivery,
    DeliveryOutcome, DeliveryReport, Idempotency, OutgoingMessage, RateLimit,
};
use crate::secret::Secret;
use crate::token::TokenCache;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// `touser` takes at most 1000 user ids per call.
pub const WECOM_MAX_USERS: usize = 1000;
const TEXT_MAX_BYTES: usize = 2048;

fn default_base_url() -> String {
    "https://qyapi.weixin.qq.com".to_owned()
}

/// Which WeCom message type to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WecomMessageType {
    /// `markdown` when the message has Markdown, else `textcard` when it has
    /// a URL, else `text`.
    #[default]
    Auto,
    /// Always `text`.
    Text,
    /// `markdown` (WeCom client only; falls back to text without Markdown).
    Markdown,
    /// `textcard` (falls back to text without a URL).
    TextCard,
}

/// WeCom application configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WecomAppConfig {
    /// Corp id (`corpid`).
    pub corp_id: String,
    /// The application's secret (`corpsecret`).
    pub corp_secret: Secret,
    /// The application's `agentid`.
    pub agent_id: i64,
    /// API base URL; override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Message type selection.
    #[serde(default)]
    pub message_type: WecomMessageType,
    /// When set, sends `enable_duplicate_check=1` with this interval
    /// (seconds, ≤ 4 h): WeCom then drops identical content to the same user.
    #[serde(default)]
    pub duplicate_check_interval_secs: Option<u32>,
    /// Refresh the token this many seconds before it expires.
    #[serde(default = "default_refresh_margin")]
    pub token_refresh_margin_secs: u64,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_refresh_margin() -> u64 {
    300
}

/// WeCom application message adapter (`message/send`).
pub struct WecomAppChannel {
    config: WecomAppConfig,
    base: String,
    client: reqwest::Client,
    token: TokenCache,
}

impl std::fmt::Debug for WecomAppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WecomAppChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct WecomResponse {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    invaliduser: Option<String>,
    #[serde(default)]
    unlicenseduser: Option<String>,
    #[serde(default)]
    msgid: Option<String>,
}

/// Maps a non-zero WeCom errcode that applies to a whole call.
fn map_errcode(errcode: i64, errmsg: &str) -> DeliveryOutcome {
    let code = errcode.to_string();
    let msg = errmsg.to_owned();
    match errcode {
        45009 | 45033 => DeliveryOutcome::retry_after(DEFAULT_RATE_LIMIT_DELAY, code, msg),
        -1 | 40014 | 42001 => DeliveryOutcome::failed(true, code, msg),
        81013 => DeliveryOutcome::unknown_recipient(code, msg),
        _ => DeliveryOutcome::failed(false, code, msg),
    }
}

fn wecom_body(config_type: WecomMessageType, m: &OutgoingMessage) -> serde_json::Value {
    let text = || serde_json::json!({"msgtype": "text", "text": {"content": truncate_bytes(&plain_text(m), TEXT_MAX_BYTES)}});
    let markdown = |md: &str| serde_json::json!({"msgtype": "markdown", "markdown": {"content": truncate_bytes(md, TEXT_MAX_BYTES)}});
    let card = |url: &str| {
        serde_json::json!({"msgtype": "textcard", "textcard": {
            "title": truncate_bytes(&m.subject, 128),
            "description": truncate_bytes(&m.text, 512),
            "url": url,
            "btntxt": "详情",
        }})
    };
    match (config_type, m.markdown.as_deref(), m.url.as_deref()) {
        (WecomMessageType::Auto | WecomMessageType::Markdown, Some(md), _) => markdown(md),
        (WecomMessageType::Auto | WecomMessageType::TextCard, _, Some(url)) => card(url),
        _ => text(),
    }
}

impl WecomAppChannel {
    /// Builds the adapter (the token is fetched on first send).
    pub fn new(config: WecomAppConfig) -> Result<Self> {
        let base = http::base_url(&config.base_url, "wecom base_url")?;
        if config.corp_id.is_empty() || config.corp_secret.is_empty() {
            return Err(ChannelError::Config(
                "wecom corp_id and corp_secret are required".into(),
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

    /// Returns a valid token, fetching one if the cache is empty or due for
    /// refresh.
    async fn access_token(&self) -> std::result::Result<Secret, DeliveryOutcome> {
        self.token.get(|| self.fetch_token()).await
    }

    async fn fetch_token(&self) -> std::result::Result<(String, u64), DeliveryOutcome> {
        let req = self
            .client
            .get(format!("{}/cgi-bin/gettoken", self.base))
            .query(&[
                ("corpid", self.config.corp_id.as_str()),
                ("corpsecret", self.config.corp_secret.expose()),
            ]);
        let (status, headers, body) = http::execute(req).await?;
        let resp: WecomResponse = match serde_json::from_str(&body) {
            Ok(r) => r,
            Err(_) if !status.is_success() => {
                return Err(http::status_outcome(status, &headers, &body))
            }
            Err(_) => {
                return Err(DeliveryOutcome::failed(
                    true,
                    "protocol",
                    "gettoken: unexpected answer",
                ))
            }
        };
        match (resp.errcode, resp.access_token) {
            (0, Some(token)) => Ok((token, resp.expires_in.unwrap_or(7200))),
            (0, None) => Err(DeliveryOutcome::failed(
                true,
                "protocol",
                "gettoken: no access_token",
            )),
            (code, _) => Err(map_errcode(code, &resp.errmsg)),
        }
    }

    /// Drops `token` from the cache (if it is still the cached one).
    async fn invalidate(&self, token: &Secret) {
        self.token.invalidate(token).await;
    }

    async fn post_message(
        &self,
        token: &Secret,
        body: &serde_json::Value,
    ) -> std::result::Result<WecomResponse, DeliveryOutcome> {
        let req = self
            .client
            .post(format!("{}/cgi-bin/message/send", self.base))
            .query(&[("access_token", token.expose())])
            .json(body);
        let (status, headers, text) = http::execute(req).await?;
        match serde_json::from_str::<WecomResponse>(&text) {
            Ok(r) => Ok(r),
            Err(_) if !status.is_success() => Err(http::status_outcome(status, &headers, &text)),
            Err(_) => Err(DeliveryOutcome::failed(
                true,
                "protocol",
                format!("unexpected answer: {text:.200}"),
            )),
        }
    }

    async fn send_chunk(&self, group: &[&Delivery]) -> Vec<DeliveryOutcome> {
        let n = group.len();
        let Some(first) = group.first() else {
            return Vec::new();
        };
        // Reject ids that would change the meaning of `touser`.
        let bad = |to: &str| to.is_empty() || to.contains('|') || to.trim() == "@all";
        let valid: Vec<&Delivery> = group.iter().copied().filter(|d| !bad(&d.to)).collect();
        let mut body = wecom_body(self.config.message_type, &first.message);
        if let Some(obj) = body.as_object_mut() {
            let touser = valid
                .iter()
                .map(|d| d.to.trim())
                .collect::<Vec<_>>()
                .join("|");
            obj.insert("touser".into(), touser.into());
            obj.insert("agentid".into(), self.config.agent_id.into());
            obj.insert("safe".into(), 0.into());
            if let Some(secs) = self.config.duplicate_check_interval_secs {
                obj.insert("enable_duplicate_check".into(), 1.into());
                obj.insert("duplicate_check_interval".into(), secs.into());
            }
        }
        let result = if valid.is_empty() {
            Err(DeliveryOutcome::unknown_recipient(
                "invalid_userid",
                "empty or reserved user id",
            ))
        } else {
            self.send_with_token_retry(&body).await
        };
        let resp = match result {
            Ok(r) => r,
            Err(o) => {
                return group
                    .iter()
                    .map(|d| {
                        if bad(&d.to) {
                            DeliveryOutcome::unknown_recipient(
                                "invalid_userid",
                                "empty or reserved user id",
                            )
                        } else {
                            o.clone()
                        }
                    })
                    .collect()
            }
        };
        if resp.errcode != 0 {
            let o = map_errcode(resp.errcode, &resp.errmsg);
            return vec![o; n];
        }
        let split = |s: &Option<String>| -> HashSet<String> {
            s.as_deref()
                .unwrap_or("")
                .split('|')
                .filter(|x| !x.is_empty())
                .map(|x| x.to_lowercase())
                .collect()
        };
        let invalid = split(&resp.invaliduser);
        let unlicensed = split(&resp.unlicenseduser);
        group
            .iter()
            .map(|d| {
                let id = d.to.trim().to_lowercase();
                if bad(&d.to) || invalid.contains(&id) {
                    DeliveryOutcome::unknown_recipient(
                        "invaliduser",
                        format!("WeCom does not know user {:?}", d.to),
                    )
                } else if unlicensed.contains(&id) {
                    DeliveryOutcome::failed(
                        false,
                        "unlicenseduser",
                        format!("user {:?} has no WeCom licence", d.to),
                    )
                } else {
                    DeliveryOutcome::Sent {
                        provider_message_id: resp.msgid.clone(),
                    }
                }
            })
            .collect()
    }

    /// Sends once; on an invalid/expired token drops the cache and retries once.
    async fn send_with_token_retry(
        &self,
        body: &serde_json::Value,
    ) -> std::result::Result<WecomResponse, DeliveryOutcome> {
        let token = self.access_token().await?;
        let resp = self.post_message(&token, body).await?;
        if matches!(resp.errcode, 40014 | 42001 | 40082) {
            tracing::info!(errcode = resp.errcode, "wecom token rejected; refreshing");
            self.invalidate(&token).await;
            let token = self.access_token().await?;
            return self.post_message(&token, body).await;
        }
        Ok(resp)
    }
}

#[async_trait::async_trait]
impl Channel for WecomAppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WecomApp
    }

    fn max_batch_size(&self) -> usize {
        WECOM_MAX_USERS
    }

    fn idempotency(&self) -> Idempotency {
        match self.config.duplicate_check_interval_secs {
            Some(window_secs) => Idempotency::ContentWindow { window_secs },
            None => Idempotency::None,
        }
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
        for group in group_by_message(batch) {
            for chunk in group.chunks(WECOM_MAX_USERS) {
                let ds: Vec<&Delivery> = chunk.iter().filter_map(|&i| batch.get(i)).collect();
                for (&i, o) in chunk.iter().zip(self.send_chunk(&ds).await) {
                    if let Some(slot) = outcomes.get_mut(i) {
                        *slot = Some(o);
                    }
                }
            }
        }
        reports(batch, outcomes)
    }
}

// ---------------------------------------------------------------- robot

/// WeCom group robot configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WecomRobotConfig {
    /// The webhook `key` (it is the credential).
    pub key: Secret,
    /// API base URL; override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

/// WeCom group robot adapter. Every delivery goes to the robot's group;
/// deliveries with identical content in one batch are posted once.
#[derive(Debug)]
pub struct WecomRobotChannel {
    config: WecomRobotConfig,
    base: String,
    client: reqwest::Client,
}

impl WecomRobotChannel {
    /// Builds the adapter.
    pub fn new(config: WecomRobotConfig) -> Result<Self> {
        let base = http::base_url(&config.base_url, "wecom robot base_url")?;
        if config.key.is_empty() {
            return Err(ChannelError::Config("wecom robot key is required".into()));
        }
        let client = http::client(&config.http)?;
        Ok(Self {
            config,
            base,
            client,
        })
    }

    async fn post(&self, m: &OutgoingMessage) -> DeliveryOutcome {
        let body = match m.markdown.as_deref() {
            Some(md) => {
                serde_json::json!({"msgtype": "markdown", "markdown": {"content": truncate_bytes(md, 4096)}})
            }
            None => {
                serde_json::json!({"msgtype": "text", "text": {"content": truncate_bytes(&plain_text(m), TEXT_MAX_BYTES)}})
            }
        };
        let req = self
            .client
            .post(format!("{}/cgi-bin/webhook/send", self.base))
            .query(&[("key", self.config.key.expose())])
            .json(&body);
        robot_answer(http::execute(req).await, "errcode", "errmsg", map_errcode)
    }
}

/// Interprets a robot answer `{<code_field>: 0, <msg_field>: …}`.
pub(crate) fn robot_answer(
    result: std::result::Result<
        (reqwest::StatusCode, reqwest::header::HeaderMap, String),
        DeliveryOutcome,
    >,
    code_field: &str,
    msg_field: &str,
    map: fn(i64, &str) -> DeliveryOutcome,
) -> DeliveryOutcome {
    let (status, headers, body) = match result {
        Ok(r) => r,
        Err(o) => return o,
    };
    let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get(code_field))
        .and_then(|c| c.as_i64());
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get(msg_field))
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    match code {
        Some(0) if status.is_success() => DeliveryOutcome::Sent {
            provider_message_id: None,
        },
        Some(c) if c != 0 => map(c, msg),
        _ if !status.is_success() => http::status_outcome(status, &headers, &body),
        _ => DeliveryOutcome::failed(true, "protocol", format!("unexpected answer: {body:.200}")),
    }
}

/// Posts each distinct message of a batch once and copies the outcome to
/// every delivery that carried it.
pub(crate) async fn send_distinct<'a, F, Fut>(batch: &'a [Delivery], post: F) -> Vec<DeliveryReport>
where
    F: Fn(&'a OutgoingMessage) -> Fut,
    Fut: std::future::Future<Output = DeliveryOutcome>,
{
    let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
    for group in group_by_message(batch) {
        let Some(first) = group.first().and_then(|&i| batch.get(i)) else {
            continue;
        };
        let o = post(&first.message).await;
        for &i in &group {
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(o.clone());
            }
        }
    }
    reports(batch, outcomes)
}

#[async_trait::async_trait]
impl Channel for WecomRobotChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WecomRobot
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit {
            calls: 20,
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
    fn body_selection() {
        let mut m = OutgoingMessage {
            subject: "标题".into(),
            text: "正文".into(),
            ..Default::default()
        };
        assert_eq!(
            wecom_body(WecomMessageType::Auto, &m)["text"]["content"],
            "标题\n\n正文"
        );
        m.url = Some("https://x.example/m/1".into());
        assert_eq!(
            wecom_body(WecomMessageType::Auto, &m)["msgtype"],
            "textcard"
        );
        assert_eq!(wecom_body(WecomMessageType::Text, &m)["msgtype"], "text");
        m.markdown = Some("**hi**".into());
        assert_eq!(
            wecom_body(WecomMessageType::Auto, &m)["msgtype"],
            "markdown"
        );
        assert_eq!(
            wecom_body(WecomMessageType::TextCard, &m)["msgtype"],
            "textcard"
        );
    }

    #[test]
    fn errcode_mapping() {
        assert!(matches!(
            map_errcode(45009, ""),
            DeliveryOutcome::RetryAfter { .. }
        ));
        assert!(matches!(
            map_errcode(81013, ""),
            DeliveryOutcome::UnknownRecipient { .. }
        ));
        assert!(map_errcode(-1, "").is_retryable());
        assert!(!map_errcode(40001, "").is_retryable());
    }

    #[test]
    fn debug_hides_secrets() {
        let c: WecomAppConfig = serde_json::from_value(serde_json::json!({
            "corp_id": "ww1", "corp_secret": "s3cr3t", "agent_id": 1000002
        }))
        .expect("config");
        let ch = WecomAppChannel::new(c).expect("channel");
        assert!(!format!("{ch:?}").contains("s3cr3t"));
    }
}
