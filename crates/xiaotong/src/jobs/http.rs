//! Job queue endpoints: counts, dead letters, retry.

use super::model::{JobInfo, JobState, JobStats};
use super::store;
use crate::app::App;
use crate::auth::{authorize, Principal};
use crate::directory::model::Page;
use crate::error::{Error, Problem, Result};
use crate::http::extract::{Auth, Id, Q};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stats))
        .routes(routes!(retry))
}

/// Platform admins see every job; others their tenant's.
fn tenant_filter(p: &Principal) -> Option<i64> {
    (!p.platform_admin).then_some(p.tenant_id)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    /// ready, running, done or dead.
    state: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery), responses((status = 200, body = Page<JobInfo>)))]
async fn list(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<JobsQuery>,
) -> Result<Json<Page<JobInfo>>> {
    authorize(&p, "jobs.read")?;
    let state =
        match q.state.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(JobState::parse(s).ok_or_else(|| {
                Error::validation("state", "must be ready, running, done or dead")
            })?),
            None => None,
        };
    let page = q.page.unwrap_or(1).max(1);
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let (items, total) = store::list(
        &app.db,
        tenant_filter(&p),
        state,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(Json(Page {
        items,
        total,
        page,
        per_page,
    }))
}

/// Jobs by state.
#[utoipa::path(get, path = "/api/v1/jobs/stats", tag = "jobs", responses((status = 200, body = JobStats)))]
async fn stats(State(app): State<App>, Auth(p): Auth) -> Result<Json<JobStats>> {
    authorize(&p, "jobs.read")?;
    Ok(Json(store::stats(&app.db, tenant_filter(&p)).await?))
}

/// Put a dead job back in the queue.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn retry(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<StatusCode> {
    authorize(&p, "jobs.read")?;
    if store::retry_dead(&app.db, tenant_filter(&p), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("dead job"))
    }
}
