//! DingTalk (钉钉) custom group robot with 加签 (HMAC-SHA256) signing.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions};
use crate::model::{
    group_by_message, plain_text, reports, Channel, ChannelKind, Delivery, DeliveryOutcome,
    DeliveryReport, Idempotency, OutgoingMessage, RateLimit,
};
use crate::secret::Secret;
use crate::sign;
use crate::token::TokenCache;
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
    fn throttling_maps_to_retry_after() {
        assert!(matches!(
            map_errcode(130101, "send too fast"),
            DeliveryOutcome::RetryAfter { after, .. } if after == Duration::from_secs(600)
        ));
        assert!(!map_errcode(310000, "sign not match").is_retryable());
    }
}

// ---------------------------------------------------------------- work notification

/// `userid_list` takes at most 5000 ids per `asyncsend_v2` call.
pub const DINGTALK_MAX_USERS: usize = 5000;

/// DingTalk work notification (工作通知) configuration, for an internal app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DingtalkWorkConfig {
    /// The app's AppKey.
    pub app_key: String,
    /// The app's AppSecret.
    pub app_secret: Secret,
    /// The app's `agent_id`.
    pub agent_id: i64,
    /// API base URL; override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
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

/// Per-user results of a work notification task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DingtalkSendResult {
    /// Users DingTalk does not know (→ unknown recipient).
    pub invalid: Vec<String>,
    /// Users throttled by DingTalk's per-user limits (not delivered).
    pub forbidden: Vec<String>,
    /// Users the send failed for.
    pub failed: Vec<String>,
    /// Users who read it.
    pub read: Vec<String>,
    /// Users who have not read it yet.
    pub unread: Vec<String>,
}

/// DingTalk work notification adapter (`topapi/message/corpconversation/asyncsend_v2`).
///
/// The API is asynchronous: `Sent` means DingTalk accepted the task (the
/// provider message id is its `task_id`); per-user results (invalid or
/// throttled users) are only available later from `getsendresult`, which
/// call [`DingtalkWorkChannel::send_result`] with the task id to fetch them.
pub struct DingtalkWorkChannel {
    config: DingtalkWorkConfig,
    base: String,
    client: reqwest::Client,
    token: TokenCache,
}

impl std::fmt::Debug for DingtalkWorkChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingtalkWorkChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct DingtalkResponse {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    sub_code: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    task_id: Option<serde_json::Value>,
}

impl DingtalkResponse {
    /// Invalid or expired access_token (also reported as errcode 88 with a sub_code).
    fn token_rejected(&self) -> bool {
        matches!(self.errcode, 40014 | 42001)
            || (self.errcode == 88 && matches!(self.sub_code.as_deref(), Some("40014" | "42001")))
    }
}

fn map_work_errcode(code: i64, msg: &str) -> DeliveryOutcome {
    match code {
        143103 | 143104 | 90018 => {
            DeliveryOutcome::retry_after(http::DEFAULT_RATE_LIMIT_DELAY, code.to_string(), msg)
        }
        -1 | 40014 | 42001 | 88 => DeliveryOutcome::failed(true, code.to_string(), msg),
        _ => DeliveryOutcome::failed(false, code.to_string(), msg),
    }
}

fn work_msg(m: &OutgoingMessage) -> serde_json::Value {
    match (m.markdown.as_deref(), m.url.as_deref()) {
        (_, Some(url)) => serde_json::json!({"msgtype": "action_card", "action_card": {
            "title": m.subject,
            "markdown": m.markdown.clone().unwrap_or_else(|| m.text.clone()),
            "single_title": "查看详情",
            "single_url": url,
        }}),
        (Some(md), None) => {
            serde_json::json!({"msgtype": "markdown", "markdown": {"title": m.subject, "text": md}})
        }
        (None, None) => serde_json::json!({"msgtype": "text", "text": {"content": plain_text(m)}}),
    }
}

impl DingtalkWorkChannel {
    /// Builds the adapter (the token is fetched on first send).
    pub fn new(config: DingtalkWorkConfig) -> Result<Self> {
        let base = http::base_url(&config.base_url, "dingtalk base_url")?;
        if config.app_key.is_empty() || config.app_secret.is_empty() {
            return Err(ChannelError::Config(
                "dingtalk app_key and app_secret are required".into(),
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
        let req = self.client.get(format!("{}/gettoken", self.base)).query(&[
            ("appkey", self.config.app_key.as_str()),
            ("appsecret", self.config.app_secret.expose()),
        ]);
        let (status, headers, body) = http::execute(req).await?;
        let resp: DingtalkResponse = match serde_json::from_str(&body) {
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
            (code, _) => Err(map_work_errcode(code, &resp.errmsg)),
        }
    }

    async fn post(
        &self,
        token: &Secret,
        body: &serde_json::Value,
    ) -> std::result::Result<DingtalkResponse, DeliveryOutcome> {
        let req = self
            .client
            .post(format!(
                "{}/topapi/message/corpconversation/asyncsend_v2",
                self.base
            ))
            .query(&[("access_token", token.expose())])
            .json(body);
        let (status, headers, text) = http::execute(req).await?;
        match serde_json::from_str::<DingtalkResponse>(&text) {
            Ok(r) => Ok(r),
            Err(_) if !status.is_success() => Err(http::status_outcome(status, &headers, &text)),
            Err(_) => Err(DeliveryOutcome::failed(
                true,
                "protocol",
                format!("unexpected answer: {text:.200}"),
            )),
        }
    }

    /// Per-user results of an earlier send (`getsendresult`, kept by
    /// DingTalk for about 24 h): lets the worker turn `Sent` into
    /// unknown-recipient / throttled per user after the fact.
    pub async fn send_result(
        &self,
        task_id: &str,
    ) -> std::result::Result<DingtalkSendResult, DeliveryOutcome> {
        let task: i64 = task_id.parse().map_err(|_| {
            DeliveryOutcome::failed(false, "invalid_task_id", format!("task id {task_id:?}"))
        })?;
        let body = serde_json::json!({"agent_id": self.config.agent_id, "task_id": task});
        let url = format!(
            "{}/topapi/message/corpconversation/getsendresult",
            self.base
        );
        let call = |token: Secret| {
            let req = self
                .client
                .post(&url)
                .query(&[("access_token", token.expose())])
                .json(&body);
            async move {
                let (status, headers, text) = http::execute(req).await?;
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => Ok((v, token)),
                    Err(_) => Err(http::status_outcome(status, &headers, &text)),
                }
            }
        };
        let token = self.token.get(|| self.fetch_token()).await?;
        let (mut v, token) = call(token).await?;
        let rejected = |v: &serde_json::Value| {
            let code = v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0);
            let sub = v.get("sub_code").and_then(|c| c.as_str()).unwrap_or("");
            matches!(code, 40014 | 42001) || (code == 88 && matches!(sub, "40014" | "42001"))
        };
        if rejected(&v) {
            self.token.invalidate(&token).await;
            let token = self.token.get(|| self.fetch_token()).await?;
            v = call(token).await?.0;
        }
        let code = v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0);
        if code != 0 {
            let msg = v.get("errmsg").and_then(|m| m.as_str()).unwrap_or_default();
            return Err(map_work_errcode(code, msg));
        }
        // The lists sit under `send_result`; accept them at the top level too.
        let r = v.get("send_result").unwrap_or(&v);
        let list = |name: &str| -> Vec<String> {
            r.get(name)
                .and_then(|l| l.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(DingtalkSendResult {
            invalid: list("invalid_user_id_list"),
            forbidden: list("forbidden_user_id_list"),
            failed: list("failed_user_id_list"),
            read: list("read_user_id_list"),
            unread: list("unread_user_id_list"),
        })
    }

    async fn send_chunk(&self, group: &[&Delivery]) -> Vec<DeliveryOutcome> {
        let bad = |to: &str| to.trim().is_empty() || to.contains(',');
        let valid: Vec<&str> = group
            .iter()
            .map(|d| d.to.trim())
            .filter(|to| !bad(to))
            .collect();
        let Some(first) = group.first() else {
            return Vec::new();
        };
        let invalid_id = || {
            DeliveryOutcome::unknown_recipient(
                "invalid_userid",
                "empty user id or one containing a comma",
            )
        };
        if valid.is_empty() {
            return group.iter().map(|_| invalid_id()).collect();
        }
        let body = serde_json::json!({
            "agent_id": self.config.agent_id,
            "userid_list": valid.join(","),
            "to_all_user": false,
            "msg": work_msg(&first.message),
        });
        let result = async {
            let token = self.token.get(|| self.fetch_token()).await?;
            let resp = self.post(&token, &body).await?;
            if resp.token_rejected() {
                self.token.invalidate(&token).await;
                let token = self.token.get(|| self.fetch_token()).await?;
                return self.post(&token, &body).await;
            }
            Ok(resp)
        }
        .await;
        let outcome = match result {
            Ok(resp) if resp.errcode == 0 => DeliveryOutcome::Sent {
                provider_message_id: resp.task_id.map(|t| match t {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
            },
            Ok(resp) => map_work_errcode(resp.errcode, &resp.errmsg),
            Err(o) => o,
        };
        group
            .iter()
            .map(|d| {
                if bad(&d.to) {
                    invalid_id()
                } else {
                    outcome.clone()
                }
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Channel for DingtalkWorkChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::DingtalkWork
    }

    fn max_batch_size(&self) -> usize {
        DINGTALK_MAX_USERS
    }

    fn idempotency(&self) -> Idempotency {
        // DingTalk delivers the same content to the same user once a day.
        Idempotency::ContentWindow {
            window_secs: 86_400,
        }
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; batch.len()];
        for group in group_by_message(batch) {
            for chunk in group.chunks(DINGTALK_MAX_USERS) {
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

#[cfg(test)]
mod work_tests {
    use super::*;

    #[test]
    fn message_shapes_and_codes() {
        let mut m = OutgoingMessage {
            subject: "t".into(),
            text: "x".into(),
            ..Default::default()
        };
        assert_eq!(work_msg(&m)["msgtype"], "text");
        m.markdown = Some("**x**".into());
        assert_eq!(work_msg(&m)["markdown"]["title"], "t");
        m.url = Some("https://x.example".into());
        assert_eq!(
            work_msg(&m)["action_card"]["single_url"],
            "https://x.example"
        );
        assert!(matches!(
            map_work_errcode(143103, ""),
            DeliveryOutcome::RetryAfter { .. }
        ));
        assert!(!map_work_errcode(40078, "").is_retryable());
    }
}
