use super::model::{AuditEntry, AuditFilter, Change};
use crate::auth::model::Actor;
use crate::chain;
use crate::db::{ms_to_rfc3339, now_ms, Db, RowExt, Sql, Tx};
use crate::error::Result;

pub fn chain_name(tenant_id: i64) -> String {
    format!("audit:{tenant_id}")
}

/// The hashed content of one entry: exactly the stored columns, so the
/// verifier recomputes it from what is in the table.
#[allow(clippy::too_many_arguments)]
pub fn canonical(
    at: i64,
    actor_id: Option<i64>,
    actor_name: Option<&str>,
    action: &str,
    entity: &str,
    entity_id: Option<&str>,
    ip: Option<&str>,
    before: Option<&str>,
    after: Option<&str>,
) -> String {
    serde_json::to_string(&(
        at, actor_id, actor_name, action, entity, entity_id, ip, before, after,
    ))
    .unwrap_or_default()
}

/// Append entries for `changes` in the caller's transaction.
pub async fn append(tx: &mut Tx, actor: &Actor, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let chain_name = chain_name(actor.tenant_id);
    let link = chain::claim_chains(tx, std::slice::from_ref(&chain_name))
        .await?
        .remove(0);
    let at = now_ms();
    let mut prev = link.prev_hash;
    let mut seq = link.seq;
    for chunk in changes.chunks(100) {
        let mut sql = Sql::new(
            "INSERT INTO audit_log (tenant_id, seq, at, actor_id, actor_name, action, entity, entity_id, ip, request_id, before_json, after_json, prev_hash, hash) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            let before = c.before.as_ref().map(|v| v.to_string());
            let after = c.after.as_ref().map(|v| v.to_string());
            let content = canonical(
                at,
                actor.person_id,
                actor.name.as_deref(),
                &c.action,
                &c.entity,
                c.entity_id.as_deref(),
                actor.ip.as_deref(),
                before.as_deref(),
                after.as_deref(),
            );
            let hash = chain::entry_hash(&prev, seq, &content);
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", actor.tenant_id)
                .push_bind(", ?", seq)
                .push_bind(", ?", at)
                .push_bind(", ?", actor.person_id)
                .push_bind(", ?", actor.name.clone())
                .push_bind(", ?", c.action.as_str())
                .push_bind(", ?", c.entity.as_str())
                .push_bind(", ?", c.entity_id.clone())
                .push_bind(", ?", actor.ip.clone())
                .push_bind(", ?", actor.request_id.clone())
                .push_bind(", ?", before)
                .push_bind(", ?", after)
                .push_bind(", ?", prev.clone())
                .push_bind(", ?)", hash.clone());
            prev = hash;
            seq += 1;
        }
        tx.execute(&sql).await?;
    }
    chain::advance_chains(tx, &[(chain_name, seq - 1, prev)]).await
}

fn filter_sql(tenant_id: i64, f: &AuditFilter) -> Sql {
    let mut sql = Sql::new(" WHERE tenant_id = ?").bind(tenant_id);
    if let Some(a) = f.actor_id {
        sql.push_bind(" AND actor_id = ?", a);
    }
    if let Some(e) = &f.entity {
        sql.push_bind(" AND entity = ?", e.as_str());
    }
    if let Some(e) = &f.entity_id {
        sql.push_bind(" AND entity_id = ?", e.as_str());
    }
    if let Some(a) = &f.action {
        sql.push_bind(" AND action = ?", a.as_str());
    }
    if let Some(t) = f.from_ms {
        sql.push_bind(" AND at >= ?", t);
    }
    if let Some(t) = f.to_ms {
        sql.push_bind(" AND at < ?", t);
    }
    sql
}

pub async fn list(
    db: &Db,
    tenant_id: i64,
    f: &AuditFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditEntry>, i64)> {
    let filter = filter_sql(tenant_id, f);
    let total = db
        .fetch_one(&Sql::around(
            format!("SELECT COUNT(*) AS n FROM audit_log{}", filter.text()),
            &filter,
        ))
        .await?
        .i64("n")?;
    let mut sql = Sql::around(
        format!(
            "SELECT id, seq, at, actor_id, actor_name, action, entity, entity_id, ip, request_id, before_json, after_json, prev_hash, hash FROM audit_log{} ORDER BY seq DESC",
            filter.text()
        ),
        &filter,
    );
    sql.push_bind(" LIMIT ?", limit)
        .push_bind(" OFFSET ?", offset);
    let rows = db.fetch_all(&sql).await?;
    let items = rows
        .iter()
        .map(|r| {
            let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str(&t).ok());
            Ok(AuditEntry {
                id: r.i64("id")?,
                seq: r.i64("seq")?,
                at: ms_to_rfc3339(r.i64("at")?),
                actor_id: r.opt_i64("actor_id")?,
                actor_name: r.opt_str("actor_name")?,
                action: r.str("action")?,
                entity: r.str("entity")?,
                entity_id: r.opt_str("entity_id")?,
                ip: r.opt_str("ip")?,
                request_id: r.opt_str("request_id")?,
                before: parse(r.opt_str("before_json")?),
                after: parse(r.opt_str("after_json")?),
                hash: r.str("hash")?,
                prev_hash: r.str("prev_hash")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((items, total))
}

/// Read a tenant's chain in order, a page at a time, and verify it.
pub async fn verify(db: &Db, tenant_id: i64) -> Result<super::model::VerifyReport> {
    let mut v = chain::Verifier::default();
    let mut after_seq = 0i64;
    loop {
        let rows = db
            .fetch_all(
                &Sql::new("SELECT seq, at, actor_id, actor_name, action, entity, entity_id, ip, before_json, after_json, prev_hash, hash FROM audit_log WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT 5000")
                    .bind(tenant_id)
                    .bind(after_seq),
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let before = r.opt_str("before_json")?;
            let after = r.opt_str("after_json")?;
            let actor_name = r.opt_str("actor_name")?;
            let entity_id = r.opt_str("entity_id")?;
            let ip = r.opt_str("ip")?;
            let e = chain::StoredEntry {
                seq: r.i64("seq")?,
                content: canonical(
                    r.i64("at")?,
                    r.opt_i64("actor_id")?,
                    actor_name.as_deref(),
                    &r.str("action")?,
                    &r.str("entity")?,
                    entity_id.as_deref(),
                    ip.as_deref(),
                    before.as_deref(),
                    after.as_deref(),
                ),
                prev_hash: r.str("prev_hash")?,
                hash: r.str("hash")?,
            };
            after_seq = e.seq;
            if let Err(b) = v.push(&e) {
                return Ok(super::model::VerifyReport {
                    ok: false,
                    checked: v.checked,
                    first_broken_seq: Some(b.seq),
                    reason: Some(b.reason),
                });
            }
        }
    }
    let head = db
        .fetch_optional(
            &Sql::new("SELECT seq, head_hash FROM chain_heads WHERE chain = ?")
                .bind(chain_name(tenant_id)),
        )
        .await?;
    let (head_seq, head_hash) = match head {
        Some(r) => (r.i64("seq")?, r.str("head_hash")?),
        None => (0, chain::GENESIS.to_string()),
    };
    if let Err(b) = v.finish(head_seq, &head_hash) {
        return Ok(super::model::VerifyReport {
            ok: false,
            checked: v.checked,
            first_broken_seq: Some(b.seq),
            reason: Some(b.reason),
        });
    }
    Ok(super::model::VerifyReport {
        ok: true,
        checked: v.checked,
        first_broken_seq: None,
        reason: None,
    })
}
