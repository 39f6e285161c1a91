//! Message-center rules: compose, publish, withdraw, history, inbox,
//! templates, channel settings, preferences, and `notify` for other modules.

use super::audience;
use super::model::*;
use super::pipeline::{self, JOB_PUBLISH};
use super::store::{self, Exec, MessageRow, TemplateKey};
use super::template::{self, Compiled};
use crate::app::App;
use crate::audit::{self, Change};
use crate::auth::authorize;
use crate::auth::model::{Actor, Principal, Scope};
use crate::db::{ms_to_rfc3339, now_ms, RowExt, Sql, Tx};
use crate::error::{Error, FieldError, Result};
use crate::jobs::{self, Job, NewJob};
use std::collections::HashMap;

fn tenant_wide(scopes: &[Scope]) -> bool {
    scopes.iter().any(|s| s.is_tenant_wide())
}

fn parse_ms(field: &str, v: &Option<String>, app: &App) -> Result<Option<i64>> {
    crate::audit::http::parse_time(field, v, app.settings.timezone)
}

fn page_args(page: Option<i64>, per_page: Option<i64>) -> Result<(i64, i64)> {
    let per_page = per_page.unwrap_or(20);
    if !(1..=500).contains(&per_page) {
        return Err(Error::validation("per_page", "must be between 1 and 500"));
    }
    Ok((page.unwrap_or(1).max(1), per_page))
}

pub async fn kinds(app: &App, tenant_id: i64) -> Result<Vec<MessageKind>> {
    let mut out: Vec<MessageKind> = BUILTIN_KINDS
        .iter()
        .map(|(c, n)| MessageKind {
            code: c.to_string(),
            name: n.to_string(),
            builtin: true,
        })
        .collect();
    out.extend(store::custom_kinds(&mut Exec::Db(&app.db), tenant_id).await?);
    Ok(out)
}

pub async fn add_kind(app: &App, p: &Principal, k: &NewMessageKind) -> Result<Vec<MessageKind>> {
    authorize(p, "messages.manage")?;
    let code_ok = !k.code.is_empty()
        && k.code.len() <= 64
        && k.code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !code_ok {
        return Err(Error::validation(
            "code",
            "lower-case letters, digits, - and _ (at most 64)",
        ));
    }
    if k.name.trim().is_empty() {
        return Err(Error::validation("name", "must not be empty"));
    }
    if BUILTIN_KINDS.iter().any(|(c, _)| *c == k.code) {
        return Err(Error::Conflict(format!("`{}` is a built-in type", k.code)));
    }
    let mut tx = app.db.begin().await?;
    store::insert_kind(&mut tx, p.tenant_id, k).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("create", "message_type", &k.code).after(k.name.clone())],
    )
    .await?;
    tx.commit().await?;
    kinds(app, p.tenant_id).await
}

async fn check_kind(exec: &mut Exec<'_>, tenant_id: i64, kind: &str) -> Result<()> {
    if BUILTIN_KINDS.iter().any(|(c, _)| *c == kind) {
        return Ok(());
    }
    if store::custom_kinds(exec, tenant_id)
        .await?
        .iter()
        .any(|k| k.code == kind)
    {
        return Ok(());
    }
    Err(Error::validation(
        "kind",
        format!("unknown message type `{kind}`"),
    ))
}

fn check_channels(channels: &[String]) -> Result<()> {
    if channels.is_empty() {
        return Err(Error::validation("channels", "choose at least one channel"));
    }
    for c in channels {
        if !CHANNELS.contains(&c.as_str()) {
            return Err(Error::validation(
                "channels",
                format!("unknown channel `{c}`; one of {}", CHANNELS.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Non-tenant-wide senders (a teacher) address only their own classes or department.
async fn check_reach(app: &App, p: &Principal, scopes: &[Scope], a: &Audience) -> Result<()> {
    if tenant_wide(scopes) {
        return Ok(());
    }
    let own_classes: Vec<i64> = app
        .db
        .fetch_all(
            &Sql::new("SELECT class_id FROM class_teachers WHERE tenant_id = ? AND person_id = ?")
                .bind(p.tenant_id)
                .bind(p.person_id),
        )
        .await?
        .iter()
        .map(|r| r.i64("class_id"))
        .collect::<Result<_>>()?;
    let mut own_depts = Vec::new();
    if scopes.contains(&Scope::OwnDepartment) {
        if let Some(d) =
            crate::directory::store::department_of(&app.db, p.tenant_id, p.person_id).await?
        {
            own_depts =
                crate::directory::store::department_subtree(&app.db, p.tenant_id, d).await?;
        }
    }
    for r in &a.include {
        let ids: Vec<i64> = match &r.value {
            Some(serde_json::Value::Number(n)) => n.as_i64().into_iter().collect(),
            Some(serde_json::Value::Array(v)) => v.iter().filter_map(|x| x.as_i64()).collect(),
            _ => vec![],
        };
        let ok = match r.rule_type.as_str() {
            "class" => {
                scopes.contains(&Scope::OwnClasses)
                    && !ids.is_empty()
                    && ids.iter().all(|i| own_classes.contains(i))
            }
            "department" => !ids.is_empty() && ids.iter().all(|i| own_depts.contains(i)),
            _ => false,
        };
        if !ok {
            return Err(Error::Forbidden(
                "you may address only your own classes or department / 只能向本人所带班级或本部门发送".into(),
            ));
        }
    }
    Ok(())
}

pub async fn count_audience(app: &App, p: &Principal, a: &Audience) -> Result<AudienceCount> {
    let scopes = authorize(p, "messages.send")?;
    audience::validate(&mut Exec::Db(&app.db), p.tenant_id, a).await?;
    check_reach(app, p, &scopes, a).await?;
    let rs = audience::resolve(&mut Exec::Db(&app.db), p.tenant_id, a).await?;
    let sample_ids: Vec<i64> = rs.iter().take(20).map(|r| r.person_id).collect();
    let contacts = store::contacts(&app.db, p.tenant_id, &sample_ids).await?;
    Ok(AudienceCount {
        count: rs.len() as i64,
        sample: sample_ids
            .iter()
            .filter_map(|id| contacts.get(id))
            .map(|c| crate::directory::model::NameRef {
                id: c.id,
                name: c.name.clone(),
            })
            .collect(),
    })
}

/// Builds a message row from input over `base` (a new draft or the stored one).
async fn apply_input(
    app: &App,
    p: &Principal,
    scopes: &[Scope],
    base: &mut MessageRow,
    input: &MessageInput,
) -> Result<()> {
    let mut exec = Exec::Db(&app.db);
    if let Some(k) = &input.kind {
        base.kind = k.clone();
    }
    check_kind(&mut exec, p.tenant_id, &base.kind).await?;
    if let Some(v) = &input.vars {
        if !v.is_object() {
            return Err(Error::validation("vars", "must be an object"));
        }
        base.vars = v.clone();
    }
    let mut declared: Vec<String> = base
        .vars
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(tid) = input.template_id {
        let t = store::template(&mut exec, p.tenant_id, TemplateKey::Id(tid))
            .await?
            .ok_or_else(|| Error::validation("template_id", "template not found"))?;
        base.template_id = Some(t.id);
        base.template_version = Some(t.version);
        base.content = t.content.clone();
        if input.kind.is_none() {
            base.kind = t.kind.clone();
        }
        declared.extend(t.variables.iter().cloned());
    }
    if let Some(c) = &input.content {
        base.content = c.clone();
        if input.template_id.is_none() {
            base.template_id = None;
            base.template_version = None;
        }
    }
    template::validate(&base.content, &declared)?;
    base.title = base.content.title.chars().take(300).collect();
    if let Some(pr) = input.priority {
        base.priority = pr;
    }
    if let Some(ch) = &input.channels {
        check_channels(ch)?;
        base.channels = ch.clone();
    }
    if let Some(a) = &input.audience {
        audience::validate(&mut exec, p.tenant_id, a).await?;
        check_reach(app, p, scopes, a).await?;
        base.audience = a.clone();
    }
    if let Some(c) = input.require_confirm {
        base.require_confirm = c;
    }
    if input.publish_at.is_some() {
        base.publish_at = parse_ms("publish_at", &input.publish_at, app)?;
    }
    if input.expires_at.is_some() {
        base.expires_at = parse_ms("expires_at", &input.expires_at, app)?;
    }
    if let (Some(e), Some(s)) = (base.expires_at, base.publish_at.or(Some(now_ms()))) {
        if e <= s {
            return Err(Error::validation(
                "expires_at",
                "must be after the publish time",
            ));
        }
    }
    Ok(())
}

fn new_row(p: &Principal, source: &str) -> MessageRow {
    let now = now_ms();
    MessageRow {
        id: 0,
        tenant_id: p.tenant_id,
        kind: "notice".into(),
        title: String::new(),
        content: Content::default(),
        vars: serde_json::json!({}),
        template_id: None,
        template_version: None,
        priority: Priority::Normal,
        state: "draft".into(),
        channels: vec!["inapp".into()],
        audience: Audience::default(),
        require_confirm: false,
        sender_id: Some(p.person_id),
        sender_name: Some(p.name.clone()),
        source: source.into(),
        publish_at: None,
        expires_at: None,
        published_at: None,
        withdrawn_at: None,
        recipient_count: 0,
        created_at: now,
        updated_at: now,
    }
}

pub async fn create_message(app: &App, p: &Principal, input: &MessageInput) -> Result<Message> {
    let scopes = authorize(p, "messages.send")?;
    if input.content.is_none() && input.template_id.is_none() {
        return Err(Error::validation(
            "content",
            "give content or a template_id",
        ));
    }
    let mut row = new_row(p, "compose");
    apply_input(app, p, &scopes, &mut row, input).await?;
    let mut tx = app.db.begin().await?;
    row.id = store::insert_message(&mut tx, &row).await?;
    if let Some(ids) = &input.attachment_ids {
        store::attach(&mut tx, p.tenant_id, row.id, ids, p.person_id).await?;
    }
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("create", "message", row.id).after(&row.title)],
    )
    .await?;
    tx.commit().await?;
    get_message(app, p, row.id).await
}

/// The message if the caller may see it: its sender, or a reader of all messages.
async fn visible(app: &App, p: &Principal, id: i64) -> Result<MessageRow> {
    let m = store::message(&mut Exec::Db(&app.db), p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("message"))?;
    let reader = p
        .grants
        .get("messages.read")
        .is_some_and(|s| tenant_wide(s));
    if m.sender_id == Some(p.person_id) || reader || p.platform_admin {
        Ok(m)
    } else {
        Err(Error::NotFound("message"))
    }
}

pub async fn get_message(app: &App, p: &Principal, id: i64) -> Result<Message> {
    let m = visible(app, p, id).await?;
    let atts = store::attachments(&app.db, p.tenant_id, &[id])
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let reads = read_counts(app, p.tenant_id, &[id]).await?;
    Ok(m.view(atts, reads.get(&id).copied()))
}

async fn read_counts(
    app: &App,
    tenant_id: i64,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, i64>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut q = Sql::new(
        "SELECT message_id, COUNT(*) AS n FROM inbox WHERE tenant_id = ? AND read_at IS NOT NULL AND message_id IN ",
    )
    .bind(tenant_id);
    q.push_in(ids.iter().copied());
    q.push(" GROUP BY message_id");
    app.db
        .fetch_all(&q)
        .await?
        .iter()
        .map(|r| Ok((r.i64("message_id")?, r.i64("n")?)))
        .collect()
}

pub async fn update_message(
    app: &App,
    p: &Principal,
    id: i64,
    input: &MessageInput,
) -> Result<Message> {
    let scopes = authorize(p, "messages.send")?;
    let mut row = visible(app, p, id).await?;
    if row.state != "draft" {
        return Err(Error::Conflict(format!(
            "only drafts can be edited; this message is {} / 只能编辑草稿",
            row.state
        )));
    }
    let before = row.title.clone();
    apply_input(app, p, &scopes, &mut row, input).await?;
    let mut tx = app.db.begin().await?;
    store::update_draft(&mut tx, &row).await?;
    if let Some(ids) = &input.attachment_ids {
        store::attach(&mut tx, p.tenant_id, row.id, ids, p.person_id).await?;
    }
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("update", "message", id)
            .before(before)
            .after(&row.title)],
    )
    .await?;
    tx.commit().await?;
    get_message(app, p, id).await
}

/// Publishes a draft now, or schedules it for its `publish_at`.
pub async fn publish(app: &App, p: &Principal, id: i64, allow_empty: bool) -> Result<Message> {
    authorize(p, "messages.send")?;
    let row = visible(app, p, id).await?;
    if row.state != "draft" {
        return Err(Error::Conflict(format!(
            "the message is already {} / 消息已{}",
            row.state, row.state
        )));
    }
    let mut tx = app.db.begin().await?;
    let row = store::message_for_update(&mut tx, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("message"))?;
    if row.state != "draft" {
        return Err(Error::Conflict(format!(
            "the message is already {}",
            row.state
        )));
    }
    let actor = p.actor();
    match row.publish_at.filter(|t| *t > now_ms()) {
        Some(at) => {
            store::set_state(
                &mut tx,
                p.tenant_id,
                id,
                &["draft"],
                "scheduled",
                None,
                None,
                None,
            )
            .await?;
            jobs::enqueue(
                &mut tx,
                &NewJob::new(
                    JOB_PUBLISH,
                    serde_json::json!({"message_id": id, "allow_empty": allow_empty}),
                )
                .tenant(p.tenant_id)
                .unique(format!("{JOB_PUBLISH}:{id}"))
                .at(at),
            )
            .await?;
            audit::append(
                &mut tx,
                &actor,
                &[Change::new("schedule", "message", id).after(ms_to_rfc3339(at))],
            )
            .await?;
        }
        None => {
            let started = std::time::Instant::now();
            publish_now(&mut tx, &row, allow_empty).await?;
            tracing::debug!(
                message = id,
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "published"
            );
            audit::append(
                &mut tx,
                &actor,
                &[Change::new("publish", "message", id).after(&row.title)],
            )
            .await?;
        }
    }
    let started = std::time::Instant::now();
    tx.commit().await?;
    jobs::service::wake();
    let view = get_message(app, p, id).await;
    tracing::debug!(
        message = id,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "publish committed and read back"
    );
    view
}

/// Notices of a system event (`notify`) with at most this many in-app-only
/// recipients go into the inboxes inside the event's own transaction: the
/// parent sees a check-in notice the moment it commits, and no fan-out job
/// runs.
const INLINE_INBOX_MAX: usize = 64;

/// Resolve and freeze the audience of a draft or scheduled message, mark it
/// published and enqueue its fan-out, inside `tx`.
async fn publish_now(tx: &mut Tx, row: &MessageRow, allow_empty: bool) -> Result<i64> {
    let started = std::time::Instant::now();
    let recipients = audience::resolve(&mut Exec::Tx(tx), row.tenant_id, &row.audience).await?;
    tracing::debug!(
        message = row.id,
        recipients = recipients.len(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "audience resolved"
    );
    if recipients.is_empty() && !allow_empty {
        return Err(Error::validation(
            "audience",
            "受众为空：没有人会收到这条消息 / the audience is empty; nobody would receive this message (pass allow_empty to publish anyway)",
        ));
    }
    let n = recipients.len() as i64;
    if !store::set_state(
        tx,
        row.tenant_id,
        row.id,
        &["draft", "scheduled"],
        "published",
        Some(now_ms()),
        None,
        Some(n),
    )
    .await?
    {
        return Err(Error::Conflict("the message changed meanwhile".into()));
    }
    deliver_many(tx, row.tenant_id, &[(row, &recipients)], false).await?;
    Ok(n)
}

/// Deliver messages of one tenant being published: either write their
/// inboxes at once (with `inline_small`, a notice to a few in-app
/// recipients) or freeze their audiences and enqueue their fan-out: one
/// statement for all the audiences, one for the inboxes written at once
/// and one for the fan-out jobs.
async fn deliver_many(
    tx: &mut Tx,
    tenant_id: i64,
    messages: &[(&MessageRow, &[audience::Recipient])],
    inline_small: bool,
) -> Result<()> {
    let mut inline = Vec::new();
    let mut frozen = Vec::new();
    let mut fanout = Vec::new();
    for (m, recipients) in messages {
        let in_app_only = m.channels.iter().all(|c| c == "inapp");
        if inline_small
            && in_app_only
            && m.priority != Priority::Urgent
            && recipients.len() <= INLINE_INBOX_MAX
        {
            inline.push((m.id, *recipients));
        } else {
            frozen.push((m.id, *recipients));
            fanout.extend(pipeline::fanout_jobs(tenant_id, m.id, recipients.len()));
        }
    }
    // Only the fan-out reads a frozen audience back; a message written to
    // its inboxes at once has them as its record of who got it.
    store::insert_audiences(tx, tenant_id, &frozen).await?;
    store::insert_inboxes(tx, tenant_id, &inline).await?;
    jobs::enqueue_many(tx, &fanout).await?;
    Ok(())
}

/// The job that publishes a scheduled message at its time.
pub async fn publish_scheduled(app: &App, job: &Job) -> anyhow::Result<()> {
    let tenant_id = job.tenant_id.unwrap_or_default();
    let id = job.payload["message_id"].as_i64().unwrap_or_default();
    let allow_empty = job.payload["allow_empty"].as_bool().unwrap_or(false);
    let mut tx = app.db.begin().await?;
    let Some(row) = store::message_for_update(&mut tx, tenant_id, id).await? else {
        return Ok(());
    };
    if row.state == "scheduled" {
        match publish_now(&mut tx, &row, allow_empty).await {
            Ok(_) => {
                audit::append(
                    &mut tx,
                    &Actor::system(tenant_id, "scheduler"),
                    &[Change::new("publish", "message", id)],
                )
                .await?;
            }
            Err(Error::Validation(_)) => {
                // Nobody to send to any more: keep it visible to the sender as withdrawn.
                store::set_state(
                    &mut tx,
                    tenant_id,
                    id,
                    &["scheduled"],
                    "withdrawn",
                    None,
                    Some(now_ms()),
                    Some(0),
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !jobs::complete_in(&mut tx, job).await? {
        tx.rollback().await?;
        anyhow::bail!("lease lost");
    }
    tx.commit().await?;
    Ok(())
}

pub async fn withdraw(app: &App, p: &Principal, id: i64) -> Result<Message> {
    authorize(p, "messages.send")?;
    visible(app, p, id).await?;
    let mut tx = app.db.begin().await?;
    if !store::set_state(
        &mut tx,
        p.tenant_id,
        id,
        &["published", "scheduled"],
        "withdrawn",
        None,
        Some(now_ms()),
        None,
    )
    .await?
    {
        return Err(Error::Conflict(
            "only published or scheduled messages can be withdrawn / 只能撤回已发布或定时的消息"
                .into(),
        ));
    }
    let cancelled = store::cancel_pending(&mut tx, p.tenant_id, id).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("withdraw", "message", id)
            .after(serde_json::json!({"cancelled_deliveries": cancelled}))],
    )
    .await?;
    tx.commit().await?;
    get_message(app, p, id).await
}

pub async fn list_messages(
    app: &App,
    p: &Principal,
    q: &MessageQuery,
) -> Result<crate::directory::model::Page<Message>> {
    let send = p.grants.contains_key("messages.send");
    let read_all = p
        .grants
        .get("messages.read")
        .is_some_and(|s| tenant_wide(s));
    if !send && !read_all {
        authorize(p, "messages.read")?;
    }
    let (page, per_page) = page_args(q.page, q.per_page)?;
    let tz = app.settings.timezone;
    let f = store::MessageFilter {
        kind: q.kind.clone(),
        state: q.state.clone(),
        sender_id: if read_all {
            q.sender_id
        } else {
            Some(p.person_id)
        },
        q: q.q.clone(),
        from_ms: crate::audit::http::parse_time("from", &q.from, tz)?,
        to_ms: crate::audit::http::parse_time("to", &q.to, tz)?.map(|t| t + 24 * 3600 * 1000),
        page,
        per_page,
    };
    let (rows, total) = store::list_messages(&app.db, p.tenant_id, &f).await?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let reads = read_counts(app, p.tenant_id, &ids).await?;
    let mut atts: std::collections::HashMap<i64, Vec<AttachmentInfo>> = Default::default();
    for (m, a) in store::attachments(&app.db, p.tenant_id, &ids).await? {
        atts.entry(m).or_default().push(a);
    }
    Ok(crate::directory::model::Page {
        items: rows
            .iter()
            .map(|m| {
                m.view(
                    atts.remove(&m.id).unwrap_or_default(),
                    reads.get(&m.id).copied(),
                )
            })
            .collect(),
        total,
        page,
        per_page,
    })
}

pub async fn delivery_report(app: &App, p: &Principal, id: i64) -> Result<DeliveryReportView> {
    let m = visible(app, p, id).await?;
    let t = p.tenant_id;
    let inbox = app
        .db
        .fetch_one(
            &Sql::new(
                "SELECT COUNT(*) AS n, COUNT(read_at) AS r, COUNT(confirmed_at) AS c FROM inbox WHERE tenant_id = ? AND message_id = ?",
            )
            .bind(t)
            .bind(id),
        )
        .await?;
    let (n, read, confirmed) = (inbox.i64("n")?, inbox.i64("r")?, inbox.i64("c")?);
    let by_channel = app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT channel, state, COUNT(*) AS n FROM deliveries WHERE tenant_id = ? AND message_id = ? \
                 GROUP BY channel, state ORDER BY channel, state",
            )
            .bind(t)
            .bind(id),
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ChannelStateCount {
                channel: r.str("channel")?,
                state: r.str("state")?,
                count: r.i64("n")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let failures = app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT d.person_id, p.name, d.channel, d.state, d.attempts, d.last_code, d.last_error FROM deliveries d \
                 LEFT JOIN people p ON p.id = d.person_id WHERE d.tenant_id = ? AND d.message_id = ? \
                 AND (d.state IN ('failed', 'dead', 'skipped') OR (d.state = 'pending' AND d.attempts > 0)) \
                 ORDER BY d.id LIMIT 200",
            )
            .bind(t)
            .bind(id),
        )
        .await?
        .iter()
        .map(|r| {
            Ok(DeliveryFailure {
                person_id: r.i64("person_id")?,
                person_name: r.opt_str("name")?,
                channel: r.str("channel")?,
                state: r.str("state")?,
                attempts: r.i64("attempts")?,
                code: r.opt_str("last_code")?,
                error: r.opt_str("last_error")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DeliveryReportView {
        message_id: id,
        recipients: m.recipient_count,
        inbox: n,
        read,
        confirmed,
        read_rate: if n > 0 { read as f64 / n as f64 } else { 0.0 },
        failures_total: by_channel
            .iter()
            .filter(|c| matches!(c.state.as_str(), "failed" | "dead" | "skipped"))
            .map(|c| c.count)
            .sum(),
        by_channel,
        failures,
    })
}

pub async fn recipients(
    app: &App,
    p: &Principal,
    id: i64,
    q: &RecipientQuery,
) -> Result<crate::directory::model::Page<RecipientRow>> {
    visible(app, p, id).await?;
    let (page, per_page) = page_args(q.page, q.per_page)?;
    let t = p.tenant_id;
    let mut w = Sql::new(" WHERE i.tenant_id = ? AND i.message_id = ?")
        .bind(t)
        .bind(id);
    match q.filter.as_deref() {
        None | Some("") | Some("all") => {}
        Some("read") => {
            w.push(" AND i.read_at IS NOT NULL");
        }
        Some("unread") => {
            w.push(" AND i.read_at IS NULL");
        }
        Some("failed") => {
            w.push_bind(
                " AND i.person_id IN (SELECT person_id FROM deliveries WHERE tenant_id = ? AND message_id = ? AND state IN ('failed', 'dead'))",
                t,
            );
            w = w.bind(id);
        }
        Some(other) => {
            return Err(Error::validation(
                "filter",
                format!("unknown filter `{other}`; read, unread or failed"),
            ))
        }
    }
    let total = app
        .db
        .fetch_one(&Sql::around(
            format!("SELECT COUNT(*) AS n FROM inbox i{}", w.text()),
            &w,
        ))
        .await?
        .i64("n")?;
    let rows = app
        .db
        .fetch_all(&Sql::around(
            format!(
                "SELECT i.person_id, i.read_at, i.confirmed_at, p.name, p.kind, c.name AS class_name, v.name AS via_name \
                 FROM inbox i JOIN people p ON p.id = i.person_id LEFT JOIN classes c ON c.id = p.class_id \
                 LEFT JOIN people v ON v.id = i.via_person_id{} ORDER BY i.id LIMIT {per_page} OFFSET {}",
                w.text(),
                (page - 1) * per_page
            ),
            &w,
        ))
        .await?;
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r.i64("person_id"))
        .collect::<Result<_>>()?;
    let mut chans: std::collections::HashMap<i64, std::collections::BTreeMap<String, String>> =
        Default::default();
    if !ids.is_empty() {
        let mut dq = Sql::new("SELECT person_id, channel, state FROM deliveries WHERE tenant_id = ? AND message_id = ? AND person_id IN ")
            .bind(t)
            .bind(id);
        dq.push_in(ids.iter().copied());
        for r in app.db.fetch_all(&dq).await? {
            chans
                .entry(r.i64("person_id")?)
                .or_default()
                .insert(r.str("channel")?, r.str("state")?);
        }
    }
    let items = rows
        .iter()
        .map(|r| {
            let pid = r.i64("person_id")?;
            Ok(RecipientRow {
                person_id: pid,
                name: r.str("name")?,
                kind: r.str("kind")?,
                class: r.opt_str("class_name")?,
                via: r.opt_str("via_name")?,
                read_at: r.opt_i64("read_at")?.map(ms_to_rfc3339),
                confirmed_at: r.opt_i64("confirmed_at")?.map(ms_to_rfc3339),
                channels: chans.remove(&pid).unwrap_or_default(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(crate::directory::model::Page {
        items,
        total,
        page,
        per_page,
    })
}

/// Everything that happened to one person's messages, newest first.
pub async fn timeline(app: &App, p: &Principal, person_id: i64) -> Result<Vec<TimelineEvent>> {
    let scopes = authorize(p, "messages.read")?;
    if !tenant_wide(&scopes) {
        return Err(Error::Forbidden(
            "requires messages.read for the whole institution".into(),
        ));
    }
    let t = p.tenant_id;
    let mut out = Vec::new();
    let inbox = app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT i.message_id, m.title, i.created_at, i.read_at, i.confirmed_at FROM inbox i JOIN messages m ON m.id = i.message_id \
                 WHERE i.tenant_id = ? AND i.person_id = ? ORDER BY i.id DESC LIMIT 200",
            )
            .bind(t)
            .bind(person_id),
        )
        .await?;
    for r in &inbox {
        let (mid, title) = (r.i64("message_id")?, r.str("title")?);
        out.push((
            r.i64("created_at")?,
            mid,
            title.clone(),
            "inbox".to_string(),
            None,
        ));
        if let Some(at) = r.opt_i64("read_at")? {
            out.push((at, mid, title.clone(), "read".into(), None));
        }
        if let Some(at) = r.opt_i64("confirmed_at")? {
            out.push((at, mid, title, "confirmed".into(), None));
        }
    }
    let ds = app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT d.message_id, m.title, d.channel, d.state, d.updated_at, d.last_error FROM deliveries d \
                 JOIN messages m ON m.id = d.message_id WHERE d.tenant_id = ? AND d.person_id = ? ORDER BY d.id DESC LIMIT 400",
            )
            .bind(t)
            .bind(person_id),
        )
        .await?;
    for r in &ds {
        out.push((
            r.i64("updated_at")?,
            r.i64("message_id")?,
            r.str("title")?,
            format!("{}:{}", r.str("channel")?, r.str("state")?),
            r.opt_str("last_error")?,
        ));
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out
        .into_iter()
        .map(|(at, message_id, title, event, detail)| TimelineEvent {
            at: ms_to_rfc3339(at),
            message_id,
            title,
            event,
            detail,
        })
        .collect())
}

/// Sends again on outside channels to those who have not read it, or whose delivery failed.
pub async fn resend(
    app: &App,
    p: &Principal,
    id: i64,
    req: &ResendRequest,
) -> Result<ResendResult> {
    authorize(p, "messages.send")?;
    let m = visible(app, p, id).await?;
    if m.effective_state(now_ms()) != "published" {
        return Err(Error::Conflict(
            "only published messages can be sent again".into(),
        ));
    }
    let only_unread = match req.to.as_str() {
        "unread" => true,
        "failed" => false,
        _ => return Err(Error::validation("to", "unread or failed")),
    };
    let mut tx = app.db.begin().await?;
    let reopened = store::reopen_deliveries(&mut tx, p.tenant_id, id, only_unread).await?;
    let mut by_channel: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (ch, person) in &reopened {
        by_channel.entry(ch.clone()).or_default().push(*person);
    }
    let mut js = Vec::new();
    for (ch, people) in &by_channel {
        for batch in people.chunks(100) {
            js.push(
                NewJob::new(
                    pipeline::JOB_SEND,
                    serde_json::json!({"message_id": id, "channel": ch, "person_ids": batch}),
                )
                .tenant(p.tenant_id)
                .max_attempts(20),
            );
        }
    }
    jobs::enqueue_many(&mut tx, &js).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("resend", "message", id)
            .after(serde_json::json!({"to": req.to, "deliveries": reopened.len()}))],
    )
    .await?;
    tx.commit().await?;
    Ok(ResendResult {
        deliveries: reopened.len() as i64,
    })
}

/// The recipient list with read and delivery state, as an XLSX workbook.
pub async fn export_xlsx(app: &App, p: &Principal, id: i64) -> Result<(String, Vec<u8>)> {
    let m = visible(app, p, id).await?;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let xerr = |e: rust_xlsxwriter::XlsxError| Error::Other(anyhow::anyhow!("xlsx: {e}"));
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let headers = [
        "姓名 Name",
        "类型 Kind",
        "班级 Class",
        "经由 Via",
        "已读 Read at",
        "确认 Confirmed at",
        "渠道 Channels",
    ];
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)
            .map_err(xerr)?;
    }
    let mut row = 1u32;
    let mut page = 1;
    loop {
        let pg = recipients(
            app,
            p,
            id,
            &RecipientQuery {
                filter: None,
                page: Some(page),
                per_page: Some(500),
            },
        )
        .await?;
        for r in &pg.items {
            let chans = r
                .channels
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let cells = [
                r.name.clone(),
                r.kind.clone(),
                r.class.clone().unwrap_or_default(),
                r.via.clone().unwrap_or_default(),
                r.read_at.clone().unwrap_or_default(),
                r.confirmed_at.clone().unwrap_or_default(),
                chans,
            ];
            for (c, v) in cells.iter().enumerate() {
                ws.write_string(row, c as u16, v).map_err(xerr)?;
            }
            row += 1;
        }
        if (page * 500) >= pg.total {
            break;
        }
        page += 1;
    }
    ws.autofit();
    let bytes = wb.save_to_buffer().map_err(xerr)?;
    Ok((format!("message-{}-{}.xlsx", m.id, m.kind), bytes))
}

// ---- inbox ----

pub async fn inbox(
    app: &App,
    p: &Principal,
    q: &InboxQuery,
) -> Result<crate::directory::model::Page<InboxItem>> {
    let (page, per_page) = page_args(q.page, q.per_page)?;
    let mut w = Sql::new(
        " WHERE i.tenant_id = ? AND i.person_id = ? AND m.state IN ('published', 'withdrawn')",
    )
    .bind(p.tenant_id)
    .bind(p.person_id);
    if q.unread == Some(true) {
        w.push(" AND i.read_at IS NULL");
    }
    if let Some(k) = &q.kind {
        w.push_bind(" AND m.kind = ?", k.as_str());
    }
    if let Some(m) = q.message_id {
        w.push_bind(" AND i.message_id = ?", m);
    }
    let total = app
        .db
        .fetch_one(&Sql::around(
            format!(
                "SELECT COUNT(*) AS n FROM inbox i JOIN messages m ON m.id = i.message_id{}",
                w.text()
            ),
            &w,
        ))
        .await?
        .i64("n")?;
    let rows = app
        .db
        .fetch_all(&Sql::around(
            format!(
                "SELECT i.id AS inbox_id, i.message_id, i.via_person_id, i.read_at, i.confirmed_at FROM inbox i \
                 JOIN messages m ON m.id = i.message_id{} ORDER BY i.id DESC LIMIT {per_page} OFFSET {}",
                w.text(),
                (page - 1) * per_page
            ),
            &w,
        ))
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(
            inbox_item(
                app,
                p,
                r.i64("inbox_id")?,
                r.i64("message_id")?,
                r.opt_i64("via_person_id")?,
                r.opt_i64("read_at")?,
                r.opt_i64("confirmed_at")?,
            )
            .await?,
        );
    }
    Ok(crate::directory::model::Page {
        items,
        total,
        page,
        per_page,
    })
}

async fn inbox_item(
    app: &App,
    p: &Principal,
    inbox_id: i64,
    message_id: i64,
    via: Option<i64>,
    read_at: Option<i64>,
    confirmed_at: Option<i64>,
) -> Result<InboxItem> {
    let m = store::message(&mut Exec::Db(&app.db), p.tenant_id, message_id)
        .await?
        .ok_or(Error::NotFound("message"))?;
    let state = m.effective_state(now_ms());
    let mut ids = vec![p.person_id];
    ids.extend(via);
    let contacts = store::contacts(&app.db, p.tenant_id, &ids).await?;
    let rendered = Compiled::new(&m.content)?.render(&pipeline::context_for(
        &m,
        &p.tenant_name,
        contacts.get(&p.person_id),
        via.and_then(|v| contacts.get(&v)),
    ));
    let attachments = if state == "withdrawn" {
        vec![]
    } else {
        store::attachments(&app.db, p.tenant_id, &[message_id])
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    };
    Ok(InboxItem {
        id: inbox_id,
        message_id,
        kind: m.kind.clone(),
        title: rendered.title,
        // A withdrawn message keeps its title, not its body.
        body_html: if state == "withdrawn" {
            String::new()
        } else {
            rendered.body_html
        },
        priority: m.priority,
        sender_name: m.sender_name.clone(),
        state,
        require_confirm: m.require_confirm,
        published_at: m.published_at.map(ms_to_rfc3339),
        read_at: read_at.map(ms_to_rfc3339),
        confirmed_at: confirmed_at.map(ms_to_rfc3339),
        attachments,
    })
}

pub async fn unread(app: &App, tenant_id: i64, person_id: i64) -> Result<UnreadCount> {
    let r = app
        .db
        .fetch_one(
            &Sql::new(
                "SELECT COUNT(*) AS n FROM inbox i JOIN messages m ON m.id = i.message_id WHERE i.tenant_id = ? \
                 AND i.person_id = ? AND i.read_at IS NULL AND m.state = 'published'",
            )
            .bind(tenant_id)
            .bind(person_id),
        )
        .await?;
    Ok(UnreadCount {
        unread: r.i64("n")?,
    })
}

/// Marks an inbox entry read (and confirmed); the first time counts.
pub async fn mark(app: &App, p: &Principal, inbox_id: i64, confirm: bool) -> Result<InboxItem> {
    let now = now_ms();
    let r = app
        .db
        .fetch_optional(
            &Sql::new("SELECT message_id, via_person_id FROM inbox WHERE tenant_id = ? AND person_id = ? AND id = ?")
                .bind(p.tenant_id)
                .bind(p.person_id)
                .bind(inbox_id),
        )
        .await?
        .ok_or(Error::NotFound("inbox entry"))?;
    let confirmed_value = if confirm { Some(now) } else { None };
    app.db
        .execute(
            &Sql::new(
                "UPDATE inbox SET read_at = COALESCE(read_at, ?), confirmed_at = COALESCE(confirmed_at, ?) \
                 WHERE tenant_id = ? AND person_id = ? AND id = ?",
            )
            .bind(now)
            .bind(confirmed_value)
            .bind(p.tenant_id)
            .bind(p.person_id)
            .bind(inbox_id),
        )
        .await?;
    app.messaging.live.touch(p.tenant_id, p.person_id);
    let row = app
        .db
        .fetch_one(&Sql::new("SELECT read_at, confirmed_at FROM inbox WHERE id = ?").bind(inbox_id))
        .await?;
    inbox_item(
        app,
        p,
        inbox_id,
        r.i64("message_id")?,
        r.opt_i64("via_person_id")?,
        row.opt_i64("read_at")?,
        row.opt_i64("confirmed_at")?,
    )
    .await
}

pub async fn mark_all_read(app: &App, p: &Principal) -> Result<UnreadCount> {
    app.db
        .execute(
            &Sql::new("UPDATE inbox SET read_at = ? WHERE tenant_id = ? AND person_id = ? AND read_at IS NULL")
                .bind(now_ms())
                .bind(p.tenant_id)
                .bind(p.person_id),
        )
        .await?;
    app.messaging.live.touch(p.tenant_id, p.person_id);
    unread(app, p.tenant_id, p.person_id).await
}

// ---- templates ----

fn check_template_input(t: &TemplateInput) -> Result<()> {
    let mut errors = Vec::new();
    let code_ok = !t.code.is_empty()
        && t.code.len() <= 64
        && t.code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !code_ok {
        errors.push(FieldError::new(
            "code",
            "letters, digits, '.', '-' and '_' (at most 64)",
        ));
    }
    if t.name.trim().is_empty() {
        errors.push(FieldError::new("name", "must not be empty"));
    }
    for v in &t.variables {
        if v.is_empty()
            || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || v.starts_with(|c: char| c.is_ascii_digit())
        {
            errors.push(FieldError::new(
                "variables",
                format!("`{v}` is not a valid variable name"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

pub async fn templates(app: &App, p: &Principal) -> Result<Vec<Template>> {
    authorize(p, "messages.send")?;
    store::templates(&app.db, p.tenant_id).await
}

pub async fn get_template(app: &App, p: &Principal, id: i64) -> Result<Template> {
    authorize(p, "messages.send")?;
    store::template(&mut Exec::Db(&app.db), p.tenant_id, TemplateKey::Id(id))
        .await?
        .ok_or(Error::NotFound("template"))
}

pub async fn save_template(
    app: &App,
    p: &Principal,
    id: Option<i64>,
    input: &TemplateInput,
) -> Result<Template> {
    authorize(p, "messages.manage")?;
    check_template_input(input)?;
    let kind = input.kind.clone().unwrap_or_else(|| "notice".into());
    check_kind(&mut Exec::Db(&app.db), p.tenant_id, &kind).await?;
    template::validate(&input.content, &input.variables)?;
    let existing = match id {
        Some(id) => Some(
            store::template(&mut Exec::Db(&app.db), p.tenant_id, TemplateKey::Id(id))
                .await?
                .ok_or(Error::NotFound("template"))?,
        ),
        None => None,
    };
    if let Some(e) = &existing {
        if e.code != input.code {
            return Err(Error::validation("code", "a template's code cannot change"));
        }
    }
    let mut tx = app.db.begin().await?;
    let tid = store::save_template(
        &mut tx,
        p.tenant_id,
        existing.as_ref(),
        input,
        &kind,
        Some(p.person_id),
    )
    .await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new(
            if existing.is_some() {
                "update"
            } else {
                "create"
            },
            "message_template",
            tid,
        )
        .after(&input.code)],
    )
    .await?;
    tx.commit().await?;
    get_template(app, p, tid).await
}

pub async fn template_versions(
    app: &App,
    p: &Principal,
    id: i64,
) -> Result<Vec<TemplateVersionInfo>> {
    get_template(app, p, id).await?;
    store::template_versions(&app.db, p.tenant_id, id).await
}

pub async fn preview(app: &App, p: &Principal, req: &PreviewRequest) -> Result<Rendered> {
    authorize(p, "messages.send")?;
    let (content, mut declared) = match (&req.content, req.template_id) {
        (Some(c), _) => (c.clone(), vec![]),
        (None, Some(id)) => {
            let t = get_template(app, p, id).await?;
            (t.content, t.variables)
        }
        (None, None) => {
            return Err(Error::validation(
                "content",
                "give content or a template_id",
            ))
        }
    };
    let vars = req.vars.clone().unwrap_or_else(|| serde_json::json!({}));
    declared.extend(
        vars.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    template::validate(&content, &declared)?;
    let person =
        crate::directory::service::get_person_unscoped(app, p.tenant_id, req.person_id).await?;
    let mut ids = vec![person.id];
    ids.extend(person.children.first().map(|c| c.id));
    let contacts = store::contacts(&app.db, p.tenant_id, &ids).await?;
    let mut row = new_row(p, "preview");
    row.vars = vars;
    row.content = content.clone();
    row.title = content.title.clone();
    Ok(Compiled::new(&content)?.render(&pipeline::context_for(
        &row,
        &p.tenant_name,
        contacts.get(&person.id),
        person.children.first().and_then(|c| contacts.get(&c.id)),
    )))
}

// ---- channel settings ----

const SECRET_FIELDS: &[&str] = &[
    "password",
    "access_key_secret",
    "security_token",
    "secret_key",
    "corp_secret",
    "key",
    "access_token",
    "secret",
    "app_secret",
    "hook_id",
    "vapid_private_key",
    "private_key",
    "token",
    "aes_key",
    "encoding_aes_key",
];
const MASK: &str = "••••";

fn masked(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        for (k, val) in o.iter_mut() {
            if SECRET_FIELDS.contains(&k.as_str()) && !val.is_null() {
                *val = serde_json::Value::String(MASK.into());
            }
        }
    }
    v
}

pub async fn channel_settings(app: &App, p: &Principal) -> Result<Vec<ChannelSetting>> {
    authorize(p, "messages.manage")?;
    let rows = store::channel_configs(&app.db, p.tenant_id).await?;
    rows.iter()
        .map(|r| {
            let cfg: serde_json::Value =
                serde_json::from_str(&app.keys.decrypt(&r.config_enc)?).unwrap_or_default();
            Ok(ChannelSetting {
                channel: r.channel.clone(),
                provider: r.provider.clone(),
                enabled: r.enabled,
                rate_per_sec: r.rate_per_sec,
                config: masked(cfg),
                updated_at: ms_to_rfc3339(r.updated_at),
            })
        })
        .collect()
}

pub async fn save_channel(
    app: &App,
    p: &Principal,
    channel: &str,
    input: &ChannelSettingInput,
) -> Result<ChannelSetting> {
    authorize(p, "messages.manage")?;
    if channel == "inapp" || !CHANNELS.contains(&channel) {
        return Err(Error::NotFound("channel"));
    }
    let mut cfg = input.config.clone();
    let provider = cfg["kind"].as_str().unwrap_or_default().to_string();
    if !pipeline::providers_of(channel).contains(&provider.as_str()) {
        return Err(Error::validation(
            "config.kind",
            format!(
                "channel {channel} takes one of: {}",
                pipeline::providers_of(channel).join(", ")
            ),
        ));
    }
    // Masked secrets keep their stored values.
    let existing = store::channel_config(&app.db, p.tenant_id, channel).await?;
    if let Some(e) = &existing {
        let old: serde_json::Value =
            serde_json::from_str(&app.keys.decrypt(&e.config_enc)?).unwrap_or_default();
        if let Some(o) = cfg.as_object_mut() {
            for (k, v) in o.iter_mut() {
                if v.as_str() == Some(MASK) {
                    *v = old[k.as_str()].clone();
                }
            }
        }
    }
    let parsed: xiaotong_channels::ChannelConfig = serde_json::from_value(cfg.clone())
        .map_err(|e| Error::validation("config", format!("{e}")))?;
    xiaotong_channels::build_channel(parsed)
        .map_err(|e| Error::validation("config", e.to_string()))?;
    let rate = input
        .rate_per_sec
        .unwrap_or(existing.as_ref().map(|e| e.rate_per_sec).unwrap_or(0));
    if !(0..=100_000).contains(&rate) {
        return Err(Error::validation(
            "rate_per_sec",
            "between 0 (no limit) and 100000",
        ));
    }
    let enabled = input.enabled.unwrap_or(true);
    let mut tx = app.db.begin().await?;
    store::save_channel_config(
        &mut tx,
        p.tenant_id,
        channel,
        &provider,
        &app.keys.encrypt(&cfg.to_string()),
        enabled,
        rate,
    )
    .await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("update", "channel", channel).after(masked(cfg))],
    )
    .await?;
    tx.commit().await?;
    channel_settings(app, p)
        .await?
        .into_iter()
        .find(|c| c.channel == channel)
        .ok_or(Error::NotFound("channel"))
}

/// Sends one test message through a channel's stored settings and reports
/// what the provider answered.
pub async fn test_send(
    app: &App,
    p: &Principal,
    channel: &str,
    req: &TestSendRequest,
) -> Result<TestSendResult> {
    authorize(p, "messages.manage")?;
    let row = store::channel_config(&app.db, p.tenant_id, channel)
        .await?
        .ok_or(Error::NotFound("channel"))?;
    let built = pipeline::build(app, &row)?;
    let to = match (&req.to, pipeline::is_group_provider(&row.provider)) {
        (_, true) => String::new(),
        (Some(t), _) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            return Err(Error::validation(
                "to",
                "give an address to send the test to",
            ))
        }
    };
    let text = format!("校通测试消息 / Xiaotong test message ({})", p.tenant_name);
    let d = xiaotong_channels::Delivery {
        id: format!("xt-test-{}", crate::crypto::random_token(6)),
        to,
        message: xiaotong_channels::OutgoingMessage {
            subject: "校通测试 / Xiaotong test".into(),
            text: text.clone(),
            html: Some(format!("<p>{text}</p>")),
            markdown: Some(text.clone()),
            sms: Some(xiaotong_channels::SmsTemplate {
                template_id: String::new(),
                params: vec![("content".into(), text)],
            }),
            ..Default::default()
        },
    };
    let report = built.channel.send(&[d]).await.into_iter().next();
    let outcome = report.map(|r| r.outcome);
    Ok(TestSendResult {
        ok: outcome.as_ref().is_some_and(|o| o.is_sent()),
        outcome: serde_json::to_value(&outcome).unwrap_or_default(),
    })
}

pub async fn settings(app: &App, p: &Principal) -> Result<MessagingSettings> {
    authorize(p, "messages.manage")?;
    store::settings(&app.db, p.tenant_id).await
}

fn check_quiet(start: &Option<String>, end: &Option<String>) -> Result<()> {
    let ok = |s: &Option<String>| {
        s.as_deref().is_none_or(|s| {
            s.split_once(':').and_then(|(h, m)| {
                Some((
                    h.parse::<u32>().ok()? < 24,
                    m.len() == 2 && m.parse::<u32>().ok()? < 60,
                ))
            }) == Some((true, true))
        })
    };
    if !ok(start) {
        return Err(Error::validation("quiet_start", "HH:MM"));
    }
    if !ok(end) {
        return Err(Error::validation("quiet_end", "HH:MM"));
    }
    if start.is_some() != end.is_some() {
        return Err(Error::validation(
            "quiet_end",
            "give both ends of the quiet hours, or neither",
        ));
    }
    Ok(())
}

pub async fn save_settings(
    app: &App,
    p: &Principal,
    s: &MessagingSettings,
) -> Result<MessagingSettings> {
    authorize(p, "messages.manage")?;
    check_quiet(&s.quiet_start, &s.quiet_end)?;
    for (from, to) in &s.fallbacks {
        if !CHANNELS.contains(&from.as_str()) || !CHANNELS.contains(&to.as_str()) || from == to {
            return Err(Error::validation(
                "fallbacks",
                format!("{from} → {to} is not a valid fallback"),
            ));
        }
    }
    if s.max_attachment_bytes < 1 {
        return Err(Error::validation(
            "max_attachment_bytes",
            "must be positive",
        ));
    }
    let mut tx = app.db.begin().await?;
    store::save_settings(&mut tx, p.tenant_id, s).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("update", "messaging_settings", p.tenant_id).after(s)],
    )
    .await?;
    tx.commit().await?;
    Ok(s.clone())
}

pub async fn preferences(app: &App, p: &Principal) -> Result<Preferences> {
    Ok(store::preferences_of(&app.db, p.tenant_id, &[p.person_id])
        .await?
        .remove(&p.person_id)
        .unwrap_or_default())
}

pub async fn save_preferences(
    app: &App,
    p: &Principal,
    prefs: &Preferences,
) -> Result<Preferences> {
    check_quiet(&prefs.quiet_start, &prefs.quiet_end)?;
    for chans in prefs.channels.values() {
        for c in chans {
            if !CHANNELS.contains(&c.as_str()) {
                return Err(Error::validation(
                    "channels",
                    format!("unknown channel `{c}`"),
                ));
            }
        }
    }
    let mut tx = app.db.begin().await?;
    store::save_preferences(&mut tx, p.tenant_id, p.person_id, prefs).await?;
    tx.commit().await?;
    preferences(app, p).await
}

// ---- attachments ----

pub async fn upload_attachment(
    app: &App,
    p: &Principal,
    filename: &str,
    content_type: &str,
    data: Vec<u8>,
) -> Result<AttachmentInfo> {
    authorize(p, "messages.send")?;
    let s = store::settings(&app.db, p.tenant_id).await?;
    if data.len() as i64 > s.max_attachment_bytes {
        return Err(Error::TooLarge(format!(
            "附件超过 {} MB / the attachment is larger than {} bytes",
            s.max_attachment_bytes / (1024 * 1024),
            s.max_attachment_bytes
        )));
    }
    let name: String = filename
        .trim()
        .chars()
        .filter(|c| !matches!(c, '/' | '\\' | '\0'))
        .take(200)
        .collect();
    if name.is_empty() {
        return Err(Error::validation("file", "the file needs a name"));
    }
    let size = data.len() as i64;
    let mut tx = app.db.begin().await?;
    let id = store::insert_attachment(&mut tx, p.tenant_id, &name, content_type, data, p.person_id)
        .await?;
    tx.commit().await?;
    Ok(AttachmentInfo {
        id,
        filename: name,
        content_type: content_type.into(),
        size,
    })
}

/// An attachment for its uploader, anyone who may see the message, or its recipients.
pub async fn download_attachment(
    app: &App,
    p: &Principal,
    id: i64,
) -> Result<(AttachmentInfo, Vec<u8>)> {
    let (message_id, info, data, by) = store::attachment_data(&app.db, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("attachment"))?;
    if by == Some(p.person_id) {
        return Ok((info, data));
    }
    if message_id != 0 {
        if visible(app, p, message_id).await.is_ok() {
            return Ok((info, data));
        }
        let got = app
            .db
            .fetch_optional(
                &Sql::new("SELECT i.id FROM inbox i JOIN messages m ON m.id = i.message_id WHERE i.tenant_id = ? AND i.person_id = ? AND i.message_id = ? AND m.state = 'published'")
                    .bind(p.tenant_id)
                    .bind(p.person_id)
                    .bind(message_id),
            )
            .await?;
        if got.is_some() {
            return Ok((info, data));
        }
    }
    Err(Error::NotFound("attachment"))
}

pub async fn set_channel_account(
    app: &App,
    p: &Principal,
    person_id: i64,
    channel: &str,
    address: Option<&str>,
) -> Result<()> {
    authorize(p, "messages.manage")?;
    crate::directory::service::get_person_unscoped(app, p.tenant_id, person_id).await?;
    if !matches!(channel, "wecom" | "dingtalk" | "feishu") {
        return Err(Error::validation("channel", "wecom, dingtalk or feishu"));
    }
    let mut tx = app.db.begin().await?;
    tx.execute(
        &Sql::new(
            "DELETE FROM person_channel_ids WHERE tenant_id = ? AND person_id = ? AND channel = ?",
        )
        .bind(p.tenant_id)
        .bind(person_id)
        .bind(channel),
    )
    .await?;
    if let Some(a) = address.map(str::trim).filter(|a| !a.is_empty()) {
        tx.execute(
            &Sql::new("INSERT INTO person_channel_ids (tenant_id, person_id, channel, address) VALUES (?, ?, ?, ?)")
                .bind(p.tenant_id)
                .bind(person_id)
                .bind(channel)
                .bind(a),
        )
        .await?;
    }
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("update", "channel_account", person_id)
            .after(serde_json::json!({"channel": channel, "address": address}))],
    )
    .await?;
    tx.commit().await
}

// ---- for other modules ----

/// What another module sends: a template (by code; the tenant's own or a
/// built-in one) to an audience, with its variables.
#[derive(Debug, Clone)]
pub struct Notify {
    pub template: String,
    pub audience: Audience,
    pub vars: serde_json::Value,
    pub priority: Priority,
    /// Channels; the inbox only when empty.
    pub channels: Vec<String>,
    /// Module that sends it, e.g. `lessons`.
    pub source: String,
    /// The audience's people, when the caller has just read them in the same
    /// transaction (a check-in's parents); `None` resolves the audience here.
    pub recipients: Option<Vec<audience::Recipient>>,
}

/// Built-in templates other modules rely on; a tenant's template with the
/// same code takes precedence.
pub fn builtin_template(code: &str) -> Option<(String, Content)> {
    let (kind, title, body) = match code {
        "lessons.notice" => (
            "system",
            "{{ student.name }} 课时通知 / Lesson hours",
            "{{ text }}",
        ),
        "lessons.low_balance" => (
            "system",
            "{{ student.name }} 课时不足提醒 / renewal reminder",
            "{{ student.name }} 的「{{ package }}」剩余 {{ balance }} 课时，请及时续费。\n\n{{ student.name }}'s {{ package }} has {{ balance }} hours left.",
        ),
        "lessons.expiry" => (
            "system",
            "{{ student.name }} 课时即将到期 / hours expiring",
            "{{ student.name }} 的「{{ package }}」将于 {{ expires_on }} 到期，剩余 {{ balance }} 课时。\n\n{{ student.name }}'s {{ package }} expires on {{ expires_on }} with {{ balance }} hours left.",
        ),
        _ => return None,
    };
    Some((
        kind.to_string(),
        Content {
            title: title.into(),
            body: body.into(),
            sms_text: Some(body.split("\n\n").next().unwrap_or(body).to_string()),
            ..Default::default()
        },
    ))
}

/// Sends a template to an audience inside the caller's transaction: the
/// message, its frozen recipients and its fan-out jobs commit or roll back
/// with the caller's own change. Returns the message id.
pub async fn notify(tx: &mut Tx, tenant_id: i64, sender: &Actor, n: &Notify) -> Result<i64> {
    let ids = notify_many(tx, tenant_id, sender, std::slice::from_ref(n)).await?;
    Ok(ids[0])
}

/// [`notify`] for several notices at once, in a fixed number of statements
/// whatever their count (one template lookup per template, one query for
/// all audiences that name people, then multi-row inserts): a check-in
/// group's parent notices would otherwise cost five statements each.
/// Audiences of other rules are resolved one by one. Returns the
/// message ids in the order given.
pub async fn notify_many(
    tx: &mut Tx,
    tenant_id: i64,
    sender: &Actor,
    notices: &[Notify],
) -> Result<Vec<i64>> {
    type Resolved = (String, Content, Option<i64>, Option<i64>);
    let mut templates: HashMap<&str, Resolved> = HashMap::new();
    for n in notices {
        if templates.contains_key(n.template.as_str()) {
            continue;
        }
        let tmpl =
            store::template(&mut Exec::Tx(tx), tenant_id, TemplateKey::Code(&n.template)).await?;
        let resolved = match tmpl {
            Some(t) => (t.kind, t.content, Some(t.id), Some(t.version)),
            None => {
                let (kind, content) = builtin_template(&n.template).ok_or_else(|| {
                    Error::BadRequest(format!("no message template `{}`", n.template))
                })?;
                (kind, content, None, None)
            }
        };
        templates.insert(n.template.as_str(), resolved);
    }
    let unresolved: Vec<&Audience> = notices
        .iter()
        .filter(|n| n.recipients.is_none())
        .map(|n| &n.audience)
        .collect();
    let mut resolved = audience::resolve_many(&mut Exec::Tx(tx), tenant_id, &unresolved)
        .await?
        .into_iter();
    let recipients: Vec<Vec<audience::Recipient>> = notices
        .iter()
        .map(|n| match &n.recipients {
            Some(known) => known.clone(),
            None => resolved.next().unwrap_or_default(),
        })
        .collect();
    let now = now_ms();
    let mut rows: Vec<MessageRow> = notices
        .iter()
        .zip(&recipients)
        .map(|(n, recipients)| {
            let (kind, content, template_id, version) = templates[n.template.as_str()].clone();
            let mut channels = if n.channels.is_empty() {
                vec!["inapp".to_string()]
            } else {
                n.channels.clone()
            };
            channels.dedup();
            MessageRow {
                id: 0,
                tenant_id,
                kind,
                title: content.title.chars().take(300).collect(),
                content,
                vars: n.vars.clone(),
                template_id,
                template_version: version,
                priority: n.priority,
                // Written as published from the start: a draft row updated at
                // once would leave a dead entry in the (tenant, state) index
                // per notice, which later state updates then step over.
                state: "published".into(),
                channels,
                audience: n.audience.clone(),
                require_confirm: false,
                sender_id: sender.person_id,
                sender_name: sender.name.clone(),
                source: n.source.clone(),
                publish_at: None,
                expires_at: None,
                published_at: Some(now),
                withdrawn_at: None,
                recipient_count: recipients.len() as i64,
                created_at: now,
                updated_at: now,
            }
        })
        .collect();
    let ids = store::insert_messages(tx, &rows).await?;
    for (row, id) in rows.iter_mut().zip(&ids) {
        row.id = *id;
    }
    let messages: Vec<(&MessageRow, &[audience::Recipient])> = rows
        .iter()
        .zip(&recipients)
        .map(|(m, rs)| (m, rs.as_slice()))
        .collect();
    deliver_many(tx, tenant_id, &messages, true).await?;
    Ok(ids)
}
