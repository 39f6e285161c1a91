//! Message-center types.

use serde::{Deserialize, Serialize};

/// Built-in message types; tenants may add their own.
pub const BUILTIN_KINDS: &[(&str, &str)] = &[
    ("announcement", "公告 / Announcement"),
    ("notice", "通知 / Notice"),
    ("exam", "考试安排 / Exam schedule"),
    ("system", "系统消息 / System"),
];

/// Channels a message can go out on. `inapp` is the inbox; the rest are
/// outside providers configured per tenant.
pub const CHANNELS: &[&str] = &[
    "inapp", "email", "sms", "wecom", "dingtalk", "feishu", "webhook",
];

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    /// Ignores quiet hours and may add SMS.
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
    pub fn parse(s: &str) -> Priority {
        match s {
            "low" => Priority::Low,
            "high" => Priority::High,
            "urgent" => Priority::Urgent,
            _ => Priority::Normal,
        }
    }
}

/// Template sources: title and Markdown body, plus optional per-channel variants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    pub title: String,
    /// Markdown; rendered to sanitized HTML for the inbox and e-mail.
    pub body: String,
    /// Plain text for SMS (and the SMS template parameter `content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_text: Option<String>,
    /// The provider's approved SMS template id (Aliyun `SMS_…`, Tencent id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_template_id: Option<String>,
    /// E-mail HTML body; the Markdown body rendered when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_html: Option<String>,
    /// E-mail plain-text body; the Markdown source when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_text: Option<String>,
    /// Markdown for WeCom, DingTalk and Feishu; the body when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub im_markdown: Option<String>,
}

/// One rule of an audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceRule {
    /// `all`, `kind` (value: student, teacher, staff, parent…), `person`,
    /// `role` (value: role key), `department` (with its sub-departments),
    /// `class`, `grade`, `tag`.
    #[serde(rename = "type")]
    pub rule_type: String,
    /// Id for person/department/class/grade/tag; key for role; kind for kind.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// `self` (default): the people matched; `parents`: their parents;
    /// `both`.
    #[serde(default)]
    pub who: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default)]
    pub include: Vec<AudienceRule>,
    #[serde(default)]
    pub exclude: Vec<AudienceRule>,
}

/// A message to write or change (drafts only).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    #[serde(default)]
    pub kind: Option<String>,
    /// Write from a template (its current version) instead of `content`.
    #[serde(default)]
    pub template_id: Option<i64>,
    #[serde(default)]
    pub content: Option<Content>,
    /// Caller variables for the template.
    #[serde(default)]
    pub vars: Option<serde_json::Value>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub audience: Option<Audience>,
    #[serde(default)]
    pub require_confirm: Option<bool>,
    /// RFC 3339; in the future makes the message scheduled.
    #[serde(default)]
    pub publish_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Attachment ids uploaded before.
    #[serde(default)]
    pub attachment_ids: Option<Vec<i64>>,
    /// Publish even when the audience resolves to nobody.
    #[serde(default)]
    pub allow_empty: Option<bool>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttachmentInfo {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub content: Content,
    pub vars: serde_json::Value,
    pub template_id: Option<i64>,
    pub template_version: Option<i64>,
    pub priority: Priority,
    /// draft, scheduled, published, withdrawn, expired.
    pub state: String,
    pub channels: Vec<String>,
    pub audience: Audience,
    pub require_confirm: bool,
    pub sender_id: Option<i64>,
    pub sender_name: Option<String>,
    pub source: String,
    pub publish_at: Option<String>,
    pub expires_at: Option<String>,
    pub published_at: Option<String>,
    pub withdrawn_at: Option<String>,
    pub recipient_count: i64,
    pub read_count: Option<i64>,
    pub attachments: Vec<AttachmentInfo>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    pub kind: Option<String>,
    pub state: Option<String>,
    pub sender_id: Option<i64>,
    /// Text in the title.
    pub q: Option<String>,
    /// Created on or after this date (YYYY-MM-DD, the configured time zone).
    pub from: Option<String>,
    /// Created on or before this date.
    pub to: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AudienceCount {
    pub count: i64,
    /// Up to 20 of them, for a glance.
    pub sample: Vec<crate::directory::model::NameRef>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelStateCount {
    pub channel: String,
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryFailure {
    pub person_id: i64,
    pub person_name: Option<String>,
    pub channel: String,
    pub state: String,
    pub attempts: i64,
    pub code: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryReportView {
    pub message_id: i64,
    pub recipients: i64,
    pub inbox: i64,
    pub read: i64,
    pub confirmed: i64,
    /// Read entries over inbox entries, 0..=1.
    pub read_rate: f64,
    pub by_channel: Vec<ChannelStateCount>,
    /// The first 200 failures.
    pub failures: Vec<DeliveryFailure>,
    /// How many failures there are in all.
    pub failures_total: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientRow {
    pub person_id: i64,
    pub name: String,
    pub kind: String,
    pub class: Option<String>,
    pub via: Option<String>,
    pub read_at: Option<String>,
    pub confirmed_at: Option<String>,
    /// channel → state
    pub channels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecipientQuery {
    /// `read`, `unread`, `failed`.
    pub filter: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    pub at: String,
    pub message_id: i64,
    pub title: String,
    /// inbox, read, confirmed, or `<channel>:<state>`.
    pub event: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResendResult {
    /// Deliveries put back in the queue.
    pub deliveries: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// `unread` or `failed`.
    pub to: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    pub id: i64,
    pub message_id: i64,
    pub kind: String,
    pub title: String,
    /// Sanitized HTML.
    pub body_html: String,
    pub priority: Priority,
    pub sender_name: Option<String>,
    /// published, withdrawn, expired.
    pub state: String,
    pub require_confirm: bool,
    pub published_at: Option<String>,
    pub read_at: Option<String>,
    pub confirmed_at: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    pub unread: Option<bool>,
    /// Only the entry of this message (for links to one message).
    pub message_id: Option<i64>,
    pub kind: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub kind: Option<String>,
    pub content: Content,
    /// Names of the caller variables this template uses (besides
    /// `recipient`, `student`, `sender`, `school`, `message`).
    #[serde(default)]
    pub variables: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Template {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub version: i64,
    pub content: Content,
    pub variables: Vec<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TemplateVersionInfo {
    pub version: i64,
    pub content: Content,
    pub variables: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Sources to preview (unsaved edits); the stored template when absent.
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub template_id: Option<i64>,
    /// The recipient to render for.
    pub person_id: i64,
    #[serde(default)]
    pub vars: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub title: String,
    pub body_html: String,
    pub text: String,
    pub sms_text: Option<String>,
    pub email_html: String,
    pub im_markdown: String,
}

/// Channel settings as shown (credentials masked).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelSetting {
    pub channel: String,
    pub provider: String,
    pub enabled: bool,
    pub rate_per_sec: i64,
    /// The configuration with secrets replaced by `••••`.
    pub config: serde_json::Value,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettingInput {
    /// Provider configuration, tagged by `kind` (email, aliyun_sms,
    /// tencent_sms, wecom_app, wecom_robot, dingtalk_robot, dingtalk_work,
    /// feishu_bot, feishu_app, webhook). Secret fields left as `••••` keep
    /// their stored value.
    pub config: serde_json::Value,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub rate_per_sec: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendRequest {
    /// Address to send to (e-mail, phone, user id); ignored by group robots.
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestSendResult {
    pub ok: bool,
    /// What the provider said.
    pub outcome: serde_json::Value,
}

/// Tenant-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagingSettings {
    /// Quiet hours, `HH:MM` in the configured time zone; non-urgent
    /// messages to outside channels wait until they end.
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
    /// Per-recipient fallback: when the recipient has no account on the
    /// key channel, send on the value channel instead.
    pub fallbacks: std::collections::BTreeMap<String, String>,
    /// Urgent messages also go by SMS.
    pub urgent_sms: bool,
    /// Largest attachment in bytes.
    pub max_attachment_bytes: i64,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        MessagingSettings {
            quiet_start: Some("22:00".into()),
            quiet_end: Some("07:00".into()),
            fallbacks: [
                ("wecom".to_string(), "sms".to_string()),
                ("dingtalk".to_string(), "sms".to_string()),
                ("feishu".to_string(), "sms".to_string()),
            ]
            .into_iter()
            .collect(),
            urgent_sms: true,
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }
}

/// A person's preferences.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Message type → channels wanted (outside channels; the inbox always gets it).
    pub channels: std::collections::BTreeMap<String, Vec<String>>,
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageKind {
    pub code: String,
    pub name: String,
    pub builtin: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageKind {
    pub code: String,
    pub name: String,
}
