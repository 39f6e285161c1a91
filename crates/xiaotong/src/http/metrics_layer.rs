//! Prometheus metrics: requests and latency by route, queue depth, jobs by state.

use crate::app::App;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// The process-wide recorder (installed once, even when tests start many servers).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then metrics go there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| {
            if req.uri().path().starts_with("/api/") {
                "unmatched".into()
            } else {
                "web".into()
            }
        });
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("xiaotong_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("xiaotong_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

pub async fn render(State(app): State<App>) -> Response {
    if let Ok(s) = crate::jobs::store::stats(&app.db, None).await {
        for (state, n) in [
            ("ready", s.ready),
            ("running", s.running),
            ("done", s.done),
            ("dead", s.dead),
        ] {
            metrics::gauge!("xiaotong_jobs", "state" => state).set(n as f64);
        }
        metrics::gauge!("xiaotong_queue_depth").set(s.ready as f64);
    }
    super::text(handle().render())
}
