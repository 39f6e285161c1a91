//! Generic JSON webhook signed with HMAC-SHA256 over `timestamp "." body`.
//! The receiver side is documented in `docs/webhooks.md`.

use crate::error::{ChannelError, Result};
use crate::http::{self, HttpOptions};
use crate::model::{Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency};
use crate::secret::Secret;
use crate::sign;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

/// Header with our delivery id (stable across retries: dedupe on it).
pub const HEADER_DELIVERY: &str = "X-Xiaotong-Delivery";
/// Header with the Unix time (seconds) used in the signature.
pub const HEADER_TIMESTAMP: &str = "X-Xiaotong-Timestamp";
/// Header with `v1=<hex HMAC-SHA256>`.
pub const HEADER_SIGNATURE: &str = "X-Xiaotong-Signature";

/// Webhook configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// Receiver URL.
    pub url: String,
    /// Shared signing secret.
    pub secret: Secret,
    /// Requests in flight at once.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// HTTP timeouts.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_parallelism() -> usize {
    4
}

/// Generic webhook adapter: one POST per delivery.
#[derive(Debug)]
pub struct WebhookChannel {
    config: WebhookConfig,
    client: reqwest::Client,
}

impl WebhookChannel {
    /// Builds the adapter.
    pub fn new(config: WebhookConfig) -> Result<Self> {
        http::base_url(&config.url, "webhook url")?;
        if config.secret.is_empty() {
            return Err(ChannelError::Config("webhook secret is required".into()));
        }
        let client = http::client(&config.http)?;
        Ok(Self { config, client })
    }

    /// The JSON body posted for a delivery (documented in `docs/webhooks.md`).
    pub fn payload(
        delivery: &Delivery,
        created_at: chrono::DateTime<chrono::Utc>,
    ) -> serde_json::Value {
        let m = &delivery.message;
        serde_json::json!({
            "id": delivery.id,
            "type": "message.delivery",
            "created_at": created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "recipient": delivery.to,
            "message": {
                "subject": m.subject,
                "text": m.text,
                "html": m.html,
                "markdown": m.markdown,
                "url": m.url,
                "data": m.data,
            },
        })
    }

    async fn report(&self, d: &Delivery) -> DeliveryReport {
        DeliveryReport {
            delivery_id: d.id.clone(),
            outcome: self.post(d).await,
        }
    }

    async fn post(&self, d: &Delivery) -> DeliveryOutcome {
        let now = chrono::Utc::now();
        let body = match serde_json::to_vec(&Self::payload(d, now)) {
            Ok(b) => b,
            Err(e) => return DeliveryOutcome::failed(false, "invalid_message", e.to_string()),
        };
        let ts = now.timestamp();
        let signature = sign::webhook_signature(self.config.secret.expose(), ts, &body);
        let req = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header(HEADER_DELIVERY, d.id.as_str())
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body);
        match http::execute(req).await {
            Ok((status, _, _)) if status.is_success() => DeliveryOutcome::Sent {
                provider_message_id: None,
            },
            Ok((status, headers, text)) => http::status_outcome(status, &headers, &text),
            Err(o) => o,
        }
    }
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn max_batch_size(&self) -> usize {
        100
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::DeliveryIdKey
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let futures: Vec<_> = batch.iter().map(|d| self.report(d)).collect();
        stream::iter(futures)
            .buffered(self.config.parallelism.max(1))
            .collect()
            .await
    }
}
