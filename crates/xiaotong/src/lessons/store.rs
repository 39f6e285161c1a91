//! Lesson-hour database access. Every function takes the caller's tenant.

use super::ledger::{self, Balance};
use super::model::*;
use crate::crypto::Keys;
use crate::db::{insert_ignore, ms_to_rfc3339, now_ms, Backend, Db, RowExt, Sql, Tx};
use crate::error::Result;
use sqlx::any::AnyRow;

/// Which students a caller reaches (from their scopes).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub tenant_wide: bool,
    pub self_id: i64,
    /// Students enrolled in lesson classes the caller teaches.
    pub own_classes: bool,
    /// The caller's children.
    pub own_children: bool,
}

impl Reach {
    pub fn from_scopes(self_id: i64, scopes: &[crate::auth::Scope]) -> Reach {
        use crate::auth::Scope;
        let mut r = Reach {
            self_id,
            ..Reach::default()
        };
        for s in scopes {
            match s {
                Scope::All | Scope::Tenant => r.tenant_wide = true,
                Scope::OwnClasses => r.own_classes = true,
                Scope::OwnChildren => r.own_children = true,
                Scope::OwnDepartment | Scope::SelfOnly => {}
            }
        }
        r
    }

    /// `AND (...)` restricting the student id column `col`.
    pub fn push_filter(&self, tenant_id: i64, col: &str, sql: &mut Sql) {
        if self.tenant_wide {
            return;
        }
        sql.push_bind(&format!(" AND ({col} = ?"), self.self_id);
        if self.own_children {
            sql.push_bind(
                &format!(
                    " OR {col} IN (SELECT g.student_id FROM guardianships g WHERE g.tenant_id = ?"
                ),
                tenant_id,
            )
            .push_bind(" AND g.parent_id = ?)", self.self_id);
        }
        if self.own_classes {
            sql.push_bind(&format!(" OR {col} IN (SELECT e.student_id FROM enrolments e JOIN lesson_class_teachers t ON t.class_id = e.class_id WHERE e.tenant_id = ?"), tenant_id)
                .push_bind(" AND t.teacher_id = ?)", self.self_id);
        }
        sql.push(")");
    }
}

/// ` FOR UPDATE` where the backend has row locks (SQLite has one writer).
pub fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres | Backend::MySql => " FOR UPDATE",
    }
}

fn ids_text(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn parse_ids(s: &str) -> Vec<i64> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

// ---- settings ----

pub async fn settings(db: &Db, tenant_id: i64) -> Result<LessonSettings> {
    let Some(r) = db
        .fetch_optional(&Sql::new("SELECT absent_deducts, allow_credit, credit_limit, makeup_ratio_pct, low_balance_hours, expiry_reminder_days FROM lesson_settings WHERE tenant_id = ?").bind(tenant_id))
        .await?
    else {
        return Ok(LessonSettings::default());
    };
    Ok(LessonSettings {
        absent_deducts: r.bool("absent_deducts")?,
        allow_credit: r.bool("allow_credit")?,
        credit_limit: r.i64("credit_limit")?,
        makeup_ratio_pct: r.i64("makeup_ratio_pct")?,
        low_balance_hours: r.i64("low_balance_hours")?,
        expiry_reminder_days: r.i64("expiry_reminder_days")?,
    })
}

pub async fn save_settings(tx: &mut Tx, tenant_id: i64, s: &LessonSettings) -> Result<()> {
    tx.execute(&Sql::new("DELETE FROM lesson_settings WHERE tenant_id = ?").bind(tenant_id))
        .await?;
    tx.execute(
        &Sql::new("INSERT INTO lesson_settings (tenant_id, absent_deducts, allow_credit, credit_limit, makeup_ratio_pct, low_balance_hours, expiry_reminder_days, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(s.absent_deducts)
            .bind(s.allow_credit)
            .bind(s.credit_limit)
            .bind(s.makeup_ratio_pct)
            .bind(s.low_balance_hours)
            .bind(s.expiry_reminder_days)
            .bind(now_ms()),
    )
    .await?;
    Ok(())
}

// ---- catalogue ----

pub async fn insert_room(tx: &mut Tx, tenant_id: i64, r: &Room) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO rooms (tenant_id, campus_id, name, capacity, equipment, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(r.campus_id)
            .bind(r.name.trim())
            .bind(r.capacity)
            .bind(r.equipment.clone())
            .bind(now_ms()),
    )
    .await
}

pub async fn rooms(db: &Db, tenant_id: i64) -> Result<Vec<Room>> {
    db.fetch_all(&Sql::new("SELECT id, campus_id, name, capacity, equipment FROM rooms WHERE tenant_id = ? ORDER BY name").bind(tenant_id))
        .await?
        .iter()
        .map(|r| {
            Ok(Room {
                id: r.i64("id")?,
                campus_id: r.opt_i64("campus_id")?,
                name: r.str("name")?,
                capacity: r.i64("capacity")?,
                equipment: r.opt_str("equipment")?,
            })
        })
        .collect()
}

pub async fn insert_subject(tx: &mut Tx, tenant_id: i64, name: &str) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO subjects (tenant_id, name, created_at) VALUES (?, ?, ?)")
            .bind(tenant_id)
            .bind(name.trim())
            .bind(now_ms()),
    )
    .await
}

pub async fn subjects(db: &Db, tenant_id: i64) -> Result<Vec<Subject>> {
    db.fetch_all(
        &Sql::new("SELECT id, name FROM subjects WHERE tenant_id = ? ORDER BY name")
            .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Subject {
            id: r.i64("id")?,
            name: r.str("name")?,
        })
    })
    .collect()
}

pub async fn insert_course(tx: &mut Tx, tenant_id: i64, c: &Course) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO courses (tenant_id, subject_id, name, kind, lesson_minutes, hours_per_lesson, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(c.subject_id)
            .bind(c.name.trim())
            .bind(c.kind.as_str())
            .bind(c.lesson_minutes)
            .bind(c.hours_per_lesson)
            .bind(now_ms()),
    )
    .await
}

fn course_row(r: &AnyRow) -> Result<Course> {
    Ok(Course {
        id: r.i64("id")?,
        subject_id: r.opt_i64("subject_id")?,
        name: r.str("name")?,
        kind: r.str("kind")?,
        lesson_minutes: r.i64("lesson_minutes")?,
        hours_per_lesson: r.i64("hours_per_lesson")?,
    })
}

pub async fn courses(db: &Db, tenant_id: i64) -> Result<Vec<Course>> {
    db.fetch_all(&Sql::new("SELECT id, subject_id, name, kind, lesson_minutes, hours_per_lesson FROM courses WHERE tenant_id = ? ORDER BY name").bind(tenant_id))
        .await?
        .iter()
        .map(course_row)
        .collect()
}

pub async fn course(db: &Db, tenant_id: i64, id: i64) -> Result<Option<Course>> {
    db.fetch_optional(&Sql::new("SELECT id, subject_id, name, kind, lesson_minutes, hours_per_lesson FROM courses WHERE tenant_id = ? AND id = ?").bind(tenant_id).bind(id))
        .await?
        .map(|r| course_row(&r))
        .transpose()
}

/// Which of `ids` are people of `kind` in the tenant.
pub async fn existing_people(db: &Db, tenant_id: i64, kind: &str, ids: &[i64]) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut sql = Sql::new("SELECT id FROM people WHERE tenant_id = ? AND kind = ? AND id IN ")
        .bind(tenant_id)
        .bind(kind);
    sql.push_in(ids.iter().copied());
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| r.i64("id"))
        .collect()
}

pub async fn insert_class(tx: &mut Tx, tenant_id: i64, c: &NewClass) -> Result<i64> {
    let id = tx
        .insert_id(
            &Sql::new("INSERT INTO lesson_classes (tenant_id, course_id, campus_id, room_id, name, capacity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(tenant_id)
                .bind(c.course_id)
                .bind(c.campus_id)
                .bind(c.room_id)
                .bind(c.name.trim())
                .bind(c.capacity)
                .bind(now_ms()),
        )
        .await?;
    for t in &c.teacher_ids {
        tx.execute(
            &Sql::new(insert_ignore(
                tx.backend(),
                "lesson_class_teachers (tenant_id, class_id, teacher_id) VALUES (?, ?, ?)",
            ))
            .bind(tenant_id)
            .bind(id)
            .bind(*t),
        )
        .await?;
    }
    enrol(tx, tenant_id, id, &c.student_ids).await?;
    Ok(id)
}

pub async fn enrol(tx: &mut Tx, tenant_id: i64, class_id: i64, students: &[i64]) -> Result<()> {
    let now = now_ms();
    for chunk in students.chunks(200) {
        let mut sql = Sql::new(ignore_prefix(tx.backend()));
        sql.push("enrolments (tenant_id, class_id, student_id, created_at) VALUES ");
        for (i, s) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", tenant_id)
                .push_bind(", ?", class_id)
                .push_bind(", ?", *s)
                .push_bind(", ?)", now);
        }
        sql.push(ignore_suffix(tx.backend()));
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// `INSERT [IGNORE] INTO ` for a multi-row insert that skips duplicates.
fn ignore_prefix(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => "INSERT IGNORE INTO ",
        Backend::Sqlite | Backend::Postgres => "INSERT INTO ",
    }
}

fn ignore_suffix(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => "",
        Backend::Sqlite | Backend::Postgres => " ON CONFLICT DO NOTHING",
    }
}

pub async fn classes(db: &Db, tenant_id: i64, teacher: Option<i64>) -> Result<Vec<LessonClass>> {
    let mut sql = Sql::new("SELECT c.id, c.course_id, co.name AS course_name, c.campus_id, c.room_id, c.name, c.capacity FROM lesson_classes c JOIN courses co ON co.id = c.course_id WHERE c.tenant_id = ?").bind(tenant_id);
    if let Some(t) = teacher {
        sql.push_bind(
            " AND c.id IN (SELECT class_id FROM lesson_class_teachers WHERE tenant_id = ?",
            tenant_id,
        )
        .push_bind(" AND teacher_id = ?)", t);
    }
    sql.push(" ORDER BY c.name");
    let rows = db.fetch_all(&sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = r.i64("id")?;
        out.push(LessonClass {
            id,
            course_id: r.i64("course_id")?,
            course_name: r.str("course_name")?,
            campus_id: r.opt_i64("campus_id")?,
            room_id: r.opt_i64("room_id")?,
            name: r.str("name")?,
            capacity: r.i64("capacity")?,
            teacher_ids: vec![],
            student_ids: vec![],
        });
    }
    let t_rows = db
        .fetch_all(&Sql::new("SELECT class_id, teacher_id FROM lesson_class_teachers WHERE tenant_id = ? ORDER BY teacher_id").bind(tenant_id))
        .await?;
    let e_rows = db
        .fetch_all(&Sql::new("SELECT class_id, student_id FROM enrolments WHERE tenant_id = ? ORDER BY student_id").bind(tenant_id))
        .await?;
    let mut idx = std::collections::HashMap::new();
    for (i, c) in out.iter().enumerate() {
        idx.insert(c.id, i);
    }
    for r in t_rows {
        if let Some(i) = idx.get(&r.i64("class_id")?) {
            out[*i].teacher_ids.push(r.i64("teacher_id")?);
        }
    }
    for r in e_rows {
        if let Some(i) = idx.get(&r.i64("class_id")?) {
            out[*i].student_ids.push(r.i64("student_id")?);
        }
    }
    Ok(out)
}

pub async fn class_row(db: &Db, tenant_id: i64, id: i64) -> Result<Option<AnyRow>> {
    db.fetch_optional(&Sql::new("SELECT c.id, c.course_id, c.campus_id, c.room_id, c.name FROM lesson_classes c WHERE c.tenant_id = ? AND c.id = ?").bind(tenant_id).bind(id))
        .await
}

pub async fn class_teachers(db: &Db, tenant_id: i64, class_id: i64) -> Result<Vec<i64>> {
    db.fetch_all(&Sql::new("SELECT teacher_id FROM lesson_class_teachers WHERE tenant_id = ? AND class_id = ? ORDER BY teacher_id").bind(tenant_id).bind(class_id))
        .await?
        .iter()
        .map(|r| r.i64("teacher_id"))
        .collect()
}

pub async fn roster(db: &Db, tenant_id: i64, class_id: i64) -> Result<Vec<(i64, String)>> {
    db.fetch_all(&Sql::new("SELECT p.id, p.name FROM enrolments e JOIN people p ON p.id = e.student_id WHERE e.tenant_id = ? AND e.class_id = ? ORDER BY p.name_pinyin, p.id").bind(tenant_id).bind(class_id))
        .await?
        .iter()
        .map(|r| Ok((r.i64("id")?, r.str("name")?)))
        .collect()
}

// ---- sessions ----

#[allow(clippy::too_many_arguments)]
pub async fn insert_session(
    tx: &mut Tx,
    tenant_id: i64,
    class_id: i64,
    course_id: i64,
    teacher_id: Option<i64>,
    room_id: Option<i64>,
    campus_id: Option<i64>,
    starts_at: i64,
    ends_at: i64,
    day: i64,
    makeup: bool,
    hours: i64,
) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO lesson_sessions (tenant_id, class_id, course_id, teacher_id, room_id, campus_id, starts_at, ends_at, day, makeup, hours, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(class_id)
            .bind(course_id)
            .bind(teacher_id)
            .bind(room_id)
            .bind(campus_id)
            .bind(starts_at)
            .bind(ends_at)
            .bind(day)
            .bind(makeup)
            .bind(hours)
            .bind(now_ms()),
    )
    .await
}

const SESSION_COLS: &str = "s.id, s.class_id, c.name AS class_name, s.course_id, co.name AS course_name, co.subject_id, s.teacher_id, s.room_id, s.campus_id, s.starts_at, s.ends_at, s.day, s.makeup, s.hours";
const SESSION_FROM: &str = " FROM lesson_sessions s JOIN lesson_classes c ON c.id = s.class_id JOIN courses co ON co.id = s.course_id";

/// A session with what check-ins need.
#[derive(Debug, Clone, Default)]
pub struct SessionRow {
    pub api: Session,
    pub subject_id: Option<i64>,
    pub day: i64,
}

fn session_row(r: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        api: Session {
            id: r.i64("id")?,
            class_id: r.i64("class_id")?,
            class_name: r.str("class_name")?,
            course_id: r.i64("course_id")?,
            course_name: r.str("course_name")?,
            teacher_id: r.opt_i64("teacher_id")?,
            room_id: r.opt_i64("room_id")?,
            campus_id: r.opt_i64("campus_id")?,
            starts_at: ms_to_rfc3339(r.i64("starts_at")?),
            ends_at: ms_to_rfc3339(r.i64("ends_at")?),
            makeup: r.bool("makeup")?,
            hours: r.i64("hours")?,
        },
        subject_id: r.opt_i64("subject_id")?,
        day: r.i64("day")?,
    })
}

pub async fn session(db: &Db, tenant_id: i64, id: i64) -> Result<Option<SessionRow>> {
    db.fetch_optional(
        &Sql::new(format!(
            "SELECT {SESSION_COLS}{SESSION_FROM} WHERE s.tenant_id = ? AND s.id = ?"
        ))
        .bind(tenant_id)
        .bind(id),
    )
    .await?
    .map(|r| session_row(&r))
    .transpose()
}

pub async fn sessions(
    db: &Db,
    tenant_id: i64,
    teacher: Option<i64>,
    from_day: i64,
    to_day: i64,
    class_id: Option<i64>,
) -> Result<Vec<Session>> {
    let mut sql = Sql::new(format!(
        "SELECT {SESSION_COLS}{SESSION_FROM} WHERE s.tenant_id = ? AND s.day >= ? AND s.day <= ?"
    ))
    .bind(tenant_id)
    .bind(from_day)
    .bind(to_day);
    if let Some(t) = teacher {
        sql.push_bind(" AND (s.teacher_id = ?", t)
            .push_bind(
                " OR s.class_id IN (SELECT class_id FROM lesson_class_teachers WHERE tenant_id = ?",
                tenant_id,
            )
            .push_bind(" AND teacher_id = ?))", t);
    }
    if let Some(c) = class_id {
        sql.push_bind(" AND s.class_id = ?", c);
    }
    sql.push(" ORDER BY s.starts_at, s.id LIMIT 2000");
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| session_row(r).map(|s| s.api))
        .collect()
}

/// Several sessions of one tenant at once (the check-in writer reads a
/// whole group's sessions with one query).
pub async fn sessions_by_id(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, SessionRow>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut sql = Sql::new(format!(
        "SELECT {SESSION_COLS}{SESSION_FROM} WHERE s.tenant_id = ? AND s.id IN "
    ))
    .bind(tenant_id);
    sql.push_in(ids.iter().copied());
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| session_row(r).map(|s| (s.api.id, s)))
        .collect()
}

/// (class, teacher) pairs of the given classes and teachers.
pub async fn teaching_pairs(
    db: &Db,
    tenant_id: i64,
    class_ids: &[i64],
    teacher_ids: &[i64],
) -> Result<std::collections::HashSet<(i64, i64)>> {
    if class_ids.is_empty() || teacher_ids.is_empty() {
        return Ok(Default::default());
    }
    let mut sql = Sql::new(
        "SELECT class_id, teacher_id FROM lesson_class_teachers WHERE tenant_id = ? AND class_id IN ",
    )
    .bind(tenant_id);
    sql.push_in(class_ids.iter().copied());
    sql.push(" AND teacher_id IN ");
    sql.push_in(teacher_ids.iter().copied());
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.i64("class_id")?, r.i64("teacher_id")?)))
        .collect()
}

pub async fn teaches(db: &Db, tenant_id: i64, class_id: i64, teacher_id: i64) -> Result<bool> {
    Ok(db
        .fetch_optional(&Sql::new("SELECT 1 AS x FROM lesson_class_teachers WHERE tenant_id = ? AND class_id = ? AND teacher_id = ?").bind(tenant_id).bind(class_id).bind(teacher_id))
        .await?
        .is_some())
}

// ---- packages ----

pub async fn insert_package(tx: &mut Tx, tenant_id: i64, p: &Package) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO lesson_packages (tenant_id, name, price_fen, validity_days, pools_json, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(p.name.trim())
            .bind(p.pools.iter().map(|x| x.price_fen).sum::<i64>())
            .bind(p.validity_days)
            .bind(serde_json::to_string(&p.pools).unwrap_or_default())
            .bind(p.active)
            .bind(now_ms()),
    )
    .await
}

fn package_row(r: &AnyRow) -> Result<Package> {
    Ok(Package {
        id: r.i64("id")?,
        name: r.str("name")?,
        validity_days: r.i64("validity_days")?,
        pools: serde_json::from_str(&r.str("pools_json")?).unwrap_or_default(),
        price_fen: r.i64("price_fen")?,
        active: r.bool("active")?,
    })
}

pub async fn packages(db: &Db, tenant_id: i64) -> Result<Vec<Package>> {
    db.fetch_all(&Sql::new("SELECT id, name, price_fen, validity_days, pools_json, active FROM lesson_packages WHERE tenant_id = ? ORDER BY id").bind(tenant_id))
        .await?
        .iter()
        .map(package_row)
        .collect()
}

pub async fn package(db: &Db, tenant_id: i64, id: i64) -> Result<Option<Package>> {
    db.fetch_optional(&Sql::new("SELECT id, name, price_fen, validity_days, pools_json, active FROM lesson_packages WHERE tenant_id = ? AND id = ?").bind(tenant_id).bind(id))
        .await?
        .map(|r| package_row(&r))
        .transpose()
}

// ---- accounts ----

/// An account row with its decrypted balance.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: i64,
    pub student_id: i64,
    pub sale_id: i64,
    pub package_id: Option<i64>,
    pub pool_name: String,
    pub priority: i64,
    pub price_fen: i64,
    pub paid_hours: i64,
    pub bonus_hours: i64,
    pub course_ids: Vec<i64>,
    pub subject_ids: Vec<i64>,
    pub valid_until: i64,
    pub frozen: bool,
    pub state: String,
    pub balance: Balance,
    pub low_alerted: bool,
    pub expiry_reminded: bool,
}

impl AccountRow {
    /// Pays for a lesson of this course: active, not frozen, in date, and
    /// the course or its subject is covered (empty lists cover everything).
    pub fn covers(&self, course_id: i64, subject_id: Option<i64>, now: i64) -> bool {
        self.state == "active"
            && !self.frozen
            && self.valid_until > now
            && (self.course_ids.is_empty() || self.course_ids.contains(&course_id))
            && (self.subject_ids.is_empty()
                || subject_id.is_some_and(|s| self.subject_ids.contains(&s)))
    }

    /// Value in fen of `paid` paid hours taken from this account.
    pub fn value_of(&self, paid: i64) -> i64 {
        if self.paid_hours <= 0 {
            return 0;
        }
        ((paid as i128 * self.price_fen as i128) / self.paid_hours as i128) as i64
    }

    pub fn api(&self) -> Account {
        Account {
            id: self.id,
            student_id: self.student_id,
            sale_id: self.sale_id,
            package_id: self.package_id,
            pool_name: self.pool_name.clone(),
            priority: self.priority,
            price_fen: self.price_fen,
            paid_hours: self.paid_hours,
            bonus_hours: self.bonus_hours,
            course_ids: self.course_ids.clone(),
            subject_ids: self.subject_ids.clone(),
            valid_until: ms_to_rfc3339(self.valid_until),
            frozen: self.frozen,
            state: self.state.clone(),
            paid_remaining: self.balance.paid,
            bonus_remaining: self.balance.bonus,
            balance: self.balance.total(),
        }
    }
}

const ACCOUNT_COLS: &str = "id, student_id, sale_id, package_id, pool_name, priority, price_fen, paid_hours, bonus_hours, course_ids, subject_ids, valid_until, frozen, state, balance_enc, low_alerted, expiry_reminded";

fn account_row(keys: &Keys, r: &AnyRow) -> Result<AccountRow> {
    let id = r.i64("id")?;
    Ok(AccountRow {
        id,
        student_id: r.i64("student_id")?,
        sale_id: r.i64("sale_id")?,
        package_id: r.opt_i64("package_id")?,
        pool_name: r.str("pool_name")?,
        priority: r.i64("priority")?,
        price_fen: r.i64("price_fen")?,
        paid_hours: r.i64("paid_hours")?,
        bonus_hours: r.i64("bonus_hours")?,
        course_ids: parse_ids(&r.str("course_ids")?),
        subject_ids: parse_ids(&r.str("subject_ids")?),
        valid_until: r.i64("valid_until")?,
        frozen: r.bool("frozen")?,
        state: r.str("state")?,
        balance: ledger::decrypt_balance(keys, id, &r.str("balance_enc")?)?,
        low_alerted: r.bool("low_alerted")?,
        expiry_reminded: r.bool("expiry_reminded")?,
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_sale(
    tx: &mut Tx,
    tenant_id: i64,
    student_id: i64,
    package_id: Option<i64>,
    price_fen: i64,
    sold_by: Option<i64>,
    campus_id: Option<i64>,
    day: i64,
) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO lesson_sales (tenant_id, student_id, package_id, price_fen, sold_by, campus_id, day, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(student_id)
            .bind(package_id)
            .bind(price_fen)
            .bind(sold_by)
            .bind(campus_id)
            .bind(day)
            .bind(now_ms()),
    )
    .await
}

/// Open an account with a zero balance (the purchase entry credits it).
#[allow(clippy::too_many_arguments)]
pub async fn insert_account(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    student_id: i64,
    sale_id: i64,
    package_id: Option<i64>,
    priority: i64,
    pool: &Pool,
    valid_until: i64,
) -> Result<i64> {
    let now = now_ms();
    let id = tx
        .insert_id(
            &Sql::new("INSERT INTO lesson_accounts (tenant_id, student_id, sale_id, package_id, pool_name, priority, price_fen, paid_hours, bonus_hours, course_ids, subject_ids, valid_until, frozen, state, balance_enc, low_alerted, expiry_reminded, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'active', '-', 0, 0, ?, ?)")
                .bind(tenant_id)
                .bind(student_id)
                .bind(sale_id)
                .bind(package_id)
                .bind(pool.name.as_str())
                .bind(priority)
                .bind(pool.price_fen)
                .bind(pool.paid_hours)
                .bind(pool.bonus_hours)
                .bind(ids_text(&pool.course_ids))
                .bind(ids_text(&pool.subject_ids))
                .bind(valid_until)
                .bind(now)
                .bind(now),
        )
        .await?;
    set_balance(tx, keys, tenant_id, id, Balance::default()).await?;
    Ok(id)
}

pub async fn set_balance(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    id: i64,
    b: Balance,
) -> Result<()> {
    tx.execute(
        &Sql::new("UPDATE lesson_accounts SET balance_enc = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(ledger::encrypt_balance(keys, id, b))
            .bind(now_ms())
            .bind(tenant_id)
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Lock and read a student's (or several students') accounts in id order.
pub async fn lock_accounts_of(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    students: &[i64],
) -> Result<Vec<AccountRow>> {
    let mut sql = Sql::new(format!(
        "SELECT {ACCOUNT_COLS} FROM lesson_accounts WHERE tenant_id = ? AND state = 'active' AND student_id IN "
    ))
    .bind(tenant_id);
    sql.push_in(students.iter().copied());
    sql.push(" ORDER BY id");
    sql.push(for_update(tx.backend()));
    tx.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| account_row(keys, r))
        .collect()
}

/// Lock and read accounts by id, in id order.
pub async fn lock_accounts(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    ids: &[i64],
) -> Result<Vec<AccountRow>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    let mut sql = Sql::new(format!(
        "SELECT {ACCOUNT_COLS} FROM lesson_accounts WHERE tenant_id = ? AND id IN "
    ))
    .bind(tenant_id);
    sql.push_in(ids);
    sql.push(" ORDER BY id");
    sql.push(for_update(tx.backend()));
    tx.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| account_row(keys, r))
        .collect()
}

pub async fn accounts(
    db: &Db,
    keys: &Keys,
    tenant_id: i64,
    reach: &Reach,
    student_id: Option<i64>,
    account_id: Option<i64>,
) -> Result<Vec<AccountRow>> {
    let mut sql = Sql::new(format!(
        "SELECT {ACCOUNT_COLS} FROM lesson_accounts WHERE tenant_id = ?"
    ))
    .bind(tenant_id);
    reach.push_filter(tenant_id, "student_id", &mut sql);
    if let Some(s) = student_id {
        sql.push_bind(" AND student_id = ?", s);
    }
    if let Some(a) = account_id {
        sql.push_bind(" AND id = ?", a);
    }
    sql.push(" ORDER BY student_id, priority, id LIMIT 5000");
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| account_row(keys, r))
        .collect()
}

pub async fn set_account_state(
    tx: &mut Tx,
    tenant_id: i64,
    id: i64,
    state: &str,
    frozen: bool,
) -> Result<()> {
    tx.execute(
        &Sql::new("UPDATE lesson_accounts SET state = ?, frozen = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(state)
            .bind(frozen)
            .bind(now_ms())
            .bind(tenant_id)
            .bind(id),
    )
    .await?;
    Ok(())
}

// ---- attendance ----

/// A mark to write: which session and student, the status, the hours it
/// deducts and who marked it.
pub struct NewAttendance<'a> {
    pub session_id: i64,
    pub student_id: i64,
    pub status: &'a str,
    pub hours: i64,
    pub actor_id: Option<i64>,
}

/// Writes marks of any sessions that have none yet (a mark that exists is
/// left alone) and returns the `(session, student)` pairs written, sorted.
pub async fn insert_attendance(
    tx: &mut Tx,
    tenant_id: i64,
    rows: &[NewAttendance<'_>],
    op: &str,
    at: i64,
) -> Result<Vec<(i64, i64)>> {
    for chunk in rows.chunks(200) {
        let mut sql = Sql::new(ignore_prefix(tx.backend()));
        sql.push("attendance (tenant_id, session_id, student_id, status, hours, op, actor_id, at) VALUES ");
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", tenant_id)
                .push_bind(", ?", r.session_id)
                .push_bind(", ?", r.student_id)
                .push_bind(", ?", r.status)
                .push_bind(", ?", r.hours)
                .push_bind(", ?", op)
                .push_bind(", ?", r.actor_id)
                .push_bind(", ?)", at);
        }
        sql.push(ignore_suffix(tx.backend()));
        tx.execute(&sql).await?;
    }
    let mut sessions: Vec<i64> = rows.iter().map(|r| r.session_id).collect();
    sessions.sort_unstable();
    sessions.dedup();
    let mut sql = Sql::new(
        "SELECT session_id, student_id FROM attendance WHERE tenant_id = ? AND session_id IN ",
    )
    .bind(tenant_id);
    sql.push_in(sessions.iter().copied());
    sql.push_bind(" AND op = ? ORDER BY session_id, student_id", op);
    tx.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.i64("session_id")?, r.i64("student_id")?)))
        .collect()
}

/// The marks that exist of some `(session, student)` pairs, as
/// `(session, student, status, hours)`.
pub async fn attendance_of(
    tx: &mut Tx,
    tenant_id: i64,
    pairs: &[(i64, i64)],
) -> Result<Vec<(i64, i64, String, i64)>> {
    let mut out = vec![];
    for chunk in pairs.chunks(200) {
        let mut sql = Sql::new("SELECT session_id, student_id, status, hours FROM attendance WHERE tenant_id = ? AND (")
            .bind(tenant_id);
        for (i, (session, student)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push_bind("(session_id = ?", *session)
                .push_bind(" AND student_id = ?)", *student);
        }
        sql.push(")");
        for r in tx.fetch_all(&sql).await? {
            out.push((
                r.i64("session_id")?,
                r.i64("student_id")?,
                r.str("status")?,
                r.i64("hours")?,
            ));
        }
    }
    Ok(out)
}

pub async fn sheet_rows(
    db: &Db,
    tenant_id: i64,
    session_id: i64,
    class_id: i64,
) -> Result<Vec<SheetRow>> {
    // The roster, plus anyone checked in without being enrolled (make-ups).
    let rows = db
        .fetch_all(
            &Sql::new("SELECT p.id, p.name, a.status, a.hours FROM people p LEFT JOIN attendance a ON a.tenant_id = p.tenant_id AND a.session_id = ? AND a.student_id = p.id \
                       WHERE p.tenant_id = ? AND (p.id IN (SELECT student_id FROM enrolments WHERE tenant_id = ? AND class_id = ?) OR p.id IN (SELECT student_id FROM attendance WHERE tenant_id = ? AND session_id = ?)) ORDER BY p.name_pinyin, p.id")
                .bind(session_id)
                .bind(tenant_id)
                .bind(tenant_id)
                .bind(class_id)
                .bind(tenant_id)
                .bind(session_id),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(SheetRow {
                student_id: r.i64("id")?,
                name: r.str("name")?,
                status: r.opt_str("status")?,
                hours: r.opt_i64("hours")?.unwrap_or(0),
                remaining: None,
            })
        })
        .collect()
}

/// The active parents of several active students, with each student's name:
/// (student, student's name, parent), for their notices. The same people
/// the message center's audience "the parents of this student" names.
pub async fn guardians_named(
    tx: &mut Tx,
    tenant_id: i64,
    students: &[i64],
) -> Result<Vec<(i64, String, i64)>> {
    if students.is_empty() {
        return Ok(vec![]);
    }
    let mut sql = Sql::new(
        "SELECT g.student_id, p.name, g.parent_id FROM guardianships g \
         JOIN people p ON p.id = g.student_id AND p.tenant_id = g.tenant_id AND p.active = 1 \
         JOIN people pp ON pp.id = g.parent_id AND pp.active = 1 \
         WHERE g.tenant_id = ? AND g.student_id IN ",
    )
    .bind(tenant_id);
    sql.push_in(students.iter().copied());
    sql.push(" ORDER BY g.student_id, g.parent_id");
    tx.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.i64("student_id")?, r.str("name")?, r.i64("parent_id")?)))
        .collect()
}

pub async fn notices(
    db: &Db,
    tenant_id: i64,
    parent_id: Option<i64>,
    student_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Notice>> {
    let mut sql = Sql::new("SELECT id, parent_id, student_id, kind, body, created_at FROM lesson_notices WHERE tenant_id = ?").bind(tenant_id);
    if let Some(p) = parent_id {
        sql.push_bind(" AND parent_id = ?", p);
    }
    if let Some(s) = student_id {
        sql.push_bind(" AND student_id = ?", s);
    }
    sql.push_bind(" ORDER BY id DESC LIMIT ?", limit);
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(Notice {
                id: r.i64("id")?,
                parent_id: r.i64("parent_id")?,
                student_id: r.i64("student_id")?,
                kind: r.str("kind")?,
                body: r.str("body")?,
                created_at: ms_to_rfc3339(r.i64("created_at")?),
            })
        })
        .collect()
}

/// Transfers of a tenant, newest first, with the people's names joined in.
pub async fn transfers(
    db: &Db,
    tenant_id: i64,
    state: Option<&str>,
    page: i64,
    per_page: i64,
) -> Result<(Vec<TransferItem>, i64)> {
    let mut filter = Sql::new(" WHERE t.tenant_id = ?").bind(tenant_id);
    if let Some(s) = state {
        filter.push_bind(" AND t.state = ?", s.to_string());
    }
    let total = db
        .fetch_one(&Sql::around(
            format!(
                "SELECT COUNT(*) AS n FROM lesson_transfers t{}",
                filter.text()
            ),
            &filter,
        ))
        .await?
        .i64("n")?;
    let mut sql = Sql::around(format!(
        "SELECT t.id, t.from_account_id, a.student_id AS from_student_id, fs.name AS from_student_name, a.pool_name, \
         t.to_student_id, ts.name AS to_student_name, t.hours, t.state, t.to_account_id, \
         t.requested_by, rq.name AS requested_by_name, t.decided_by, dc.name AS decided_by_name, t.created_at, t.decided_at \
         FROM lesson_transfers t \
         JOIN lesson_accounts a ON a.tenant_id = t.tenant_id AND a.id = t.from_account_id \
         JOIN people fs ON fs.id = a.student_id \
         JOIN people ts ON ts.id = t.to_student_id \
         LEFT JOIN people rq ON rq.id = t.requested_by \
         LEFT JOIN people dc ON dc.id = t.decided_by{}",
        filter.text()
    ), &filter);
    sql.push_bind(" ORDER BY t.id DESC LIMIT ?", per_page);
    sql.push_bind(" OFFSET ?", (page - 1).saturating_mul(per_page));
    let items = db
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(TransferItem {
                id: r.i64("id")?,
                from_account_id: r.i64("from_account_id")?,
                from_student_id: r.i64("from_student_id")?,
                from_student_name: r.str("from_student_name")?,
                pool_name: r.str("pool_name")?,
                to_student_id: r.i64("to_student_id")?,
                to_student_name: r.str("to_student_name")?,
                hours: r.i64("hours")?,
                state: r.str("state")?,
                to_account_id: r.opt_i64("to_account_id")?,
                requested_by: r.opt_i64("requested_by")?,
                requested_by_name: r.opt_str("requested_by_name")?,
                decided_by: r.opt_i64("decided_by")?,
                decided_by_name: r.opt_str("decided_by_name")?,
                created_at: ms_to_rfc3339(r.i64("created_at")?),
                decided_at: r.opt_i64("decided_at")?.map(ms_to_rfc3339),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((items, total))
}

/// Every active account of a tenant (for the alert scan).
pub async fn active_accounts(db: &Db, keys: &Keys, tenant_id: i64) -> Result<Vec<AccountRow>> {
    db.fetch_all(
        &Sql::new(format!(
            "SELECT {ACCOUNT_COLS} FROM lesson_accounts WHERE tenant_id = ? AND state = 'active' ORDER BY id"
        ))
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| account_row(keys, r))
    .collect()
}

/// Compare-and-set one of the alert flags; true when this call changed it.
pub async fn set_flag(
    tx: &mut Tx,
    tenant_id: i64,
    id: i64,
    flag: &str,
    from: bool,
    to: bool,
) -> Result<bool> {
    let col = match flag {
        "low_alerted" => "low_alerted",
        _ => "expiry_reminded",
    };
    Ok(tx
        .execute(
            &Sql::new(format!(
                "UPDATE lesson_accounts SET {col} = ? WHERE tenant_id = ? AND id = ? AND {col} = ?"
            ))
            .bind(to)
            .bind(tenant_id)
            .bind(id)
            .bind(from),
        )
        .await?
        == 1)
}

/// `SUM(expr)` as a BIGINT on every backend (PostgreSQL and MySQL widen
/// sums of integers to NUMERIC/DECIMAL, which the Any driver cannot read).
pub fn sum(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::Sqlite => format!("COALESCE(SUM({expr}), 0)"),
        Backend::Postgres => format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)"),
        Backend::MySql => format!("CAST(COALESCE(SUM({expr}), 0) AS SIGNED)"),
    }
}

/// Write many accounts' balances in one statement per 200 accounts.
pub async fn set_balances(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    accounts: &[(i64, Balance)],
) -> Result<()> {
    let now = now_ms();
    for chunk in accounts.chunks(200) {
        let mut sql = Sql::new("UPDATE lesson_accounts SET balance_enc = CASE id");
        for (id, b) in chunk {
            sql.push_bind(" WHEN ? THEN", *id)
                .push_bind(" ?", ledger::encrypt_balance(keys, *id, *b));
        }
        sql.push_bind(" END, updated_at = ?", now)
            .push_bind(" WHERE tenant_id = ? AND id IN ", tenant_id);
        sql.push_in(chunk.iter().map(|(id, _)| *id));
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// The accounts of some students (for the attendance sheet's balances).
pub async fn accounts_of_students(
    db: &Db,
    keys: &Keys,
    tenant_id: i64,
    students: &[i64],
) -> Result<Vec<AccountRow>> {
    let mut out = vec![];
    for chunk in students.chunks(500) {
        let mut sql = Sql::new(format!(
            "SELECT {ACCOUNT_COLS} FROM lesson_accounts WHERE tenant_id = ? AND student_id IN "
        ))
        .bind(tenant_id);
        sql.push_in(chunk.iter().copied());
        sql.push(" ORDER BY student_id, priority, id");
        for r in db.fetch_all(&sql).await? {
            out.push(account_row(keys, &r)?);
        }
    }
    Ok(out)
}

/// The caller themself when a student, and, with `children`, their children.
pub async fn my_students(
    db: &Db,
    tenant_id: i64,
    person_id: i64,
    children: bool,
) -> Result<Vec<MyStudent>> {
    let mut sql = Sql::new(
        "SELECT id, name FROM people WHERE tenant_id = ? AND kind = 'student' AND (id = ?",
    )
    .bind(tenant_id)
    .bind(person_id);
    if children {
        sql.push_bind(
            " OR id IN (SELECT student_id FROM guardianships WHERE tenant_id = ?",
            tenant_id,
        )
        .push_bind(" AND parent_id = ?)", person_id);
    }
    sql.push(") ORDER BY name_pinyin, id");
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            let id = r.i64("id")?;
            Ok(MyStudent {
                id,
                name: r.str("name")?,
                is_self: id == person_id,
            })
        })
        .collect()
}

/// Whether a student exists in the tenant and is within the caller's reach.
pub async fn student_in_reach(
    db: &Db,
    tenant_id: i64,
    reach: &Reach,
    student_id: i64,
) -> Result<bool> {
    let mut sql =
        Sql::new("SELECT id FROM people WHERE tenant_id = ? AND kind = 'student' AND id = ?")
            .bind(tenant_id)
            .bind(student_id);
    reach.push_filter(tenant_id, "id", &mut sql);
    Ok(db.fetch_optional(&sql).await?.is_some())
}

/// Sessions of the classes a student is enrolled in, starting at or after `from_ms`.
pub async fn upcoming_sessions(
    db: &Db,
    tenant_id: i64,
    student_id: i64,
    from_ms: i64,
    limit: i64,
) -> Result<Vec<Session>> {
    let sql = Sql::new(format!(
        "SELECT {SESSION_COLS}{SESSION_FROM} WHERE s.tenant_id = ? AND s.starts_at >= ? AND s.class_id IN (SELECT class_id FROM enrolments WHERE tenant_id = ? AND student_id = ?) ORDER BY s.starts_at, s.id LIMIT ?"
    ))
    .bind(tenant_id)
    .bind(from_ms)
    .bind(tenant_id)
    .bind(student_id)
    .bind(limit);
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| session_row(r).map(|s| s.api))
        .collect()
}

/// A student's attendance marks, newest lesson first.
pub async fn attendance_history(
    db: &Db,
    tenant_id: i64,
    student_id: i64,
    limit: i64,
) -> Result<Vec<AttendanceRecord>> {
    let sql = Sql::new(
        "SELECT a.session_id, s.starts_at, c.name AS class_name, co.name AS course_name, a.status, a.hours \
         FROM attendance a JOIN lesson_sessions s ON s.tenant_id = a.tenant_id AND s.id = a.session_id \
         JOIN lesson_classes c ON c.id = s.class_id JOIN courses co ON co.id = s.course_id \
         WHERE a.tenant_id = ? AND a.student_id = ? ORDER BY s.starts_at DESC, a.session_id DESC LIMIT ?",
    )
    .bind(tenant_id)
    .bind(student_id)
    .bind(limit);
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(AttendanceRecord {
                session_id: r.i64("session_id")?,
                starts_at: ms_to_rfc3339(r.i64("starts_at")?),
                class_name: r.str("class_name")?,
                course_name: r.str("course_name")?,
                status: r.str("status")?,
                hours: r.i64("hours")?,
            })
        })
        .collect()
}
