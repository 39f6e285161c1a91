//! The delivery pipeline. Publishing writes the message, its frozen
//! recipient list and fan-out jobs in one transaction. Fan-out jobs write
//! inbox entries and one delivery per recipient and outside channel, and
//! enqueue send jobs, all in their own transaction (so a crash repeats a
//! chunk, and unique keys make the repeat harmless). Send jobs hand batches
//! to the provider adapters and record each outcome, scheduling retries per
//! delivery with backoff or the provider's Retry-After.

use super::audience::Recipient;
use super::model::*;
use super::store::{self, Contact, NewDelivery};
use super::template::{Compiled, Context};
use crate::app::App;
use crate::db::now_ms;
use crate::jobs::{self, Job, NewJob, Registry};
use anyhow::Context as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xiaotong_channels::{
    Channel, ChannelConfig, Delivery, DeliveryOutcome, OutgoingMessage, SmsTemplate,
};

pub const JOB_PUBLISH: &str = "messaging.publish";
pub const JOB_FANOUT: &str = "messaging.fanout";
pub const JOB_SEND: &str = "messaging.send";

/// Recipients per fan-out job: 20,000 make 8 jobs, all claimed in one round
/// by the runner's 16 workers.
pub const FANOUT_CHUNK: usize = 2500;
/// Attempts per delivery before it is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 12;

/// Providers that post one copy per message to a group, not one per person.
pub fn is_group_provider(provider: &str) -> bool {
    matches!(
        provider,
        "wecom_robot" | "dingtalk_robot" | "feishu_bot" | "webhook"
    )
}

/// Which providers may serve a channel.
pub fn providers_of(channel: &str) -> &'static [&'static str] {
    match channel {
        "email" => &["email"],
        "sms" => &["aliyun_sms", "tencent_sms"],
        "wecom" => &["wecom_app", "wecom_robot"],
        "dingtalk" => &["dingtalk_work", "dingtalk_robot"],
        "feishu" => &["feishu_app", "feishu_bot"],
        "webhook" => &["webhook"],
        _ => &[],
    }
}

/// Send batch size per provider: what one job hands to one provider call
/// (WeCom takes 1,000 users a call; SMTP reuses pooled connections).
fn batch_size(provider: &str) -> usize {
    match provider {
        "email" => 50,
        "aliyun_sms" | "tencent_sms" => 200,
        "wecom_app" => 1000,
        "dingtalk_work" => 100,
        _ => 100,
    }
}

/// Delay before retry `attempts + 1`: 1 s doubling to 5 minutes, with jitter.
pub fn delivery_backoff(attempts: i64) -> Duration {
    use rand::Rng;
    let exp = attempts.clamp(1, 20) as u32 - 1;
    let base = 1_000u64.saturating_mul(1 << exp.min(12)).min(300_000);
    Duration::from_millis(base / 2 + rand::thread_rng().gen_range(0..=base / 2))
}

/// Per-process state: built adapters (they own connection pools and token
/// caches) and their pacing, keyed by tenant and channel.
#[derive(Default)]
pub struct Runtime {
    channels: Mutex<HashMap<(i64, String), Built>>,
    pub live: super::live::Hub,
    /// Cancelled when the server stops: ends live streams.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("messaging::Runtime")
    }
}

#[derive(Clone)]
pub struct Built {
    pub provider: String,
    pub updated_at: i64,
    pub channel: Arc<dyn Channel>,
    pub limiter: Option<Arc<governor::DefaultDirectRateLimiter>>,
}

impl Runtime {
    /// The adapter for a tenant's channel, rebuilt when its settings change.
    pub async fn channel(
        &self,
        app: &App,
        tenant_id: i64,
        channel: &str,
    ) -> crate::error::Result<Option<Built>> {
        let Some(row) = store::channel_config(&app.db, tenant_id, channel).await? else {
            return Ok(None);
        };
        if !row.enabled {
            return Ok(None);
        }
        let key = (tenant_id, channel.to_string());
        if let Some(b) = self.channels.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if b.updated_at == row.updated_at {
                return Ok(Some(b));
            }
        }
        let built = build(app, &row)?;
        if let Ok(mut m) = self.channels.lock() {
            m.insert(key, built.clone());
        }
        Ok(Some(built))
    }
}

pub fn build(app: &App, row: &store::ChannelRow) -> crate::error::Result<Built> {
    let config: ChannelConfig =
        serde_json::from_str(&app.keys.decrypt(&row.config_enc)?).map_err(|e| {
            crate::error::Error::BadRequest(format!("stored channel settings are unreadable: {e}"))
        })?;
    let channel: Arc<dyn Channel> = Arc::from(
        xiaotong_channels::build_channel(config)
            .map_err(|e| crate::error::Error::validation("config", e.to_string()))?,
    );
    let limiter = u32::try_from(row.rate_per_sec)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(|n| {
            Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
                n,
            )))
        });
    Ok(Built {
        provider: row.provider.clone(),
        updated_at: row.updated_at,
        channel,
        limiter,
    })
}

pub fn register(reg: &mut Registry, app: &App) {
    let a = app.clone();
    reg.register(JOB_PUBLISH, move |job| {
        let a = a.clone();
        async move { super::service::publish_scheduled(&a, &job).await }
    });
    let a = app.clone();
    reg.register(JOB_FANOUT, move |job| {
        let a = a.clone();
        async move { fanout(&a, &job).await }
    });
    let a = app.clone();
    reg.register(JOB_SEND, move |job| {
        let a = a.clone();
        async move { send(&a, &job).await }
    });
}

/// Fan-out jobs for a published message's frozen list.
pub fn fanout_jobs(tenant_id: i64, message_id: i64, recipients: usize) -> Vec<NewJob> {
    let mut out = Vec::new();
    let mut start = 0;
    // A message with no recipients still gets one job, for its group channels.
    loop {
        let end = (start + FANOUT_CHUNK).min(recipients);
        let mut job = NewJob::new(
            JOB_FANOUT,
            serde_json::json!({"message_id": message_id, "start": start, "end": end}),
        )
        .tenant(tenant_id)
        .max_attempts(20);
        // Inbox entries before e-mails: fan-out is claimed ahead of sending.
        job.priority = 10;
        out.push(job);
        start = end;
        if start >= recipients {
            break;
        }
    }
    out
}

fn payload_i64(job: &Job, key: &str) -> anyhow::Result<i64> {
    job.payload[key]
        .as_i64()
        .with_context(|| format!("job payload lacks {key}"))
}

/// Minutes since midnight of `HH:MM`.
fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// When quiet hours `[start, end)` hold at `now_ms` in `tz`, the instant they end.
pub fn quiet_until(now_ms: i64, tz: chrono_tz::Tz, start: &str, end: &str) -> Option<i64> {
    use chrono::{TimeZone, Timelike};
    let (s, e) = (parse_hhmm(start)?, parse_hhmm(end)?);
    if s == e {
        return None;
    }
    let now = tz.timestamp_millis_opt(now_ms).single()?;
    let minute = now.hour() * 60 + now.minute();
    let inside = if s < e {
        minute >= s && minute < e
    } else {
        minute >= s || minute < e
    };
    if !inside {
        return None;
    }
    let mut wait = (e as i64 - minute as i64).rem_euclid(24 * 60) * 60_000;
    wait -= now.second() as i64 * 1000 + (now.timestamp_subsec_millis() as i64);
    Some(now_ms + wait.max(0))
}

async fn fanout(app: &App, job: &Job) -> anyhow::Result<()> {
    let tenant_id = job.tenant_id.context("fan-out job without tenant")?;
    let message_id = payload_i64(job, "message_id")?;
    let start = payload_i64(job, "start")? as usize;
    let end = payload_i64(job, "end")? as usize;
    let msg = store::message(&mut store::Exec::Db(&app.db), tenant_id, message_id)
        .await?
        .context("message not found")?;
    let all = store::audience(&app.db, tenant_id, message_id).await?;
    let chunk: Vec<Recipient> = all
        .get(start..end.min(all.len()))
        .unwrap_or_default()
        .to_vec();
    let ids: Vec<i64> = chunk.iter().map(|r| r.person_id).collect();

    // Inbox entries first, in their own short transaction, so they are
    // readable before the deliveries are planned; both writes skip rows
    // that exist, so a repeat after a crash changes nothing. Withdrawn
    // messages still show in inboxes, marked withdrawn.
    if (msg.state == "published" || msg.state == "withdrawn")
        && msg.channels.iter().any(|c| c == "inapp")
    {
        let mut tx = app.db.begin().await?;
        store::insert_inbox(&mut tx, tenant_id, message_id, &chunk).await?;
        tx.commit().await?;
        app.messaging.live.wake();
    }

    let mut deliveries: Vec<NewDelivery> = Vec::new();
    if msg.state == "published" {
        plan_deliveries(app, &msg, &ids, start == 0, &mut deliveries).await?;
    }

    let mut tx = app.db.begin().await?;
    store::insert_deliveries(&mut tx, tenant_id, message_id, &deliveries).await?;
    jobs::enqueue_many(&mut tx, &send_jobs(tenant_id, message_id, &deliveries)).await?;
    if !jobs::complete_in(&mut tx, job).await? {
        tx.rollback().await?;
        anyhow::bail!("lease lost");
    }
    tx.commit().await?;
    Ok(())
}

/// Decides, per recipient, which outside channels get a delivery: the
/// message's channels, narrowed by the recipient's preferences, with the
/// tenant's fallbacks when the recipient has no account there, held until
/// quiet hours end unless urgent.
async fn plan_deliveries(
    app: &App,
    msg: &store::MessageRow,
    ids: &[i64],
    first_chunk: bool,
    out: &mut Vec<NewDelivery>,
) -> anyhow::Result<()> {
    let tenant_id = msg.tenant_id;
    let mut wanted: Vec<String> = msg
        .channels
        .iter()
        .filter(|c| *c != "inapp")
        .cloned()
        .collect();
    let settings = store::settings(&app.db, tenant_id).await?;
    if msg.priority == Priority::Urgent && settings.urgent_sms && !wanted.iter().any(|c| c == "sms")
    {
        wanted.push("sms".into());
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let configs: HashMap<String, store::ChannelRow> = store::channel_configs(&app.db, tenant_id)
        .await?
        .into_iter()
        .filter(|c| c.enabled)
        .map(|c| (c.channel.clone(), c))
        .collect();
    let now = now_ms();
    let tz = app.settings.timezone;
    let hold = |quiet: Option<(&str, &str)>| -> Option<i64> {
        if msg.priority == Priority::Urgent {
            return None;
        }
        quiet.and_then(|(s, e)| quiet_until(now, tz, s, e))
    };
    let tenant_quiet = match (&settings.quiet_start, &settings.quiet_end) {
        (Some(s), Some(e)) => Some((s.as_str(), e.as_str())),
        _ => None,
    };

    // Group channels: one delivery per message, from the first chunk.
    for ch in &wanted {
        if let Some(cfg) = configs.get(ch) {
            if is_group_provider(&cfg.provider) && first_chunk {
                out.push(NewDelivery {
                    person_id: 0,
                    channel: ch.clone(),
                    provider: cfg.provider.clone(),
                    address: None,
                    state: "pending",
                    next_at: hold(tenant_quiet),
                    fallback_from: None,
                    error: None,
                });
            }
        }
    }
    let personal: Vec<&String> = wanted
        .iter()
        .filter(|c| {
            configs
                .get(*c)
                .is_some_and(|cfg| !is_group_provider(&cfg.provider))
                || !configs.contains_key(*c)
        })
        .collect();
    if personal.is_empty() || ids.is_empty() {
        return Ok(());
    }
    let contacts = store::contacts(&app.db, tenant_id, ids).await?;
    let prefs = store::preferences_of(&app.db, tenant_id, ids).await?;
    for id in ids {
        let Some(c) = contacts.get(id) else { continue };
        let pref = prefs.get(id);
        let quiet = pref
            .and_then(|p| Some((p.quiet_start.as_deref()?, p.quiet_end.as_deref()?)))
            .or(tenant_quiet);
        let next_at = hold(quiet);
        let mut planned: Vec<String> = Vec::new();
        for ch in &personal {
            let ch = ch.as_str();
            // The recipient's choice per message type, except for urgent messages.
            if msg.priority != Priority::Urgent {
                if let Some(allowed) = pref.and_then(|p| p.channels.get(&msg.kind)) {
                    if !allowed.iter().any(|a| a == ch) {
                        continue;
                    }
                }
            }
            let (target, from) = if address_of(c, ch).is_some() {
                (ch.to_string(), None)
            } else if let Some(fb) = settings
                .fallbacks
                .get(ch)
                .filter(|fb| address_of(c, fb).is_some())
            {
                (fb.clone(), Some(ch.to_string()))
            } else {
                out.push(NewDelivery {
                    person_id: *id,
                    channel: ch.to_string(),
                    provider: configs
                        .get(ch)
                        .map(|c| c.provider.clone())
                        .unwrap_or_default(),
                    address: None,
                    state: "skipped",
                    next_at: None,
                    fallback_from: None,
                    error: Some(format!("no {ch} address")),
                });
                continue;
            };
            if planned.contains(&target) {
                continue;
            }
            planned.push(target.clone());
            match configs.get(&target) {
                Some(cfg) => out.push(NewDelivery {
                    person_id: *id,
                    channel: target.clone(),
                    provider: cfg.provider.clone(),
                    address: address_of(c, &target).map(|a| mask(&target, &a)),
                    state: "pending",
                    next_at,
                    fallback_from: from,
                    error: None,
                }),
                None => out.push(NewDelivery {
                    person_id: *id,
                    channel: target.clone(),
                    provider: String::new(),
                    address: None,
                    state: "skipped",
                    next_at: None,
                    fallback_from: from,
                    error: Some(format!("channel {target} is not configured")),
                }),
            }
        }
    }
    Ok(())
}

/// Whether a contact can be reached on a channel (the phone stays encrypted here).
fn address_of(c: &Contact, channel: &str) -> Option<String> {
    match channel {
        "email" => c.email.clone(),
        "sms" => c.phone_enc.clone(),
        other => c.accounts.get(other).cloned(),
    }
}

/// What the delivery view shows of an address.
fn mask(channel: &str, address: &str) -> String {
    match channel {
        "sms" => "手机 / phone".into(),
        "email" => {
            let (user, domain) = address.split_once('@').unwrap_or((address, ""));
            let head: String = user.chars().take(2).collect();
            format!("{head}***@{domain}")
        }
        _ => address.to_string(),
    }
}

/// Send jobs for pending deliveries, grouped by channel and release time.
fn send_jobs(tenant_id: i64, message_id: i64, ds: &[NewDelivery]) -> Vec<NewJob> {
    let mut groups: BTreeMap<(String, String, Option<i64>), Vec<i64>> = BTreeMap::new();
    for d in ds.iter().filter(|d| d.state == "pending") {
        groups
            .entry((d.channel.clone(), d.provider.clone(), d.next_at))
            .or_default()
            .push(d.person_id);
    }
    let mut out = Vec::new();
    for ((channel, provider, at), people) in groups {
        for batch in people.chunks(batch_size(&provider)) {
            let mut j = NewJob::new(
                JOB_SEND,
                serde_json::json!({"message_id": message_id, "channel": channel, "person_ids": batch}),
            )
            .tenant(tenant_id)
            .max_attempts(20);
            if let Some(at) = at {
                j = j.at(at);
            }
            out.push(j);
        }
    }
    out
}

/// Recipient-side template context.
pub fn context_for(
    msg: &store::MessageRow,
    tenant_name: &str,
    c: Option<&Contact>,
    student: Option<&Contact>,
) -> Context {
    let person = |c: &Contact| {
        serde_json::json!({
            "name": c.name, "kind": c.kind, "number": c.number, "class": c.class, "department": c.department,
        })
    };
    let recipient = c.map(person).unwrap_or(serde_json::Value::Null);
    let student = match (student, c) {
        (Some(s), _) => person(s),
        (None, Some(c)) if c.kind == "student" => person(c),
        _ => serde_json::Value::Null,
    };
    Context {
        recipient,
        student,
        sender: serde_json::json!({"name": msg.sender_name}),
        school: serde_json::json!({"name": tenant_name}),
        message: serde_json::json!({
            "title": msg.title, "kind": msg.kind,
            "published_at": msg.published_at.map(crate::db::ms_to_rfc3339),
            "url": format!("/inbox?message={}", msg.id),
        }),
        vars: msg.vars.clone(),
    }
}

async fn send(app: &App, job: &Job) -> anyhow::Result<()> {
    let tenant_id = job.tenant_id.context("send job without tenant")?;
    let message_id = payload_i64(job, "message_id")?;
    let channel = job.payload["channel"]
        .as_str()
        .context("send job without channel")?
        .to_string();
    let person_ids: Vec<i64> =
        serde_json::from_value(job.payload["person_ids"].clone()).unwrap_or_default();
    let pending =
        store::pending_deliveries(&app.db, tenant_id, message_id, &channel, &person_ids).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let msg = store::message(&mut store::Exec::Db(&app.db), tenant_id, message_id)
        .await?
        .context("message not found")?;
    if msg.state == "withdrawn" {
        let mut tx = app.db.begin().await?;
        store::cancel_pending(&mut tx, tenant_id, message_id).await?;
        tx.commit().await?;
        return Ok(());
    }
    let Some(built) = app.messaging.channel(app, tenant_id, &channel).await? else {
        let mut tx = app.db.begin().await?;
        for d in &pending {
            store::record_attempt(
                &mut tx,
                tenant_id,
                d.id,
                "failed",
                None,
                Some("not_configured"),
                Some(&format!("channel {channel} is not configured or disabled")),
                None,
            )
            .await?;
        }
        if !jobs::complete_in(&mut tx, job).await? {
            tx.rollback().await?;
            anyhow::bail!("lease lost");
        }
        tx.commit().await?;
        return Ok(());
    };

    // Render per recipient.
    let tenant_name = crate::directory::store::tenant(&app.db, tenant_id)
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    let mut ids: Vec<i64> = pending
        .iter()
        .map(|d| d.person_id)
        .filter(|p| *p != 0)
        .collect();
    let audience = if ids.is_empty() {
        Vec::new()
    } else {
        store::audience(&app.db, tenant_id, message_id).await?
    };
    let vias: HashMap<i64, i64> = audience
        .iter()
        .filter(|r| r.via != 0)
        .map(|r| (r.person_id, r.via))
        .collect();
    ids.extend(
        ids.iter()
            .filter_map(|p| vias.get(p))
            .copied()
            .collect::<Vec<_>>(),
    );
    let contacts = store::contacts(&app.db, tenant_id, &ids).await?;
    let compiled = Compiled::new(&msg.content)?;
    let mut batch = Vec::with_capacity(pending.len());
    let mut unaddressable = Vec::new();
    for d in &pending {
        let c = contacts.get(&d.person_id);
        let student = vias.get(&d.person_id).and_then(|s| contacts.get(s));
        let r = compiled.render(&context_for(&msg, &tenant_name, c, student));
        let to = match (d.person_id, c) {
            (0, _) => String::new(),
            (_, Some(c)) => match address_of(c, &channel) {
                Some(a) if channel == "sms" => app.keys.decrypt(&a).unwrap_or_default(),
                Some(a) => a,
                None => {
                    unaddressable.push(d.id);
                    continue;
                }
            },
            (_, None) => {
                unaddressable.push(d.id);
                continue;
            }
        };
        let sms = msg.content.sms_template_id.clone().map(|id| SmsTemplate {
            template_id: id,
            params: vec![(
                "content".into(),
                r.sms_text.clone().unwrap_or_else(|| r.text.clone()),
            )],
        });
        batch.push((
            d,
            Delivery {
                // Stable across retries: the provider's dedupe key where it has one.
                id: format!("xt-{}-{}", tenant_id, d.id),
                to,
                message: OutgoingMessage {
                    subject: r.title.clone(),
                    text: r.sms_text.clone().filter(|_| channel == "sms").unwrap_or(r.text.clone()),
                    html: Some(r.email_html.clone()),
                    markdown: Some(format!("### {}\n\n{}", r.title, r.im_markdown)),
                    url: None,
                    sms,
                    data: Some(serde_json::json!({
                        "message_id": message_id, "kind": msg.kind, "priority": msg.priority.as_str(),
                        "person_id": d.person_id,
                    })),
                },
            },
        ));
    }

    if let Some(l) = &built.limiter {
        if let Some(n) = std::num::NonZeroU32::new(batch.len() as u32) {
            // A batch larger than the burst is paced one by one.
            if l.until_n_ready(n).await.is_err() {
                for _ in 0..batch.len() {
                    l.until_ready().await;
                }
            }
        }
    }
    let deliveries: Vec<Delivery> = batch.iter().map(|(_, d)| d.clone()).collect();
    let reports = if deliveries.is_empty() {
        Vec::new()
    } else {
        built.channel.send(&deliveries).await
    };
    let by_id: HashMap<&str, &DeliveryOutcome> = reports
        .iter()
        .map(|r| (r.delivery_id.as_str(), &r.outcome))
        .collect();

    let now = now_ms();
    let mut sent = Vec::new();
    let mut retry: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut fallbacks: Vec<NewDelivery> = Vec::new();
    let settings = store::settings(&app.db, tenant_id).await?;
    let mut tx = app.db.begin().await?;
    for id in &unaddressable {
        store::record_attempt(
            &mut tx,
            tenant_id,
            *id,
            "failed",
            None,
            Some("no_address"),
            Some("the recipient has no address on this channel"),
            None,
        )
        .await?;
    }
    for (d, delivery) in &batch {
        let outcome =
            by_id
                .get(delivery.id.as_str())
                .copied()
                .cloned()
                .unwrap_or(DeliveryOutcome::Failed {
                    retryable: true,
                    code: "no_report".into(),
                    message: "the adapter returned no report".into(),
                });
        let attempts = d.attempts + 1;
        match outcome {
            DeliveryOutcome::Sent {
                provider_message_id: None,
            } => sent.push(d.id),
            DeliveryOutcome::Sent {
                provider_message_id,
            } => {
                store::record_attempt(
                    &mut tx,
                    tenant_id,
                    d.id,
                    "sent",
                    None,
                    None,
                    None,
                    provider_message_id.as_deref(),
                )
                .await?
            }
            DeliveryOutcome::Failed {
                retryable: true,
                code,
                message,
            }
            | DeliveryOutcome::RetryAfter { code, message, .. }
                if attempts >= MAX_ATTEMPTS =>
            {
                store::record_attempt(
                    &mut tx,
                    tenant_id,
                    d.id,
                    "dead",
                    None,
                    Some(&code),
                    Some(&message),
                    None,
                )
                .await?
            }
            DeliveryOutcome::Failed {
                retryable: true,
                code,
                message,
            } => {
                let at = now + delivery_backoff(attempts).as_millis() as i64;
                store::record_attempt(
                    &mut tx,
                    tenant_id,
                    d.id,
                    "pending",
                    Some(at),
                    Some(&code),
                    Some(&message),
                    None,
                )
                .await?;
                retry.entry(at).or_default().push(d.person_id);
            }
            DeliveryOutcome::RetryAfter {
                after,
                code,
                message,
            } => {
                let at = now
                    + (after.as_millis() as i64).max(delivery_backoff(attempts).as_millis() as i64);
                store::record_attempt(
                    &mut tx,
                    tenant_id,
                    d.id,
                    "pending",
                    Some(at),
                    Some(&code),
                    Some(&message),
                    None,
                )
                .await?;
                retry.entry(at).or_default().push(d.person_id);
            }
            DeliveryOutcome::Failed {
                retryable: false,
                code,
                message,
            } => {
                store::record_attempt(
                    &mut tx,
                    tenant_id,
                    d.id,
                    "failed",
                    None,
                    Some(&code),
                    Some(&message),
                    None,
                )
                .await?
            }
            DeliveryOutcome::UnknownRecipient { code, message } => {
                store::record_attempt(
                    &mut tx,
                    tenant_id,
                    d.id,
                    "failed",
                    None,
                    Some(&code),
                    Some(&message),
                    None,
                )
                .await?;
                if let Some(fb) = settings.fallbacks.get(&channel) {
                    fallbacks.push(NewDelivery {
                        person_id: d.person_id,
                        channel: fb.clone(),
                        provider: String::new(),
                        address: None,
                        state: "pending",
                        next_at: None,
                        fallback_from: Some(channel.clone()),
                        error: None,
                    });
                }
            }
        }
    }
    store::mark_sent(&mut tx, tenant_id, &sent).await?;
    // Retries: one job per release time, keeping the batch together.
    let mut later: Vec<NewJob> = Vec::new();
    let mut merged: Vec<(i64, Vec<i64>)> = Vec::new();
    for (at, people) in retry {
        match merged.last_mut() {
            // Jitter spreads retries over a few seconds; keep them in one call.
            Some((last, ps)) if at - *last < 5_000 => {
                ps.extend(people);
                *last = at;
            }
            _ => merged.push((at, people)),
        }
    }
    for (at, people) in merged {
        later.push(
            NewJob::new(JOB_SEND, serde_json::json!({"message_id": message_id, "channel": channel, "person_ids": people}))
                .tenant(tenant_id)
                .max_attempts(20)
                .at(at),
        );
    }
    if !fallbacks.is_empty() {
        let cfgs = store::channel_configs(&app.db, tenant_id).await?;
        for f in &mut fallbacks {
            if let Some(c) = cfgs.iter().find(|c| c.channel == f.channel && c.enabled) {
                f.provider = c.provider.clone();
            }
        }
        fallbacks.retain(|f| !f.provider.is_empty());
        store::insert_deliveries(&mut tx, tenant_id, message_id, &fallbacks).await?;
        later.extend(send_jobs(tenant_id, message_id, &fallbacks));
    }
    jobs::enqueue_many(&mut tx, &later).await?;
    if !jobs::complete_in(&mut tx, job).await? {
        tx.rollback().await?;
        anyhow::bail!("lease lost");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_across_midnight() {
        let tz = chrono_tz::Asia::Shanghai;
        // 2026-11-23 23:30 +08:00
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T23:30:00+08:00")
            .unwrap()
            .timestamp_millis();
        let until = quiet_until(t, tz, "22:00", "07:00").unwrap();
        assert_eq!(until - t, 7 * 3600 * 1000 + 30 * 60 * 1000);
        let noon = chrono::DateTime::parse_from_rfc3339("2026-11-23T12:00:00+08:00")
            .unwrap()
            .timestamp_millis();
        assert_eq!(quiet_until(noon, tz, "22:00", "07:00"), None);
        let early = chrono::DateTime::parse_from_rfc3339("2026-11-24T06:59:00+08:00")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            quiet_until(early, tz, "22:00", "07:00"),
            Some(early + 60_000)
        );
        assert_eq!(
            quiet_until(noon, tz, "12:00", "13:00"),
            Some(noon + 3_600_000)
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        for _ in 0..50 {
            let b1 = delivery_backoff(1).as_millis();
            assert!((500..=1000).contains(&b1));
            let b4 = delivery_backoff(4).as_millis();
            assert!((4000..=8000).contains(&b4));
            assert!(delivery_backoff(30).as_millis() <= 300_000);
        }
    }

    #[test]
    fn fanout_is_chunked_and_never_empty() {
        assert_eq!(fanout_jobs(1, 9, 0).len(), 1);
        let n = FANOUT_CHUNK * 2 + 1;
        assert_eq!(fanout_jobs(1, 9, n).len(), 3);
        assert_eq!(fanout_jobs(1, 9, n)[2].payload["end"], n);
    }
}
