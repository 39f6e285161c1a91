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

/// An RFC 3339 time, or a date taken as midnight in the school's time zone.
pub(crate) fn parse_time(
    field: &str,
    v: &Option<String>,
    tz: chrono_tz::Tz,
) -> Result<Option<i64>> {
    use chrono::TimeZone;
    let Some(s) = v.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.timestamp_millis()));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|midnight| tz.from_local_datetime(&midnight).earliest())
        .map(|t| Some(t.timestamp_millis()))
        .ok_or_else(|| Error::validation(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
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
        from_ms: parse_time("from", &q.from, app.settings.timezone)?,
        to_ms: parse_time("to", &q.to, app.settings.timezone)?,
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
