//! The job queue and cron: transactional enqueue, unique keys, retries with
//! backoff into dead letters, lease expiry, fenced completion, graceful
//! shutdown, cron firing once per tick, and two server processes running
//! 10,000 jobs exactly once.

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use xiaotong::db::{RowExt, Sql};
use xiaotong::jobs::{self, cron, store, NewJob, Registry, RunnerConfig};

async fn count(app: &xiaotong::app::App, sql: &str) -> i64 {
    app.db
        .fetch_one(&Sql::new(sql))
        .await
        .unwrap()
        .i64("n")
        .unwrap()
}

async fn queue_rules(url: String) {
    let app = open_app(&url).await;

    // Enqueue is part of the caller's transaction.
    let mut tx = app.db.begin().await.unwrap();
    jobs::enqueue(&mut tx, &NewJob::new("t.noop", serde_json::json!({})))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM jobs").await, 0);

    // Unique keys: the second enqueue is a no-op.
    let mut tx = app.db.begin().await.unwrap();
    let a = jobs::enqueue(
        &mut tx,
        &NewJob::new("t.noop", serde_json::json!({})).unique("k1"),
    )
    .await
    .unwrap();
    let b = jobs::enqueue(
        &mut tx,
        &NewJob::new("t.noop", serde_json::json!({})).unique("k1"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(a.is_some());
    assert!(b.is_none());

    // Leases: a claimed job whose worker vanished returns to the queue.
    let kinds = vec!["t.noop".to_string()];
    let claimed = store::claim(&app.db, &kinds, 10, 1, "dead-worker")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store::claim(&app.db, &kinds, 10, 60_000, "other")
            .await
            .unwrap()
            .is_empty(),
        "a leased job is not claimed twice"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store::reap_expired(&app.db).await.unwrap(), 1);
    let again = store::claim(&app.db, &kinds, 10, 60_000, "w2")
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    // The old worker's completion is fenced off; the new one's counts.
    assert!(!store::complete(&app.db, again[0].id, "dead-worker")
        .await
        .unwrap());
    let mut tx = app.db.begin().await.unwrap();
    assert!(jobs::complete_in(&mut tx, &again[0]).await.unwrap());
    tx.commit().await.unwrap();
    let s = store::stats(&app.db, None).await.unwrap();
    assert_eq!((s.done, s.ready, s.running), (1, 0, 0));

    // Heartbeats keep only the jobs a worker still runs: one whose outcome
    // it could not write lapses and returns to the queue while the worker
    // lives on.
    let mut tx = app.db.begin().await.unwrap();
    for _ in 0..2 {
        jobs::enqueue(&mut tx, &NewJob::new("t.noop", serde_json::json!({})))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let pair = store::claim(&app.db, &kinds, 10, 200, "live-worker")
        .await
        .unwrap();
    assert_eq!(pair.len(), 2);
    let (kept, lapsed) = (pair[0].id, pair[1].id);
    assert_eq!(
        store::heartbeat(&app.db, "live-worker", &[kept], 60_000)
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store::reap_expired(&app.db).await.unwrap(), 1);
    let state = |id: i64| {
        let db = app.db.clone();
        async move {
            db.fetch_one(&Sql::new("SELECT state FROM jobs WHERE id = ?").bind(id))
                .await
                .unwrap()
                .str("state")
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(state(kept).await, "running");
    assert_eq!(state(lapsed).await, "ready");
    assert!(store::complete(&app.db, kept, "live-worker").await.unwrap());
    let rest = store::claim(&app.db, &kinds, 10, 60_000, "w3")
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(store::complete(&app.db, rest[0].id, "w3").await.unwrap());

    // Failures retry with backoff, then go to the dead letters with the error.
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut reg = Registry::default();
    let seen = attempts.clone();
    reg.register("t.fail", move |_job| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("provider said no")
        }
    });
    let mut tx = app.db.begin().await.unwrap();
    let id = jobs::enqueue(
        &mut tx,
        &NewJob::new("t.fail", serde_json::json!({})).max_attempts(2),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    let stop = CancellationToken::new();
    let runner = tokio::spawn(jobs::service::run(
        app.db.clone(),
        reg,
        RunnerConfig::default(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "the retry waits for its backoff"
    );
    let row = app
        .db
        .fetch_one(&Sql::new("SELECT state, run_at, last_error FROM jobs WHERE id = ?").bind(id))
        .await
        .unwrap();
    assert_eq!(row.str("state").unwrap(), "ready");
    assert!(row.i64("run_at").unwrap() > xiaotong::db::now_ms() + 300);
    assert!(row.str("last_error").unwrap().contains("provider said no"));
    // Bring the retry forward instead of waiting for it.
    app.db
        .execute(&Sql::new("UPDATE jobs SET run_at = 0 WHERE id = ?").bind(id))
        .await
        .unwrap();
    for _ in 0..50 {
        if count(&app, "SELECT COUNT(*) AS n FROM jobs WHERE state = 'dead'").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let (dead, _) = store::list(&app.db, None, Some(jobs::JobState::Dead), 10, 0)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("provider said no"));
    assert!(store::retry_dead(&app.db, None, id).await.unwrap());
    stop.cancel();
    runner.await.unwrap();
}
on_all_backends!(queue, queue_rules);

/// Shutdown lets a short job finish and releases a long one.
async fn graceful_shutdown(url: String) {
    let app = open_app(&url).await;
    let mut reg = Registry::default();
    reg.register("t.short", |_job| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    });
    reg.register("t.long", |_job| async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        Ok(())
    });
    let mut tx = app.db.begin().await.unwrap();
    jobs::enqueue(&mut tx, &NewJob::new("t.short", serde_json::json!({})))
        .await
        .unwrap();
    let long = jobs::enqueue(&mut tx, &NewJob::new("t.long", serde_json::json!({})))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let stop = CancellationToken::new();
    let cfg = RunnerConfig {
        shutdown_grace: Duration::from_millis(800),
        ..RunnerConfig::default()
    };
    let runner = tokio::spawn(jobs::service::run(app.db.clone(), reg, cfg, stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    runner.await.unwrap();
    let s = store::stats(&app.db, None).await.unwrap();
    assert_eq!(s.done, 1, "the short job finished");
    assert_eq!(s.ready, 1, "the long job was released");
    let row = app
        .db
        .fetch_one(&Sql::new("SELECT attempts, state FROM jobs WHERE id = ?").bind(long))
        .await
        .unwrap();
    assert_eq!(
        row.i64("attempts").unwrap(),
        0,
        "a released job does not use up an attempt"
    );
}
on_all_backends!(shutdown, graceful_shutdown);

/// Many processes tick at once: each due tick fires exactly once.
async fn cron_once(url: String) {
    let app = open_app(&url).await;
    let tz = chrono_tz::Asia::Shanghai;
    cron::register(
        &app.db,
        tz,
        &[cron::Schedule {
            name: "every-second".into(),
            expr: "* * * * * *".into(),
            job_kind: "t.tick".into(),
            payload: serde_json::json!({}),
        }],
    )
    .await
    .unwrap();
    let mut fired = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut handles = vec![];
        for _ in 0..6 {
            let db = app.db.clone();
            handles.push(tokio::spawn(
                async move { cron::tick(&db, tz).await.unwrap() },
            ));
        }
        let mut this_round = 0;
        for h in handles {
            this_round += h.await.unwrap();
        }
        assert_eq!(
            this_round, 1,
            "one of six concurrent tickers fires the due tick"
        );
        fired += this_round;
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) AS n FROM jobs WHERE kind = 't.tick'").await,
        fired as i64
    );
}
on_all_backends!(cron_exactly_once, cron_once);

/// Two `xiaotong serve` processes on one database run 10,000 jobs, each exactly once.
async fn two_servers(url: String) {
    if url.starts_with("sqlite") {
        // Several servers share PostgreSQL or MariaDB, not an embedded file.
        return;
    }
    let app = open_app(&url).await;
    let n = 10_000;
    let mut tx = app.db.begin().await.unwrap();
    let batch: Vec<NewJob> = (0..n)
        .map(|i| NewJob::new(jobs::DIAG_RECORD, serde_json::json!({ "i": i })))
        .collect();
    jobs::enqueue_many(&mut tx, &batch).await.unwrap();
    tx.commit().await.unwrap();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_xiaotong"))
            .args([
                "--database-url",
                &url,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--job-concurrency",
                "16",
            ])
            .env(
                "XIAOTONG_SECRET_KEY",
                "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
            )
            .env("XIAOTONG_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut a = spawn();
    let mut b = spawn();
    let started = std::time::Instant::now();
    loop {
        let done = count(&app, "SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'").await;
        if done == n || started.elapsed() > Duration::from_secs(240) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    a.kill().ok();
    b.kill().ok();
    a.wait().ok();
    b.wait().ok();
    assert_eq!(
        count(&app, "SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'").await,
        n
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) AS n FROM diag_job_runs").await,
        n,
        "every job ran once, none twice"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(DISTINCT job_id) AS n FROM diag_job_runs"
        )
        .await,
        n
    );
    let workers = count(
        &app,
        "SELECT COUNT(DISTINCT worker) AS n FROM diag_job_runs",
    )
    .await;
    assert_eq!(workers, 2, "both processes took part");
}
on_all_backends!(two_processes, two_servers);
