//! Starting and stopping a server: HTTP, the job runner and cron.

use crate::app::App;
use crate::error::Result;
use crate::jobs::{self, cron, Registry, RunnerConfig};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every job kind this binary can run.
pub fn registry(app: &App) -> Registry {
    let mut reg = Registry::default();
    jobs::register_builtin(&mut reg, app.db.clone());
    let a = app.clone();
    reg.register(crate::directory::import::JOB_KIND, move |job| {
        crate::directory::import::process_job(a.clone(), job)
    });
    let a = app.clone();
    reg.register("auth.prune_sessions", move |_job| {
        let a = a.clone();
        async move {
            crate::auth::store::prune_sessions(&a.db).await?;
            Ok(())
        }
    });
    crate::messaging::pipeline::register(&mut reg, app);
    crate::lessons::register(&mut reg, app);
    reg
}

pub fn schedules() -> Vec<cron::Schedule> {
    let mut s = vec![
        cron::Schedule {
            name: "jobs.prune".into(),
            expr: "0 30 3 * * *".into(),
            job_kind: "jobs.prune".into(),
            payload: serde_json::json!({}),
        },
        cron::Schedule {
            name: "auth.prune_sessions".into(),
            expr: "0 5 * * * *".into(),
            job_kind: "auth.prune_sessions".into(),
            payload: serde_json::json!({}),
        },
    ];
    s.extend(crate::lessons::schedules());
    s
}

pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    /// Stop accepting, let requests and jobs finish (or release jobs), then return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.ok();
    }

    pub async fn wait(self) {
        self.handle.await.ok();
    }
}

/// Migrate, then serve HTTP and run jobs until `shutdown` is cancelled.
pub async fn start(app: App, listener: TcpListener, run_jobs: bool) -> Result<Running> {
    crate::db::migrate(&app.db).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::error::Error::Other(e.into()))?;
    let shutdown = CancellationToken::new();
    let router = crate::http::router(app.clone());
    let http_stop = shutdown.clone();
    let jobs_stop = CancellationToken::new();
    let mut workers = vec![];
    if run_jobs {
        cron::register(&app.db, app.settings.timezone, &schedules()).await?;
        let cfg = RunnerConfig {
            concurrency: app.settings.job_concurrency,
            ..RunnerConfig::default()
        };
        workers.push(tokio::spawn(jobs::service::run(
            app.db.clone(),
            registry(&app),
            cfg,
            jobs_stop.clone(),
        )));
        workers.push(tokio::spawn(cron::run(
            app.db.clone(),
            app.settings.timezone,
            jobs_stop.clone(),
        )));
    }
    // Live inbox streams end when the server stops, so graceful shutdown
    // does not wait on them.
    let live_stop = app.messaging.stopping.clone();
    let watcher_stop = shutdown.clone();
    workers.push(tokio::spawn(crate::messaging::live::watch(
        app.db.clone(),
        app.messaging.clone(),
        live_stop.clone(),
    )));
    tokio::spawn(async move {
        watcher_stop.cancelled().await;
        live_stop.cancel();
    });
    let handle = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { http_stop.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
        jobs_stop.cancel();
        for w in workers {
            w.await.ok();
        }
        app.db.close().await;
    });
    Ok(Running {
        addr,
        shutdown,
        handle,
    })
}

/// Cancel on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        ctrl_c.await.ok();
                        token.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        ctrl_c.await.ok();
        tracing::info!("shutting down: finishing requests and jobs");
        token.cancel();
    });
}
