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
//! | generic signed webhook | [`WebhookConfig`] | [`WebhookChannel::new`] |
//!
//! [`ChannelConfig`] is the tagged union of all configs, and
//! [`build_channel`] turns one into a `Box<dyn Channel>`.

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
mod wecom;

pub use aliyun::{AliyunSignatureVersion, AliyunSmsChannel, AliyunSmsConfig};
pub use dingtalk::{
    DingtalkRobotChannel, DingtalkRobotConfig, DingtalkWorkChannel, DingtalkWorkConfig,
};
pub use email::{SmtpChannel, SmtpConfig, SmtpSecurity};
pub use error::{ChannelError, Result};
pub use feishu::{FeishuBotChannel, FeishuBotConfig};
pub use http::HttpOptions;
pub use model::{
    Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency, OutgoingMessage,
    SmsTemplate,
};
pub use secret::Secret;
pub use tencent::{TencentSmsChannel, TencentSmsConfig};
pub use webhook::{WebhookChannel, WebhookConfig};
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
    /// Generic signed webhook.
    Webhook(WebhookConfig),
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
        ChannelConfig::Webhook(c) => Box::new(WebhookChannel::new(c)?),
    })
}
