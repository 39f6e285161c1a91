//! Xiaotong delivery adapters: one [`Channel`] implementation per provider.
//!
//! No database here: the main binary's outbox worker hands batches of
//! [`Delivery`] values to a [`Channel`] and stores the returned
//! [`DeliveryReport`]s.
//!
//! | adapter | config | constructor |
//! |---|---|---|
//! | e-mail (SMTP, lettre) | [`SmtpConfig`] | [`SmtpChannel::new`] |
//! | Aliyun SMS | [`AliyunSmsConfig`] | [`AliyunSmsChannel::new`] |
//! | Tencent Cloud SMS | [`TencentSmsConfig`] | [`TencentSmsChannel::new`] |
//! | WeCom application message | [`WecomAppConfig`] | [`WecomAppChannel::new`] |
//! | WeCom group robot | [`WecomRobotConfig`] | [`WecomRobotChannel::new`] |
//! | DingTalk custom robot | [`DingtalkRobotConfig`] | [`DingtalkRobotChannel::new`] |
//! | DingTalk work notification | [`DingtalkWorkConfig`] | [`DingtalkWorkChannel::new`] |
//! | Feishu custom bot | [`FeishuBotConfig`] | [`FeishuBotChannel::new`] |
//! | Feishu app bot message | [`FeishuAppConfig`] | [`FeishuAppChannel::new`] |
//! | generic signed webhook | [`WebhookConfig`] | [`WebhookChannel::new`] |
//! | Web Push (VAPID, aes128gcm) | [`WebPushConfig`] | [`WebPushChannel::new`] |
//!
//! [`ChannelConfig`] is the tagged union of all configs, and
//! [`build_channel`] turns one into a `Box<dyn Channel>`. Build a channel
//! once per credential and keep it: it owns connection pools and token
//! caches.
//!
//! ```no_run
//! use xiaotong_channels::{build_channel, ChannelConfig, Delivery, DeliveryOutcome, OutgoingMessage};
//!
//! # async fn demo() -> xiaotong_channels::Result<()> {
//! let config: ChannelConfig = serde_json::from_str(r#"{
//!     "kind": "email", "host": "smtp.school.example", "security": "start_tls",
//!     "username": "noreply", "password": "…", "from": "校通 <noreply@school.example>"
//! }"#)?;
//! let channel = build_channel(config)?;
//! let batch = vec![Delivery {
//!     id: "delivery-1".into(),
//!     to: "parent@example.org".into(),
//!     message: OutgoingMessage { subject: "通知".into(), text: "明天停课。".into(), ..Default::default() },
//! }];
//! for report in channel.send(&batch).await {
//!     match report.outcome {
//!         DeliveryOutcome::Sent { .. } => { /* mark delivered */ }
//!         DeliveryOutcome::RetryAfter { after, .. } => { /* reschedule after `after` */ }
//!         DeliveryOutcome::Failed { retryable: true, .. } => { /* backoff and retry */ }
//!         DeliveryOutcome::Failed { retryable: false, .. } => { /* dead-letter */ }
//!         DeliveryOutcome::UnknownRecipient { .. } => { /* fall back to another channel */ }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod aliyun;
mod dingtalk;
mod email;
mod error;
mod feishu;
mod http;
mod model;
mod secret;
pub mod sign;
mod tencent;
mod token;
mod webhook;
mod webpush;
mod wecom;
pub mod wecom_callback;

pub use aliyun::{AliyunSignatureVersion, AliyunSmsChannel, AliyunSmsConfig};
pub use dingtalk::{
    DingtalkRobotChannel, DingtalkRobotConfig, DingtalkSendResult, DingtalkWorkChannel,
    DingtalkWorkConfig,
};
pub use email::{SmtpChannel, SmtpConfig, SmtpSecurity};
pub use error::{ChannelError, Result};
pub use feishu::{
    FeishuAppChannel, FeishuAppConfig, FeishuBotChannel, FeishuBotConfig, FeishuReceiveIdType,
};
pub use http::HttpOptions;
pub use model::{
    Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency, OutgoingMessage,
    SmsTemplate,
};
pub use secret::Secret;
pub use tencent::{TencentSmsChannel, TencentSmsConfig};
pub use webhook::{WebhookChannel, WebhookConfig};
pub use webpush::{
    encrypt_aes128gcm, generate_vapid_keys, PushKeys, PushSubscription, Urgency, WebPushChannel,
    WebPushConfig,
};
pub use wecom::{
    WecomAppChannel, WecomAppConfig, WecomMessageType, WecomRobotChannel, WecomRobotConfig,
};

use serde::{Deserialize, Serialize};

/// Any adapter's configuration, tagged by `kind` (same names as [`ChannelKind`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// E-mail over SMTP.
    Email(SmtpConfig),
    /// Aliyun SMS.
    AliyunSms(AliyunSmsConfig),
    /// Tencent Cloud SMS.
    TencentSms(TencentSmsConfig),
    /// WeCom application message.
    WecomApp(WecomAppConfig),
    /// WeCom group robot.
    WecomRobot(WecomRobotConfig),
    /// DingTalk custom robot.
    DingtalkRobot(DingtalkRobotConfig),
    /// DingTalk work notification.
    DingtalkWork(DingtalkWorkConfig),
    /// Feishu custom bot.
    FeishuBot(FeishuBotConfig),
    /// Feishu app bot message.
    FeishuApp(FeishuAppConfig),
    /// Generic signed webhook.
    Webhook(WebhookConfig),
    /// Web Push.
    WebPush(WebPushConfig),
}

/// Builds the adapter for a configuration.
pub fn build_channel(config: ChannelConfig) -> Result<Box<dyn Channel>> {
    Ok(match config {
        ChannelConfig::Email(c) => Box::new(SmtpChannel::new(c)?),
        ChannelConfig::AliyunSms(c) => Box::new(AliyunSmsChannel::new(c)?),
        ChannelConfig::TencentSms(c) => Box::new(TencentSmsChannel::new(c)?),
        ChannelConfig::WecomApp(c) => Box::new(WecomAppChannel::new(c)?),
        ChannelConfig::WecomRobot(c) => Box::new(WecomRobotChannel::new(c)?),
        ChannelConfig::DingtalkRobot(c) => Box::new(DingtalkRobotChannel::new(c)?),
        ChannelConfig::DingtalkWork(c) => Box::new(DingtalkWorkChannel::new(c)?),
        ChannelConfig::FeishuBot(c) => Box::new(FeishuBotChannel::new(c)?),
        ChannelConfig::FeishuApp(c) => Box::new(FeishuAppChannel::new(c)?),
        ChannelConfig::Webhook(c) => Box::new(WebhookChannel::new(c)?),
        ChannelConfig::WebPush(c) => Box::new(WebPushChannel::new(c)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAK: &str = "S3CRET-do-not-log";

    fn all_configs() -> Vec<serde_json::Value> {
        vec![
            serde_json::json!({"kind": "email", "host": "127.0.0.1", "security": "plain", "username": "u",
                "password": LEAK, "from": "a@b.example"}),
            serde_json::json!({"kind": "aliyun_sms", "access_key_id": "id", "access_key_secret": LEAK,
                "sign_name": "s", "security_token": LEAK}),
            serde_json::json!({"kind": "tencent_sms", "secret_id": "id", "secret_key": LEAK,
                "sms_sdk_app_id": "1400000000", "sign_name": "s"}),
            serde_json::json!({"kind": "wecom_app", "corp_id": "ww", "corp_secret": LEAK, "agent_id": 1}),
            serde_json::json!({"kind": "wecom_robot", "key": LEAK}),
            serde_json::json!({"kind": "dingtalk_robot", "access_token": LEAK, "secret": LEAK}),
            serde_json::json!({"kind": "dingtalk_work", "app_key": "k", "app_secret": LEAK, "agent_id": 1}),
            serde_json::json!({"kind": "feishu_bot", "hook_id": LEAK, "secret": LEAK}),
            serde_json::json!({"kind": "feishu_app", "app_id": "cli_x", "app_secret": LEAK}),
            serde_json::json!({"kind": "webhook", "url": "https://hooks.example/x", "secret": LEAK}),
            serde_json::json!({"kind": "web_push", "subject": "mailto:ops@school.example",
                "vapid_private_key": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"}),
        ]
    }

    #[tokio::test]
    async fn every_config_builds_and_never_debug_prints_secrets() {
        for json in all_configs() {
            let config: ChannelConfig =
                serde_json::from_value(json.clone()).expect("config parses");
            let dbg = format!("{config:?}");
            assert!(!dbg.contains(LEAK), "config Debug leaks a secret: {dbg}");
            // Serialisation keeps the real value (the caller encrypts it at rest).
            let back = serde_json::to_value(&config).expect("serialises");
            assert_eq!(back["kind"], json["kind"]);
            let channel = build_channel(config).expect("channel builds");
            assert!(channel.max_batch_size() >= 1);
            assert_eq!(
                serde_json::to_value(channel.kind()).expect("kind"),
                json["kind"]
            );
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = serde_json::json!({"kind": "webhook", "url": "not a url", "secret": "x"});
        let config: ChannelConfig = serde_json::from_value(bad).expect("parses");
        assert!(matches!(
            build_channel(config),
            Err(ChannelError::Config(_))
        ));
        let bad = serde_json::json!({"kind": "wecom_robot", "key": ""});
        let config: ChannelConfig = serde_json::from_value(bad).expect("parses");
        assert!(matches!(
            build_channel(config),
            Err(ChannelError::Config(_))
        ));
    }
}
