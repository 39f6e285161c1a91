//! Reports over the ledger: consumption per day by campus, course, teacher
//! or student; a year's heatmap with drill-down to a day's lessons; the
//! monthly teacher payroll (JSON or XLSX); the two KPIs. Consumption is the
//! net of `consume` and `reverse` entries, so corrections count.
//! The reads use the narrow `ledger_entries_day` index.

use super::store::sum;
use crate::app::App;
use crate::auth::{authorize, Principal};
use crate::db::{Db, RowExt, Sql};
use crate::error::{Error, Result};
use crate::http::extract::{Auth, Q};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(consumption_h))
        .routes(routes!(heatmap_h))
        .routes(routes!(day_h))
        .routes(routes!(payroll_h))
        .routes(routes!(kpis_h))
        .routes(routes!(pay_rules_get, pay_rules_put))
}

const CONSUMED: &str = "kind IN ('consume', 'reverse')";

fn date_text(day: i64) -> String {
    format!("{:04}-{:02}-{:02}", day / 10000, day / 100 % 100, day % 100)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsumptionRow {
    pub date: String,
    pub key_id: Option<i64>,
    pub key_name: String,
    /// Hundredths of an hour consumed (net of reversals).
    pub hours: i64,
    /// Value of the hours consumed, in fen.
    pub value_fen: i64,
    /// Entries (student-lessons).
    pub entries: i64,
}

async fn names(db: &Db, tenant_id: i64, table: &str, ids: &[i64]) -> Result<HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(format!(
            "SELECT id, name FROM {table} WHERE tenant_id = ? AND id IN "
        ))
        .bind(tenant_id);
        sql.push_in(chunk.iter().copied());
        for r in db.fetch_all(&sql).await? {
            out.insert(r.i64("id")?, r.str("name")?);
        }
    }
    Ok(out)
}

/// Consumption per day, grouped by `by` (campus, course, teacher or student).
pub async fn consumption(
    db: &Db,
    tenant_id: i64,
    from: i64,
    to: i64,
    by: &str,
) -> Result<Vec<ConsumptionRow>> {
    let (col, table) = match by {
        "campus" => ("campus_id", "campuses"),
        "course" => ("course_id", "courses"),
        "teacher" => ("teacher_id", "people"),
        "student" => ("student_id", "people"),
        _ => {
            return Err(Error::validation(
                "by",
                "must be campus, course, teacher or student",
            ))
        }
    };
    let b = db.backend();
    let rows = db
        .fetch_all(
            &Sql::new(format!(
                "SELECT day, {col} AS k, {} AS hours, {} AS value, COUNT(*) AS n FROM ledger_entries WHERE tenant_id = ? AND day >= ? AND day <= ? AND {CONSUMED} GROUP BY day, {col} ORDER BY day, {col}",
                sum(b, "-amount"),
                sum(b, "value_fen")
            ))
            .bind(tenant_id)
            .bind(from)
            .bind(to),
        )
        .await?;
    let mut ids: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.opt_i64("k").ok().flatten())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let names = names(db, tenant_id, table, &ids).await?;
    rows.iter()
        .map(|r| {
            let k = r.opt_i64("k")?;
            Ok(ConsumptionRow {
                date: date_text(r.i64("day")?),
                key_id: k,
                key_name: k
                    .and_then(|k| names.get(&k).cloned())
                    .unwrap_or_else(|| "—".into()),
                hours: r.i64("hours")?,
                value_fen: r.i64("value")?,
                entries: r.i64("n")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeatmapDay {
    pub date: String,
    pub hours: i64,
}

/// Hours consumed per day of a year (days without lessons are left out),
/// from the daily totals the ledger keeps (`lesson_daily`).
pub async fn heatmap(db: &Db, tenant_id: i64, year: i64) -> Result<Vec<HeatmapDay>> {
    let rows = db
        .fetch_all(
            &Sql::new(format!(
                "SELECT day, {} AS hours FROM lesson_daily WHERE tenant_id = ? AND day >= ? AND day <= ? GROUP BY day ORDER BY day",
                sum(db.backend(), "hours")
            ))
            .bind(tenant_id)
            .bind(year * 10000 + 101)
            .bind(year * 10000 + 1231),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HeatmapDay {
                date: date_text(r.i64("day")?),
                hours: r.i64("hours")?,
            })
        })
        .collect()
}

/// Recompute a tenant's daily totals from the ledger (after a restore, or
/// for entries written outside the ledger's append path, as the benchmark does).
pub async fn rebuild_daily(db: &Db, tenant_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    tx.execute(&Sql::new("DELETE FROM lesson_daily WHERE tenant_id = ?").bind(tenant_id))
        .await?;
    tx.execute(
        &Sql::new(format!(
            "INSERT INTO lesson_daily (tenant_id, day, chain_no, hours, value_fen, entries) \
             SELECT tenant_id, day, chain_no, {}, {}, {} FROM ledger_entries WHERE tenant_id = ? AND {CONSUMED} GROUP BY tenant_id, day, chain_no",
            sum(db.backend(), "-amount"),
            sum(db.backend(), "value_fen"),
            sum(db.backend(), "CASE WHEN kind = 'consume' THEN 1 ELSE -1 END")
        ))
        .bind(tenant_id),
    )
    .await?;
    tx.commit().await
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DayLesson {
    pub session_id: i64,
    pub starts_at: String,
    pub class_name: String,
    pub course_name: String,
    pub teacher_id: Option<i64>,
    pub teacher_name: Option<String>,
    pub makeup: bool,
    pub students: i64,
    pub hours: i64,
}

/// The lessons of one day with their attendance and consumption (heatmap drill-down).
pub async fn day_lessons(db: &Db, tenant_id: i64, day: i64) -> Result<Vec<DayLesson>> {
    let b = db.backend();
    let rows = db
        .fetch_all(
            &Sql::new(format!(
                "SELECT s.id, s.starts_at, s.makeup, s.teacher_id, c.name AS class_name, co.name AS course_name, t.name AS teacher_name, \
                 (SELECT COUNT(*) FROM attendance a WHERE a.tenant_id = s.tenant_id AND a.session_id = s.id AND a.status IN ('present', 'late')) AS students, \
                 (SELECT {} FROM ledger_entries e WHERE e.tenant_id = s.tenant_id AND e.session_id = s.id AND e.{CONSUMED}) AS hours \
                 FROM lesson_sessions s JOIN lesson_classes c ON c.id = s.class_id JOIN courses co ON co.id = s.course_id LEFT JOIN people t ON t.id = s.teacher_id \
                 WHERE s.tenant_id = ? AND s.day = ? ORDER BY s.starts_at, s.id",
                sum(b, "-e.amount")
            ))
            .bind(tenant_id)
            .bind(day),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DayLesson {
                session_id: r.i64("id")?,
                starts_at: crate::db::ms_to_rfc3339(r.i64("starts_at")?),
                class_name: r.str("class_name")?,
                course_name: r.str("course_name")?,
                teacher_id: r.opt_i64("teacher_id")?,
                teacher_name: r.opt_str("teacher_name")?,
                makeup: r.bool("makeup")?,
                students: r.i64("students")?,
                hours: r.i64("hours")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PayrollLine {
    pub course_kind: String,
    pub lessons: i64,
    /// Teaching minutes.
    pub minutes: i64,
    /// Student-hours consumed in these lessons (hundredths).
    pub student_hours: i64,
    pub pay_fen: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PayrollRow {
    pub teacher_id: i64,
    pub teacher_name: String,
    pub lines: Vec<PayrollLine>,
    pub lessons: i64,
    pub minutes: i64,
    pub student_hours: i64,
    pub pay_fen: i64,
}

/// The tenant's pay rules, with defaults for course kinds it has not set.
pub async fn pay_rules(db: &Db, tenant_id: i64) -> Result<Vec<super::model::PayRule>> {
    let mut rules: BTreeMap<String, (i64, i64)> = [
        ("large_class", (8_000, 500)),
        ("one_to_one", (15_000, 0)),
        ("small_group", (10_000, 1_000)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for r in db
        .fetch_all(&Sql::new("SELECT course_kind, fen_per_hour, fen_per_student_hour FROM teacher_pay_rules WHERE tenant_id = ?").bind(tenant_id))
        .await?
    {
        rules.insert(r.str("course_kind")?, (r.i64("fen_per_hour")?, r.i64("fen_per_student_hour")?));
    }
    Ok(rules
        .into_iter()
        .map(|(course_kind, (a, b))| super::model::PayRule {
            course_kind,
            fen_per_hour: a,
            fen_per_student_hour: b,
        })
        .collect())
}

/// A month's payroll: per teacher and course kind, the lessons taught
/// (sessions with consumption), minutes, student-hours and pay by the rules
/// (`fen_per_hour` × hours taught + `fen_per_student_hour` × student-hours).
pub async fn payroll(db: &Db, tenant_id: i64, year: i64, month: i64) -> Result<Vec<PayrollRow>> {
    let from = year * 10000 + month * 100 + 1;
    let to = year * 10000 + month * 100 + 31;
    let rows = db
        .fetch_all(
            &Sql::new(format!(
                "SELECT teacher_id, session_id, course_id, {} AS sh FROM ledger_entries WHERE tenant_id = ? AND day >= ? AND day <= ? AND {CONSUMED} AND teacher_id IS NOT NULL GROUP BY teacher_id, session_id, course_id",
                sum(db.backend(), "-amount")
            ))
            .bind(tenant_id)
            .bind(from)
            .bind(to),
        )
        .await?;
    let courses: HashMap<i64, (String, i64)> = db
        .fetch_all(
            &Sql::new("SELECT id, kind, lesson_minutes FROM courses WHERE tenant_id = ?")
                .bind(tenant_id),
        )
        .await?
        .iter()
        .map(|r| Ok((r.i64("id")?, (r.str("kind")?, r.i64("lesson_minutes")?))))
        .collect::<Result<_>>()?;
    let rules: HashMap<String, (i64, i64)> = pay_rules(db, tenant_id)
        .await?
        .into_iter()
        .map(|r| (r.course_kind, (r.fen_per_hour, r.fen_per_student_hour)))
        .collect();
    // teacher → kind → (lessons, minutes, student hours)
    let mut acc: BTreeMap<i64, BTreeMap<String, (i64, i64, i64)>> = BTreeMap::new();
    for r in &rows {
        let sh = r.i64("sh")?;
        if sh <= 0 {
            continue;
        }
        let (kind, minutes) = courses
            .get(&r.i64("course_id")?)
            .cloned()
            .unwrap_or(("small_group".into(), 0));
        let e = acc
            .entry(r.i64("teacher_id")?)
            .or_default()
            .entry(kind)
            .or_default();
        e.0 += 1;
        e.1 += minutes;
        e.2 += sh;
    }
    let ids: Vec<i64> = acc.keys().copied().collect();
    let names = names(db, tenant_id, "people", &ids).await?;
    Ok(acc
        .into_iter()
        .map(|(t, kinds)| {
            let lines: Vec<PayrollLine> = kinds
                .into_iter()
                .map(|(kind, (lessons, minutes, sh))| {
                    let (ph, psh) = rules.get(&kind).copied().unwrap_or((0, 0));
                    let pay = ((ph as i128 * minutes as i128) / 60
                        + (psh as i128 * sh as i128) / 100) as i64;
                    PayrollLine {
                        course_kind: kind,
                        lessons,
                        minutes,
                        student_hours: sh,
                        pay_fen: pay,
                    }
                })
                .collect();
            PayrollRow {
                teacher_id: t,
                teacher_name: names.get(&t).cloned().unwrap_or_default(),
                lessons: lines.iter().map(|l| l.lessons).sum(),
                minutes: lines.iter().map(|l| l.minutes).sum(),
                student_hours: lines.iter().map(|l| l.student_hours).sum(),
                pay_fen: lines.iter().map(|l| l.pay_fen).sum(),
                lines,
            }
        })
        .collect())
}

/// The payroll as an XLSX workbook.
pub fn payroll_xlsx(rows: &[PayrollRow], month: &str) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| Error::Other(anyhow::anyhow!("xlsx: {e}"));
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(format!("工资 {month}")).map_err(err)?;
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("0.00");
    let heads = [
        "教师 teacher",
        "课程类型 course kind",
        "课次 lessons",
        "课时 hours taught",
        "学员课时 student-hours",
        "工资(元) pay (yuan)",
    ];
    for (c, h) in heads.iter().enumerate() {
        ws.write_with_format(0, c as u16, *h, &bold).map_err(err)?;
    }
    let mut row = 1u32;
    for r in rows {
        for l in &r.lines {
            ws.write(row, 0, r.teacher_name.as_str()).map_err(err)?;
            ws.write(row, 1, l.course_kind.as_str()).map_err(err)?;
            ws.write(row, 2, l.lessons as f64).map_err(err)?;
            ws.write_with_format(row, 3, l.minutes as f64 / 60.0, &money)
                .map_err(err)?;
            ws.write_with_format(row, 4, l.student_hours as f64 / 100.0, &money)
                .map_err(err)?;
            ws.write_with_format(row, 5, l.pay_fen as f64 / 100.0, &money)
                .map_err(err)?;
            row += 1;
        }
        ws.write_with_format(row, 0, format!("{} 合计 total", r.teacher_name), &bold)
            .map_err(err)?;
        ws.write_with_format(row, 5, r.pay_fen as f64 / 100.0, &money)
            .map_err(err)?;
        row += 1;
    }
    ws.set_column_width(0, 18).map_err(err)?;
    ws.set_column_width(1, 14).map_err(err)?;
    wb.save_to_buffer().map_err(err)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Kpis {
    /// Value of the hours consumed in the period (fen).
    pub consumed_value_fen: i64,
    /// Revenue: package sales in the period (fen).
    pub revenue_fen: i64,
    /// consumed value ÷ revenue, in thousandths (None without revenue).
    pub conversion_permille: Option<i64>,
    /// Hours taught by teachers in the period (minutes).
    pub taught_minutes: i64,
    /// Hours available (teacher availability per week × weeks; 40 h/week when unset), minutes.
    pub available_minutes: i64,
    /// taught ÷ available, in thousandths.
    pub saturation_permille: Option<i64>,
}

pub async fn kpis(db: &Db, tenant_id: i64, from: i64, to: i64, days: i64) -> Result<Kpis> {
    let b = db.backend();
    let consumed = db
        .fetch_one(
            &Sql::new(format!("SELECT {} AS v FROM ledger_entries WHERE tenant_id = ? AND day >= ? AND day <= ? AND {CONSUMED}", sum(b, "value_fen")))
                .bind(tenant_id)
                .bind(from)
                .bind(to),
        )
        .await?
        .i64("v")?;
    let revenue = db
        .fetch_one(
            &Sql::new(format!(
                "SELECT {} AS v FROM lesson_sales WHERE tenant_id = ? AND day >= ? AND day <= ?",
                sum(b, "price_fen")
            ))
            .bind(tenant_id)
            .bind(from)
            .bind(to),
        )
        .await?
        .i64("v")?;
    let rows = db
        .fetch_all(
            &Sql::new(format!(
                "SELECT teacher_id, session_id, course_id, {} AS sh FROM ledger_entries WHERE tenant_id = ? AND day >= ? AND day <= ? AND {CONSUMED} AND teacher_id IS NOT NULL GROUP BY teacher_id, session_id, course_id",
                sum(b, "-amount")
            ))
            .bind(tenant_id)
            .bind(from)
            .bind(to),
        )
        .await?;
    let minutes: HashMap<i64, i64> = db
        .fetch_all(
            &Sql::new("SELECT id, lesson_minutes FROM courses WHERE tenant_id = ?").bind(tenant_id),
        )
        .await?
        .iter()
        .map(|r| Ok((r.i64("id")?, r.i64("lesson_minutes")?)))
        .collect::<Result<_>>()?;
    let mut taught = 0;
    let mut teachers = std::collections::HashSet::new();
    for r in &rows {
        if r.i64("sh")? > 0 {
            taught += minutes.get(&r.i64("course_id")?).copied().unwrap_or(0);
            teachers.insert(r.i64("teacher_id")?);
        }
    }
    let avail: HashMap<i64, i64> = db
        .fetch_all(
            &Sql::new(
                "SELECT teacher_id, hours_per_week FROM teacher_availability WHERE tenant_id = ?",
            )
            .bind(tenant_id),
        )
        .await?
        .iter()
        .map(|r| Ok((r.i64("teacher_id")?, r.i64("hours_per_week")?)))
        .collect::<Result<_>>()?;
    let available: i64 = teachers
        .iter()
        .map(|t| avail.get(t).copied().unwrap_or(40) * 60 * days / 7)
        .sum();
    let ratio = |a: i64, b: i64| (b > 0).then(|| ((a as i128 * 1000) / b as i128) as i64);
    Ok(Kpis {
        consumed_value_fen: consumed,
        revenue_fen: revenue,
        conversion_permille: ratio(consumed, revenue),
        taught_minutes: taught,
        available_minutes: available,
        saturation_permille: ratio(taught, available),
    })
}

// ---- handlers ----

fn ymd(field: &str, v: &str) -> Result<(i64, chrono::NaiveDate)> {
    use chrono::Datelike;
    let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| Error::validation(field, "must be a YYYY-MM-DD date"))?;
    Ok((
        d.year() as i64 * 10000 + d.month() as i64 * 100 + d.day() as i64,
        d,
    ))
}

fn reports_auth(p: &Principal) -> Result<()> {
    authorize(p, "lessons.reports").map(|_| ())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    /// YYYY-MM-DD.
    from: String,
    /// YYYY-MM-DD (inclusive).
    to: String,
    /// campus, course, teacher or student (consumption only).
    by: Option<String>,
}

/// Consumption per day by campus, course, teacher or student.
#[utoipa::path(get, path = "/api/v1/lessons/reports/consumption", tag = "lessons", params(RangeQuery),
    responses((status = 200, body = crate::directory::model::Items<ConsumptionRow>), (status = 422, body = crate::error::Problem)))]
async fn consumption_h(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<RangeQuery>,
) -> Result<Json<crate::directory::model::Items<ConsumptionRow>>> {
    reports_auth(&p)?;
    let (from, _) = ymd("from", &q.from)?;
    let (to, _) = ymd("to", &q.to)?;
    let items = consumption(
        &app.db,
        p.tenant_id,
        from,
        to,
        q.by.as_deref().unwrap_or("course"),
    )
    .await?;
    Ok(Json(crate::directory::model::Items { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct YearQuery {
    year: i64,
}

/// Hours consumed per day of a year, for a calendar heatmap.
#[utoipa::path(get, path = "/api/v1/lessons/reports/heatmap", tag = "lessons", params(YearQuery),
    responses((status = 200, body = crate::directory::model::Items<HeatmapDay>)))]
async fn heatmap_h(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<YearQuery>,
) -> Result<Json<crate::directory::model::Items<HeatmapDay>>> {
    reports_auth(&p)?;
    if !(2000..=2100).contains(&q.year) {
        return Err(Error::validation("year", "must be between 2000 and 2100"));
    }
    Ok(Json(crate::directory::model::Items {
        items: heatmap(&app.db, p.tenant_id, q.year).await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    /// YYYY-MM-DD.
    date: String,
}

/// The lessons of one day (heatmap drill-down).
#[utoipa::path(get, path = "/api/v1/lessons/reports/day", tag = "lessons", params(DayQuery),
    responses((status = 200, body = crate::directory::model::Items<DayLesson>)))]
async fn day_h(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<DayQuery>,
) -> Result<Json<crate::directory::model::Items<DayLesson>>> {
    reports_auth(&p)?;
    let (day, _) = ymd("date", &q.date)?;
    Ok(Json(crate::directory::model::Items {
        items: day_lessons(&app.db, p.tenant_id, day).await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct MonthQuery {
    /// YYYY-MM.
    month: String,
    /// `xlsx` for a workbook; JSON otherwise.
    format: Option<String>,
}

/// The monthly teacher payroll, as JSON or (format=xlsx) a workbook.
#[utoipa::path(get, path = "/api/v1/lessons/reports/payroll", tag = "lessons", params(MonthQuery),
    responses((status = 200, body = crate::directory::model::Items<PayrollRow>), (status = 422, body = crate::error::Problem)))]
async fn payroll_h(State(app): State<App>, Auth(p): Auth, Q(q): Q<MonthQuery>) -> Result<Response> {
    reports_auth(&p)?;
    let (y, m) = q
        .month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
        .filter(|(y, m)| (2000..=2100).contains(y) && (1..=12).contains(m))
        .ok_or_else(|| Error::validation("month", "must be YYYY-MM"))?;
    let rows = payroll(&app.db, p.tenant_id, y, m).await?;
    if q.format.as_deref() == Some("xlsx") {
        let bytes = payroll_xlsx(&rows, &q.month)?;
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"payroll-{}.xlsx\"", q.month),
                ),
            ],
            bytes,
        )
            .into_response());
    }
    Ok(Json(crate::directory::model::Items { items: rows }).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct KpiQuery {
    from: String,
    to: String,
}

/// KPIs: consumption conversion rate and teacher saturation.
#[utoipa::path(get, path = "/api/v1/lessons/reports/kpis", tag = "lessons", params(KpiQuery), responses((status = 200, body = Kpis)))]
async fn kpis_h(State(app): State<App>, Auth(p): Auth, Q(q): Q<KpiQuery>) -> Result<Json<Kpis>> {
    reports_auth(&p)?;
    let (from, fd) = ymd("from", &q.from)?;
    let (to, td) = ymd("to", &q.to)?;
    let days = (td - fd).num_days() + 1;
    if days <= 0 {
        return Err(Error::validation("to", "must not be before from"));
    }
    Ok(Json(kpis(&app.db, p.tenant_id, from, to, days).await?))
}

/// Pay rules per course kind.
#[utoipa::path(get, path = "/api/v1/lessons/pay-rules", tag = "lessons", responses((status = 200, body = crate::directory::model::Items<super::model::PayRule>)))]
async fn pay_rules_get(
    State(app): State<App>,
    Auth(p): Auth,
) -> Result<Json<crate::directory::model::Items<super::model::PayRule>>> {
    reports_auth(&p)?;
    Ok(Json(crate::directory::model::Items {
        items: pay_rules(&app.db, p.tenant_id).await?,
    }))
}

/// Set the pay rule of a course kind.
#[utoipa::path(put, path = "/api/v1/lessons/pay-rules", tag = "lessons", request_body = super::model::PayRule,
    responses((status = 200, body = crate::directory::model::Items<super::model::PayRule>), (status = 422, body = crate::error::Problem)))]
async fn pay_rules_put(
    State(app): State<App>,
    Auth(p): Auth,
    crate::http::extract::Body(r): crate::http::extract::Body<super::model::PayRule>,
) -> Result<Json<crate::directory::model::Items<super::model::PayRule>>> {
    authorize(&p, "lessons.manage")?;
    if !super::model::COURSE_KINDS.contains(&r.course_kind.as_str()) {
        return Err(Error::validation(
            "course_kind",
            "must be one_to_one, small_group or large_class",
        ));
    }
    if r.fen_per_hour < 0 || r.fen_per_student_hour < 0 {
        return Err(Error::validation("fen_per_hour", "must not be negative"));
    }
    let mut tx = app.db.begin().await?;
    tx.execute(
        &Sql::new("DELETE FROM teacher_pay_rules WHERE tenant_id = ? AND course_kind = ?")
            .bind(p.tenant_id)
            .bind(r.course_kind.as_str()),
    )
    .await?;
    tx.execute(
        &Sql::new("INSERT INTO teacher_pay_rules (tenant_id, course_kind, fen_per_hour, fen_per_student_hour) VALUES (?, ?, ?, ?)")
            .bind(p.tenant_id)
            .bind(r.course_kind.as_str())
            .bind(r.fen_per_hour)
            .bind(r.fen_per_student_hour),
    )
    .await?;
    crate::audit::append(
        &mut tx,
        &p.actor(),
        &[
            crate::audit::Change::new("lessons.pay_rule", "teacher_pay_rule", &r.course_kind)
                .after(&r),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Json(crate::directory::model::Items {
        items: pay_rules(&app.db, p.tenant_id).await?,
    }))
}
