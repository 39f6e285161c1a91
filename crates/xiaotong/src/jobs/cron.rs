//! Persisted cron schedules. Every `serve` process ticks; a compare-and-set
//! on `next_at` lets exactly one of them fire each tick, and the job it
//! enqueues carries a unique key for the tick as a second guard.

use super::model::NewJob;
use super::store;
use crate::db::{insert_ignore, now_ms, Db, RowExt, Sql};
use crate::error::{Error, Result};
use chrono::TimeZone;
use chrono_tz::Tz;
use croner::Cron;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub expr: String,
    pub job_kind: String,
    pub payload: serde_json::Value,
}

fn parse(expr: &str) -> Result<Cron> {
    Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| Error::BadRequest(format!("invalid cron expression {expr:?}: {e}")))
}

/// The first tick strictly after `after_ms`, in the school's time zone.
pub fn next_after(expr: &str, tz: Tz, after_ms: i64) -> Result<i64> {
    let cron = parse(expr)?;
    let after = tz
        .timestamp_millis_opt(after_ms)
        .single()
        .ok_or_else(|| Error::BadRequest("timestamp out of range".into()))?;
    let next = cron
        .find_next_occurrence(&after, false)
        .map_err(|e| Error::BadRequest(format!("cron expression {expr:?} never fires: {e}")))?;
    Ok(next.timestamp_millis())
}

/// Create or update schedules; an unchanged schedule keeps its next tick.
pub async fn register(db: &Db, tz: Tz, schedules: &[Schedule]) -> Result<()> {
    let now = now_ms();
    for s in schedules {
        let next = next_after(&s.expr, tz, now)?;
        let mut tx = db.begin().await?;
        tx.execute(
            &Sql::new(insert_ignore(
                tx.backend(),
                "cron_schedules (name, expr, job_kind, payload, next_at, enabled) VALUES (?, ?, ?, ?, ?, 1)",
            ))
            .bind(s.name.as_str())
            .bind(s.expr.as_str())
            .bind(s.job_kind.as_str())
            .bind(s.payload.to_string())
            .bind(next),
        )
        .await?;
        tx.execute(
            &Sql::new("UPDATE cron_schedules SET expr = ?, job_kind = ?, payload = ?, next_at = ? WHERE name = ? AND expr <> ?")
                .bind(s.expr.as_str())
                .bind(s.job_kind.as_str())
                .bind(s.payload.to_string())
                .bind(next)
                .bind(s.name.as_str())
                .bind(s.expr.as_str()),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Fire every due schedule once. Returns how many this process fired.
pub async fn tick(db: &Db, tz: Tz) -> Result<usize> {
    let now = now_ms();
    let due = db
        .fetch_all(
            &Sql::new("SELECT name, expr, job_kind, payload, next_at FROM cron_schedules WHERE enabled = 1 AND next_at <= ?")
                .bind(now),
        )
        .await?;
    let mut fired = 0;
    for r in due {
        let name = r.str("name")?;
        let expr = r.str("expr")?;
        let tick_at = r.i64("next_at")?;
        let next = next_after(&expr, tz, now)?;
        let mut tx = db.begin().await?;
        let won = tx
            .execute(
                &Sql::new("UPDATE cron_schedules SET next_at = ?, last_at = ? WHERE name = ? AND next_at = ?")
                    .bind(next)
                    .bind(tick_at)
                    .bind(name.as_str())
                    .bind(tick_at),
            )
            .await?
            == 1;
        if !won {
            tx.rollback().await?;
            continue;
        }
        let payload = serde_json::from_str(&r.str("payload")?).unwrap_or(serde_json::Value::Null);
        let job = NewJob::new(r.str("job_kind")?, payload)
            .unique(format!("cron:{name}:{tick_at}"))
            .max_attempts(3);
        store::enqueue(&mut tx, &job).await?;
        tx.commit().await?;
        fired += 1;
    }
    Ok(fired)
}

/// Tick once a second until shutdown.
pub async fn run(db: Db, tz: Tz, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        if let Err(e) = tick(&db, tz).await {
            tracing::warn!(error = %e, "cron tick failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_uses_the_time_zone() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        // 2026-01-01T00:00:00Z is 08:00 in Shanghai; "0 7 * * *" next fires at 07:00 local next day.
        let start = chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let next = next_after("0 7 * * *", tz, start).unwrap();
        let expected = chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 23, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(next, expected);
        assert!(next_after("not a cron", tz, start).is_err());
    }
}
