//! E-mail over SMTP with lettre: pooled connections, plain / STARTTLS /
//! implicit TLS, HTML + plain-text alternatives.

use crate::error::{ChannelError, Result};
use crate::model::{Channel, ChannelKind, Delivery, DeliveryOutcome, DeliveryReport, Idempotency};
use crate::secret::Secret;
use futures_util::stream::{self, StreamExt};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// No TLS (local relays and tests only). Default port 25.
    Plain,
    /// Plain connection upgraded with STARTTLS, which is required. Default port 587.
    #[default]
    StartTls,
    /// Implicit TLS ("SMTPS"). Default port 465.
    Tls,
}

/// SMTP adapter configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmtpConfig {
    /// Server host name (also the TLS server name).
    pub host: String,
    /// Port; defaults to 25 / 587 / 465 by [`SmtpSecurity`].
    #[serde(default)]
    pub port: Option<u16>,
    /// Connection security.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// AUTH user name (no AUTH when absent).
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Sender, e.g. `校通 <noreply@school.example>`.
    pub from: String,
    /// Optional Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Maximum open connections, which is also the number of mails in
    /// flight at once; connections are reused for mail after mail.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Seconds an idle pooled connection is kept.
    #[serde(default = "default_idle_secs")]
    pub idle_timeout_secs: u64,
    /// Per-command timeout in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Accept invalid TLS certificates (self-signed test relays only).
    #[serde(default)]
    pub accept_invalid_certs: bool,
    /// EHLO name; defaults to the local host name.
    #[serde(default)]
    pub hello_name: Option<String>,
    /// Domain used in `Message-ID: <delivery-id@domain>`; defaults to the
    /// sender's domain.
    #[serde(default)]
    pub message_id_domain: Option<String>,
}

fn default_pool_size() -> u32 {
    4
}
fn default_idle_secs() -> u64 {
    60
}
fn default_timeout_secs() -> u64 {
    30
}

/// Connections idle for longer than this are probed with NOOP before reuse,
/// so that a restarted or vanished server costs no delivery attempt. Within
/// a busy batch connections are reused within milliseconds and never probed.
const PROBE_AFTER: Duration = Duration::from_secs(1);

struct IdleConnection {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// E-mail adapter. Keep one per SMTP configuration: it owns a pool of at
/// most `pool_size` open SMTP connections, reused across mails and batches
/// (each connection carries one mail transaction after another).
pub struct SmtpChannel {
    host: String,
    port: u16,
    security: SmtpSecurity,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello_name: ClientId,
    timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Vec<IdleConnection>>,
    permits: Semaphore,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    message_id_domain: String,
    parallelism: usize,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.to_string())
            .field("pool_size", &self.parallelism)
            .finish_non_exhaustive()
    }
}

impl SmtpChannel {
    /// Builds the adapter (no connection is opened until the first send).
    pub fn new(config: SmtpConfig) -> Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| ChannelError::Config(format!("smtp from {:?}: {e}", config.from)))?;
        let reply_to = match &config.reply_to {
            Some(r) => Some(
                r.parse::<Mailbox>()
                    .map_err(|e| ChannelError::Config(format!("smtp reply_to {r:?}: {e}")))?,
            ),
            None => None,
        };
        let (tls, default_port) = match config.security {
            SmtpSecurity::Plain => (None, 25),
            SmtpSecurity::StartTls | SmtpSecurity::Tls => {
                let params = TlsParameters::builder(config.host.clone())
                    .dangerous_accept_invalid_certs(config.accept_invalid_certs)
                    .build_rustls()
                    .map_err(|e| ChannelError::Config(format!("smtp tls: {e}")))?;
                let port = if config.security == SmtpSecurity::Tls {
                    465
                } else {
                    587
                };
                (Some(params), port)
            }
        };
        let pool_size = config.pool_size.clamp(1, 64) as usize;
        let credentials = config.username.as_ref().map(|user| {
            let pass = config
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            Credentials::new(user.clone(), pass)
        });
        let message_id_domain = config
            .message_id_domain
            .clone()
            .unwrap_or_else(|| from.email.domain().to_owned());
        Ok(Self {
            host: config.host.clone(),
            port: config.port.unwrap_or(default_port),
            security: config.security,
            tls,
            credentials,
            hello_name: config
                .hello_name
                .clone()
                .map(ClientId::Domain)
                .unwrap_or_default(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(pool_size),
            from,
            reply_to,
            message_id_domain,
            parallelism: pool_size,
        })
    }

    /// Opens, secures and authenticates a new connection.
    async fn connect(&self) -> std::result::Result<AsyncSmtpConnection, DeliveryOutcome> {
        let mut conn = match (self.security, &self.tls) {
            (SmtpSecurity::Tls, Some(params)) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello_name,
                Some(params.clone()),
                None,
            )
            .await
            .map_err(|e| map_smtp_error(&e))?,
            _ => {
                // Our own socket so that Nagle's algorithm can be switched
                // off: lettre writes a mail in several small writes, and with
                // Nagle + delayed ACKs every mail would stall ~40 ms.
                let connecting = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
                let stream = match tokio::time::timeout(self.timeout, connecting).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return Err(DeliveryOutcome::failed(true, "connect", e.to_string()))
                    }
                    Err(_) => {
                        return Err(DeliveryOutcome::failed(
                            true,
                            "timeout",
                            "smtp connect timed out",
                        ))
                    }
                };
                let _ = stream.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello_name)
                    .await
                    .map_err(|e| map_smtp_error(&e))?
            }
        };
        if let (SmtpSecurity::StartTls, Some(params)) = (self.security, &self.tls) {
            conn.starttls(params.clone(), &self.hello_name)
                .await
                .map_err(|e| map_smtp_error(&e))?;
        }
        if let Some(creds) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, creds)
                .await
                .map_err(|e| map_smtp_error(&e))?;
        }
        Ok(conn)
    }

    /// Takes a usable idle connection, dropping expired ones.
    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let entry = self.pop_idle()?;
            let age = entry.since.elapsed();
            if age > self.idle_timeout {
                let mut conn = entry.conn;
                conn.abort().await;
                continue;
            }
            let mut conn = entry.conn;
            if age > PROBE_AFTER && !conn.test_connected().await {
                continue;
            }
            return Some(conn);
        }
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let entry = IdleConnection {
            conn,
            since: Instant::now(),
        };
        match self.idle.lock() {
            Ok(mut idle) => idle.push(entry),
            Err(poisoned) => poisoned.into_inner().push(entry),
        }
    }

    /// Number of open idle connections (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        match self.idle.lock() {
            Ok(idle) => idle.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    fn pop_idle(&self) -> Option<IdleConnection> {
        match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        }
    }

    /// Sends QUIT on every idle connection and closes them.
    pub async fn close(&self) {
        while let Some(mut entry) = self.pop_idle() {
            let _ = entry.conn.quit().await;
        }
    }

    /// Builds the MIME message for one delivery.
    pub fn build_message(&self, delivery: &Delivery) -> Result<Message> {
        let to: Mailbox = delivery
            .to
            .parse()
            .map_err(|e| ChannelError::Email(format!("recipient {:?}: {e}", delivery.to)))?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(delivery.message.subject.clone())
            .message_id(Some(self.message_id(delivery)));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        let msg = &delivery.message;
        let built = match &msg.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                msg.text.clone(),
                html.clone(),
            )),
            None => b.header(ContentType::TEXT_PLAIN).body(msg.text.clone()),
        };
        built.map_err(|e| ChannelError::Email(e.to_string()))
    }

    fn message_id(&self, delivery: &Delivery) -> String {
        let id: String = delivery
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("<{id}@{}>", self.message_id_domain)
    }

    async fn report(&self, d: &Delivery) -> DeliveryReport {
        DeliveryReport {
            delivery_id: d.id.clone(),
            outcome: self.send_one(d).await,
        }
    }

    async fn send_one(&self, delivery: &Delivery) -> DeliveryOutcome {
        let message = match self.build_message(delivery) {
            Ok(m) => m,
            Err(e) => return DeliveryOutcome::unknown_recipient("invalid_address", e.to_string()),
        };
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        // At most `pool_size` connections are in use at once; a connection
        // is only opened when no idle one is left, so at most `pool_size`
        // are ever open.
        let Ok(_permit) = self.permits.acquire().await else {
            return DeliveryOutcome::failed(true, "closed", "smtp channel closed");
        };
        let mut conn = match self.take_idle().await {
            Some(c) => c,
            None => match self.connect().await {
                Ok(c) => c,
                Err(o) => return o,
            },
        };
        let result = match tokio::time::timeout(self.timeout, conn.send(&envelope, &bytes)).await {
            Ok(r) => r,
            // The connection is in an unknown state: drop it.
            Err(_) => {
                return DeliveryOutcome::failed(true, "timeout", "smtp transaction timed out")
            }
        };
        // lettre aborts the connection on any error; only healthy ones return.
        self.park(conn);
        match result {
            Ok(_) => DeliveryOutcome::Sent {
                provider_message_id: Some(self.message_id(delivery)),
            },
            Err(e) => map_smtp_error(&e),
        }
    }
}

fn map_smtp_error(e: &lettre::transport::smtp::Error) -> DeliveryOutcome {
    let code = e.status().map(|c| c.to_string());
    let msg = e.to_string();
    match code {
        Some(code) if e.is_permanent() => {
            // 550 mailbox unavailable, 551 user not local, 553 mailbox name not allowed
            if matches!(code.as_str(), "550" | "551" | "553") {
                DeliveryOutcome::unknown_recipient(code, msg)
            } else {
                DeliveryOutcome::failed(false, code, msg)
            }
        }
        Some(code) => DeliveryOutcome::failed(true, code, msg),
        // Local problems (no usable AUTH mechanism, non-ASCII address without
        // SMTPUTF8…) will not go away by retrying.
        None if e.is_client() => DeliveryOutcome::failed(false, "client", msg),
        None if e.is_timeout() => DeliveryOutcome::failed(true, "timeout", msg),
        None if e.is_tls() => DeliveryOutcome::failed(true, "tls", msg),
        None => DeliveryOutcome::failed(true, "transport", msg),
    }
}

#[async_trait::async_trait]
impl Channel for SmtpChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn max_batch_size(&self) -> usize {
        500
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::DeliveryIdKey
    }

    async fn send(&self, batch: &[Delivery]) -> Vec<DeliveryReport> {
        let futures: Vec<_> = batch.iter().map(|d| self.report(d)).collect();
        stream::iter(futures)
            .buffered(self.parallelism)
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutgoingMessage;

    fn config() -> SmtpConfig {
        serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1", "port": 2525, "security": "plain",
            "username": "u", "password": "p4ss", "from": "校通 <noreply@school.example>"
        }))
        .expect("config")
    }

    #[test]
    fn debug_hides_password() {
        let c = config();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p4ss"), "{dbg}");
    }

    #[tokio::test]
    async fn builds_alternative_message_with_message_id() {
        let ch = SmtpChannel::new(config()).expect("channel");
        let d = Delivery {
            id: "dl 1".into(),
            to: "张三 <zs@example.org>".into(),
            message: OutgoingMessage {
                subject: "考试安排".into(),
                text: "plain".into(),
                html: Some("<p>html</p>".into()),
                ..Default::default()
            },
        };
        let raw =
            String::from_utf8(ch.build_message(&d).expect("message").formatted()).expect("utf8");
        assert!(raw.contains("Message-ID: <dl_1@school.example>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        let bad = Delivery {
            to: "not an address".into(),
            ..d
        };
        assert!(matches!(
            ch.send_one(&bad).await,
            DeliveryOutcome::UnknownRecipient { .. }
        ));
    }

    #[test]
    fn bad_from_is_config_error() {
        let mut c = config();
        c.from = "nope".into();
        assert!(matches!(SmtpChannel::new(c), Err(ChannelError::Config(_))));
    }
}
