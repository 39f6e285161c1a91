//! Parent notices and the alert scan (low balance once per crossing,
//! expiry reminders, expiry itself), run as jobs.

use super::ledger::{self, Balance, Posting};
use super::service::{day_of, hours_text, PARENT_NOTICE};
use super::store;
use crate::app::App;
use crate::db::{insert_ignore, now_ms, Sql};
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

/// `lessons.parent_notice`: record each notice of the job for each of the
/// student's parents, and complete the job in the same transaction (exactly
/// once). A job carries one notice, or under `notices` all the notices of
/// one check-in transaction (a class, or a group of single check-ins), so
/// a busy morning costs one job per group rather than one per student.
pub async fn record_notice(app: App, job: Job) -> anyhow::Result<()> {
    let p = &job.payload;
    let tenant_id = p["tenant_id"].as_i64().unwrap_or_default();
    let items: Vec<&serde_json::Value> = match p["notices"].as_array() {
        Some(list) => list.iter().collect(),
        None => vec![p],
    };
    let mut students: Vec<i64> = items
        .iter()
        .filter_map(|i| i["student_id"].as_i64())
        .collect();
    students.sort_unstable();
    students.dedup();
    let names = store::names_of(&app.db, tenant_id, &students).await?;
    let mut tx = app.db.begin().await?;
    let parents = store::parents_of_all(&mut tx, tenant_id, &students).await?;
    let actor = crate::auth::model::Actor::system(tenant_id, "lessons");
    let mut parents_of: HashMap<i64, Vec<i64>> = HashMap::new();
    for (student, parent) in parents {
        parents_of.entry(student).or_default().push(parent);
    }
    let mut rows = vec![];
    let mut notices = vec![];
    for item in items {
        let student_id = item["student_id"].as_i64().unwrap_or_default();
        let Some(of_student) = parents_of.get(&student_id) else {
            continue;
        };
        let name = names.get(&student_id).map(String::as_str).unwrap_or("");
        let body: String = notice_body(name, item).chars().take(500).collect();
        // Into the parents' inboxes (and whatever channels the tenant set),
        // in this same transaction: the notice goes out exactly once.
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
        });
        let kind = item["kind"].as_str().unwrap_or("").to_string();
        let payload = item.to_string();
        for &parent in of_student {
            rows.push((
                parent,
                student_id,
                kind.clone(),
                body.clone(),
                payload.clone(),
            ));
        }
    }
    crate::messaging::notify_many(&mut tx, tenant_id, &actor, &notices).await?;
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
                .bind(job.id)
                .bind(body.as_str())
                .bind(payload.as_str())
                .bind(now);
        }
        tx.execute(&sql).await?;
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
