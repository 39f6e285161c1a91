// Types of the message-center API (see /api/openapi.json, tags messages,
// templates, channels and inbox).

export type Priority = 'low' | 'normal' | 'high' | 'urgent'
export const PRIORITIES: Priority[] = ['low', 'normal', 'high', 'urgent']

export const CHANNELS = ['inapp', 'email', 'sms', 'wecom', 'dingtalk', 'feishu', 'webhook'] as const
export type ChannelName = (typeof CHANNELS)[number]
/** Channels with an outside provider (everything but the inbox). */
export const OUTSIDE_CHANNELS = CHANNELS.filter((c) => c !== 'inapp')

export type MessageState = 'draft' | 'scheduled' | 'published' | 'withdrawn' | 'expired'
export const MESSAGE_STATES: MessageState[] = ['draft', 'scheduled', 'published', 'withdrawn', 'expired']

export type RuleType = 'all' | 'kind' | 'person' | 'role' | 'department' | 'class' | 'grade' | 'tag'
export const RULE_TYPES: RuleType[] = ['class', 'grade', 'department', 'role', 'kind', 'tag', 'person', 'all']
export type Who = 'self' | 'parents' | 'both'
export const WHOS: Who[] = ['self', 'parents', 'both']

export interface Content {
  title: string
  body: string
  sms_text?: string | null
  sms_template_id?: string | null
  email_html?: string | null
  email_text?: string | null
  im_markdown?: string | null
}

export interface AudienceRule {
  type: RuleType
  value?: number | number[] | string | null
  who?: Who | null
}

export interface Audience {
  include: AudienceRule[]
  exclude: AudienceRule[]
}

export interface AttachmentInfo {
  id: number
  filename: string
  content_type: string
  size: number
}

export interface Message {
  id: number
  kind: string
  title: string
  content: Content
  vars: Record<string, unknown>
  template_id: number | null
  template_version: number | null
  priority: Priority
  state: MessageState | string
  channels: string[]
  audience: Audience
  require_confirm: boolean
  sender_id: number | null
  sender_name: string | null
  source: string
  publish_at: string | null
  expires_at: string | null
  published_at: string | null
  withdrawn_at: string | null
  recipient_count: number
  read_count: number | null
  attachments: AttachmentInfo[]
  created_at: string
  updated_at: string
}

export interface MessageInput {
  kind?: string
  template_id?: number | null
  content?: Content
  vars?: Record<string, unknown>
  priority?: Priority
  channels?: string[]
  audience?: Audience
  require_confirm?: boolean
  publish_at?: string | null
  expires_at?: string | null
  attachment_ids?: number[]
}

export interface NameRef {
  id: number
  name: string
}

export interface AudienceCount {
  count: number
  sample: NameRef[]
}

export interface ChannelStateCount {
  channel: string
  state: string
  count: number
}

export interface DeliveryFailure {
  person_id: number
  person_name: string | null
  channel: string
  state: string
  attempts: number
  code: string | null
  error: string | null
}

export interface DeliveryReport {
  message_id: number
  recipients: number
  inbox: number
  read: number
  confirmed: number
  read_rate: number
  by_channel: ChannelStateCount[]
  failures: DeliveryFailure[]
}

export interface RecipientRow {
  person_id: number
  name: string
  kind: string
  class: string | null
  via: string | null
  read_at: string | null
  confirmed_at: string | null
  channels: Record<string, string>
}

export interface TimelineEvent {
  at: string
  message_id: number
  title: string
  /** inbox, read, confirmed, or `<channel>:<state>`. */
  event: string
  detail: string | null
}

export interface InboxItem {
  id: number
  message_id: number
  kind: string
  title: string
  body_html: string
  priority: Priority
  sender_name: string | null
  state: string
  require_confirm: boolean
  published_at: string | null
  read_at: string | null
  confirmed_at: string | null
  attachments: AttachmentInfo[]
}

export interface MessageKind {
  code: string
  name: string
  builtin: boolean
}

export interface TemplateInput {
  code: string
  name: string
  kind?: string
  content: Content
  variables: string[]
}

export interface Template {
  id: number
  code: string
  name: string
  kind: string
  version: number
  content: Content
  variables: string[]
  updated_at: string
}

export interface TemplateVersion {
  version: number
  content: Content
  variables: string[]
  created_at: string
}

export interface Rendered {
  title: string
  body_html: string
  text: string
  sms_text: string | null
  email_html: string
  im_markdown: string
}

export interface ChannelSetting {
  channel: string
  provider: string
  enabled: boolean
  rate_per_sec: number
  config: Record<string, unknown>
  updated_at: string
}

export interface TestSendResult {
  ok: boolean
  outcome: unknown
}

export interface MessagingSettings {
  quiet_start: string | null
  quiet_end: string | null
  fallbacks: Record<string, string>
  urgent_sms: boolean
  max_attachment_bytes: number
}

export interface Preferences {
  channels: Record<string, string[]>
  quiet_start: string | null
  quiet_end: string | null
}

/** Providers per channel, and the fields each provider's configuration takes. */
export const PROVIDERS: Record<string, string[]> = {
  email: ['email'],
  sms: ['aliyun_sms', 'tencent_sms'],
  wecom: ['wecom_app', 'wecom_robot'],
  dingtalk: ['dingtalk_work', 'dingtalk_robot'],
  feishu: ['feishu_app', 'feishu_bot'],
  webhook: ['webhook'],
}

export interface ProviderField {
  key: string
  type: 'text' | 'secret' | 'number' | 'bool' | 'select'
  required?: boolean
  options?: string[]
}

export const PROVIDER_FIELDS: Record<string, ProviderField[]> = {
  email: [
    { key: 'host', type: 'text', required: true },
    { key: 'port', type: 'number' },
    { key: 'security', type: 'select', options: ['start_tls', 'tls', 'plain'] },
    { key: 'username', type: 'text' },
    { key: 'password', type: 'secret' },
    { key: 'from', type: 'text', required: true },
    { key: 'reply_to', type: 'text' },
  ],
  aliyun_sms: [
    { key: 'access_key_id', type: 'text', required: true },
    { key: 'access_key_secret', type: 'secret', required: true },
    { key: 'sign_name', type: 'text', required: true },
    { key: 'endpoint', type: 'text' },
    { key: 'region_id', type: 'text' },
  ],
  tencent_sms: [
    { key: 'secret_id', type: 'text', required: true },
    { key: 'secret_key', type: 'secret', required: true },
    { key: 'sms_sdk_app_id', type: 'text', required: true },
    { key: 'sign_name', type: 'text', required: true },
    { key: 'region', type: 'text' },
    { key: 'endpoint', type: 'text' },
  ],
  wecom_app: [
    { key: 'corp_id', type: 'text', required: true },
    { key: 'corp_secret', type: 'secret', required: true },
    { key: 'agent_id', type: 'number', required: true },
    { key: 'base_url', type: 'text' },
  ],
  wecom_robot: [
    { key: 'key', type: 'secret', required: true },
    { key: 'base_url', type: 'text' },
  ],
  dingtalk_work: [
    { key: 'app_key', type: 'text', required: true },
    { key: 'app_secret', type: 'secret', required: true },
    { key: 'agent_id', type: 'number', required: true },
    { key: 'base_url', type: 'text' },
  ],
  dingtalk_robot: [
    { key: 'access_token', type: 'secret', required: true },
    { key: 'secret', type: 'secret' },
    { key: 'at_all', type: 'bool' },
    { key: 'base_url', type: 'text' },
  ],
  feishu_app: [
    { key: 'app_id', type: 'text', required: true },
    { key: 'app_secret', type: 'secret', required: true },
    { key: 'base_url', type: 'text' },
  ],
  feishu_bot: [
    { key: 'hook_id', type: 'secret', required: true },
    { key: 'secret', type: 'secret' },
    { key: 'base_url', type: 'text' },
  ],
  webhook: [
    { key: 'url', type: 'text', required: true },
    { key: 'secret', type: 'secret', required: true },
  ],
}

/** Providers that post to a group (no per-person address for a test send). */
export const GROUP_PROVIDERS = ['wecom_robot', 'dingtalk_robot', 'feishu_bot', 'webhook']
