//! Lesson-hour endpoints: thin handlers over `service` and `reports`.

use super::model::*;
use super::{reports, service};
use crate::app::App;
use crate::directory::model::{Items, Page};
use crate::error::{Problem, Result};
use crate::http::extract::{Auth, Body, Id, Q};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(list_subjects, create_subject))
        .routes(routes!(list_courses, create_course))
        .routes(routes!(list_classes, create_class))
        .routes(routes!(enrol))
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(sheet))
        .routes(routes!(check_in))
        .routes(routes!(correct))
        .routes(routes!(list_packages, create_package))
        .routes(routes!(sell))
        .routes(routes!(list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(account_ledger))
        .routes(routes!(student_ledger))
        .routes(routes!(my_students))
        .routes(routes!(student_lessons))
        .routes(routes!(top_up))
        .routes(routes!(adjust))
        .routes(routes!(freeze))
        .routes(routes!(unfreeze))
        .routes(routes!(request_refund))
        .routes(routes!(confirm_refund))
        .routes(routes!(list_transfers, request_transfer))
        .routes(routes!(approve_transfer))
        .routes(routes!(reject_transfer))
        .routes(routes!(notices))
        .routes(routes!(verify))
        .merge(reports::routes())
}

/// The tenant's lesson-hour policy.
#[utoipa::path(get, path = "/api/v1/lessons/settings", tag = "lessons", responses((status = 200, body = LessonSettings)))]
async fn get_settings(State(app): State<App>, Auth(p): Auth) -> Result<Json<LessonSettings>> {
    Ok(Json(service::settings(&app, &p).await?))
}

/// Change the policy (absences, credit, make-up ratio, alert thresholds).
#[utoipa::path(put, path = "/api/v1/lessons/settings", tag = "lessons", request_body = LessonSettings,
    responses((status = 200, body = LessonSettings), (status = 422, body = Problem)))]
async fn put_settings(
    State(app): State<App>,
    Auth(p): Auth,
    Body(s): Body<LessonSettings>,
) -> Result<Json<LessonSettings>> {
    Ok(Json(service::save_settings(&app, &p, &s).await?))
}

/// Rooms.
#[utoipa::path(get, path = "/api/v1/lessons/rooms", tag = "lessons", responses((status = 200, body = Items<Room>)))]
async fn list_rooms(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Room>>> {
    crate::auth::authorize(&p, "lessons.read")?;
    Ok(Json(Items {
        items: super::store::rooms(&app.db, p.tenant_id).await?,
    }))
}

/// Add a room.
#[utoipa::path(post, path = "/api/v1/lessons/rooms", tag = "lessons", request_body = Room,
    responses((status = 201, body = Room), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_room(
    State(app): State<App>,
    Auth(p): Auth,
    Body(r): Body<Room>,
) -> Result<(StatusCode, Json<Room>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_room(&app, &p, &r).await?),
    ))
}

/// Subjects.
#[utoipa::path(get, path = "/api/v1/lessons/subjects", tag = "lessons", responses((status = 200, body = Items<Subject>)))]
async fn list_subjects(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Subject>>> {
    crate::auth::authorize(&p, "lessons.read")?;
    Ok(Json(Items {
        items: super::store::subjects(&app.db, p.tenant_id).await?,
    }))
}

/// Add a subject.
#[utoipa::path(post, path = "/api/v1/lessons/subjects", tag = "lessons", request_body = Subject,
    responses((status = 201, body = Subject), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_subject(
    State(app): State<App>,
    Auth(p): Auth,
    Body(s): Body<Subject>,
) -> Result<(StatusCode, Json<Subject>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_subject(&app, &p, &s).await?),
    ))
}

/// Courses.
#[utoipa::path(get, path = "/api/v1/lessons/courses", tag = "lessons", responses((status = 200, body = Items<Course>)))]
async fn list_courses(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Course>>> {
    crate::auth::authorize(&p, "lessons.read")?;
    Ok(Json(Items {
        items: super::store::courses(&app.db, p.tenant_id).await?,
    }))
}

/// Add a course (one to one, small group or large class; hours per lesson in hundredths).
#[utoipa::path(post, path = "/api/v1/lessons/courses", tag = "lessons", request_body = Course,
    responses((status = 201, body = Course), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_course(
    State(app): State<App>,
    Auth(p): Auth,
    Body(c): Body<Course>,
) -> Result<(StatusCode, Json<Course>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_course(&app, &p, &c).await?),
    ))
}

/// Lesson classes with teachers and rosters (teachers see their own).
#[utoipa::path(get, path = "/api/v1/lessons/classes", tag = "lessons", responses((status = 200, body = Items<LessonClass>)))]
async fn list_classes(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<LessonClass>>> {
    Ok(Json(Items {
        items: service::classes(&app, &p).await?,
    }))
}

/// Add a class with its teachers and roster.
#[utoipa::path(post, path = "/api/v1/lessons/classes", tag = "lessons", request_body = NewClass,
    responses((status = 201, body = LessonClass), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_class(
    State(app): State<App>,
    Auth(p): Auth,
    Body(c): Body<NewClass>,
) -> Result<(StatusCode, Json<LessonClass>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_class(&app, &p, &c).await?),
    ))
}

/// Enrol students in a class.
#[utoipa::path(post, path = "/api/v1/lessons/classes/{id}/enrolments", tag = "lessons", params(("id" = i64, Path)), request_body = Enrol,
    responses((status = 200, body = LessonClass), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn enrol(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(e): Body<Enrol>,
) -> Result<Json<LessonClass>> {
    Ok(Json(service::enrol(&app, &p, id, &e).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    /// YYYY-MM-DD (default: today).
    from: Option<String>,
    /// YYYY-MM-DD (default: `from` + 7 days).
    to: Option<String>,
    class_id: Option<i64>,
}

pub(crate) fn parse_day(field: &str, v: &str) -> Result<i64> {
    use chrono::Datelike;
    let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| crate::error::Error::validation(field, "must be a YYYY-MM-DD date"))?;
    Ok(d.year() as i64 * 10000 + d.month() as i64 * 100 + d.day() as i64)
}

/// Lesson sessions in a date range (teachers see their own).
#[utoipa::path(get, path = "/api/v1/lessons/sessions", tag = "lessons", params(SessionsQuery), responses((status = 200, body = Items<Session>)))]
async fn list_sessions(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<SessionsQuery>,
) -> Result<Json<Items<Session>>> {
    let today = chrono::Utc::now()
        .with_timezone(&app.settings.timezone)
        .date_naive();
    let from = match &q.from {
        Some(f) => parse_day("from", f)?,
        None => service::day_of(crate::db::now_ms(), app.settings.timezone),
    };
    let to = match &q.to {
        Some(t) => parse_day("to", t)?,
        None => {
            use chrono::Datelike;
            let d = today + chrono::Duration::days(7);
            d.year() as i64 * 10000 + d.month() as i64 * 100 + d.day() as i64
        }
    };
    Ok(Json(Items {
        items: service::sessions(&app, &p, from, to, q.class_id).await?,
    }))
}

/// Schedule a lesson session (make-ups consume by the configured ratio).
#[utoipa::path(post, path = "/api/v1/lessons/sessions", tag = "lessons", request_body = NewSession,
    responses((status = 201, body = Session), (status = 422, body = Problem)))]
async fn create_session(
    State(app): State<App>,
    Auth(p): Auth,
    Body(s): Body<NewSession>,
) -> Result<(StatusCode, Json<Session>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_session(&app, &p, &s).await?),
    ))
}

/// The attendance sheet of a session: roster with marks.
#[utoipa::path(get, path = "/api/v1/lessons/sessions/{id}/attendance", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Sheet), (status = 404, body = Problem)))]
async fn sheet(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Sheet>> {
    Ok(Json(service::sheet(&app, &p, id).await?))
}

/// Check in one student or a whole class in one request. Repeats are
/// idempotent per (session, student); short hours are a 422 naming the student.
#[utoipa::path(post, path = "/api/v1/lessons/sessions/{id}/checkin", tag = "lessons", params(("id" = i64, Path)), request_body = CheckIn,
    responses((status = 200, body = CheckInResult), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn check_in(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(c): Body<CheckIn>,
) -> Result<Json<CheckInResult>> {
    Ok(Json(service::check_in(&app, &p, id, &c).await?))
}

/// Correct a mark: reverses the earlier debit with a new entry, then consumes again if the new status deducts.
#[utoipa::path(post, path = "/api/v1/lessons/sessions/{id}/attendance/{student_id}/correct", tag = "lessons",
    params(("id" = i64, Path), ("student_id" = i64, Path)), request_body = Correction,
    responses((status = 200, body = MarkResult), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn correct(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, student_id)): Path<(i64, i64)>,
    Body(c): Body<Correction>,
) -> Result<Json<MarkResult>> {
    Ok(Json(service::correct(&app, &p, id, student_id, &c).await?))
}

/// The package catalogue.
#[utoipa::path(get, path = "/api/v1/lessons/packages", tag = "lessons", responses((status = 200, body = Items<Package>)))]
async fn list_packages(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<Package>>> {
    crate::auth::authorize(&p, "lessons.read")?;
    Ok(Json(Items {
        items: super::store::packages(&app.db, p.tenant_id).await?,
    }))
}

/// Add a package (one or more pools, drawn in order).
#[utoipa::path(post, path = "/api/v1/lessons/packages", tag = "lessons", request_body = Package,
    responses((status = 201, body = Package), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_package(
    State(app): State<App>,
    Auth(p): Auth,
    Body(pk): Body<Package>,
) -> Result<(StatusCode, Json<Package>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_package(&app, &p, &pk).await?),
    ))
}

/// Sell a package to a student: opens one account per pool.
#[utoipa::path(post, path = "/api/v1/lessons/sales", tag = "lessons", request_body = NewSale,
    responses((status = 201, body = Sale), (status = 422, body = Problem)))]
async fn sell(
    State(app): State<App>,
    Auth(p): Auth,
    Body(s): Body<NewSale>,
) -> Result<(StatusCode, Json<Sale>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::sell(&app, &p, &s).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AccountsQuery {
    student_id: Option<i64>,
}

/// Lesson-hour accounts the caller reaches (a parent: their children's).
#[utoipa::path(get, path = "/api/v1/lessons/accounts", tag = "lessons", params(AccountsQuery), responses((status = 200, body = Items<Account>)))]
async fn list_accounts(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<AccountsQuery>,
) -> Result<Json<Items<Account>>> {
    Ok(Json(Items {
        items: service::accounts(&app, &p, q.student_id).await?,
    }))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/lessons/accounts/{id}", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Account), (status = 404, body = Problem)))]
async fn get_account(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Account>> {
    Ok(Json(service::account(&app, &p, id).await?))
}

/// An account's ledger entries with their hashes (receipts).
#[utoipa::path(get, path = "/api/v1/lessons/accounts/{id}/ledger", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Items<LedgerEntry>), (status = 404, body = Problem)))]
async fn account_ledger(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Items<LedgerEntry>>> {
    Ok(Json(Items {
        items: service::account_ledger(&app, &p, id).await?,
    }))
}

/// A student's ledger entries over all accounts.
#[utoipa::path(get, path = "/api/v1/lessons/students/{id}/ledger", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Items<LedgerEntry>), (status = 404, body = Problem)))]
async fn student_ledger(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Items<LedgerEntry>>> {
    Ok(Json(Items {
        items: service::student_ledger(&app, &p, id).await?,
    }))
}

/// The students the caller follows: themself (a student) and their children (a parent).
#[utoipa::path(get, path = "/api/v1/lessons/my-students", tag = "lessons", responses((status = 200, body = Items<MyStudent>)))]
async fn my_students(State(app): State<App>, Auth(p): Auth) -> Result<Json<Items<MyStudent>>> {
    Ok(Json(Items {
        items: service::my_students(&app, &p).await?,
    }))
}

/// A student's upcoming lessons and attendance history (a parent: their children's).
#[utoipa::path(get, path = "/api/v1/lessons/students/{id}/lessons", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = StudentLessons), (status = 404, body = Problem)))]
async fn student_lessons(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<StudentLessons>> {
    Ok(Json(service::student_lessons(&app, &p, id).await?))
}

/// Add paid (and bonus) hours to an account.
#[utoipa::path(post, path = "/api/v1/lessons/accounts/{id}/top-up", tag = "lessons", params(("id" = i64, Path)), request_body = TopUp,
    responses((status = 200, body = Account), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn top_up(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(t): Body<TopUp>,
) -> Result<Json<Account>> {
    Ok(Json(service::top_up(&app, &p, id, &t).await?))
}

/// A manual adjustment with a note (positive adds bonus hours).
#[utoipa::path(post, path = "/api/v1/lessons/accounts/{id}/adjust", tag = "lessons", params(("id" = i64, Path)), request_body = Adjust,
    responses((status = 200, body = Account), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn adjust(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(a): Body<Adjust>,
) -> Result<Json<Account>> {
    Ok(Json(service::adjust(&app, &p, id, &a).await?))
}

/// Freeze an account: it pays for no lessons until unfrozen.
#[utoipa::path(post, path = "/api/v1/lessons/accounts/{id}/freeze", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Account), (status = 404, body = Problem)))]
async fn freeze(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Account>> {
    Ok(Json(service::set_frozen(&app, &p, id, true).await?))
}

/// Unfreeze an account.
#[utoipa::path(post, path = "/api/v1/lessons/accounts/{id}/unfreeze", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Account), (status = 404, body = Problem)))]
async fn unfreeze(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Account>> {
    Ok(Json(service::set_frozen(&app, &p, id, false).await?))
}

/// Request a refund of the unused paid hours: returns the computed amount, to be confirmed.
#[utoipa::path(post, path = "/api/v1/lessons/accounts/{id}/refunds", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 201, body = Refund), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn request_refund(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<(StatusCode, Json<Refund>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::request_refund(&app, &p, id).await?),
    ))
}

/// Confirm a refund by repeating its amount; the account is closed.
#[utoipa::path(post, path = "/api/v1/lessons/refunds/{id}/confirm", tag = "lessons", params(("id" = i64, Path)), request_body = ConfirmRefund,
    responses((status = 200, body = Refund), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn confirm_refund(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(c): Body<ConfirmRefund>,
) -> Result<Json<Refund>> {
    Ok(Json(service::confirm_refund(&app, &p, id, &c).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct TransfersQuery {
    /// pending, approved or rejected (default: all).
    state: Option<String>,
    /// From 1 (default 1).
    page: Option<i64>,
    /// 1 to 500 (default 50).
    per_page: Option<i64>,
}

/// Transfers of the tenant, newest first, a page at a time (for those who
/// decide them).
#[utoipa::path(get, path = "/api/v1/lessons/transfers", tag = "lessons", params(TransfersQuery),
    responses((status = 200, body = Page<TransferItem>), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_transfers(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<TransfersQuery>,
) -> Result<Json<Page<TransferItem>>> {
    Ok(Json(
        service::transfers(&app, &p, q.state.as_deref(), q.page, q.per_page).await?,
    ))
}

/// Request a transfer of hours to another student (needs approval).
#[utoipa::path(post, path = "/api/v1/lessons/transfers", tag = "lessons", request_body = NewTransfer,
    responses((status = 201, body = Transfer), (status = 422, body = Problem)))]
async fn request_transfer(
    State(app): State<App>,
    Auth(p): Auth,
    Body(t): Body<NewTransfer>,
) -> Result<(StatusCode, Json<Transfer>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::request_transfer(&app, &p, &t).await?),
    ))
}

/// Approve a transfer (someone other than the requester).
#[utoipa::path(post, path = "/api/v1/lessons/transfers/{id}/approve", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Transfer), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn approve_transfer(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Transfer>> {
    Ok(Json(service::decide_transfer(&app, &p, id, true).await?))
}

/// Reject a transfer.
#[utoipa::path(post, path = "/api/v1/lessons/transfers/{id}/reject", tag = "lessons", params(("id" = i64, Path)),
    responses((status = 200, body = Transfer), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reject_transfer(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Transfer>> {
    Ok(Json(service::decide_transfer(&app, &p, id, false).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct NoticesQuery {
    student_id: Option<i64>,
}

/// Notices to parents (a parent sees their own).
#[utoipa::path(get, path = "/api/v1/lessons/notices", tag = "lessons", params(NoticesQuery), responses((status = 200, body = Items<Notice>)))]
async fn notices(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<NoticesQuery>,
) -> Result<Json<Items<Notice>>> {
    Ok(Json(Items {
        items: service::notices(&app, &p, q.student_id).await?,
    }))
}

/// Verify the tenant's ledger chain; names the first entry changed, removed or reordered.
#[utoipa::path(get, path = "/api/v1/lessons/ledger/verify", tag = "lessons", responses((status = 200, body = LedgerVerifyReport)))]
async fn verify(State(app): State<App>, Auth(p): Auth) -> Result<Json<LedgerVerifyReport>> {
    Ok(Json(service::verify(&app, &p).await?))
}
