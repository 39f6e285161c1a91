//! Parent notices and the alert scan (low balance once per crossing,
//! expiry reminders, expiry itself), run as jobs.

use super::ledger::{self, Balance, Posting};
use super::service::{day_of, hours_text, PARENT_NOTICE};
use super::store;
use crate::app::App;
use crate::db::{insert_ignore, now_ms, Sql};
use crate::error::Result;
use crate::jobs::{self, Job, NewJob};

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

/// `lessons.parent_notice`: record the notice for each of the student's
/// parents, and complete the job in the same transaction (exactly once).
pub async fn record_notice(app: App, job: Job) -> anyhow::Result<()> {
    let p = &job.payload;
    let tenant_id = p["tenant_id"].as_i64().unwrap_or_default();
    let student_id = p["student_id"].as_i64().unwrap_or_default();
    let name = store::name_of(&app.db, tenant_id, student_id).await?;
    let body: String = notice_body(&name, p).chars().take(500).collect();
    let mut tx = app.db.begin().await?;
    let parents = store::parents_of(&mut tx, tenant_id, student_id).await?;
    if !parents.is_empty() {
        // Into the parents' inboxes (and whatever channels the tenant set),
        // in this same transaction: the notice goes out exactly once.
        let notice = crate::messaging::Notify {
            template: "lessons.notice".into(),
            audience: crate::messaging::Audience {
                include: vec![crate::messaging::AudienceRule {
                    rule_type: "person".into(),
                    value: Some(student_id.into()),
                    who: Some("parents".into()),
                }],
                exclude: vec![],
            },
            vars: serde_json::json!({"text": body, "kind": p["kind"]}),
            priority: crate::messaging::Priority::Normal,
            channels: vec![],
            source: "lessons".into(),
        };
        let actor = crate::auth::model::Actor::system(tenant_id, "lessons");
        crate::messaging::notify(&mut tx, tenant_id, &actor, &notice).await?;
    }
    for parent in parents {
        tx.execute(
            &Sql::new(insert_ignore(
                tx.backend(),
                "lesson_notices (tenant_id, parent_id, student_id, kind, job_id, body, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(tenant_id)
            .bind(parent)
            .bind(student_id)
            .bind(p["kind"].as_str().unwrap_or(""))
            .bind(job.id)
            .bind(body.as_str())
            .bind(p.to_string())
            .bind(now_ms()),
        )
        .await?;
    }
    if !jobs::complete_in(&mut tx, &job).await? {
        tx.rollback().await?;
        anyhow::bail!("lease lost");
    }
    tx.commit().await?;
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
