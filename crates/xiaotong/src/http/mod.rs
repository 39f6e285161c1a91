//! The HTTP server: API routes, health, metrics, OpenAPI, the embedded web app.

pub mod extract;
mod metrics_layer;
mod web;

use crate::app::App;
use axum::extract::State;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Xiaotong API",
        description = "校通: directory, log-in, roles, audit trail, job queue and message center. Errors are RFC 9457 problem+json."
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError))
)]
struct ApiDoc;

/// Every API route, with its OpenAPI description.
pub fn api() -> (Router<App>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::auth::http::routes())
        .merge(crate::directory::http::routes())
        .merge(crate::audit::http::routes())
        .merge(crate::jobs::http::routes())
        .merge(crate::messaging::http::routes())
        .merge(crate::lessons::http::routes())
        .split_for_parts()
}

pub fn router(app: App) -> Router {
    // Install the metrics recorder before the first request is counted.
    metrics_layer::handle();
    let (api, openapi) = api();
    let openapi = std::sync::Arc::new(openapi);
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(api)
        .route("/api/openapi.json", get(move || {
            let doc = openapi.clone();
            async move { Json(doc.as_ref().clone()) }
        }))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_layer::render))
        .fallback(web::serve)
        .layer(axum::middleware::from_fn(metrics_layer::track))
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(app)
}

async fn api_not_found() -> crate::error::Error {
    crate::error::Error::NotFound("API route")
}

async fn readyz(State(app): State<App>) -> Response {
    match tokio::time::timeout(
        Duration::from_secs(3),
        crate::db::pending_migrations(&app.db),
    )
    .await
    {
        Ok(Ok(p)) if p.is_empty() => (StatusCode::OK, "ready").into_response(),
        Ok(Ok(p)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("migrations pending: {p:?}"),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {e}"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database did not answer within 3 s",
        )
            .into_response(),
    }
}

/// Plain text responses advertise UTF-8.
pub fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
