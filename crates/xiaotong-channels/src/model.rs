//! The adapter trait and the types that cross it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which provider an adapter talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// E-mail over SMTP.
    Email,
    /// Aliyun (Alibaba Cloud) SMS `SendSms`.
    AliyunSms,
    /// Tencent Cloud SMS `SendSms`.
    TencentSms,
    /// WeCom application message (`message/send`).
    WecomApp,
    /// WeCom group robot webhook.
    WecomRobot,
    /// DingTalk custom robot webhook.
    DingtalkRobot,
    /// DingTalk work notification (`asyncsend_v2`).
    DingtalkWork,
    /// Feishu / Lark custom bot webhook.
    FeishuBot,
    /// Feishu / Lark app bot message (`im/v1/messages`).
    FeishuApp,
    /// Generic signed JSON webhook.
    Webhook,
    /// Web Push (RFC 8030) to a browser subscription.
    WebPush,
}

/// Template reference for SMS providers, which only send pre-approved templates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SmsTemplate {
    /// Aliyun `TemplateCode` (`SMS_…`) or Tencent `TemplateId`.
    pub template_id: String,
    /// Template variables, in template order. Aliyun sends them as a JSON
    /// object (names matter), Tencent as an ordered list (only values matter).
    pub params: Vec<(String, String)>,
}

/// What to say. Each adapter picks the fields its provider can render.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Title / e-mail subject.
    pub subject: String,
    /// Plain-text body (always required; the fallback for every channel).
    pub text: String,
    /// HTML body (e-mail alternative part).
    #[serde(default)]
    pub html: Option<String>,
    /// Markdown body (WeCom, DingTalk robot markdown messages).
    #[serde(default)]
    pub markdown: Option<String>,
    /// A link to the full message (WeCom text card, webhook payload).
    #[serde(default)]
    pub url: Option<String>,
    /// SMS template reference (required by the SMS adapters).
    #[serde(default)]
    pub sms: Option<SmsTemplate>,
    /// Extra structured data (copied into the generic webhook payload).
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// One delivery: one recipient on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Our delivery id: stable across retries, used as the provider's
    /// dedupe key where the provider has one (see [`Idempotency`]).
    pub id: String,
    /// Channel address: e-mail address, phone number (E.164 or bare
    /// mainland number), WeCom userid… Group robots and webhooks post to the
    /// configured target and only echo it.
    pub to: String,
    /// The content.
    pub message: OutgoingMessage,
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Accepted by the provider.
    Sent {
        /// Provider id for the message (SMTP queue id, Aliyun BizId,
        /// Tencent SerialNo, WeCom msgid…), when the provider returns one.
        provider_message_id: Option<String>,
    },
    /// Not delivered.
    Failed {
        /// Whether trying again later may succeed.
        retryable: bool,
        /// Provider error code (or a local code such as `transport`).
        code: String,
        /// Provider error message, for the sender's delivery view.
        message: String,
    },
    /// Rate limited: try again after the given delay.
    RetryAfter {
        /// How long to wait.
        #[serde(with = "duration_secs")]
        after: Duration,
        /// Provider code that caused it (`429`, `45009`…).
        code: String,
        /// Provider message.
        message: String,
    },
    /// The provider does not know this recipient (invalid user id, phone
    /// number or mailbox). Retrying will not help; a fallback channel may.
    UnknownRecipient {
        /// Provider error code.
        code: String,
        /// Provider message.
        message: String,
    },
}

impl DeliveryOutcome {
    /// True for [`DeliveryOutcome::Sent`].
    pub fn is_sent(&self) -> bool {
        matches!(self, DeliveryOutcome::Sent { .. })
    }

    /// True when a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryOutcome::Failed { retryable, .. } => *retryable,
            DeliveryOutcome::RetryAfter { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn failed(
        retryable: bool,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DeliveryOutcome::Failed {
            retryable,
            code: code.into(),
            message: message.into(),
        }
    }

    pub(crate) fn retry_after(
        after: Duration,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DeliveryOutcome::RetryAfter {
            after,
            code: code.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unknown_recipient(code: impl Into<String>, message: impl Into<String>) -> Self {
        DeliveryOutcome::UnknownRecipient {
            code: code.into(),
            message: message.into(),
        }
    }
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// The outcome of one delivery of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// [`Delivery::id`] of the delivery this reports on.
    pub delivery_id: String,
    /// What happened.
    pub outcome: DeliveryOutcome,
}

/// How a provider protects against a retry sending twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Idempotency {
    /// None: a retry after a lost answer may deliver twice.
    None,
    /// The adapter passes [`Delivery::id`] to the provider or receiver as a
    /// dedupe key (e-mail `Message-ID`, webhook `X-Xiaotong-Delivery`).
    DeliveryIdKey,
    /// The provider drops identical content to the same recipient within a
    /// window (WeCom `enable_duplicate_check`).
    ContentWindow {
        /// Window length in seconds.
        window_secs: u32,
    },
}

/// A provider's documented call-rate limit: at most `calls` provider calls
/// (one batch call counts once) per `per_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Calls allowed in the window.
    pub calls: u32,
    /// Window length in seconds.
    pub per_secs: u32,
}

/// One adapter per provider, all behind this trait.
///
/// `send` never fails as a whole: it returns exactly one report per input
/// delivery, in input order. Transport failures become retryable
/// [`DeliveryOutcome::Failed`] reports. Deliveries with identical content are
/// merged into one provider call where the provider allows several recipients
/// per call (SMS, WeCom); larger batches than [`Channel::max_batch_size`] are
/// split internally, but callers should hand over at most that many.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// The provider.
    fn kind(&self) -> ChannelKind;

    /// Recipients per provider call (SMTP: mails per connection burst).
    fn max_batch_size(&self) -> usize;

    /// What the provider does about duplicates.
    fn idempotency(&self) -> Idempotency;

    /// The provider's documented rate limit for this credential, if any;
    /// the worker should pace calls below it (exceeding it yields
    /// [`DeliveryOutcome::RetryAfter`] or, for some providers, silent drops).
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }

    /// Sends a batch; one report per delivery, in order.
    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport>;
}

/// Groups deliveries with identical content, keeping first-seen order.
/// Returns indices into `batch`.
pub(crate) fn group_by_message(batch: &[Delivery]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&OutgoingMessage, Vec<usize>)> = Vec::new();
    for (i, d) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(m, _)| **m == d.message) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((&d.message, vec![i])),
        }
    }
    groups.into_iter().map(|(_, idx)| idx).collect()
}

/// Fills a report vector from per-index outcomes.
pub(crate) fn reports(
    batch: &[Delivery],
    outcomes: Vec<Option<DeliveryOutcome>>,
) -> Vec<DeliveryReport> {
    batch
        .iter()
        .zip(outcomes)
        .map(|(d, o)| DeliveryReport {
            delivery_id: d.id.clone(),
            outcome: o.unwrap_or_else(|| {
                DeliveryOutcome::failed(true, "internal", "no outcome recorded")
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str, text: &str) -> Delivery {
        Delivery {
            id: id.into(),
            to: id.into(),
            message: OutgoingMessage {
                text: text.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn grouping_keeps_order() {
        let b = vec![d("1", "a"), d("2", "b"), d("3", "a")];
        assert_eq!(group_by_message(&b), vec![vec![0, 2], vec![1]]);
    }

    #[test]
    fn outcome_serialises_with_status_tag() {
        let o = DeliveryOutcome::retry_after(Duration::from_secs(30), "429", "slow down");
        let v = serde_json::to_value(&o).expect("json");
        assert_eq!(v["status"], "retry_after");
        assert_eq!(v["after"], 30);
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// `subject` and `text` as one plain text: the subject on its own line.
pub(crate) fn plain_text(m: &OutgoingMessage) -> String {
    if m.subject.is_empty() {
        m.text.clone()
    } else if m.text.is_empty() {
        m.subject.clone()
    } else {
        format!("{}\n\n{}", m.subject, m.text)
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_bytes("校通", 4), "校");
        assert_eq!(truncate_bytes("abc", 10), "abc");
    }
}
