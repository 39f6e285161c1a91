//! Parent notices and the alert scan (low balance once per crossing,
//! expiry reminders, expiry itself), run as jobs.

use super::ledger::{self, Balance, Posting};
use super::service::{day_of, hours_text, PARENT_NOTICE};
use super::store;
use crate::app::App;
use crate::db::{insert_ignore, now_ms, Sql, Tx};
use crate::error::Result;
use crate::jobs::{self, Job, NewJob};
use std::collections::HashMap;

pub const ALERTS_JOB: &str = "lessons.alerts";

fn status_text(s: &str) -> &'static str {
    match s {
        "present" => "出勤 present",
        "late" => "迟到 late",
        "absent" => "缺勤 absent",
        "excused" => "请假 excused",
        _ => "",
    }
}

/// The text of a notice, from its payload.
pub fn notice_body(student: &str, p: &serde_json::Value) -> String {
    let kind = p["kind"].as_str().unwrap_or("");
    let hours = p["hours"].as_i64().unwrap_or(0);
    let bal = p["balance_after"].as_i64();
    let course = p["course"].as_str().unwrap_or("");
    match kind {
        "attendance" | "correction" => {
            let mut s = format!(
                "{student} {course} {}{}",
                status_text(p["status"].as_str().unwrap_or("")),
                if kind == "correction" {
                    "（更正 corrected）"
                } else {
                    ""
                }
            );
            if hours > 0 {
                s.push_str(&format!(
                    "，扣 {} 课时 / {} h used",
                    hours_text(hours),
                    hours_text(hours)
                ));
            }
            if let Some(b) = bal {
                s.push_str(&format!(
                    "，剩余 {} 课时 / {} h left",
                    hours_text(b),
                    hours_text(b)
                ));
            }
            s
        }
        "low_balance" => format!(
            "{student} 的课时包「{}」仅剩 {} 课时，请及时续费 / only {} h left: time to renew",
            p["pool"].as_str().unwrap_or(""),
            hours_text(bal.unwrap_or(0)),
            hours_text(bal.unwrap_or(0))
        ),
        "expiry" => format!(
            "{student} 的课时包「{}」将于 {} 到期，剩余 {} 课时 / expires on {}",
            p["pool"].as_str().unwrap_or(""),
            p["valid_until"].as_str().unwrap_or(""),
            hours_text(bal.unwrap_or(0)),
            p["valid_until"].as_str().unwrap_or("")
        ),
        "expired" => format!(
            "{student} 的课时包「{}」已到期，{} 课时失效 / expired, {} h lapsed",
            p["pool"].as_str().unwrap_or(""),
            hours_text(hours),
            hours_text(hours)
        ),
        _ => format!("{student}: {kind}"),
    }
}

/// `lessons.parent_notice` (alerts and expiry): record the job's notices
/// and complete it in the same transaction, so a retry never repeats them.
/// A job carries one notice, or under `notices` several.
pub async fn record_notice(app: App, job: Job) -> anyhow::Result<()> {
    let p = &job.payload;
    let tenant_id = p["tenant_id"].as_i64().unwrap_or_default();
    let items: Vec<&serde_json::Value> = match p["notices"].as_array() {
        Some(list) => list.iter().collect(),
        None => vec![p],
    };
    let mut tx = app.db.begin().await?;
    write_notices(&mut tx, tenant_id, &items, Some(job.id)).await?;
    if !jobs::complete_in(&mut tx, &job).await? {
        tx.rollback().await?;
        anyhow::bail!("lease lost");
    }
    tx.commit().await?;
    Ok(())
}

/// The parents' notices of a check-in or a correction, in its transaction.
///
/// On SQLite they are written at once: its one writer would otherwise also
/// run a notice job's claim and transaction, and check-ins queue behind
/// them (p99 at 500/s: 33–41 ms through a job, 15–17 ms at once).
/// PostgreSQL and MariaDB write in parallel, so there the notices go in the
/// outbox as one job and run beside the next check-ins, keeping the
/// check-in's transaction (which holds the accounts' locks) short
/// (1,800/s through a job, 1,300–1,400/s at once). See docs/benchmarks.md.
pub(super) async fn tell_parents(
    tx: &mut Tx,
    tenant_id: i64,
    notices: Vec<serde_json::Value>,
) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    if tx.backend() == crate::db::Backend::Sqlite {
        let items: Vec<&serde_json::Value> = notices.iter().collect();
        return write_notices(tx, tenant_id, &items, None).await;
    }
    let payload = serde_json::json!({"tenant_id": tenant_id, "notices": notices});
    jobs::enqueue(tx, &NewJob::new(PARENT_NOTICE, payload).tenant(tenant_id)).await?;
    Ok(())
}

/// Send each notice (a payload as [`notice_body`] reads it) to the parents
/// of its student, inside the caller's transaction: one message per notice
/// through the message center (the parents' inboxes, and whatever channels
/// the tenant set for `lessons.notice`), and one `lesson_notices` row per
/// parent; `job` is the job that records them, if any. Students without
/// active parents are skipped.
pub(super) async fn write_notices(
    tx: &mut Tx,
    tenant_id: i64,
    items: &[&serde_json::Value],
    job: Option<i64>,
) -> Result<()> {
    let mut students: Vec<i64> = items
        .iter()
        .filter_map(|i| i["student_id"].as_i64())
        .collect();
    students.sort_unstable();
    students.dedup();
    let mut guardians: HashMap<i64, (String, Vec<i64>)> = HashMap::new();
    for (student, name, parent) in store::guardians_named(tx, tenant_id, &students).await? {
        guardians
            .entry(student)
            .or_insert_with(|| (name, vec![]))
            .1
            .push(parent);
    }
    if guardians.is_empty() {
        return Ok(());
    }
    let actor = crate::auth::model::Actor::system(tenant_id, "lessons");
    let mut rows = vec![];
    let mut notices = vec![];
    for item in items {
        let student_id = item["student_id"].as_i64().unwrap_or_default();
        let Some((name, parents)) = guardians.get(&student_id) else {
            continue;
        };
        let body: String = notice_body(name, item).chars().take(500).collect();
        notices.push(crate::messaging::Notify {
            template: "lessons.notice".into(),
            audience: crate::messaging::Audience {
                include: vec![crate::messaging::AudienceRule {
                    rule_type: "person".into(),
                    value: Some(student_id.into()),
                    who: Some("parents".into()),
                }],
                exclude: vec![],
            },
            vars: serde_json::json!({"text": body, "kind": item["kind"]}),
            priority: crate::messaging::Priority::Normal,
            channels: vec![],
            source: "lessons".into(),
            // Just read above: the message center need not look them up again.
            recipients: Some(
                parents
                    .iter()
                    .map(|&parent| crate::messaging::audience::Recipient {
                        person_id: parent,
                        via: student_id,
                    })
                    .collect(),
            ),
        });
        let kind = item["kind"].as_str().unwrap_or("").to_string();
        let payload = item.to_string();
        for &parent in parents {
            rows.push((
                parent,
                student_id,
                kind.clone(),
                body.clone(),
                payload.clone(),
            ));
        }
    }
    crate::messaging::notify_many(tx, tenant_id, &actor, &notices).await?;
    // Several hundred rows per statement at most, well under every
    // backend's limit on bound parameters.
    let now = now_ms();
    for chunk in rows.chunks(400) {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut sql = Sql::new(insert_ignore(
            tx.backend(),
            &format!("lesson_notices (tenant_id, parent_id, student_id, kind, job_id, body, payload, created_at) VALUES {values}"),
        ));
        for (parent, student, kind, body, payload) in chunk {
            sql = sql
                .bind(tenant_id)
                .bind(*parent)
                .bind(*student)
                .bind(kind.as_str())
                .bind(job)
                .bind(body.as_str())
                .bind(payload.as_str())
                .bind(now);
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AlertCounts {
    pub low_balance: u64,
    pub expiry_reminders: u64,
    pub expired: u64,
}

/// Scan every tenant's active accounts. Each notice is guarded by a
/// compare-and-set of the account's flag in the notice's transaction, so
/// concurrent scans send it once; the low-balance flag clears when the
/// balance is back above the threshold, so the next crossing notifies again.
pub async fn run_alerts(app: &App, now: i64) -> Result<AlertCounts> {
    let mut counts = AlertCounts::default();
    for t in crate::directory::store::tenants(&app.db).await? {
        let settings = store::settings(&app.db, t.id).await?;
        for a in store::active_accounts(&app.db, &app.keys, t.id).await? {
            let base = serde_json::json!({
                "tenant_id": t.id, "student_id": a.student_id, "account_id": a.id,
                "pool": a.pool_name, "valid_until": crate::db::ms_to_rfc3339(a.valid_until),
            });
            if a.valid_until <= now {
                expire(app, t.id, a.id, now, &base).await?;
                counts.expired += 1;
                continue;
            }
            let total = a.balance.total();
            let mut tx = app.db.begin().await?;
            let mut notices = vec![];
            if total < settings.low_balance_hours {
                if !a.low_alerted
                    && store::set_flag(&mut tx, t.id, a.id, "low_alerted", false, true).await?
                {
                    let mut p = base.clone();
                    p["kind"] = "low_balance".into();
                    p["balance_after"] = total.into();
                    notices.push(NewJob::new(PARENT_NOTICE, p).tenant(t.id));
                    counts.low_balance += 1;
                }
            } else if a.low_alerted {
                store::set_flag(&mut tx, t.id, a.id, "low_alerted", true, false).await?;
            }
            if a.valid_until - now <= settings.expiry_reminder_days * 86_400_000
                && !a.expiry_reminded
                && store::set_flag(&mut tx, t.id, a.id, "expiry_reminded", false, true).await?
            {
                let mut p = base.clone();
                p["kind"] = "expiry".into();
                p["balance_after"] = total.into();
                notices.push(NewJob::new(PARENT_NOTICE, p).tenant(t.id));
                counts.expiry_reminders += 1;
            }
            jobs::enqueue_many(&mut tx, &notices).await?;
            tx.commit().await?;
        }
    }
    Ok(counts)
}

async fn expire(
    app: &App,
    tenant_id: i64,
    id: i64,
    now: i64,
    base: &serde_json::Value,
) -> Result<()> {
    let mut tx = app.db.begin().await?;
    let Some(a) = store::lock_accounts(&mut tx, &app.keys, tenant_id, &[id])
        .await?
        .pop()
    else {
        return Ok(());
    };
    if a.state != "active" || a.valid_until > now {
        return Ok(());
    }
    let total = a.balance.total();
    store::set_balance(&mut tx, &app.keys, tenant_id, id, Balance::default()).await?;
    store::set_account_state(&mut tx, tenant_id, id, "expired", a.frozen).await?;
    let mut p = base.clone();
    p["kind"] = "expired".into();
    p["hours"] = total.into();
    jobs::enqueue(&mut tx, &NewJob::new(PARENT_NOTICE, p).tenant(tenant_id)).await?;
    if total != 0 {
        ledger::post(
            &mut tx,
            &app.keys,
            tenant_id,
            now,
            day_of(now, app.settings.timezone),
            &[Posting {
                account_id: id,
                student_id: a.student_id,
                kind: "expire",
                amount: -total,
                value_fen: -a.value_of(a.balance.paid.max(0)),
                balance_after: 0,
                reference: Some("expired".into()),
                ..Posting::default()
            }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
