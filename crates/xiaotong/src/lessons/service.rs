//! Lesson-hour rules: catalogue, sales, top-ups, refunds, freezes,
//! transfers, attendance and consumption. No HTTP, no SQL strings.

use super::ledger::{self, Balance, Posting};
use super::model::*;
use super::store::{self, AccountRow, Reach, SessionRow};
use crate::app::App;
use crate::audit::{self, Change};
use crate::auth::{authorize, Actor, Principal, Scope};
use crate::crypto::Keys;
use crate::db::{is_transient, now_ms, Db, Tx};
use crate::error::{Error, FieldError, Result};
use std::collections::{HashMap, HashSet};

/// Job kind of a notice to a student's parents (written to the outbox in the
/// transaction that causes it).
pub const PARENT_NOTICE: &str = "lessons.parent_notice";

/// YYYYMMDD of a time in the school's time zone.
pub fn day_of(ms: i64, tz: chrono_tz::Tz) -> i64 {
    use chrono::Datelike;
    let t = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz);
    t.year() as i64 * 10000 + t.month() as i64 * 100 + t.day() as i64
}

/// Hours as text, for messages: 150 → "1.50".
pub fn hours_text(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", h.abs() / 100, h.abs() % 100)
}

fn not_negative(field: &str, v: i64, errors: &mut Vec<FieldError>) {
    if v < 0 {
        errors.push(FieldError::new(field, "must not be negative"));
    }
}

fn name_ok(field: &str, v: &str, errors: &mut Vec<FieldError>) {
    let n = v.trim().chars().count();
    if n == 0 || n > 100 {
        errors.push(FieldError::new(field, "must be 1 to 100 characters"));
    }
}

fn check(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

fn reach(p: &Principal, permission: &str) -> Result<Reach> {
    Ok(Reach::from_scopes(p.person_id, &authorize(p, permission)?))
}

fn tenant_wide(scopes: &[Scope]) -> bool {
    scopes.iter().any(|s| s.is_tenant_wide())
}

// ---- settings and catalogue ----

pub async fn settings(app: &App, p: &Principal) -> Result<LessonSettings> {
    authorize(p, "lessons.read")?;
    store::settings(&app.db, p.tenant_id).await
}

pub async fn save_settings(app: &App, p: &Principal, s: &LessonSettings) -> Result<LessonSettings> {
    authorize(p, "lessons.manage")?;
    let mut errors = vec![];
    not_negative("credit_limit", s.credit_limit, &mut errors);
    not_negative("low_balance_hours", s.low_balance_hours, &mut errors);
    not_negative("expiry_reminder_days", s.expiry_reminder_days, &mut errors);
    if !(1..=1000).contains(&s.makeup_ratio_pct) {
        errors.push(FieldError::new(
            "makeup_ratio_pct",
            "must be between 1 and 1000",
        ));
    }
    check(errors)?;
    let before = store::settings(&app.db, p.tenant_id).await?;
    let mut tx = app.db.begin().await?;
    store::save_settings(&mut tx, p.tenant_id, s).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[
            Change::new("lessons.settings", "lesson_settings", p.tenant_id)
                .before(&before)
                .after(s),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(s.clone())
}

pub async fn create_room(app: &App, p: &Principal, r: &Room) -> Result<Room> {
    authorize(p, "lessons.manage")?;
    let mut errors = vec![];
    name_ok("name", &r.name, &mut errors);
    not_negative("capacity", r.capacity, &mut errors);
    check(errors)?;
    let mut tx = app.db.begin().await?;
    let id = store::insert_room(&mut tx, p.tenant_id, r).await?;
    let out = Room { id, ..r.clone() };
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.room.create", "room", id).after(&out)],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

pub async fn create_subject(app: &App, p: &Principal, s: &Subject) -> Result<Subject> {
    authorize(p, "lessons.manage")?;
    let mut errors = vec![];
    name_ok("name", &s.name, &mut errors);
    check(errors)?;
    let mut tx = app.db.begin().await?;
    let id = store::insert_subject(&mut tx, p.tenant_id, &s.name).await?;
    let out = Subject {
        id,
        name: s.name.trim().to_string(),
    };
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.subject.create", "subject", id).after(&out)],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

pub async fn create_course(app: &App, p: &Principal, c: &Course) -> Result<Course> {
    authorize(p, "lessons.manage")?;
    let mut errors = vec![];
    name_ok("name", &c.name, &mut errors);
    if !COURSE_KINDS.contains(&c.kind.as_str()) {
        errors.push(FieldError::new(
            "kind",
            "must be one_to_one, small_group or large_class",
        ));
    }
    if !(1..=600).contains(&c.lesson_minutes) {
        errors.push(FieldError::new(
            "lesson_minutes",
            "must be between 1 and 600",
        ));
    }
    if !(1..=10_000).contains(&c.hours_per_lesson) {
        errors.push(FieldError::new(
            "hours_per_lesson",
            "must be between 1 and 10000 hundredths of an hour",
        ));
    }
    if let Some(s) = c.subject_id {
        if !store::subjects(&app.db, p.tenant_id)
            .await?
            .iter()
            .any(|x| x.id == s)
        {
            errors.push(FieldError::new("subject_id", "no such subject"));
        }
    }
    check(errors)?;
    let mut tx = app.db.begin().await?;
    let id = store::insert_course(&mut tx, p.tenant_id, c).await?;
    let out = Course {
        id,
        name: c.name.trim().to_string(),
        ..c.clone()
    };
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.course.create", "course", id).after(&out)],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

pub async fn create_class(app: &App, p: &Principal, c: &NewClass) -> Result<LessonClass> {
    authorize(p, "lessons.manage")?;
    let mut errors = vec![];
    name_ok("name", &c.name, &mut errors);
    not_negative("capacity", c.capacity, &mut errors);
    if store::course(&app.db, p.tenant_id, c.course_id)
        .await?
        .is_none()
    {
        errors.push(FieldError::new("course_id", "no such course"));
    }
    let teachers = store::existing_people(&app.db, p.tenant_id, "teacher", &c.teacher_ids).await?;
    for (i, t) in c.teacher_ids.iter().enumerate() {
        if !teachers.contains(t) {
            errors.push(FieldError::new(
                format!("teacher_ids[{i}]"),
                "no such teacher",
            ));
        }
    }
    let students = store::existing_people(&app.db, p.tenant_id, "student", &c.student_ids).await?;
    for (i, s) in c.student_ids.iter().enumerate() {
        if !students.contains(s) {
            errors.push(FieldError::new(
                format!("student_ids[{i}]"),
                "no such student",
            ));
        }
    }
    check(errors)?;
    let mut tx = app.db.begin().await?;
    let id = store::insert_class(&mut tx, p.tenant_id, c).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.class.create", "lesson_class", id).after(serde_json::json!({
            "name": c.name, "course_id": c.course_id, "teacher_ids": c.teacher_ids, "student_ids": c.student_ids
        }))],
    )
    .await?;
    tx.commit().await?;
    store::classes(&app.db, p.tenant_id, None)
        .await?
        .into_iter()
        .find(|x| x.id == id)
        .ok_or(Error::NotFound("class"))
}

pub async fn enrol(app: &App, p: &Principal, class_id: i64, e: &Enrol) -> Result<LessonClass> {
    authorize(p, "lessons.manage")?;
    if store::class_row(&app.db, p.tenant_id, class_id)
        .await?
        .is_none()
    {
        return Err(Error::NotFound("class"));
    }
    let students = store::existing_people(&app.db, p.tenant_id, "student", &e.student_ids).await?;
    let errors: Vec<FieldError> = e
        .student_ids
        .iter()
        .enumerate()
        .filter(|(_, s)| !students.contains(s))
        .map(|(i, _)| FieldError::new(format!("student_ids[{i}]"), "no such student"))
        .collect();
    check(errors)?;
    let mut tx = app.db.begin().await?;
    store::enrol(&mut tx, p.tenant_id, class_id, &e.student_ids).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.class.enrol", "lesson_class", class_id).after(&e.student_ids)],
    )
    .await?;
    tx.commit().await?;
    store::classes(&app.db, p.tenant_id, None)
        .await?
        .into_iter()
        .find(|x| x.id == class_id)
        .ok_or(Error::NotFound("class"))
}

pub async fn classes(app: &App, p: &Principal) -> Result<Vec<LessonClass>> {
    let scopes = authorize(p, "lessons.read")?;
    let teacher = (!tenant_wide(&scopes)).then_some(p.person_id);
    store::classes(&app.db, p.tenant_id, teacher).await
}

pub async fn create_session(app: &App, p: &Principal, s: &NewSession) -> Result<Session> {
    authorize(p, "lessons.manage")?;
    let starts = chrono::DateTime::parse_from_rfc3339(&s.starts_at)
        .map_err(|_| Error::validation("starts_at", "must be an RFC 3339 time"))?
        .timestamp_millis();
    let class = store::class_row(&app.db, p.tenant_id, s.class_id)
        .await?
        .ok_or_else(|| Error::validation("class_id", "no such class"))?;
    use crate::db::RowExt;
    let course_id = class.i64("course_id")?;
    let course = store::course(&app.db, p.tenant_id, course_id)
        .await?
        .ok_or(Error::NotFound("course"))?;
    let teacher = match s.teacher_id {
        Some(t) => {
            if store::existing_people(&app.db, p.tenant_id, "teacher", &[t])
                .await?
                .is_empty()
            {
                return Err(Error::validation("teacher_id", "no such teacher"));
            }
            Some(t)
        }
        None => store::class_teachers(&app.db, p.tenant_id, s.class_id)
            .await?
            .first()
            .copied(),
    };
    let settings = store::settings(&app.db, p.tenant_id).await?;
    let hours = if s.makeup {
        course.hours_per_lesson * settings.makeup_ratio_pct / 100
    } else {
        course.hours_per_lesson
    };
    let ends = starts + course.lesson_minutes * 60_000;
    let mut tx = app.db.begin().await?;
    let id = store::insert_session(
        &mut tx,
        p.tenant_id,
        s.class_id,
        course_id,
        teacher,
        class.opt_i64("room_id")?,
        class.opt_i64("campus_id")?,
        starts,
        ends,
        day_of(starts, app.settings.timezone),
        s.makeup,
        hours,
    )
    .await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[
            Change::new("lessons.session.create", "lesson_session", id).after(serde_json::json!({
                "class_id": s.class_id, "starts_at": s.starts_at, "makeup": s.makeup, "hours": hours
            })),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(store::session(&app.db, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("session"))?
        .api)
}

pub async fn create_package(app: &App, p: &Principal, pk: &Package) -> Result<Package> {
    authorize(p, "lessons.manage")?;
    let mut errors = vec![];
    name_ok("name", &pk.name, &mut errors);
    if !(1..=3660).contains(&pk.validity_days) {
        errors.push(FieldError::new(
            "validity_days",
            "must be between 1 and 3660",
        ));
    }
    if pk.pools.is_empty() || pk.pools.len() > 10 {
        errors.push(FieldError::new("pools", "must have 1 to 10 pools"));
    }
    for (i, pool) in pk.pools.iter().enumerate() {
        name_ok(&format!("pools[{i}].name"), &pool.name, &mut errors);
        if pool.paid_hours <= 0 {
            errors.push(FieldError::new(
                format!("pools[{i}].paid_hours"),
                "must be positive",
            ));
        }
        not_negative(
            &format!("pools[{i}].bonus_hours"),
            pool.bonus_hours,
            &mut errors,
        );
        not_negative(
            &format!("pools[{i}].price_fen"),
            pool.price_fen,
            &mut errors,
        );
    }
    check(errors)?;
    let mut tx = app.db.begin().await?;
    let id = store::insert_package(&mut tx, p.tenant_id, pk).await?;
    let out = Package {
        id,
        price_fen: pk.pools.iter().map(|x| x.price_fen).sum(),
        ..pk.clone()
    };
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.package.create", "lesson_package", id).after(&out)],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

// ---- accounts ----

pub async fn accounts(app: &App, p: &Principal, student_id: Option<i64>) -> Result<Vec<Account>> {
    let r = reach(p, "lessons.read")?;
    Ok(
        store::accounts(&app.db, &app.keys, p.tenant_id, &r, student_id, None)
            .await?
            .iter()
            .map(AccountRow::api)
            .collect(),
    )
}

/// One account the caller reaches (404 otherwise, also for other tenants' ids).
pub async fn account(app: &App, p: &Principal, id: i64) -> Result<Account> {
    let r = reach(p, "lessons.read")?;
    store::accounts(&app.db, &app.keys, p.tenant_id, &r, None, Some(id))
        .await?
        .first()
        .map(AccountRow::api)
        .ok_or(Error::NotFound("account"))
}

pub async fn account_ledger(app: &App, p: &Principal, id: i64) -> Result<Vec<LedgerEntry>> {
    account(app, p, id).await?;
    ledger::entries(&app.db, &app.keys, p.tenant_id, Some(id), None, 10_000).await
}

pub async fn student_ledger(app: &App, p: &Principal, student_id: i64) -> Result<Vec<LedgerEntry>> {
    let r = reach(p, "lessons.read")?;
    if store::accounts(&app.db, &app.keys, p.tenant_id, &r, Some(student_id), None)
        .await?
        .is_empty()
    {
        return Err(Error::NotFound("student"));
    }
    ledger::entries(
        &app.db,
        &app.keys,
        p.tenant_id,
        None,
        Some(student_id),
        10_000,
    )
    .await
}

/// Sell a package: one account per pool, each credited by a purchase entry.
pub async fn sell(app: &App, p: &Principal, s: &NewSale) -> Result<Sale> {
    authorize(p, "lessons.manage")?;
    let pk = store::package(&app.db, p.tenant_id, s.package_id)
        .await?
        .filter(|x| x.active)
        .ok_or_else(|| Error::validation("package_id", "no such package on sale"))?;
    if store::existing_people(&app.db, p.tenant_id, "student", &[s.student_id])
        .await?
        .is_empty()
    {
        return Err(Error::validation("student_id", "no such student"));
    }
    sell_package(app, &p.actor(), s.student_id, &pk, s.campus_id, now_ms()).await
}

/// The sale itself, for the API, the demo and benchmarks.
pub async fn sell_package(
    app: &App,
    actor: &Actor,
    student_id: i64,
    pk: &Package,
    campus_id: Option<i64>,
    at: i64,
) -> Result<Sale> {
    let tenant_id = actor.tenant_id;
    let day = day_of(at, app.settings.timezone);
    let price: i64 = pk.pools.iter().map(|x| x.price_fen).sum();
    let valid_until = at + pk.validity_days * 86_400_000;
    let mut tx = app.db.begin().await?;
    let sale_id = store::insert_sale(
        &mut tx,
        tenant_id,
        student_id,
        Some(pk.id),
        price,
        actor.person_id,
        campus_id,
        day,
    )
    .await?;
    let mut postings = vec![];
    let mut ids = vec![];
    for (i, pool) in pk.pools.iter().enumerate() {
        let id = store::insert_account(
            &mut tx,
            &app.keys,
            tenant_id,
            student_id,
            sale_id,
            Some(pk.id),
            i as i64,
            pool,
            valid_until,
        )
        .await?;
        let b = Balance {
            paid: pool.paid_hours,
            bonus: pool.bonus_hours,
        };
        store::set_balance(&mut tx, &app.keys, tenant_id, id, b).await?;
        postings.push(Posting {
            account_id: id,
            student_id,
            kind: "purchase",
            amount: b.total(),
            value_fen: pool.price_fen,
            balance_after: b.total(),
            reference: Some(format!("sale:{sale_id}")),
            campus_id,
            actor_id: actor.person_id,
            ..Posting::default()
        });
        ids.push(id);
    }
    audit::append(
        &mut tx,
        actor,
        &[
            Change::new("lessons.sale", "lesson_sale", sale_id).after(serde_json::json!({
                "student_id": student_id, "package_id": pk.id, "price_fen": price, "accounts": ids
            })),
        ],
    )
    .await?;
    ledger::post(&mut tx, &app.keys, tenant_id, at, day, &postings).await?;
    tx.commit().await?;
    let mut tx = app.db.begin().await?;
    let accounts = store::lock_accounts(&mut tx, &app.keys, tenant_id, &ids).await?;
    tx.commit().await?;
    Ok(Sale {
        id: sale_id,
        student_id,
        price_fen: price,
        accounts: accounts.iter().map(AccountRow::api).collect(),
    })
}

/// Run `f` on one locked account in a transaction, with deadlock retries;
/// `f` returns the new balance, the ledger postings and the audit change.
async fn with_account<F>(app: &App, p: &Principal, id: i64, f: F) -> Result<Account>
where
    F: Fn(&AccountRow) -> Result<(AccountRow, Vec<Posting>, Change)>,
{
    with_account_and(app, p, id, None, f).await
}

/// [`with_account`], also running `extra` in the same transaction.
async fn with_account_and<F>(
    app: &App,
    p: &Principal,
    id: i64,
    extra: Option<crate::db::Sql>,
    f: F,
) -> Result<Account>
where
    F: Fn(&AccountRow) -> Result<(AccountRow, Vec<Posting>, Change)>,
{
    authorize(p, "lessons.manage")?;
    for attempt in 0.. {
        let mut tx = app.db.begin().await?;
        let r = async {
            let acc = store::lock_accounts(&mut tx, &app.keys, p.tenant_id, &[id])
                .await?
                .pop()
                .ok_or(Error::NotFound("account"))?;
            let (after, postings, change) = f(&acc)?;
            if let Some(sql) = &extra {
                tx.execute(sql).await?;
            }
            if after.balance != acc.balance {
                store::set_balance(&mut tx, &app.keys, p.tenant_id, id, after.balance).await?;
            }
            if after.state != acc.state || after.frozen != acc.frozen {
                store::set_account_state(&mut tx, p.tenant_id, id, &after.state, after.frozen)
                    .await?;
            }
            audit::append(&mut tx, &p.actor(), &[change]).await?;
            let now = now_ms();
            ledger::post(
                &mut tx,
                &app.keys,
                p.tenant_id,
                now,
                day_of(now, app.settings.timezone),
                &postings,
            )
            .await?;
            Ok::<_, Error>(after)
        }
        .await;
        match r {
            Ok(after) => {
                tx.commit().await?;
                return Ok(after.api());
            }
            Err(e) => {
                tx.rollback().await.ok();
                if attempt < 5 && is_transient(&e) {
                    continue;
                }
                return Err(e);
            }
        }
    }
    unreachable!("the retry loop returns")
}

pub async fn top_up(app: &App, p: &Principal, id: i64, t: &TopUp) -> Result<Account> {
    let mut errors = vec![];
    if t.paid_hours <= 0 {
        errors.push(FieldError::new("paid_hours", "must be positive"));
    }
    not_negative("bonus_hours", t.bonus_hours, &mut errors);
    not_negative("price_fen", t.price_fen, &mut errors);
    check(errors)?;
    let actor = p.person_id;
    with_account(app, p, id, |a| {
        if a.state != "active" {
            return Err(Error::Conflict(format!("account {id} is {}", a.state)));
        }
        let mut after = a.clone();
        after.balance = a.balance.credit(t.paid_hours, t.bonus_hours);
        after.paid_hours += t.paid_hours;
        after.bonus_hours += t.bonus_hours;
        after.price_fen += t.price_fen;
        Ok((
            after.clone(),
            vec![Posting {
                account_id: id,
                student_id: a.student_id,
                kind: "purchase",
                amount: t.paid_hours + t.bonus_hours,
                value_fen: t.price_fen,
                balance_after: after.balance.total(),
                reference: Some("top-up".into()),
                actor_id: Some(actor),
                ..Posting::default()
            }],
            Change::new("lessons.top_up", "lesson_account", id).after(serde_json::json!({
                "paid_hours": t.paid_hours, "bonus_hours": t.bonus_hours, "price_fen": t.price_fen
            })),
        ))
    })
    .await
}

pub async fn adjust(app: &App, p: &Principal, id: i64, a: &Adjust) -> Result<Account> {
    let mut errors = vec![];
    if a.hours == 0 {
        errors.push(FieldError::new("hours", "must not be zero"));
    }
    if a.note.trim().is_empty() || a.note.chars().count() > 90 {
        errors.push(FieldError::new("note", "must be 1 to 90 characters"));
    }
    check(errors)?;
    let actor = p.person_id;
    with_account(app, p, id, |acc| {
        let mut after = acc.clone();
        after.balance = if a.hours > 0 {
            acc.balance.credit(0, a.hours)
        } else {
            acc.balance.debit(-a.hours).0
        };
        Ok((
            after.clone(),
            vec![Posting {
                account_id: id,
                student_id: acc.student_id,
                kind: "adjust",
                amount: a.hours,
                balance_after: after.balance.total(),
                reference: Some(a.note.trim().to_string()),
                actor_id: Some(actor),
                ..Posting::default()
            }],
            Change::new("lessons.adjust", "lesson_account", id)
                .after(serde_json::json!({ "hours": a.hours, "note": a.note })),
        ))
    })
    .await
}

pub async fn set_frozen(app: &App, p: &Principal, id: i64, frozen: bool) -> Result<Account> {
    with_account(app, p, id, |acc| {
        if acc.state != "active" {
            return Err(Error::Conflict(format!("account {id} is {}", acc.state)));
        }
        let mut after = acc.clone();
        after.frozen = frozen;
        Ok((
            after,
            vec![],
            Change::new(
                if frozen {
                    "lessons.freeze"
                } else {
                    "lessons.unfreeze"
                },
                "lesson_account",
                id,
            ),
        ))
    })
    .await
}

/// First step of a refund: compute the amount and record it as pending.
pub async fn request_refund(app: &App, p: &Principal, id: i64) -> Result<Refund> {
    authorize(p, "lessons.manage")?;
    let acc = store::accounts(
        &app.db,
        &app.keys,
        p.tenant_id,
        &Reach {
            tenant_wide: true,
            ..Reach::default()
        },
        None,
        Some(id),
    )
    .await?
    .pop()
    .ok_or(Error::NotFound("account"))?;
    if acc.state != "active" {
        return Err(Error::Conflict(format!("account {id} is {}", acc.state)));
    }
    let hours = acc.balance.paid.max(0);
    let amount = acc.value_of(hours);
    let mut tx = app.db.begin().await?;
    let rid = tx
        .insert_id(
            &crate::db::Sql::new("INSERT INTO lesson_refunds (tenant_id, account_id, hours, amount_fen, state, requested_by, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)")
                .bind(p.tenant_id)
                .bind(id)
                .bind(hours)
                .bind(amount)
                .bind(p.person_id)
                .bind(now_ms()),
        )
        .await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("lessons.refund.request", "lesson_refund", rid)
            .after(serde_json::json!({"account_id": id, "hours": hours, "amount_fen": amount}))],
    )
    .await?;
    tx.commit().await?;
    Ok(Refund {
        id: rid,
        account_id: id,
        hours,
        amount_fen: amount,
        state: "pending".into(),
    })
}

/// Second step: the caller repeats the amount; the account is refunded and closed.
/// If the balance changed since the request (a lesson was consumed), the
/// confirmation is refused and a new request must be made.
pub async fn confirm_refund(
    app: &App,
    p: &Principal,
    refund_id: i64,
    c: &ConfirmRefund,
) -> Result<Refund> {
    authorize(p, "lessons.manage")?;
    use crate::db::{RowExt, Sql};
    let row = app
        .db
        .fetch_optional(&Sql::new("SELECT account_id, hours, amount_fen, state FROM lesson_refunds WHERE tenant_id = ? AND id = ?").bind(p.tenant_id).bind(refund_id))
        .await?
        .ok_or(Error::NotFound("refund"))?;
    let (account_id, hours, amount) = (
        row.i64("account_id")?,
        row.i64("hours")?,
        row.i64("amount_fen")?,
    );
    if row.str("state")? != "pending" {
        return Err(Error::Conflict(format!(
            "refund {refund_id} is {}",
            row.str("state")?
        )));
    }
    if c.amount_fen != amount {
        return Err(Error::validation(
            "amount_fen",
            format!("must repeat the computed amount {amount} fen to confirm"),
        ));
    }
    let actor = p.person_id;
    let tenant_id = p.tenant_id;
    // The refund row is confirmed in the transaction that closes the account.
    let confirm = Sql::new("UPDATE lesson_refunds SET state = 'confirmed', confirmed_by = ?, decided_at = ? WHERE tenant_id = ? AND id = ? AND state = 'pending'")
        .bind(actor)
        .bind(now_ms())
        .bind(tenant_id)
        .bind(refund_id);
    with_account_and(app, p, account_id, Some(confirm), |acc| {
        if acc.state != "active" || acc.balance.paid.max(0) != hours {
            return Err(Error::Conflict(
                "the account changed since the refund was requested: request it again".into(),
            ));
        }
        let mut after = acc.clone();
        after.balance = Balance::default();
        after.state = "refunded".into();
        Ok((
            after,
            vec![Posting {
                account_id,
                student_id: acc.student_id,
                kind: "refund",
                amount: -acc.balance.total(),
                value_fen: -amount,
                balance_after: 0,
                reference: Some(format!("refund:{refund_id}")),
                actor_id: Some(actor),
                ..Posting::default()
            }],
            Change::new("lessons.refund.confirm", "lesson_refund", refund_id)
                .after(serde_json::json!({"amount_fen": amount, "hours": hours})),
        ))
    })
    .await?;
    Ok(Refund {
        id: refund_id,
        account_id,
        hours,
        amount_fen: amount,
        state: "confirmed".into(),
    })
}

pub async fn request_transfer(app: &App, p: &Principal, t: &NewTransfer) -> Result<Transfer> {
    authorize(p, "lessons.manage")?;
    if t.hours <= 0 {
        return Err(Error::validation("hours", "must be positive"));
    }
    let acc = store::accounts(
        &app.db,
        &app.keys,
        p.tenant_id,
        &Reach {
            tenant_wide: true,
            ..Reach::default()
        },
        None,
        Some(t.from_account_id),
    )
    .await?
    .pop()
    .ok_or_else(|| Error::validation("from_account_id", "no such account"))?;
    if acc.balance.total() < t.hours {
        return Err(Error::validation(
            "hours",
            format!(
                "the account holds only {} hours",
                hours_text(acc.balance.total())
            ),
        ));
    }
    if store::existing_people(&app.db, p.tenant_id, "student", &[t.to_student_id])
        .await?
        .is_empty()
        || t.to_student_id == acc.student_id
    {
        return Err(Error::validation(
            "to_student_id",
            "must be another student",
        ));
    }
    let mut tx = app.db.begin().await?;
    let id = tx
        .insert_id(
            &crate::db::Sql::new("INSERT INTO lesson_transfers (tenant_id, from_account_id, to_student_id, hours, state, requested_by, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)")
                .bind(p.tenant_id)
                .bind(t.from_account_id)
                .bind(t.to_student_id)
                .bind(t.hours)
                .bind(p.person_id)
                .bind(now_ms()),
        )
        .await?;
    audit::append(&mut tx, &p.actor(), &[Change::new("lessons.transfer.request", "lesson_transfer", id).after(serde_json::json!({"from_account_id": t.from_account_id, "to_student_id": t.to_student_id, "hours": t.hours}))]).await?;
    tx.commit().await?;
    Ok(Transfer {
        id,
        from_account_id: t.from_account_id,
        to_student_id: t.to_student_id,
        hours: t.hours,
        state: "pending".into(),
        to_account_id: None,
    })
}

/// Transfers of the tenant for the people who decide them; `state` filters.
pub async fn transfers(
    app: &App,
    p: &Principal,
    state: Option<&str>,
    page: Option<i64>,
    per_page: Option<i64>,
) -> Result<crate::directory::model::Page<TransferItem>> {
    authorize(p, "lessons.manage")?;
    let (page, per_page) = crate::directory::model::page_args(page, per_page, 50, 500)?;
    if let Some(s) = state {
        if !["pending", "approved", "rejected"].contains(&s) {
            return Err(Error::validation(
                "state",
                "must be pending, approved or rejected",
            ));
        }
    }
    let (items, total) = store::transfers(&app.db, p.tenant_id, state, page, per_page).await?;
    Ok(crate::directory::model::Page {
        items,
        total,
        page,
        per_page,
    })
}

/// Approve (someone other than the requester) or reject a pending transfer.
/// Approval moves the hours into a new account of the receiving student with
/// the same rules and validity, in one transaction.
pub async fn decide_transfer(app: &App, p: &Principal, id: i64, approve: bool) -> Result<Transfer> {
    authorize(p, "lessons.manage")?;
    use crate::db::{RowExt, Sql};
    for attempt in 0.. {
        let mut tx = app.db.begin().await?;
        let r: Result<Transfer> = async {
            // Claim the transfer first: a second decision finds it decided.
            let row = tx
                .fetch_optional(&Sql::new(format!("SELECT from_account_id, to_student_id, hours, state, requested_by FROM lesson_transfers WHERE tenant_id = ? AND id = ?{}", store::for_update(tx.backend()))).bind(p.tenant_id).bind(id))
                .await?
                .ok_or(Error::NotFound("transfer"))?;
            let (from, to_student, hours) = (row.i64("from_account_id")?, row.i64("to_student_id")?, row.i64("hours")?);
            if row.str("state")? != "pending" {
                return Err(Error::Conflict(format!("transfer {id} is {}", row.str("state")?)));
            }
            if approve && row.opt_i64("requested_by")? == Some(p.person_id) {
                return Err(Error::Forbidden("a transfer must be approved by someone other than its requester".into()));
            }
            let mut out = Transfer { id, from_account_id: from, to_student_id: to_student, hours, state: if approve { "approved" } else { "rejected" }.into(), to_account_id: None };
            if approve {
                let mut acc = store::lock_accounts(&mut tx, &app.keys, p.tenant_id, &[from]).await?.pop().ok_or(Error::NotFound("account"))?;
                if acc.state != "active" || acc.balance.total() < hours {
                    return Err(Error::Conflict(format!("account {from} no longer holds {} hours", hours_text(hours))));
                }
                let (after, paid_part) = acc.balance.debit(hours);
                let bonus_part = hours - paid_part;
                let value = acc.value_of(paid_part);
                let now = now_ms();
                let day = day_of(now, app.settings.timezone);
                let sale_id = store::insert_sale(&mut tx, p.tenant_id, to_student, acc.package_id, 0, Some(p.person_id), None, day).await?;
                let pool = Pool { name: acc.pool_name.clone(), paid_hours: paid_part, bonus_hours: bonus_part, price_fen: value, course_ids: acc.course_ids.clone(), subject_ids: acc.subject_ids.clone() };
                let new_id = store::insert_account(&mut tx, &app.keys, p.tenant_id, to_student, sale_id, acc.package_id, acc.priority, &pool, acc.valid_until).await?;
                let nb = Balance { paid: paid_part, bonus: bonus_part };
                store::set_balance(&mut tx, &app.keys, p.tenant_id, new_id, nb).await?;
                store::set_balance(&mut tx, &app.keys, p.tenant_id, from, after).await?;
                acc.balance = after;
                tx.execute(&Sql::new("UPDATE lesson_transfers SET state = 'approved', to_account_id = ?, decided_by = ?, decided_at = ? WHERE tenant_id = ? AND id = ?").bind(new_id).bind(p.person_id).bind(now).bind(p.tenant_id).bind(id)).await?;
                audit::append(&mut tx, &p.actor(), &[Change::new("lessons.transfer.approve", "lesson_transfer", id).after(serde_json::json!({"to_account_id": new_id}))]).await?;
                let reference = Some(format!("transfer:{id}"));
                ledger::post(&mut tx, &app.keys, p.tenant_id, now, day, &[
                    Posting { account_id: from, student_id: acc.student_id, kind: "transfer", amount: -hours, value_fen: -value, balance_after: after.total(), reference: reference.clone(), actor_id: Some(p.person_id), ..Posting::default() },
                    Posting { account_id: new_id, student_id: to_student, kind: "transfer", amount: hours, value_fen: value, balance_after: nb.total(), reference, actor_id: Some(p.person_id), ..Posting::default() },
                ]).await?;
                out.to_account_id = Some(new_id);
            } else {
                tx.execute(&Sql::new("UPDATE lesson_transfers SET state = 'rejected', decided_by = ?, decided_at = ? WHERE tenant_id = ? AND id = ?").bind(p.person_id).bind(now_ms()).bind(p.tenant_id).bind(id)).await?;
                audit::append(&mut tx, &p.actor(), &[Change::new("lessons.transfer.reject", "lesson_transfer", id)]).await?;
            }
            Ok(out)
        }
        .await;
        match r {
            Ok(t) => {
                tx.commit().await?;
                return Ok(t);
            }
            Err(e) => {
                tx.rollback().await.ok();
                if attempt < 5 && is_transient(&e) {
                    continue;
                }
                return Err(e);
            }
        }
    }
    unreachable!("the retry loop returns")
}

// ---- attendance and consumption ----

fn deducts(status: &str, s: &LessonSettings) -> bool {
    match status {
        "present" | "late" => true,
        "absent" => s.absent_deducts,
        _ => false,
    }
}

/// Which sessions a caller may check in, decided from their scopes before
/// any session is read: tenant-wide, or the sessions they teach or whose
/// class they teach. Out of reach is 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckinAccess {
    pub tenant_wide: bool,
    pub own_classes: bool,
}

impl CheckinAccess {
    pub fn of(p: &Principal) -> Result<Self> {
        let scopes = authorize(p, "lessons.checkin")?;
        Ok(CheckinAccess {
            tenant_wide: tenant_wide(&scopes),
            own_classes: scopes.contains(&Scope::OwnClasses),
        })
    }

    /// Within reach without asking who teaches the class.
    pub fn reaches_directly(&self, person: Option<i64>, s: &SessionRow) -> bool {
        self.tenant_wide || (self.own_classes && person.is_some() && s.api.teacher_id == person)
    }

    /// Whether the class teachers decide it.
    pub fn needs_class_teachers(&self, person: Option<i64>, s: &SessionRow) -> bool {
        !self.reaches_directly(person, s) && self.own_classes && person.is_some()
    }
}

async fn checkin_session(
    app: &App,
    p: &Principal,
    access: CheckinAccess,
    session_id: i64,
) -> Result<SessionRow> {
    let s = store::session(&app.db, p.tenant_id, session_id)
        .await?
        .ok_or(Error::NotFound("session"))?;
    let person = Some(p.person_id);
    if access.reaches_directly(person, &s)
        || (access.needs_class_teachers(person, &s)
            && store::teaches(&app.db, p.tenant_id, s.api.class_id, p.person_id).await?)
    {
        return Ok(s);
    }
    Err(Error::NotFound("session"))
}

/// The marks' own rules: 1 to 2000, known statuses, each student once.
pub fn validate_marks(marks: &[Mark]) -> Result<()> {
    let mut errors = vec![];
    if marks.is_empty() || marks.len() > 2000 {
        errors.push(FieldError::new("marks", "must have 1 to 2000 marks"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in marks.iter().enumerate() {
        if !STATUSES.contains(&m.status.as_str()) {
            errors.push(FieldError::new(
                format!("marks[{i}].status"),
                "must be present, late, absent or excused",
            ));
        }
        if !seen.insert(m.student_id) {
            errors.push(FieldError::new(
                format!("marks[{i}].student_id"),
                "appears twice",
            ));
        }
    }
    check(errors)
}

/// Every marked student exists (as a student of the tenant).
pub fn known_students(marks: &[Mark], students: &std::collections::HashSet<i64>) -> Result<()> {
    check(
        marks
            .iter()
            .enumerate()
            .filter(|(_, m)| !students.contains(&m.student_id))
            .map(|(i, _)| FieldError::new(format!("marks[{i}].student_id"), "no such student"))
            .collect(),
    )
}

/// Check in one student or a whole class in one transaction: attendance,
/// ledger debits from the right accounts, new balances and the parents'
/// notices (`alerts::tell_parents`). Repeating a check-in changes nothing.
///
/// A check-in of a few students joins the next group commit, whose writer
/// reads the session, settings and students of the whole group at once;
/// a class is written on its own.
pub async fn check_in(
    app: &App,
    p: &Principal,
    session_id: i64,
    c: &CheckIn,
) -> Result<CheckInResult> {
    let access = CheckinAccess::of(p)?;
    validate_marks(&c.marks)?;
    if c.marks.len() <= super::group::MAX_MARKS_GROUPED {
        return app
            .checkins
            .submit(app, p.actor(), access, session_id, c.marks.clone())
            .await;
    }
    let session = checkin_session(app, p, access, session_id).await?;
    let ids: Vec<i64> = c.marks.iter().map(|m| m.student_id).collect();
    let found = store::existing_people(&app.db, p.tenant_id, "student", &ids).await?;
    known_students(&c.marks, &found.into_iter().collect())?;
    let settings = store::settings(&app.db, p.tenant_id).await?;
    let actor = p.actor();
    let part = CheckinPart {
        actor: &actor,
        session: &session,
        settings: &settings,
        marks: &c.marks,
        notices: ParentNotices::Send,
    };
    check_in_retrying(&app.db, &app.keys, &part).await
}

/// A check-in in a transaction of its own, retried on deadlocks and busy
/// databases.
pub(super) async fn check_in_retrying(
    db: &Db,
    keys: &Keys,
    part: &CheckinPart<'_>,
) -> Result<CheckInResult> {
    for attempt in 0.. {
        match check_in_once(db, keys, part).await {
            Err(e) if attempt < 8 && is_transient(&e) => continue,
            r => return r,
        }
    }
    unreachable!("the retry loop returns")
}

/// One attempt of a check-in in a transaction of its own; also used by
/// the demo.
pub(super) async fn check_in_once(
    db: &Db,
    keys: &Keys,
    part: &CheckinPart<'_>,
) -> Result<CheckInResult> {
    let mut tx = db.begin().await?;
    match check_in_parts(keys, &mut tx, std::slice::from_ref(part)).await {
        Ok(mut out) => {
            tx.commit().await?;
            Ok(out.pop().unwrap_or_default())
        }
        Err(e) => {
            tx.rollback().await.ok();
            Err(e)
        }
    }
}

/// The ledger debit of `hours` of a lesson from an account already
/// debited in memory (its balance is the balance after), `paid` of them
/// paid hours.
fn consume_posting(
    account: &AccountRow,
    paid: i64,
    hours: i64,
    s: &Session,
    actor_id: Option<i64>,
) -> Posting {
    Posting {
        account_id: account.id,
        student_id: account.student_id,
        kind: "consume",
        amount: -hours,
        value_fen: account.value_of(paid),
        balance_after: account.balance.total(),
        reference: Some(format!("session:{}", s.id)),
        session_id: Some(s.id),
        teacher_id: s.teacher_id,
        course_id: Some(s.course_id),
        campus_id: s.campus_id,
        actor_id,
    }
}

/// One session's marks inside a check-in group.
pub(super) struct CheckinPart<'a> {
    pub actor: &'a Actor,
    pub session: &'a SessionRow,
    pub settings: &'a LessonSettings,
    pub marks: &'a [Mark],
    pub notices: ParentNotices,
}

/// Whether a check-in tells the parents: every real one does; lessons the
/// demo writes as past history do not, since history is not news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentNotices {
    Send,
    Skip,
}

/// The writes of check-ins of several sessions of one tenant inside the
/// caller's transaction, with one statement per step for all of them
/// (marks, account locks, balances, the parents' notices, the ledger), not
/// one per session: a group of single check-ins spans about as many
/// sessions as it has requests. Each student may appear only once: a mark
/// counts as new when its row is inserted, so a repeat in the same pass
/// would be debited twice.
pub(super) async fn check_in_parts(
    keys: &Keys,
    tx: &mut Tx,
    parts: &[CheckinPart<'_>],
) -> Result<Vec<CheckInResult>> {
    let Some(first) = parts.first() else {
        return Ok(vec![]);
    };
    let tenant_id = first.actor.tenant_id;
    if parts.iter().any(|p| p.actor.tenant_id != tenant_id) {
        return Err(Error::Other(anyhow::anyhow!(
            "check-ins of several tenants in one transaction"
        )));
    }
    let mut seen = HashSet::new();
    if !parts
        .iter()
        .flat_map(|p| p.marks.iter())
        .all(|m| seen.insert(m.student_id))
    {
        return Err(Error::Other(anyhow::anyhow!(
            "a student twice in one check-in pass"
        )));
    }
    let now = now_ms();
    let op = crate::crypto::random_token(12);
    // Every mark, in (session, student) order: the order of the inserts,
    // the debits and so of the ledger entries.
    struct Row {
        part: usize,
        mark: usize,
        hours: i64,
    }
    let mut rows: Vec<Row> = vec![];
    for (pi, p) in parts.iter().enumerate() {
        for (mi, m) in p.marks.iter().enumerate() {
            let hours = if deducts(&m.status, p.settings) {
                p.session.api.hours
            } else {
                0
            };
            rows.push(Row {
                part: pi,
                mark: mi,
                hours,
            });
        }
    }
    let key = |r: &Row| {
        (
            parts[r.part].session.api.id,
            parts[r.part].marks[r.mark].student_id,
        )
    };
    rows.sort_by_key(key);
    let new_rows: Vec<store::NewAttendance> = rows
        .iter()
        .map(|r| {
            let p = &parts[r.part];
            let m = &p.marks[r.mark];
            store::NewAttendance {
                session_id: p.session.api.id,
                student_id: m.student_id,
                status: &m.status,
                hours: r.hours,
                actor_id: p.actor.person_id,
            }
        })
        .collect();
    let inserted: HashSet<(i64, i64)> =
        store::insert_attendance(tx, tenant_id, &new_rows, &op, now)
            .await?
            .into_iter()
            .collect();
    let repeats: Vec<(i64, i64)> = rows
        .iter()
        .map(key)
        .filter(|k| !inserted.contains(k))
        .collect();
    let existing: HashMap<(i64, i64), (String, i64)> = if repeats.is_empty() {
        HashMap::new()
    } else {
        store::attendance_of(tx, tenant_id, &repeats)
            .await?
            .into_iter()
            .map(|(session, student, status, hours)| ((session, student), (status, hours)))
            .collect()
    };
    let debits: Vec<&Row> = rows
        .iter()
        .filter(|r| r.hours > 0 && inserted.contains(&key(r)))
        .collect();
    let mut accounts = if debits.is_empty() {
        vec![]
    } else {
        let mut students: Vec<i64> = debits.iter().map(|r| key(r).1).collect();
        students.sort_unstable();
        students.dedup();
        store::lock_accounts_of(tx, keys, tenant_id, &students).await?
    };
    accounts.sort_by_key(|a| (a.student_id, a.priority, a.valid_until, a.id));
    let mut errors = vec![];
    // A debit per mark, in order, so an account debited twice (two
    // sessions) has each entry's balance after it.
    let mut postings = vec![];
    let mut days = vec![];
    let mut posting_of: HashMap<(i64, i64), usize> = HashMap::new();
    let mut debited: Vec<usize> = vec![];
    for r in &debits {
        let p = &parts[r.part];
        let (_, student) = key(r);
        let s = &p.session.api;
        let candidates: Vec<usize> = accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.student_id == student && a.covers(s.course_id, p.session.subject_id, now)
            })
            .map(|(k, _)| k)
            .collect();
        let enough = candidates
            .iter()
            .copied()
            .find(|k| accounts[*k].balance.total() >= r.hours);
        let pick = enough.or_else(|| {
            if p.settings.allow_credit {
                candidates
                    .iter()
                    .copied()
                    .find(|k| accounts[*k].balance.total() - r.hours >= -p.settings.credit_limit)
            } else {
                None
            }
        });
        match pick {
            Some(k) => {
                let (after, paid) = accounts[k].balance.debit(r.hours);
                accounts[k].balance = after;
                debited.push(k);
                posting_of.insert(key(r), postings.len());
                days.push(p.session.day);
                postings.push(consume_posting(
                    &accounts[k],
                    paid,
                    r.hours,
                    s,
                    p.actor.person_id,
                ));
            }
            None => {
                let have: i64 = candidates
                    .iter()
                    .map(|k| accounts[*k].balance.total())
                    .sum();
                let msg = if candidates.is_empty() {
                    format!(
                        "no active lesson-hour account of this student covers {}",
                        s.course_name
                    )
                } else {
                    format!(
                        "not enough lesson hours: the lesson needs {} h, the student has {} h",
                        hours_text(r.hours),
                        hours_text(have)
                    )
                };
                errors.push(FieldError::new(
                    format!("marks[{}].student_id", r.mark),
                    msg,
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    debited.sort_unstable();
    debited.dedup();
    let mut changed: Vec<(i64, Balance)> = debited
        .iter()
        .map(|k| (accounts[*k].id, accounts[*k].balance))
        .collect();
    changed.sort_unstable_by_key(|(id, _)| *id);
    store::set_balances(tx, keys, tenant_id, &changed).await?;
    // Notices for every new mark (absences too: parents want to know).
    let mut notices = vec![];
    for r in rows
        .iter()
        .filter(|r| inserted.contains(&key(r)) && parts[r.part].notices == ParentNotices::Send)
    {
        let s = &parts[r.part].session.api;
        let m = &parts[r.part].marks[r.mark];
        let posted = posting_of.get(&key(r)).map(|i| &postings[*i]);
        notices.push(serde_json::json!({
            "kind": "attendance",
            "student_id": m.student_id,
            "session_id": s.id,
            "course": s.course_name,
            "starts_at": s.starts_at,
            "status": m.status,
            "hours": posted.map(|x| -x.amount).unwrap_or(0),
            "account_id": posted.map(|x| x.account_id),
            "balance_after": posted.map(|x| x.balance_after),
        }));
    }
    super::alerts::tell_parents(tx, tenant_id, notices).await?;
    let seqs = ledger::post_dated(tx, keys, tenant_id, now, &days, &postings).await?;
    // Each part's answers in the order of its marks.
    Ok(parts
        .iter()
        .map(|p| CheckInResult {
            session_id: p.session.api.id,
            results: p
                .marks
                .iter()
                .filter_map(|m| {
                    let k = (p.session.api.id, m.student_id);
                    if inserted.contains(&k) {
                        let posted = posting_of.get(&k).copied();
                        Some(MarkResult {
                            student_id: m.student_id,
                            status: m.status.clone(),
                            created: true,
                            hours: posted.map(|i| -postings[i].amount).unwrap_or(0),
                            account_id: posted.map(|i| postings[i].account_id),
                            balance_after: posted.map(|i| postings[i].balance_after),
                            chain: posted.map(|i| seqs[i].0),
                            seq: posted.map(|i| seqs[i].1),
                        })
                    } else {
                        existing.get(&k).map(|(status, hours)| MarkResult {
                            student_id: m.student_id,
                            status: status.clone(),
                            created: false,
                            hours: *hours,
                            account_id: None,
                            balance_after: None,
                            chain: None,
                            seq: None,
                        })
                    }
                })
                .collect(),
        })
        .collect())
}

/// Correct a mark: the earlier debit is reversed by a new entry, never
/// edited, and the new status consumes again if it deducts.
pub async fn correct(
    app: &App,
    p: &Principal,
    session_id: i64,
    student_id: i64,
    c: &Correction,
) -> Result<MarkResult> {
    let session = checkin_session(app, p, CheckinAccess::of(p)?, session_id).await?;
    if !STATUSES.contains(&c.status.as_str()) {
        return Err(Error::validation(
            "status",
            "must be present, late, absent or excused",
        ));
    }
    let settings = store::settings(&app.db, p.tenant_id).await?;
    for attempt in 0.. {
        let mut tx = app.db.begin().await?;
        let r = correct_tx(
            app,
            &mut tx,
            &p.actor(),
            &session,
            &settings,
            student_id,
            &c.status,
        )
        .await;
        match r {
            Ok(m) => {
                tx.commit().await?;
                return Ok(m);
            }
            Err(e) => {
                tx.rollback().await.ok();
                if attempt < 5 && is_transient(&e) {
                    continue;
                }
                return Err(e);
            }
        }
    }
    unreachable!("the retry loop returns")
}

async fn correct_tx(
    app: &App,
    tx: &mut Tx,
    actor: &Actor,
    session: &SessionRow,
    settings: &LessonSettings,
    student_id: i64,
    status: &str,
) -> Result<MarkResult> {
    use crate::db::{RowExt, Sql};
    let tenant_id = actor.tenant_id;
    let s = &session.api;
    let now = now_ms();
    let hours = if deducts(status, settings) {
        s.hours
    } else {
        0
    };
    // Lock the mark first: corrections of one mark queue here.
    let n = tx
        .execute(&Sql::new("UPDATE attendance SET status = ?, hours = ?, actor_id = ?, at = ? WHERE tenant_id = ? AND session_id = ? AND student_id = ?").bind(status).bind(hours).bind(actor.person_id).bind(now).bind(tenant_id).bind(s.id).bind(student_id))
        .await?;
    if n == 0 {
        return Err(Error::NotFound("attendance"));
    }
    let rows = tx
        .fetch_all(&Sql::new("SELECT account_id, amount, value_fen FROM ledger_entries WHERE tenant_id = ? AND session_id = ? AND student_id = ? ORDER BY id").bind(tenant_id).bind(s.id).bind(student_id))
        .await?;
    let mut net: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for r in &rows {
        let e = net.entry(r.i64("account_id")?).or_default();
        e.0 += r.i64("amount")?;
        e.1 += r.i64("value_fen")?;
    }
    let mut acc_ids: Vec<i64> = net.keys().copied().collect();
    let wanted = store::lock_accounts_of(tx, &app.keys, tenant_id, &[student_id]).await?;
    acc_ids.extend(wanted.iter().map(|a| a.id));
    acc_ids.sort_unstable();
    acc_ids.dedup();
    let mut accounts = store::lock_accounts(tx, &app.keys, tenant_id, &acc_ids).await?;
    let mut postings = vec![];
    for (acc_id, (amount, value)) in &net {
        if *amount >= 0 {
            continue;
        }
        if let Some(a) = accounts.iter_mut().find(|a| a.id == *acc_id) {
            a.balance = a.balance.credit(-amount, 0);
            postings.push(Posting {
                account_id: a.id,
                student_id,
                kind: "reverse",
                amount: -amount,
                value_fen: -value,
                balance_after: a.balance.total(),
                reference: Some(format!("correction:session:{}", s.id)),
                session_id: Some(s.id),
                teacher_id: s.teacher_id,
                course_id: Some(s.course_id),
                campus_id: s.campus_id,
                actor_id: actor.person_id,
            });
        }
    }
    let mut result = MarkResult {
        student_id,
        status: status.to_string(),
        created: true,
        hours: 0,
        account_id: None,
        balance_after: None,
        chain: None,
        seq: None,
    };
    if hours > 0 {
        let mut order: Vec<usize> = (0..accounts.len())
            .filter(|k| {
                accounts[*k].student_id == student_id
                    && accounts[*k].covers(s.course_id, session.subject_id, now)
            })
            .collect();
        order.sort_by_key(|k| {
            (
                accounts[*k].priority,
                accounts[*k].valid_until,
                accounts[*k].id,
            )
        });
        let pick = order
            .iter()
            .copied()
            .find(|k| accounts[*k].balance.total() >= hours)
            .or_else(|| {
                settings
                    .allow_credit
                    .then(|| {
                        order.iter().copied().find(|k| {
                            accounts[*k].balance.total() - hours >= -settings.credit_limit
                        })
                    })
                    .flatten()
            });
        let Some(k) = pick else {
            return Err(Error::validation(
                "status",
                format!("not enough lesson hours for {} h", hours_text(hours)),
            ));
        };
        let (after, paid) = accounts[k].balance.debit(hours);
        accounts[k].balance = after;
        postings.push(consume_posting(
            &accounts[k],
            paid,
            hours,
            s,
            actor.person_id,
        ));
        result.hours = hours;
        result.account_id = Some(accounts[k].id);
        result.balance_after = Some(after.total());
    }
    let touched: std::collections::HashSet<i64> = postings.iter().map(|x| x.account_id).collect();
    for a in accounts.iter().filter(|a| touched.contains(&a.id)) {
        store::set_balance(tx, &app.keys, tenant_id, a.id, a.balance).await?;
    }
    audit::append(
        tx,
        actor,
        &[Change::new(
            "lessons.attendance.correct",
            "attendance",
            format!("{}:{student_id}", s.id),
        )
        .after(serde_json::json!({"status": status}))],
    )
    .await?;
    let notice = serde_json::json!({
        "kind": "correction", "student_id": student_id, "session_id": s.id,
        "course": s.course_name, "starts_at": s.starts_at, "status": status, "hours": result.hours,
        "account_id": result.account_id, "balance_after": result.balance_after,
    });
    super::alerts::tell_parents(tx, tenant_id, vec![notice]).await?;
    let seqs = ledger::post(tx, &app.keys, tenant_id, now, session.day, &postings).await?;
    if hours > 0 {
        result.chain = seqs.last().map(|x| x.0);
        result.seq = seqs.last().map(|x| x.1);
    }
    Ok(result)
}

pub async fn sheet(app: &App, p: &Principal, session_id: i64) -> Result<Sheet> {
    let session = checkin_session(app, p, CheckinAccess::of(p)?, session_id).await?;
    let mut rows =
        store::sheet_rows(&app.db, p.tenant_id, session_id, session.api.class_id).await?;
    // Each row's hours left in the accounts that pay for this course.
    let ids: Vec<i64> = rows.iter().map(|r| r.student_id).collect();
    let accounts = store::accounts_of_students(&app.db, &app.keys, p.tenant_id, &ids).await?;
    let now = now_ms();
    for row in &mut rows {
        row.remaining = accounts
            .iter()
            .filter(|a| {
                a.student_id == row.student_id
                    && a.covers(session.api.course_id, session.subject_id, now)
            })
            .map(|a| a.balance.total())
            .reduce(|x, y| x + y);
    }
    Ok(Sheet {
        session: session.api,
        rows,
    })
}

pub async fn sessions(
    app: &App,
    p: &Principal,
    from_day: i64,
    to_day: i64,
    class_id: Option<i64>,
) -> Result<Vec<Session>> {
    let scopes = authorize(p, "lessons.read")?;
    let teacher = (!tenant_wide(&scopes)).then_some(p.person_id);
    if teacher.is_some() && !scopes.contains(&Scope::OwnClasses) {
        return Ok(vec![]);
    }
    store::sessions(&app.db, p.tenant_id, teacher, from_day, to_day, class_id).await
}

/// The students whose lesson hours the caller follows: themself (a
/// student) and, with the own-children scope, their children.
pub async fn my_students(app: &App, p: &Principal) -> Result<Vec<MyStudent>> {
    let r = reach(p, "lessons.read")?;
    store::my_students(&app.db, p.tenant_id, p.person_id, r.own_children).await
}

/// A student's upcoming lessons and attendance history, for whoever reaches
/// the student (themself, a parent, their teacher, staff). Out of reach is 404.
pub async fn student_lessons(app: &App, p: &Principal, student_id: i64) -> Result<StudentLessons> {
    let r = reach(p, "lessons.read")?;
    if !store::student_in_reach(&app.db, p.tenant_id, &r, student_id).await? {
        return Err(Error::NotFound("student"));
    }
    Ok(StudentLessons {
        student_id,
        upcoming: store::upcoming_sessions(&app.db, p.tenant_id, student_id, now_ms(), 50).await?,
        history: store::attendance_history(&app.db, p.tenant_id, student_id, 200).await?,
    })
}

/// Notices: a parent sees their own; tenant-wide readers may filter by student.
pub async fn notices(app: &App, p: &Principal, student_id: Option<i64>) -> Result<Vec<Notice>> {
    let scopes = authorize(p, "lessons.read")?;
    if tenant_wide(&scopes) {
        store::notices(&app.db, p.tenant_id, None, student_id, 200).await
    } else {
        store::notices(&app.db, p.tenant_id, Some(p.person_id), student_id, 200).await
    }
}

pub async fn verify(app: &App, p: &Principal) -> Result<LedgerVerifyReport> {
    authorize(p, "lessons.manage")?;
    ledger::verify(&app.db, &app.keys, p.tenant_id).await
}
