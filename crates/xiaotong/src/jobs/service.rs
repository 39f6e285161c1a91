//! The job runner: claims jobs in batches, runs their handlers concurrently,
//! keeps leases alive with heartbeats, retries failures with exponential
//! backoff and jitter, and on shutdown lets running jobs finish or releases
//! them.

use super::model::Job;
use super::store;
use crate::db::{is_transient, now_ms, Db};
use futures::future::BoxFuture;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub type HandlerFn = Arc<dyn Fn(Job) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Job handlers by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, HandlerFn>,
}

impl Registry {
    pub fn register<F, Fut>(&mut self, kind: &str, f: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.handlers
            .insert(kind.to_string(), Arc::new(move |job| Box::pin(f(job))));
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<_> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub idle_poll: Duration,
    /// How long running jobs may take to finish on shutdown before they are released.
    pub shutdown_grace: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            concurrency: 16,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Wakes this process's idle runners at once: for work enqueued by a
/// request that wants it started now (other processes find it at their
/// next poll).
static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

pub fn wake() {
    WAKE.notify_waiters();
}

/// Delay before attempt `attempts + 1`: exponential from 2 s, capped at one
/// hour, with full jitter over its upper half so retries spread out.
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    let base_ms = 2_000u64.saturating_mul(1u64 << exp.min(16)).min(3_600_000);
    let jitter = rand::thread_rng().gen_range(0..=base_ms / 2);
    Duration::from_millis(base_ms / 2 + jitter)
}

/// Run one of the runner's own bookkeeping writes (complete, fail, release),
/// again after a deadlock or a busy database: on MariaDB a claim and a
/// completion can deadlock on the jobs index, and a lost write would leave
/// the job running until its lease expires and then run it again.
async fn retry_transient<T, F, Fut>(mut write: F) -> crate::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = crate::error::Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match write().await {
            Err(e) if attempt < 6 && is_transient(&e) => {
                attempt += 1;
                let ms = rand::thread_rng().gen_range(5..=20u64 << attempt);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            other => return other,
        }
    }
}

/// Run jobs until `shutdown` is cancelled.
pub async fn run(db: Db, registry: Registry, cfg: RunnerConfig, shutdown: CancellationToken) {
    let token = format!(
        "{}-{}-{}",
        std::process::id(),
        now_ms(),
        crate::crypto::random_token(6)
    );
    let kinds = registry.kinds();
    let lease_ms = cfg.lease.as_millis() as i64;
    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();

    let hb_db = db.clone();
    let hb_token = token.clone();
    let hb_in_flight = in_flight.clone();
    let hb_stop = CancellationToken::new();
    let hb_guard = hb_stop.clone();
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis((lease_ms / 3).max(100) as u64));
        let mut reap = Instant::now();
        loop {
            tokio::select! {
                _ = hb_guard.cancelled() => break,
                _ = tick.tick() => {}
            }
            let ids: Vec<i64> = hb_in_flight
                .lock()
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let beat = store::heartbeat(&hb_db, &hb_token, &ids, lease_ms);
            if let Err(e) = beat.await {
                tracing::warn!(error = %e, "job heartbeat failed");
            }
            if reap.elapsed() > Duration::from_secs(5) {
                reap = Instant::now();
                match store::reap_expired(&hb_db).await {
                    Ok(n) if n > 0 => tracing::warn!(jobs = n, "returned jobs with expired leases"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reaping expired jobs failed"),
                }
            }
        }
    });

    // One statement marks every job that finished since the last one: under
    // load this turns N completion writes into one.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let completer_db = db.clone();
    let completer_token = token.clone();
    let completer = tokio::spawn(async move {
        let mut ids = Vec::with_capacity(512);
        while done_rx.recv_many(&mut ids, 512).await > 0 {
            let write = || store::complete_many(&completer_db, &ids, &completer_token);
            if let Err(e) = retry_transient(write).await {
                tracing::error!(jobs = ids.len(), error = %e, "marking jobs done failed");
            }
            ids.clear();
        }
    });

    while !shutdown.is_cancelled() {
        while tasks.try_join_next().is_some() {}
        let free = sem.available_permits();
        if free == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tasks.join_next() => continue,
            }
        }
        let jobs = match store::claim(&db, &kinds, free as i64, lease_ms, &token).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "claiming jobs failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(cfg.idle_poll) => continue,
                _ = WAKE.notified() => continue,
            }
        }
        // Held (heartbeat, release on shutdown) from the claim on, not
        // only once a handler starts.
        in_flight
            .lock()
            .map(|mut s| s.extend(jobs.iter().map(|j| j.id)))
            .ok();
        for job in jobs {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let Some(handler) = registry.handlers.get(&job.kind).cloned() else {
                // Claims ask only for registered kinds; if one slips
                // through, its lease lapses and another worker takes it.
                in_flight.lock().map(|mut s| s.remove(&job.id)).ok();
                continue;
            };
            let db = db.clone();
            let token = token.clone();
            let in_flight = in_flight.clone();
            let done_tx = done_tx.clone();
            tasks.spawn(async move {
                run_one(&db, &token, handler, job.clone(), &done_tx).await;
                in_flight.lock().map(|mut s| s.remove(&job.id)).ok();
                drop(permit);
            });
        }
    }

    // Shutdown: let running jobs finish within the grace period, then release the rest.
    let deadline = tokio::time::sleep(cfg.shutdown_grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            next = tasks.join_next() => if next.is_none() { break },
        }
    }
    tasks.abort_all();
    let left: Vec<i64> = in_flight
        .lock()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    for id in left {
        if let Err(e) = retry_transient(|| store::release(&db, id, &token)).await {
            tracing::warn!(job = id, error = %e, "releasing job on shutdown failed");
        }
    }
    drop(done_tx);
    completer.await.ok();
    hb_stop.cancel();
    heartbeat.await.ok();
}

async fn run_one(
    db: &Db,
    token: &str,
    handler: HandlerFn,
    job: Job,
    done: &tokio::sync::mpsc::UnboundedSender<i64>,
) {
    let started = Instant::now();
    let kind = job.kind.clone();
    let id = job.id;
    let attempts = job.attempts;
    let max_attempts = job.max_attempts;
    let completed_in_tx = job.completed_in_tx.clone();
    let outcome = tokio::spawn(handler(job)).await;
    let result = match outcome {
        Ok(r) => r,
        Err(e) => Err(anyhow::anyhow!("job handler panicked: {e}")),
    };
    let label = match &result {
        Ok(()) if completed_in_tx.load(std::sync::atomic::Ordering::Relaxed) => "done",
        Ok(()) => {
            // Completions are written in batches by the completer task.
            if done.send(id).is_err() {
                if let Err(e) = retry_transient(|| store::complete(db, id, token)).await {
                    tracing::error!(job = id, error = %e, "marking job done failed");
                }
            }
            "done"
        }
        Err(e) => {
            let retry_at =
                (attempts < max_attempts).then(|| now_ms() + backoff(attempts).as_millis() as i64);
            tracing::warn!(job = id, kind = %kind, attempts, error = %format!("{e:#}"), dead = retry_at.is_none(), "job failed");
            let error = format!("{e:#}");
            let write = || store::fail(db, id, token, &error, retry_at);
            if let Err(e2) = retry_transient(write).await {
                tracing::error!(job = id, error = %e2, "recording job failure failed");
            }
            if retry_at.is_some() {
                "retry"
            } else {
                "dead"
            }
        }
    };
    metrics::counter!("xiaotong_jobs_processed_total", "kind" => kind.clone(), "outcome" => label)
        .increment(1);
    metrics::histogram!("xiaotong_job_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        for _ in 0..100 {
            let b1 = backoff(1).as_millis();
            assert!((1_000..=2_000).contains(&b1), "{b1}");
            let b5 = backoff(5).as_millis();
            assert!((16_000..=32_000).contains(&b5), "{b5}");
            let big = backoff(40).as_millis();
            assert!(big <= 3_600_000, "{big}");
        }
    }
}
