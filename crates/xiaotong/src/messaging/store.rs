//! Message-center storage; every function takes the tenant.

use super::audience::{pack, unpack, Recipient};
use super::model::*;
use crate::db::{insert_ignore, ms_to_rfc3339, now_ms, Db, RowExt, Sql, Tx};
use crate::error::{Error, Result};
use sqlx::any::AnyRow;

/// Reads through a transaction when there is one (to see its own writes),
/// else through the read pool.
pub enum Exec<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl Exec<'_> {
    pub fn backend(&self) -> crate::db::Backend {
        match self {
            Exec::Db(db) => db.backend(),
            Exec::Tx(tx) => tx.backend(),
        }
    }
    pub async fn fetch_all(&mut self, sql: &Sql) -> Result<Vec<AnyRow>> {
        match self {
            Exec::Db(db) => db.fetch_all(sql).await,
            Exec::Tx(tx) => tx.fetch_all(sql).await,
        }
    }
    pub async fn fetch_one(&mut self, sql: &Sql) -> Result<AnyRow> {
        match self {
            Exec::Db(db) => db.fetch_one(sql).await,
            Exec::Tx(tx) => tx.fetch_one(sql).await,
        }
    }
    pub async fn fetch_optional(&mut self, sql: &Sql) -> Result<Option<AnyRow>> {
        match self {
            Exec::Db(db) => db.fetch_optional(sql).await,
            Exec::Tx(tx) => tx.fetch_optional(sql).await,
        }
    }
}

/// A message as stored.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub tenant_id: i64,
    pub kind: String,
    pub title: String,
    pub content: Content,
    pub vars: serde_json::Value,
    pub template_id: Option<i64>,
    pub template_version: Option<i64>,
    pub priority: Priority,
    pub state: String,
    pub channels: Vec<String>,
    pub audience: Audience,
    pub require_confirm: bool,
    pub sender_id: Option<i64>,
    pub sender_name: Option<String>,
    pub source: String,
    pub publish_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub published_at: Option<i64>,
    pub withdrawn_at: Option<i64>,
    pub recipient_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl MessageRow {
    /// The state a reader sees: published messages past their expiry are expired.
    pub fn effective_state(&self, now: i64) -> String {
        if self.state == "published" && self.expires_at.is_some_and(|e| e <= now) {
            "expired".into()
        } else {
            self.state.clone()
        }
    }

    pub fn view(&self, attachments: Vec<AttachmentInfo>, read_count: Option<i64>) -> Message {
        Message {
            id: self.id,
            kind: self.kind.clone(),
            title: self.title.clone(),
            content: self.content.clone(),
            vars: self.vars.clone(),
            template_id: self.template_id,
            template_version: self.template_version,
            priority: self.priority,
            state: self.effective_state(now_ms()),
            channels: self.channels.clone(),
            audience: self.audience.clone(),
            require_confirm: self.require_confirm,
            sender_id: self.sender_id,
            sender_name: self.sender_name.clone(),
            source: self.source.clone(),
            publish_at: self.publish_at.map(ms_to_rfc3339),
            expires_at: self.expires_at.map(ms_to_rfc3339),
            published_at: self.published_at.map(ms_to_rfc3339),
            withdrawn_at: self.withdrawn_at.map(ms_to_rfc3339),
            recipient_count: self.recipient_count,
            read_count,
            attachments,
            created_at: ms_to_rfc3339(self.created_at),
            updated_at: ms_to_rfc3339(self.updated_at),
        }
    }
}

const MESSAGE_COLS: &str = "id, tenant_id, kind, title, content, vars, template_id, template_version, priority, state, \
    channels, audience, require_confirm, sender_id, sender_name, source, publish_at, expires_at, published_at, \
    withdrawn_at, recipient_count, created_at, updated_at";

fn message_from_row(r: &AnyRow) -> Result<MessageRow> {
    let json = |col: &str| -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&r.str(col)?).unwrap_or(serde_json::Value::Null))
    };
    Ok(MessageRow {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        kind: r.str("kind")?,
        title: r.str("title")?,
        content: serde_json::from_value(json("content")?).unwrap_or_default(),
        vars: json("vars")?,
        template_id: r.opt_i64("template_id")?,
        template_version: r.opt_i64("template_version")?,
        priority: Priority::parse(&r.str("priority")?),
        state: r.str("state")?,
        channels: serde_json::from_value(json("channels")?).unwrap_or_default(),
        audience: serde_json::from_value(json("audience")?).unwrap_or_default(),
        require_confirm: r.bool("require_confirm")?,
        sender_id: r.opt_i64("sender_id")?,
        sender_name: r.opt_str("sender_name")?,
        source: r.str("source")?,
        publish_at: r.opt_i64("publish_at")?,
        expires_at: r.opt_i64("expires_at")?,
        published_at: r.opt_i64("published_at")?,
        withdrawn_at: r.opt_i64("withdrawn_at")?,
        recipient_count: r.i64("recipient_count")?,
        created_at: r.i64("created_at")?,
        updated_at: r.i64("updated_at")?,
    })
}

const MESSAGE_COLUMNS: &str = "messages (tenant_id, kind, title, content, vars, template_id, template_version, priority, state, \
     channels, audience, require_confirm, sender_id, sender_name, source, publish_at, expires_at, published_at, \
     withdrawn_at, recipient_count, created_at, updated_at)";
const MESSAGE_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn bind_message(sql: Sql, m: &MessageRow) -> Sql {
    sql.bind(m.tenant_id)
        .bind(m.kind.as_str())
        .bind(m.title.as_str())
        .bind(serde_json::to_string(&m.content).unwrap_or_default())
        .bind(m.vars.to_string())
        .bind(m.template_id)
        .bind(m.template_version)
        .bind(m.priority.as_str())
        .bind(m.state.as_str())
        .bind(serde_json::to_string(&m.channels).unwrap_or_default())
        .bind(serde_json::to_string(&m.audience).unwrap_or_default())
        .bind(m.require_confirm)
        .bind(m.sender_id)
        .bind(m.sender_name.clone())
        .bind(m.source.as_str())
        .bind(m.publish_at)
        .bind(m.expires_at)
        .bind(m.published_at)
        .bind(m.withdrawn_at)
        .bind(m.recipient_count)
        .bind(m.created_at)
        .bind(m.updated_at)
}

pub async fn insert_message(tx: &mut Tx, m: &MessageRow) -> Result<i64> {
    let sql = Sql::new(format!(
        "INSERT INTO {MESSAGE_COLUMNS} VALUES {MESSAGE_VALUES}"
    ));
    tx.insert_id(&bind_message(sql, m)).await
}

/// Inserts messages and returns their ids in the order given: on SQLite
/// and PostgreSQL as multi-row inserts of up to 100 rows. One INSERT takes
/// its VALUES rows in order, each the next rowid or sequence value, so the
/// returned ids sorted ascending are the rows' ids in order (RETURNING
/// itself promises no order). MariaDB has no RETURNING for INSERT and may
/// interleave auto-increment values of a multi-row insert with other
/// sessions', so it inserts row by row.
pub async fn insert_messages(tx: &mut Tx, rows: &[MessageRow]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    if tx.backend() == crate::db::Backend::MySql || rows.len() == 1 {
        for m in rows {
            ids.push(insert_message(tx, m).await?);
        }
        return Ok(ids);
    }
    for chunk in rows.chunks(100) {
        let values = vec![MESSAGE_VALUES; chunk.len()].join(", ");
        let mut sql = Sql::new(format!(
            "INSERT INTO {MESSAGE_COLUMNS} VALUES {values} RETURNING id"
        ));
        for m in chunk {
            sql = bind_message(sql, m);
        }
        let mut got = tx
            .fetch_all(&sql)
            .await?
            .iter()
            .map(|r| r.i64("id"))
            .collect::<Result<Vec<i64>>>()?;
        if got.len() != chunk.len() {
            return Err(Error::Other(anyhow::anyhow!(
                "inserted {} messages but got {} ids back",
                chunk.len(),
                got.len()
            )));
        }
        got.sort_unstable();
        ids.extend(got);
    }
    Ok(ids)
}

/// Rewrites a draft's editable fields.
pub async fn update_draft(tx: &mut Tx, m: &MessageRow) -> Result<()> {
    tx.execute(
        &Sql::new(
            "UPDATE messages SET kind = ?, title = ?, content = ?, vars = ?, template_id = ?, template_version = ?, \
             priority = ?, channels = ?, audience = ?, require_confirm = ?, publish_at = ?, expires_at = ?, updated_at = ? \
             WHERE tenant_id = ? AND id = ? AND state = 'draft'",
        )
        .bind(m.kind.as_str())
        .bind(m.title.as_str())
        .bind(serde_json::to_string(&m.content).unwrap_or_default())
        .bind(m.vars.to_string())
        .bind(m.template_id)
        .bind(m.template_version)
        .bind(m.priority.as_str())
        .bind(serde_json::to_string(&m.channels).unwrap_or_default())
        .bind(serde_json::to_string(&m.audience).unwrap_or_default())
        .bind(m.require_confirm)
        .bind(m.publish_at)
        .bind(m.expires_at)
        .bind(now_ms())
        .bind(m.tenant_id)
        .bind(m.id),
    )
    .await?;
    Ok(())
}

pub async fn message(exec: &mut Exec<'_>, tenant_id: i64, id: i64) -> Result<Option<MessageRow>> {
    exec.fetch_optional(
        &Sql::new(format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tenant_id)
        .bind(id),
    )
    .await?
    .map(|r| message_from_row(&r))
    .transpose()
}

/// Locks the message row for a state change (no-op lock on SQLite, whose
/// single writer already serialises).
pub async fn message_for_update(
    tx: &mut Tx,
    tenant_id: i64,
    id: i64,
) -> Result<Option<MessageRow>> {
    let lock = if tx.backend() == crate::db::Backend::Sqlite {
        ""
    } else {
        " FOR UPDATE"
    };
    tx.fetch_optional(
        &Sql::new(format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND id = ?{lock}"
        ))
        .bind(tenant_id)
        .bind(id),
    )
    .await?
    .map(|r| message_from_row(&r))
    .transpose()
}

/// Moves a message from one state to another; false when it was not in `from`.
#[allow(clippy::too_many_arguments)]
pub async fn set_state(
    tx: &mut Tx,
    tenant_id: i64,
    id: i64,
    from: &[&str],
    to: &str,
    published_at: Option<i64>,
    withdrawn_at: Option<i64>,
    recipient_count: Option<i64>,
) -> Result<bool> {
    let mut q = Sql::new(
        "UPDATE messages SET state = ?, published_at = COALESCE(?, published_at), withdrawn_at = COALESCE(?, withdrawn_at), \
         recipient_count = COALESCE(?, recipient_count), updated_at = ? WHERE tenant_id = ? AND id = ? AND state IN ",
    )
    .bind(to)
    .bind(published_at)
    .bind(withdrawn_at)
    .bind(recipient_count)
    .bind(now_ms())
    .bind(tenant_id)
    .bind(id);
    q.push_in(from.iter().copied());
    Ok(tx.execute(&q).await? == 1)
}

pub struct MessageFilter {
    pub kind: Option<String>,
    pub state: Option<String>,
    pub sender_id: Option<i64>,
    pub q: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

pub async fn list_messages(
    db: &Db,
    tenant_id: i64,
    f: &MessageFilter,
) -> Result<(Vec<MessageRow>, i64)> {
    let mut w = Sql::new(" WHERE tenant_id = ?").bind(tenant_id);
    if let Some(k) = &f.kind {
        w.push_bind(" AND kind = ?", k.as_str());
    }
    match f.state.as_deref() {
        Some("expired") => {
            w.push_bind(" AND state = 'published' AND expires_at <= ?", now_ms());
        }
        Some("published") => {
            w.push_bind(
                " AND state = 'published' AND (expires_at IS NULL OR expires_at > ?)",
                now_ms(),
            );
        }
        Some(s) => {
            w.push_bind(" AND state = ?", s);
        }
        None => {}
    }
    if let Some(s) = f.sender_id {
        w.push_bind(" AND sender_id = ?", s);
    }
    if let Some(q) = f.q.as_deref().filter(|q| !q.trim().is_empty()) {
        w.push_bind(
            " AND LOWER(title) LIKE ?",
            format!("%{}%", q.trim().to_lowercase()),
        );
    }
    if let Some(t) = f.from_ms {
        w.push_bind(" AND created_at >= ?", t);
    }
    if let Some(t) = f.to_ms {
        w.push_bind(" AND created_at < ?", t);
    }
    let total = db
        .fetch_one(&Sql::around(
            format!("SELECT COUNT(*) AS n FROM messages{}", w.text()),
            &w,
        ))
        .await?
        .i64("n")?;
    let q = Sql::around(
        format!(
            "SELECT {MESSAGE_COLS} FROM messages{} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
            w.text(),
            f.per_page,
            (f.page - 1) * f.per_page
        ),
        &w,
    );
    let rows = db.fetch_all(&q).await?;
    Ok((
        rows.iter().map(message_from_row).collect::<Result<_>>()?,
        total,
    ))
}

// ---- frozen audience ----

/// The frozen audiences of several messages, 200 per statement.
pub async fn insert_audiences(
    tx: &mut Tx,
    tenant_id: i64,
    audiences: &[(i64, &[Recipient])],
) -> Result<()> {
    for chunk in audiences.chunks(200) {
        let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut sql = Sql::new(format!(
            "INSERT INTO message_audiences (message_id, tenant_id, person_ids, via_ids) VALUES {values}"
        ));
        for (message_id, recipients) in chunk {
            sql = sql
                .bind(*message_id)
                .bind(tenant_id)
                .bind(pack(recipients.iter().map(|r| r.person_id)))
                .bind(pack(recipients.iter().map(|r| r.via)));
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

pub async fn audience(db: &Db, tenant_id: i64, message_id: i64) -> Result<Vec<Recipient>> {
    let Some(r) = db
        .fetch_optional(
            &Sql::new("SELECT person_ids, via_ids FROM message_audiences WHERE tenant_id = ? AND message_id = ?")
                .bind(tenant_id)
                .bind(message_id),
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let ids = unpack(&r.bytes("person_ids")?);
    let vias = unpack(&r.bytes("via_ids")?);
    Ok(ids
        .into_iter()
        .zip(vias.into_iter().chain(std::iter::repeat(0)))
        .map(|(person_id, via)| Recipient { person_id, via })
        .collect())
}

// ---- inbox ----

/// Inbox entries for recipients; an entry that exists is left alone, so a
/// repeated fan-out never makes a second copy.
pub async fn insert_inbox(
    tx: &mut Tx,
    tenant_id: i64,
    message_id: i64,
    recipients: &[Recipient],
) -> Result<()> {
    insert_inboxes(tx, tenant_id, &[(message_id, recipients)]).await
}

/// Inbox entries of several messages, 1,000 per statement.
pub async fn insert_inboxes(
    tx: &mut Tx,
    tenant_id: i64,
    messages: &[(i64, &[Recipient])],
) -> Result<()> {
    let now = now_ms();
    let entries: Vec<(i64, &Recipient)> = messages
        .iter()
        .flat_map(|(id, rs)| rs.iter().map(move |r| (*id, r)))
        .collect();
    for chunk in entries.chunks(1000) {
        let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut sql = Sql::new(insert_ignore(
            tx.backend(),
            &format!("inbox (tenant_id, message_id, person_id, via_person_id, created_at) VALUES {values}"),
        ));
        for (message_id, r) in chunk {
            sql = sql
                .bind(tenant_id)
                .bind(*message_id)
                .bind(r.person_id)
                .bind((r.via != 0).then_some(r.via))
                .bind(now);
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// A new delivery row.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub person_id: i64,
    pub channel: String,
    pub provider: String,
    pub address: Option<String>,
    pub state: &'static str,
    pub next_at: Option<i64>,
    pub fallback_from: Option<String>,
    pub error: Option<String>,
}

pub async fn insert_deliveries(
    tx: &mut Tx,
    tenant_id: i64,
    message_id: i64,
    ds: &[NewDelivery],
) -> Result<()> {
    let now = now_ms();
    for chunk in ds.chunks(300) {
        let mut q = String::from(
            "deliveries (tenant_id, message_id, person_id, channel, provider, address, state, attempts, next_at, \
             fallback_from, last_error, created_at, updated_at) VALUES ",
        );
        for i in 0..chunk.len() {
            q.push_str(if i == 0 { "" } else { ", " });
            q.push_str("(?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)");
        }
        let mut sql = Sql::new(insert_ignore(tx.backend(), &q));
        for d in chunk {
            sql = sql
                .bind(tenant_id)
                .bind(message_id)
                .bind(d.person_id)
                .bind(d.channel.as_str())
                .bind(d.provider.as_str())
                .bind(d.address.clone())
                .bind(d.state)
                .bind(d.next_at)
                .bind(d.fallback_from.clone())
                .bind(d.error.clone())
                .bind(now)
                .bind(now);
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// A delivery waiting to be sent.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub id: i64,
    pub person_id: i64,
    pub attempts: i64,
}

pub async fn pending_deliveries(
    db: &Db,
    tenant_id: i64,
    message_id: i64,
    channel: &str,
    person_ids: &[i64],
) -> Result<Vec<PendingDelivery>> {
    let mut q = Sql::new(
        "SELECT id, person_id, attempts FROM deliveries WHERE tenant_id = ? AND message_id = ? AND channel = ? \
         AND state = 'pending' AND person_id IN ",
    )
    .bind(tenant_id)
    .bind(message_id)
    .bind(channel);
    q.push_in(person_ids.iter().copied());
    db.fetch_all(&q)
        .await?
        .iter()
        .map(|r| {
            Ok(PendingDelivery {
                id: r.i64("id")?,
                person_id: r.i64("person_id")?,
                attempts: r.i64("attempts")?,
            })
        })
        .collect()
}

/// Records what a send attempt did to one delivery.
#[allow(clippy::too_many_arguments)]
pub async fn record_attempt(
    tx: &mut Tx,
    tenant_id: i64,
    id: i64,
    state: &str,
    next_at: Option<i64>,
    code: Option<&str>,
    error: Option<&str>,
    provider_message_id: Option<&str>,
) -> Result<()> {
    let now = now_ms();
    tx.execute(
        &Sql::new(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_at = ?, last_code = ?, last_error = ?, \
             provider_message_id = COALESCE(?, provider_message_id), sent_at = ?, updated_at = ? \
             WHERE tenant_id = ? AND id = ? AND state = 'pending'",
        )
        .bind(state)
        .bind(next_at)
        .bind(code)
        .bind(error.map(|e| e.chars().take(1000).collect::<String>()))
        .bind(provider_message_id)
        .bind((state == "sent").then_some(now))
        .bind(now)
        .bind(tenant_id)
        .bind(id),
    )
    .await?;
    Ok(())
}

/// Marks many deliveries sent in one statement (the common case).
pub async fn mark_sent(tx: &mut Tx, tenant_id: i64, ids: &[i64]) -> Result<()> {
    let now = now_ms();
    for chunk in ids.chunks(500) {
        let mut q = Sql::new(
            "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = ?, updated_at = ?, next_at = NULL \
             WHERE tenant_id = ? AND state = 'pending' AND id IN ",
        )
        .bind(now)
        .bind(now)
        .bind(tenant_id);
        q.push_in(chunk.iter().copied());
        tx.execute(&q).await?;
    }
    Ok(())
}

pub async fn cancel_pending(tx: &mut Tx, tenant_id: i64, message_id: i64) -> Result<u64> {
    tx.execute(
        &Sql::new(
            "UPDATE deliveries SET state = 'cancelled', updated_at = ? WHERE tenant_id = ? AND message_id = ? AND state = 'pending'",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(message_id),
    )
    .await
}

/// Puts deliveries back to pending for a resend; returns (channel, person) pairs.
pub async fn reopen_deliveries(
    tx: &mut Tx,
    tenant_id: i64,
    message_id: i64,
    only_unread: bool,
) -> Result<Vec<(String, i64)>> {
    let cond = if only_unread {
        "state IN ('sent', 'failed', 'dead') AND person_id IN (SELECT person_id FROM inbox WHERE message_id = ? AND read_at IS NULL)"
    } else {
        "state IN ('failed', 'dead') AND ? > 0"
    };
    let select = Sql::new(format!(
        "SELECT channel, person_id FROM deliveries WHERE tenant_id = ? AND message_id = ? AND {cond}"
    ))
    .bind(tenant_id)
    .bind(message_id)
    .bind(message_id);
    let rows = tx.fetch_all(&select).await?;
    let out: Vec<(String, i64)> = rows
        .iter()
        .map(|r| Ok((r.str("channel")?, r.i64("person_id")?)))
        .collect::<Result<_>>()?;
    tx.execute(
        &Sql::new(format!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = NULL, updated_at = ? \
             WHERE tenant_id = ? AND message_id = ? AND {cond}"
        ))
        .bind(now_ms())
        .bind(tenant_id)
        .bind(message_id)
        .bind(message_id),
    )
    .await?;
    Ok(out)
}

// ---- people as recipients ----

/// What templates and channels need to know about a recipient.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub number: Option<String>,
    pub class: Option<String>,
    pub department: Option<String>,
    pub email: Option<String>,
    pub phone_enc: Option<String>,
    /// channel → platform user id
    pub accounts: std::collections::HashMap<String, String>,
}

pub async fn contacts(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Contact>> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let mut q = Sql::new(
            "SELECT p.id, p.name, p.kind, p.number, p.email, p.phone_enc, c.name AS class_name, d.name AS dept_name \
             FROM people p LEFT JOIN classes c ON c.id = p.class_id LEFT JOIN departments d ON d.id = p.department_id \
             WHERE p.tenant_id = ? AND p.id IN ",
        )
        .bind(tenant_id);
        q.push_in(chunk.iter().copied());
        for r in db.fetch_all(&q).await? {
            let id = r.i64("id")?;
            out.insert(
                id,
                Contact {
                    id,
                    name: r.str("name")?,
                    kind: r.str("kind")?,
                    number: r.opt_str("number")?,
                    class: r.opt_str("class_name")?,
                    department: r.opt_str("dept_name")?,
                    email: r.opt_str("email")?.filter(|e| !e.is_empty()),
                    phone_enc: r.opt_str("phone_enc")?,
                    accounts: Default::default(),
                },
            );
        }
        let mut q = Sql::new("SELECT person_id, channel, address FROM person_channel_ids WHERE tenant_id = ? AND person_id IN ")
            .bind(tenant_id);
        q.push_in(chunk.iter().copied());
        for r in db.fetch_all(&q).await? {
            if let Some(c) = out.get_mut(&r.i64("person_id")?) {
                c.accounts.insert(r.str("channel")?, r.str("address")?);
            }
        }
    }
    Ok(out)
}

/// Preferences of many people: person → (kind → channels, quiet hours).
pub async fn preferences_of(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Preferences>> {
    let mut out: std::collections::HashMap<i64, Preferences> = Default::default();
    for chunk in ids.chunks(1000) {
        let mut q = Sql::new(
            "SELECT person_id, kind, channels, quiet_start, quiet_end FROM message_preferences WHERE tenant_id = ? AND person_id IN ",
        )
        .bind(tenant_id);
        q.push_in(chunk.iter().copied());
        for r in db.fetch_all(&q).await? {
            let p = out.entry(r.i64("person_id")?).or_default();
            let kind = r.str("kind")?;
            if kind == "*" {
                p.quiet_start = r.opt_str("quiet_start")?;
                p.quiet_end = r.opt_str("quiet_end")?;
            } else if let Some(ch) = r.opt_str("channels")? {
                p.channels
                    .insert(kind, serde_json::from_str(&ch).unwrap_or_default());
            }
        }
    }
    Ok(out)
}

pub async fn save_preferences(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    p: &Preferences,
) -> Result<()> {
    tx.execute(
        &Sql::new("DELETE FROM message_preferences WHERE tenant_id = ? AND person_id = ?")
            .bind(tenant_id)
            .bind(person_id),
    )
    .await?;
    let ins = "INSERT INTO message_preferences (tenant_id, person_id, kind, channels, quiet_start, quiet_end) VALUES (?, ?, ?, ?, ?, ?)";
    tx.execute(
        &Sql::new(ins)
            .bind(tenant_id)
            .bind(person_id)
            .bind("*")
            .bind(None::<String>)
            .bind(p.quiet_start.clone())
            .bind(p.quiet_end.clone()),
    )
    .await?;
    for (kind, channels) in &p.channels {
        tx.execute(
            &Sql::new(ins)
                .bind(tenant_id)
                .bind(person_id)
                .bind(kind.as_str())
                .bind(serde_json::to_string(channels).unwrap_or_default())
                .bind(None::<String>)
                .bind(None::<String>),
        )
        .await?;
    }
    Ok(())
}

pub async fn settings(db: &Db, tenant_id: i64) -> Result<MessagingSettings> {
    Ok(db
        .fetch_optional(
            &Sql::new("SELECT settings FROM messaging_settings WHERE tenant_id = ?")
                .bind(tenant_id),
        )
        .await?
        .and_then(|r| r.str("settings").ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

pub async fn save_settings(tx: &mut Tx, tenant_id: i64, s: &MessagingSettings) -> Result<()> {
    tx.execute(&Sql::new("DELETE FROM messaging_settings WHERE tenant_id = ?").bind(tenant_id))
        .await?;
    tx.execute(
        &Sql::new(
            "INSERT INTO messaging_settings (tenant_id, settings, updated_at) VALUES (?, ?, ?)",
        )
        .bind(tenant_id)
        .bind(serde_json::to_string(s).unwrap_or_default())
        .bind(now_ms()),
    )
    .await?;
    Ok(())
}

// ---- channel settings ----

#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: i64,
    pub channel: String,
    pub provider: String,
    pub config_enc: String,
    pub enabled: bool,
    pub rate_per_sec: i64,
    pub updated_at: i64,
}

fn channel_from_row(r: &AnyRow) -> Result<ChannelRow> {
    Ok(ChannelRow {
        id: r.i64("id")?,
        channel: r.str("channel")?,
        provider: r.str("provider")?,
        config_enc: r.str("config_enc")?,
        enabled: r.bool("enabled")?,
        rate_per_sec: r.i64("rate_per_sec")?,
        updated_at: r.i64("updated_at")?,
    })
}

pub async fn channel_configs(db: &Db, tenant_id: i64) -> Result<Vec<ChannelRow>> {
    db.fetch_all(
        &Sql::new(
            "SELECT id, channel, provider, config_enc, enabled, rate_per_sec, updated_at FROM channel_configs \
             WHERE tenant_id = ? ORDER BY channel",
        )
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(channel_from_row)
    .collect()
}

pub async fn channel_config(db: &Db, tenant_id: i64, channel: &str) -> Result<Option<ChannelRow>> {
    db.fetch_optional(
        &Sql::new(
            "SELECT id, channel, provider, config_enc, enabled, rate_per_sec, updated_at FROM channel_configs \
             WHERE tenant_id = ? AND channel = ?",
        )
        .bind(tenant_id)
        .bind(channel),
    )
    .await?
    .map(|r| channel_from_row(&r))
    .transpose()
}

pub async fn save_channel_config(
    tx: &mut Tx,
    tenant_id: i64,
    channel: &str,
    provider: &str,
    config_enc: &str,
    enabled: bool,
    rate_per_sec: i64,
) -> Result<()> {
    let now = now_ms();
    let n = tx
        .execute(
            &Sql::new(
                "UPDATE channel_configs SET provider = ?, config_enc = ?, enabled = ?, rate_per_sec = ?, updated_at = ? \
                 WHERE tenant_id = ? AND channel = ?",
            )
            .bind(provider)
            .bind(config_enc)
            .bind(enabled)
            .bind(rate_per_sec)
            .bind(now)
            .bind(tenant_id)
            .bind(channel),
        )
        .await?;
    if n == 0 {
        tx.execute(
            &Sql::new(
                "INSERT INTO channel_configs (tenant_id, channel, provider, config_enc, enabled, rate_per_sec, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant_id)
            .bind(channel)
            .bind(provider)
            .bind(config_enc)
            .bind(enabled)
            .bind(rate_per_sec)
            .bind(now)
            .bind(now),
        )
        .await?;
    }
    Ok(())
}

// ---- templates ----

const TEMPLATE_COLS: &str = "t.id, t.code, t.name, t.kind, t.version, t.updated_at, v.content";

fn template_from_row(r: &AnyRow) -> Result<Template> {
    let stored: serde_json::Value = serde_json::from_str(&r.str("content")?).unwrap_or_default();
    Ok(Template {
        id: r.i64("id")?,
        code: r.str("code")?,
        name: r.str("name")?,
        kind: r.str("kind")?,
        version: r.i64("version")?,
        content: serde_json::from_value(stored["content"].clone()).unwrap_or_default(),
        variables: serde_json::from_value(stored["variables"].clone()).unwrap_or_default(),
        updated_at: ms_to_rfc3339(r.i64("updated_at")?),
    })
}

pub async fn templates(db: &Db, tenant_id: i64) -> Result<Vec<Template>> {
    db.fetch_all(
        &Sql::new(format!(
            "SELECT {TEMPLATE_COLS} FROM message_templates t JOIN message_template_versions v \
             ON v.template_id = t.id AND v.version = t.version WHERE t.tenant_id = ? ORDER BY t.code"
        ))
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(template_from_row)
    .collect()
}

pub async fn template(
    exec: &mut Exec<'_>,
    tenant_id: i64,
    by: TemplateKey<'_>,
) -> Result<Option<Template>> {
    let mut q = Sql::new(format!(
        "SELECT {TEMPLATE_COLS} FROM message_templates t JOIN message_template_versions v \
         ON v.template_id = t.id AND v.version = t.version WHERE t.tenant_id = ?"
    ))
    .bind(tenant_id);
    match by {
        TemplateKey::Id(id) => q.push_bind(" AND t.id = ?", id),
        TemplateKey::Code(c) => q.push_bind(" AND t.code = ?", c),
    };
    exec.fetch_optional(&q)
        .await?
        .map(|r| template_from_row(&r))
        .transpose()
}

pub enum TemplateKey<'a> {
    Id(i64),
    Code(&'a str),
}

pub async fn template_versions(
    db: &Db,
    tenant_id: i64,
    template_id: i64,
) -> Result<Vec<TemplateVersionInfo>> {
    db.fetch_all(
        &Sql::new(
            "SELECT version, content, created_at FROM message_template_versions WHERE tenant_id = ? AND template_id = ? \
             ORDER BY version DESC",
        )
        .bind(tenant_id)
        .bind(template_id),
    )
    .await?
    .iter()
    .map(|r| {
        let stored: serde_json::Value = serde_json::from_str(&r.str("content")?).unwrap_or_default();
        Ok(TemplateVersionInfo {
            version: r.i64("version")?,
            content: serde_json::from_value(stored["content"].clone()).unwrap_or_default(),
            variables: serde_json::from_value(stored["variables"].clone()).unwrap_or_default(),
            created_at: ms_to_rfc3339(r.i64("created_at")?),
        })
    })
    .collect()
}

/// Saves a new version (creating the template on its first).
pub async fn save_template(
    tx: &mut Tx,
    tenant_id: i64,
    existing: Option<&Template>,
    input: &TemplateInput,
    kind: &str,
    by: Option<i64>,
) -> Result<i64> {
    let now = now_ms();
    let (id, version) = match existing {
        Some(t) => {
            tx.execute(
                &Sql::new(
                    "UPDATE message_templates SET name = ?, kind = ?, version = version + 1, updated_at = ? \
                     WHERE tenant_id = ? AND id = ? AND version = ?",
                )
                .bind(input.name.as_str())
                .bind(kind)
                .bind(now)
                .bind(tenant_id)
                .bind(t.id)
                .bind(t.version),
            )
            .await
            .and_then(|n| {
                if n == 1 {
                    Ok(())
                } else {
                    Err(Error::Conflict("the template was changed meanwhile; reload it".into()))
                }
            })?;
            (t.id, t.version + 1)
        }
        None => (
            tx.insert_id(
                &Sql::new(
                    "INSERT INTO message_templates (tenant_id, code, name, kind, version, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, 1, ?, ?)",
                )
                .bind(tenant_id)
                .bind(input.code.as_str())
                .bind(input.name.as_str())
                .bind(kind)
                .bind(now)
                .bind(now),
            )
            .await?,
            1,
        ),
    };
    let stored = serde_json::json!({"content": input.content, "variables": input.variables});
    tx.execute(
        &Sql::new(
            "INSERT INTO message_template_versions (tenant_id, template_id, version, content, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(version)
        .bind(stored.to_string())
        .bind(by)
        .bind(now),
    )
    .await?;
    Ok(id)
}

// ---- message types ----

pub async fn custom_kinds(exec: &mut Exec<'_>, tenant_id: i64) -> Result<Vec<MessageKind>> {
    exec.fetch_all(
        &Sql::new("SELECT code, name FROM message_types WHERE tenant_id = ? ORDER BY code")
            .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(MessageKind {
            code: r.str("code")?,
            name: r.str("name")?,
            builtin: false,
        })
    })
    .collect()
}

pub async fn insert_kind(tx: &mut Tx, tenant_id: i64, k: &NewMessageKind) -> Result<()> {
    tx.execute(
        &Sql::new(
            "INSERT INTO message_types (tenant_id, code, name, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant_id)
        .bind(k.code.as_str())
        .bind(k.name.as_str())
        .bind(now_ms()),
    )
    .await?;
    Ok(())
}

// ---- attachments ----

pub async fn insert_attachment(
    tx: &mut Tx,
    tenant_id: i64,
    filename: &str,
    content_type: &str,
    data: Vec<u8>,
    by: i64,
) -> Result<i64> {
    tx.insert_id(
        &Sql::new(
            "INSERT INTO message_attachments (tenant_id, message_id, filename, content_type, size, data, created_by, created_at) \
             VALUES (?, NULL, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant_id)
        .bind(filename)
        .bind(content_type)
        .bind(data.len() as i64)
        .bind(data)
        .bind(by)
        .bind(now_ms()),
    )
    .await
}

/// Attaches uploaded files to a message; only the uploader's unattached files.
pub async fn attach(
    tx: &mut Tx,
    tenant_id: i64,
    message_id: i64,
    ids: &[i64],
    by: i64,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = Sql::new(
        "UPDATE message_attachments SET message_id = ? WHERE tenant_id = ? AND created_by = ? \
         AND (message_id IS NULL OR message_id = ?) AND id IN ",
    )
    .bind(message_id)
    .bind(tenant_id)
    .bind(by)
    .bind(message_id);
    q.push_in(ids.iter().copied());
    if tx.execute(&q).await? != ids.len() as u64 {
        return Err(Error::validation(
            "attachment_ids",
            "附件不存在 / an attachment was not found",
        ));
    }
    Ok(())
}

pub async fn attachments(
    db: &Db,
    tenant_id: i64,
    message_ids: &[i64],
) -> Result<Vec<(i64, AttachmentInfo)>> {
    if message_ids.is_empty() {
        return Ok(vec![]);
    }
    let mut q = Sql::new(
        "SELECT id, message_id, filename, content_type, size FROM message_attachments WHERE tenant_id = ? AND message_id IN ",
    )
    .bind(tenant_id);
    q.push_in(message_ids.iter().copied());
    q.push(" ORDER BY id");
    db.fetch_all(&q)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.i64("message_id")?,
                AttachmentInfo {
                    id: r.i64("id")?,
                    filename: r.str("filename")?,
                    content_type: r.str("content_type")?,
                    size: r.i64("size")?,
                },
            ))
        })
        .collect()
}

pub async fn attachment_data(
    db: &Db,
    tenant_id: i64,
    id: i64,
) -> Result<Option<(i64, AttachmentInfo, Vec<u8>, Option<i64>)>> {
    let Some(r) = db
        .fetch_optional(
            &Sql::new(
                "SELECT id, message_id, filename, content_type, size, data, created_by FROM message_attachments \
                 WHERE tenant_id = ? AND id = ?",
            )
            .bind(tenant_id)
            .bind(id),
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        r.opt_i64("message_id")?.unwrap_or(0),
        AttachmentInfo {
            id: r.i64("id")?,
            filename: r.str("filename")?,
            content_type: r.str("content_type")?,
            size: r.i64("size")?,
        },
        r.bytes("data")?,
        r.opt_i64("created_by")?,
    )))
}
