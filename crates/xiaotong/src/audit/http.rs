//! Audit trail endpoints.

use super::model::{AuditEntry, AuditFilter, VerifyReport};
use crate::app::App;
use crate::auth::authorize;
use crate::directory::model::Page;
use crate::error::{Error, Result};
use crate::http::extract::{Auth, Q};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    actor_id: Option<i64>,
    entity: Option<String>,
    entity_id: Option<String>,
    action: Option<String>,
    /// RFC 3339.
    from: Option<String>,
    /// RFC 3339.
    to: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

fn parse_time(field: &str, v: &Option<String>) -> Result<Option<i64>> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| {
                    Some(
                        d.and_hms_opt(0, 0, 0)
                            .unwrap_or_default()
                            .and_utc()
                            .timestamp_millis()
                            - 8 * 3600 * 1000,
                    )
                })
            })
            .map_err(|_| Error::validation(field, "must be an RFC 3339 time or a YYYY-MM-DD date")),
    }
}

/// The audit trail, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = Page<AuditEntry>)))]
async fn list(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>> {
    authorize(&p, "audit.read")?;
    let page = q.page.unwrap_or(1).max(1);
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(Error::validation("per_page", "must be between 1 and 500"));
    }
    let f = AuditFilter {
        actor_id: q.actor_id,
        entity: q.entity.filter(|s| !s.is_empty()),
        entity_id: q.entity_id.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
        from_ms: parse_time("from", &q.from)?,
        to_ms: parse_time("to", &q.to)?,
    };
    let (items, total) =
        super::store::list(&app.db, p.tenant_id, &f, per_page, (page - 1) * per_page).await?;
    Ok(Json(Page {
        items,
        total,
        page,
        per_page,
    }))
}

/// Verify the tenant's hash chain; names the first broken entry.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = VerifyReport)))]
async fn verify(State(app): State<App>, Auth(p): Auth) -> Result<Json<VerifyReport>> {
    authorize(&p, "audit.read")?;
    Ok(Json(super::store::verify(&app.db, p.tenant_id).await?))
}
