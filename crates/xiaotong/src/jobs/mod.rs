//! The durable job queue and the cron runner that every domain uses.
//!
//! Enqueue with [`enqueue`] inside the caller's transaction; the runner
//! started by `serve` carries the job out with retries.

pub mod cron;
pub mod http;
pub mod model;
pub mod service;
pub mod store;

pub use model::{Job, JobState, NewJob};
pub use service::{Registry, RunnerConfig};
pub use store::{complete_in, enqueue, enqueue_many};

/// Diagnostic job: records that it ran, and completes in the same
/// transaction, so double execution would show as two rows. Used by the
/// queue's tests and `cargo xtask bench jobs`.
pub const DIAG_RECORD: &str = "diag.record";
pub const DIAG_NOOP: &str = "diag.noop";

pub fn register_builtin(reg: &mut Registry, db: crate::db::Db) {
    let d = db.clone();
    reg.register(DIAG_RECORD, move |job: Job| {
        let db = d.clone();
        async move {
            let mut tx = db.begin().await?;
            tx.execute(
                &crate::db::Sql::new(
                    "INSERT INTO diag_job_runs (job_id, worker, at) VALUES (?, ?, ?)",
                )
                .bind(job.id)
                .bind(job.lease_token.as_str())
                .bind(crate::db::now_ms()),
            )
            .await?;
            if !complete_in(&mut tx, &job).await? {
                tx.rollback().await?;
                anyhow::bail!("lease lost");
            }
            tx.commit().await?;
            Ok(())
        }
    });
    // Diagnostic job that does nothing: measures the queue itself.
    reg.register(DIAG_NOOP, |_job: Job| async { Ok(()) });
    let d = db;
    reg.register("jobs.prune", move |_job: Job| {
        let db = d.clone();
        async move {
            let week = 7 * 24 * 3600 * 1000;
            store::prune_done(&db, crate::db::now_ms() - week).await?;
            Ok(())
        }
    });
}
