//! Request extractors that answer bad input with problem+json naming the field.

use crate::app::App;
use crate::auth::{service as auth_service, Principal};
use crate::error::{Error, FieldError};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "xt_session";
pub const CSRF_COOKIE: &str = "xt_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const TENANT_HEADER: &str = "x-xiaotong-tenant";

/// A JSON body; unknown fields, wrong types and malformed JSON become 400/422 naming the field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !json_type {
            return Err(Error::BadRequest(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Error::BadRequest(format!("cannot read the body: {e}")))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(Body(v)),
            Err(e) => {
                let inner = e.inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(Error::BadRequest(format!(
                        "malformed JSON at line {} column {}: {inner}",
                        inner.line(),
                        inner.column()
                    )));
                }
                let msg = inner.to_string();
                let mut field = e.path().to_string();
                // serde_path_to_error's path already ends at an unknown field;
                // a missing field is named only in the message.
                if let Some(rest) = msg.strip_prefix("missing field `") {
                    let name = rest.split('`').next().unwrap_or("");
                    field = if field == "." {
                        name.to_string()
                    } else {
                        format!("{field}.{name}")
                    };
                } else if field == "." {
                    field = "body".into();
                }
                let message = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                Err(Error::Validation(vec![FieldError::new(field, message)]))
            }
        }
    }
}

/// Query parameters; bad ones become 400 naming the problem.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Q)
            .map_err(|e| Error::BadRequest(format!("invalid query parameter: {e}")))
    }
}

/// A numeric id from the path.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::BadRequest(format!("invalid path: {e}")))?;
        raw.parse::<i64>()
            .map(Id)
            .map_err(|_| Error::BadRequest(format!("{raw:?} is not a valid id")))
    }
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The authenticated caller. Session callers must send the CSRF header on
/// state-changing requests; bearer tokens need none.
pub struct Auth(pub Principal);

impl FromRequestParts<App> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let mut p = if let Some(token) = bearer {
            auth_service::principal_from_token(app, token).await?
        } else if let Some(token) = cookie(parts, SESSION_COOKIE) {
            let p = auth_service::principal_from_session(app, token).await?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let expected = match &p.via {
                    crate::auth::model::AuthVia::Session { csrf_token, .. } => csrf_token.as_str(),
                    _ => "",
                };
                if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
                    return Err(Error::Forbidden("missing or wrong CSRF token (send the xt_csrf cookie's value as X-CSRF-Token)".into()));
                }
            }
            p
        } else {
            return Err(Error::Unauthenticated);
        };
        if let Some(code) = parts
            .headers
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            if code != p.tenant_code {
                p = auth_service::switch_tenant(app, p, code).await?;
            }
        }
        p.ip = client_ip(parts);
        p.request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Auth(p))
    }
}
