//! Job queue storage. Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL
//! and MariaDB, and a single atomic UPDATE … RETURNING on SQLite (one writer).

use super::model::{Job, JobInfo, JobState, JobStats, NewJob};
use crate::db::{insert_ignore, ms_to_rfc3339, now_ms, Backend, Db, RowExt, Sql, Tx};
use crate::error::Result;
use sqlx::any::AnyRow;

const JOB_COLS: &str = "id, tenant_id, kind, payload, attempts, max_attempts, lease_token";

/// Enqueue inside the caller's transaction. Returns `None` when a job with
/// the same unique key already exists.
pub async fn enqueue(tx: &mut Tx, job: &NewJob) -> Result<Option<i64>> {
    let now = now_ms();
    let cols = "jobs (tenant_id, kind, payload, state, priority, run_at, attempts, max_attempts, unique_key, created_at, updated_at) \
                VALUES (?, ?, ?, 'ready', ?, ?, 0, ?, ?, ?, ?)";
    let sql = |text: String| {
        Sql::new(text)
            .bind(job.tenant_id)
            .bind(job.kind.as_str())
            .bind(job.payload.to_string())
            .bind(job.priority)
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts)
            .bind(job.unique_key.clone())
            .bind(now)
            .bind(now)
    };
    if job.unique_key.is_none() {
        return Ok(Some(
            tx.insert_id(&sql(format!("INSERT INTO {cols}"))).await?,
        ));
    }
    let n = tx.execute(&sql(insert_ignore(tx.backend(), cols))).await?;
    if n == 0 {
        return Ok(None);
    }
    let row = tx
        .fetch_one(
            &Sql::new("SELECT id FROM jobs WHERE unique_key = ?").bind(job.unique_key.clone()),
        )
        .await?;
    Ok(Some(row.i64("id")?))
}

/// Enqueue many jobs without unique keys in one transaction.
pub async fn enqueue_many(tx: &mut Tx, jobs: &[NewJob]) -> Result<()> {
    let now = now_ms();
    for chunk in jobs.chunks(200) {
        let mut sql = Sql::new(
            "INSERT INTO jobs (tenant_id, kind, payload, state, priority, run_at, attempts, max_attempts, unique_key, created_at, updated_at) VALUES ",
        );
        for (i, job) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", job.tenant_id)
                .push_bind(", ?", job.kind.as_str())
                .push_bind(", ?, 'ready'", job.payload.to_string())
                .push_bind(", ?", job.priority)
                .push_bind(", ?, 0", job.run_at.unwrap_or(now))
                .push_bind(", ?", job.max_attempts)
                .push_bind(", ?", job.unique_key.clone())
                .push_bind(", ?", now)
                .push_bind(", ?)", now);
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

fn job_from_row(r: &AnyRow) -> Result<Job> {
    Ok(Job {
        id: r.i64("id")?,
        tenant_id: r.opt_i64("tenant_id")?,
        kind: r.str("kind")?,
        payload: serde_json::from_str(&r.str("payload")?).unwrap_or(serde_json::Value::Null),
        attempts: r.i64("attempts")?,
        max_attempts: r.i64("max_attempts")?,
        lease_token: r.opt_str("lease_token")?.unwrap_or_default(),
        completed_in_tx: Default::default(),
    })
}

/// Claim up to `limit` ready jobs for `lease_ms`.
pub async fn claim(
    db: &Db,
    kinds: &[String],
    limit: i64,
    lease_ms: i64,
    token: &str,
) -> Result<Vec<Job>> {
    let now = now_ms();
    let mut pick = Sql::new("SELECT id FROM jobs WHERE state = 'ready' AND run_at <= ?").bind(now);
    pick.push(" AND kind IN ");
    pick.push_in(kinds.iter().map(String::as_str));
    pick.push_bind(" ORDER BY priority DESC, run_at, id LIMIT ?", limit);
    let set = "UPDATE jobs SET state = 'running', lease_until = ?, lease_token = ?, attempts = attempts + 1, updated_at = ? WHERE id IN ";
    match db.backend() {
        Backend::Postgres | Backend::Sqlite => {
            let mut sql = Sql::new(set).bind(now + lease_ms).bind(token).bind(now);
            let lock = if db.backend() == Backend::Postgres {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            // Splice the picking subquery and its arguments after the SET arguments.
            let mut combined = Sql::new(format!(
                "{}({}{lock}) RETURNING {JOB_COLS}",
                sql.text(),
                pick.text()
            ));
            combined = combined.with_args_of(&sql).with_args_of(&pick);
            sql = combined;
            let mut tx = db.begin().await?;
            let rows = tx.fetch_all(&sql).await?;
            tx.commit().await?;
            rows.iter().map(job_from_row).collect()
        }
        Backend::MySql => {
            let mut tx = db.begin().await?;
            let mut locked = pick.clone();
            locked.push(" FOR UPDATE SKIP LOCKED");
            let ids: Vec<i64> = tx
                .fetch_all(&locked)
                .await?
                .iter()
                .map(|r| r.i64("id"))
                .collect::<Result<_>>()?;
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(vec![]);
            }
            let mut upd = Sql::new(set).bind(now + lease_ms).bind(token).bind(now);
            upd.push_in(ids.iter().copied());
            tx.execute(&upd).await?;
            let mut sel = Sql::new(format!("SELECT {JOB_COLS} FROM jobs WHERE id IN "));
            sel.push_in(ids.iter().copied());
            let rows = tx.fetch_all(&sel).await?;
            tx.commit().await?;
            rows.iter().map(job_from_row).collect()
        }
    }
}

/// Mark a job done, if this worker still holds its lease.
pub async fn complete(db: &Db, id: i64, token: &str) -> Result<bool> {
    let now = now_ms();
    Ok(db
        .execute(
            &Sql::new("UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, lease_until = NULL WHERE id = ? AND lease_token = ? AND state = 'running'")
                .bind(now)
                .bind(now)
                .bind(id)
                .bind(token),
        )
        .await?
        == 1)
}

/// Mark many jobs done, if this worker still holds their leases.
pub async fn complete_many(db: &Db, ids: &[i64], token: &str) -> Result<u64> {
    let now = now_ms();
    let mut n = 0;
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new("UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, lease_until = NULL WHERE lease_token = ? AND state = 'running' AND id IN ")
            .bind(now)
            .bind(now)
            .bind(token);
        sql.push_in(chunk.iter().copied());
        n += db.execute(&sql).await?;
    }
    Ok(n)
}

/// Mark a job done inside the handler's own transaction, so its effects and
/// its completion commit together (exactly-once for database effects).
/// Returns false when the lease was lost: the caller must roll back.
pub async fn complete_in(tx: &mut Tx, job: &Job) -> Result<bool> {
    let now = now_ms();
    let done = tx
        .execute(
            &Sql::new("UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, lease_until = NULL WHERE id = ? AND lease_token = ? AND state = 'running'")
                .bind(now)
                .bind(now)
                .bind(job.id)
                .bind(job.lease_token.as_str()),
        )
        .await?
        == 1;
    // Relaxed is enough: the runner reads it after the handler's future completed.
    job.completed_in_tx
        .store(done, std::sync::atomic::Ordering::Relaxed);
    Ok(done)
}

/// Record a failure: back to ready at `retry_at`, or dead when `retry_at` is None.
pub async fn fail(db: &Db, id: i64, token: &str, error: &str, retry_at: Option<i64>) -> Result<()> {
    let now = now_ms();
    let (state, run_at) = match retry_at {
        Some(t) => ("ready", t),
        None => ("dead", now),
    };
    db.execute(
        &Sql::new("UPDATE jobs SET state = ?, run_at = ?, last_error = ?, lease_token = NULL, lease_until = NULL, updated_at = ?, finished_at = ? WHERE id = ? AND lease_token = ?")
            .bind(state)
            .bind(run_at)
            .bind(truncate(error, 4000))
            .bind(now)
            .bind(if retry_at.is_none() { Some(now) } else { None })
            .bind(id)
            .bind(token),
    )
    .await?;
    Ok(())
}

/// Give a job back without counting the attempt (graceful shutdown).
pub async fn release(db: &Db, id: i64, token: &str) -> Result<()> {
    db.execute(
        &Sql::new("UPDATE jobs SET state = 'ready', attempts = attempts - 1, lease_token = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND lease_token = ? AND state = 'running'")
            .bind(now_ms())
            .bind(id)
            .bind(token),
    )
    .await?;
    Ok(())
}

/// Extend the leases of the jobs `ids` this worker is still running. Only
/// those: a job whose outcome could not be written must not be kept leased
/// for the life of the process, but expire and return to the queue.
pub async fn heartbeat(db: &Db, token: &str, ids: &[i64], lease_ms: i64) -> Result<u64> {
    let until = now_ms() + lease_ms;
    let mut n = 0;
    for chunk in ids.chunks(500) {
        let mut sql =
            Sql::new("UPDATE jobs SET lease_until = ? WHERE lease_token = ? AND state = 'running' AND id IN ")
                .bind(until)
                .bind(token);
        sql.push_in(chunk.iter().copied());
        n += db.execute(&sql).await?;
    }
    Ok(n)
}

/// Return jobs whose lease expired (their worker died) to the queue, or to
/// the dead letters when they have used all attempts.
pub async fn reap_expired(db: &Db) -> Result<u64> {
    let now = now_ms();
    let dead = db
        .execute(
            &Sql::new("UPDATE jobs SET state = 'dead', last_error = 'lease expired on the last attempt', lease_token = NULL, lease_until = NULL, updated_at = ?, finished_at = ? WHERE state = 'running' AND lease_until < ? AND attempts >= max_attempts")
                .bind(now)
                .bind(now)
                .bind(now),
        )
        .await?;
    let ready = db
        .execute(
            &Sql::new("UPDATE jobs SET state = 'ready', last_error = 'lease expired', lease_token = NULL, lease_until = NULL, run_at = ?, updated_at = ? WHERE state = 'running' AND lease_until < ?")
                .bind(now)
                .bind(now)
                .bind(now),
        )
        .await?;
    Ok(dead + ready)
}

pub async fn stats(db: &Db, tenant_id: Option<i64>) -> Result<JobStats> {
    let mut sql = Sql::new("SELECT state, COUNT(*) AS n FROM jobs");
    if let Some(t) = tenant_id {
        sql.push_bind(" WHERE tenant_id = ?", t);
    }
    sql.push(" GROUP BY state");
    let mut s = JobStats::default();
    for r in db.fetch_all(&sql).await? {
        let n = r.i64("n")?;
        match JobState::parse(&r.str("state")?) {
            Some(JobState::Ready) => s.ready = n,
            Some(JobState::Running) => s.running = n,
            Some(JobState::Done) => s.done = n,
            Some(JobState::Dead) => s.dead = n,
            None => {}
        }
    }
    Ok(s)
}

pub async fn list(
    db: &Db,
    tenant_id: Option<i64>,
    state: Option<JobState>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobInfo>, i64)> {
    let mut filter = Sql::new(" WHERE 1 = 1");
    if let Some(t) = tenant_id {
        filter.push_bind(" AND tenant_id = ?", t);
    }
    if let Some(s) = state {
        filter.push_bind(" AND state = ?", s.as_str());
    }
    let total = db
        .fetch_one(&Sql::around(
            format!("SELECT COUNT(*) AS n FROM jobs{}", filter.text()),
            &filter,
        ))
        .await?
        .i64("n")?;
    let mut sql = Sql::around(
        format!(
            "SELECT id, kind, state, attempts, max_attempts, run_at, last_error, created_at FROM jobs{} ORDER BY id DESC",
            filter.text()
        ),
        &filter,
    );
    sql.push_bind(" LIMIT ?", limit)
        .push_bind(" OFFSET ?", offset);
    let items = db
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(JobInfo {
                id: r.i64("id")?,
                kind: r.str("kind")?,
                state: JobState::parse(&r.str("state")?).unwrap_or(JobState::Dead),
                attempts: r.i64("attempts")?,
                max_attempts: r.i64("max_attempts")?,
                run_at: ms_to_rfc3339(r.i64("run_at")?),
                last_error: r.opt_str("last_error")?,
                created_at: ms_to_rfc3339(r.i64("created_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((items, total))
}

/// Put a dead job back in the queue with a fresh set of attempts.
pub async fn retry_dead(db: &Db, tenant_id: Option<i64>, id: i64) -> Result<bool> {
    let now = now_ms();
    let mut sql = Sql::new("UPDATE jobs SET state = 'ready', attempts = 0, run_at = ?, updated_at = ?, finished_at = NULL WHERE id = ? AND state = 'dead'")
        .bind(now)
        .bind(now)
        .bind(id);
    if let Some(t) = tenant_id {
        sql.push_bind(" AND tenant_id = ?", t);
    }
    Ok(db.execute(&sql).await? == 1)
}

/// Delete finished jobs older than `before_ms`.
pub async fn prune_done(db: &Db, before_ms: i64) -> Result<u64> {
    db.execute(
        &Sql::new("DELETE FROM jobs WHERE state = 'done' AND finished_at < ?").bind(before_ms),
    )
    .await
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
