//! `cargo xtask bench jobs`: throughput of the durable queue. `diag.noop`
//! measures the queue (claim, run, batched completion); `diag.record` adds a
//! real write per job, committed with the job's completion (exactly once).

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use xiaotong::db::{RowExt, Sql};
use xiaotong::jobs::{self, NewJob, Registry, RunnerConfig};

#[tokio::main]
async fn main() {
    let n: i64 = 20_000;
    println!("machine: {}", common::machine());
    for (backend, kind) in [
        ("sqlite", jobs::DIAG_NOOP),
        ("sqlite", jobs::DIAG_RECORD),
        ("postgres", jobs::DIAG_NOOP),
        ("postgres", jobs::DIAG_RECORD),
    ] {
        let Some(app) = common::fresh(backend).await else {
            continue;
        };
        let enq = Instant::now();
        let batch: Vec<NewJob> = (0..n)
            .map(|i| NewJob::new(kind, serde_json::json!({ "i": i })))
            .collect();
        let mut tx = app.db.begin().await.expect("begin");
        jobs::enqueue_many(&mut tx, &batch).await.expect("enqueue");
        tx.commit().await.expect("commit");
        let enqueue_s = enq.elapsed().as_secs_f64();
        let mut reg = Registry::default();
        jobs::register_builtin(&mut reg, app.db.clone());
        let stop = CancellationToken::new();
        let cfg = RunnerConfig {
            concurrency: 32,
            ..RunnerConfig::default()
        };
        let started = Instant::now();
        let runner = tokio::spawn(jobs::service::run(app.db.clone(), reg, cfg, stop.clone()));
        loop {
            let done = app
                .db
                .fetch_one(&Sql::new(
                    "SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'",
                ))
                .await
                .expect("count")
                .i64("n")
                .expect("n");
            if done >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        stop.cancel();
        runner.await.ok();
        println!(
            "bench=jobs db={backend} kind={kind} jobs={n} enqueue_seconds={enqueue_s:.2} seconds={secs:.2} jobs_per_second={:.0}",
            n as f64 / secs
        );
        common::discard(app).await;
    }
}
