//! Log-in, session, token and role endpoints.

use super::model::*;
use super::service;
use crate::app::App;
use crate::directory::model::Items;
use crate::error::{Problem, Result};
use crate::http::extract::{Auth, Body, Id, CSRF_COOKIE, SESSION_COOKIE};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(permissions))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role, delete_role))
}

fn cookie_header(
    app: &App,
    name: &str,
    value: &str,
    http_only: bool,
    max_age_s: i64,
) -> HeaderValue {
    let secure = if app.settings.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let http_only = if http_only { "; HttpOnly" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age_s}{http_only}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Log in with tenant, log-in name (username, e-mail, phone or number) and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(app): State<App>,
    connect: axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(req): Body<LoginRequest>,
) -> Result<Response> {
    let ip = connect.0.ip().to_string();
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let done = service::login(&app, &req, Some(&ip), ua).await?;
    let max_age = app.settings.session_max_ms / 1000;
    let mut resp = Json(done.me).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie_header(&app, SESSION_COOKIE, &done.session_token, true, max_age),
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(&app, CSRF_COOKIE, &done.csrf_token, false, max_age),
    );
    Ok(resp)
}

fn clear_cookies(app: &App) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie_header(app, SESSION_COOKIE, "", true, 0),
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(app, CSRF_COOKIE, "", false, 0),
    );
    resp
}

/// End this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
async fn logout(State(app): State<App>, Auth(p): Auth) -> Result<Response> {
    service::logout(&app, &p).await?;
    Ok(clear_cookies(&app))
}

/// End every session of the caller, on every device.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", responses((status = 204)))]
async fn logout_all(State(app): State<App>, Auth(p): Auth) -> Result<Response> {
    service::logout_everywhere(&app, &p).await?;
    Ok(clear_cookies(&app))
}

/// The caller: identity, tenant, roles, permissions.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me), (status = 401, body = Problem)))]
async fn me(State(app): State<App>, Auth(p): Auth) -> Result<Json<Me>> {
    Ok(Json(service::me(&app, &p).await?))
}

/// Change the caller's password (required after the first log-in of an imported account).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), (status = 422, body = Problem)))]
async fn change_password(
    State(app): State<App>,
    Auth(p): Auth,
    Body(req): Body<ChangePassword>,
) -> Result<StatusCode> {
    service::change_password(&app, &p, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth", responses((status = 200, body = Items<TokenInfo>)))]
async fn list_tokens(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<TokenInfo>>> {
    Ok(Json(Items {
        items: service::list_tokens(&app, &p).await?,
    }))
}

/// Create an API token; the secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 422, body = Problem)))]
async fn create_token(
    State(app): State<App>,
    Auth(p): Auth,
    Body(req): Body<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_token(&app, &p, &req).await?),
    ))
}

/// Revoke an API token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_token(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<StatusCode> {
    service::revoke_token(&app, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every permission key.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "roles", responses((status = 200, body = Items<PermissionInfo>)))]
async fn permissions(Auth(p): Auth) -> Result<Json<Items<PermissionInfo>>> {
    super::authorize(&p, "roles.read")?;
    Ok(Json(Items {
        items: service::permissions(),
    }))
}

/// Built-in and custom roles of the tenant.
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", responses((status = 200, body = Items<Role>)))]
async fn list_roles(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Role>>> {
    Ok(Json(Items {
        items: service::list_roles(&app, &p).await?,
    }))
}

/// Create a custom role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = NewRole,
    responses((status = 201, body = Role), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_role(
    State(app): State<App>,
    Auth(p): Auth,
    Body(req): Body<NewRole>,
) -> Result<(StatusCode, Json<Role>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_role(&app, &p, &req).await?),
    ))
}

/// Change a custom role.
#[utoipa::path(patch, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = i64, Path)), request_body = RolePatch,
    responses((status = 200, body = Role), (status = 404, body = Problem)))]
async fn update_role(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(req): Body<RolePatch>,
) -> Result<Json<Role>> {
    Ok(Json(service::update_role(&app, &p, id, &req).await?))
}

/// Delete a custom role.
#[utoipa::path(delete, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn delete_role(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<StatusCode> {
    service::delete_role(&app, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
