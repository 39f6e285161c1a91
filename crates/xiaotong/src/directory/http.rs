//! Directory endpoints.

use super::import::{self, ImportInfo, ImportMode};
use super::model::*;
use super::service;
use crate::app::App;
use crate::error::{Error, Problem, Result};
use crate::http::extract::{Auth, Body, Id, Q};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_people, create_person))
        .routes(routes!(get_person, update_person))
        .routes(routes!(deactivate_person))
        .routes(routes!(set_roles))
        .routes(routes!(departments))
        .routes(routes!(classes))
        .routes(routes!(tags))
        .routes(routes!(grades))
        .routes(routes!(campuses))
        .routes(routes!(submit_import))
        .routes(routes!(get_import))
        .routes(routes!(list_tenants, create_tenant))
}

/// People, filtered and searched (name, pinyin, initials such as `zs`, phone, number).
#[utoipa::path(get, path = "/api/v1/people", tag = "directory", params(PeopleQuery),
    responses((status = 200, body = Page<Person>), (status = 400, body = Problem)))]
async fn list_people(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<PeopleQuery>,
) -> Result<Json<Page<Person>>> {
    Ok(Json(service::list_people(&app, &p, &q).await?))
}

/// Add a person.
#[utoipa::path(post, path = "/api/v1/people", tag = "directory", request_body = PersonInput,
    responses((status = 201, body = Person), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_person(
    State(app): State<App>,
    Auth(p): Auth,
    Body(input): Body<PersonInput>,
) -> Result<(StatusCode, Json<Person>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_person(&app, &p, &input).await?),
    ))
}

/// One person.
#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "directory", params(("id" = i64, Path)),
    responses((status = 200, body = Person), (status = 404, body = Problem)))]
async fn get_person(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Person>> {
    Ok(Json(service::get_person(&app, &p, id).await?))
}

/// Change a person.
#[utoipa::path(patch, path = "/api/v1/people/{id}", tag = "directory", params(("id" = i64, Path)), request_body = PersonPatch,
    responses((status = 200, body = Person), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_person(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(patch): Body<PersonPatch>,
) -> Result<Json<Person>> {
    Ok(Json(service::update_person(&app, &p, id, &patch).await?))
}

/// Deactivate a person (people are never deleted; history refers to them).
#[utoipa::path(post, path = "/api/v1/people/{id}/deactivate", tag = "directory", params(("id" = i64, Path)),
    responses((status = 200, body = Person), (status = 404, body = Problem)))]
async fn deactivate_person(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Person>> {
    Ok(Json(service::deactivate_person(&app, &p, id).await?))
}

/// Replace a person's roles.
#[utoipa::path(put, path = "/api/v1/people/{id}/roles", tag = "roles", params(("id" = i64, Path)), request_body = SetRoles,
    responses((status = 200, body = Person), (status = 404, body = Problem)))]
async fn set_roles(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(req): Body<SetRoles>,
) -> Result<Json<Person>> {
    Ok(Json(service::set_roles(&app, &p, id, &req).await?))
}

/// Departments (a tree: each has its parent and full path).
#[utoipa::path(get, path = "/api/v1/departments", tag = "directory", responses((status = 200, body = Items<Department>)))]
async fn departments(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Department>>> {
    Ok(Json(Items {
        items: service::departments(&app, &p).await?,
    }))
}

/// Classes with their student counts.
#[utoipa::path(get, path = "/api/v1/classes", tag = "directory", responses((status = 200, body = Items<Class>)))]
async fn classes(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Class>>> {
    Ok(Json(Items {
        items: service::classes(&app, &p).await?,
    }))
}

/// Grades (年级) with their class counts.
#[utoipa::path(get, path = "/api/v1/grades", tag = "directory", responses((status = 200, body = Items<Grade>)))]
async fn grades(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Grade>>> {
    Ok(Json(Items {
        items: service::grades(&app, &p).await?,
    }))
}

/// Campuses (校区) with their class counts.
#[utoipa::path(get, path = "/api/v1/campuses", tag = "directory", responses((status = 200, body = Items<Campus>)))]
async fn campuses(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Campus>>> {
    Ok(Json(Items {
        items: service::campuses(&app, &p).await?,
    }))
}

/// Tags.
#[utoipa::path(get, path = "/api/v1/tags", tag = "directory", responses((status = 200, body = Items<NameRef>)))]
async fn tags(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<NameRef>>> {
    Ok(Json(Items {
        items: service::tags(&app, &p).await?,
    }))
}

/// Upload people as CSV or XLSX (multipart fields `file` and `mode`); processed in the background.
#[utoipa::path(post, path = "/api/v1/imports/people", tag = "directory",
    responses((status = 202, body = ImportInfo), (status = 400, body = Problem)))]
async fn submit_import(
    State(app): State<App>,
    Auth(p): Auth,
    mut mp: Multipart,
) -> Result<(StatusCode, Json<ImportInfo>)> {
    crate::auth::authorize(&p, "import.run")?;
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut mode = ImportMode::AllOrNothing;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| Error::BadRequest(format!("bad multipart body: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("upload.csv").to_string();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| Error::BadRequest(format!("cannot read the file: {e}")))?;
                file = Some((name, bytes.to_vec()));
            }
            Some("mode") => {
                let m = field
                    .text()
                    .await
                    .map_err(|e| Error::BadRequest(e.to_string()))?;
                mode = ImportMode::parse(m.trim()).ok_or_else(|| {
                    Error::validation("mode", "must be all_or_nothing or valid_rows_only")
                })?;
            }
            _ => {}
        }
    }
    let (name, bytes) = file.ok_or_else(|| Error::validation("file", "no file uploaded"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(import::submit(&app, &p.actor(), &name, bytes, mode).await?),
    ))
}

/// An import's progress and result, with errors per row and column.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "directory", params(("id" = i64, Path)),
    responses((status = 200, body = ImportInfo), (status = 404, body = Problem)))]
async fn get_import(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<ImportInfo>> {
    crate::auth::authorize(&p, "import.run")?;
    Ok(Json(import::get(&app.db, p.tenant_id, id).await?))
}

/// Tenants (platform admins).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "directory", responses((status = 200, body = Items<Tenant>)))]
async fn list_tenants(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Tenant>>> {
    Ok(Json(Items {
        items: service::list_tenants(&app, &p).await?,
    }))
}

/// Create a tenant (platform admins).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "directory", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 409, body = Problem)))]
async fn create_tenant(
    State(app): State<App>,
    Auth(p): Auth,
    Body(req): Body<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_tenant_api(&app, &p, &req).await?),
    ))
}
