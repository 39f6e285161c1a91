//! `cargo xtask bench checkin`: lesson check-ins over HTTP.
//!
//! - single check-ins from 64 concurrent clients: on SQLite at a fixed
//!   500/s (open loop; latency from each request's due time), on PostgreSQL
//!   as fast as they go (closed loop; the sustained rate over 36,000
//!   check-ins, or 300 × `XIAOTONG_BENCH_SESSIONS`); every student has a
//!   parent, so each check-in's notice goes through the message center into
//!   an inbox during the run;
//! - a class of 300 checked in with one request;
//! - a month's payroll and a year's heatmap over 1,000,000 ledger entries
//!   (`XIAOTONG_BENCH_ENTRIES` to change).
//!
//! Last line per database:
//! `bench=checkin db=… rate=… p99_ms=… batch300_ms=… payroll_ms=… heatmap_ms=…`

#[path = "common.rs"]
mod common;

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiaotong::app::App;
use xiaotong::auth::Actor;
use xiaotong::db::{RowExt, Sql};
use xiaotong::directory::store::{insert_people, PersonRecord};

const PASSWORD: &str = "Bench@2026";
const STUDENTS: usize = 300;
/// Sessions of single check-ins: SQLite's open loop uses the first 20
/// (6,000 check-ins, 12 s at 500/s), PostgreSQL all of them (36,000 by
/// default; `XIAOTONG_BENCH_SESSIONS` for a longer run, up to 1,000).
/// Read once, so setup, the run and the batches agree.
static SESSIONS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("XIAOTONG_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120usize)
        .clamp(20, 1000)
});

struct Setup {
    base: String,
    client: reqwest::Client,
    csrf: String,
    tenant_id: i64,
    students: Vec<i64>,
    sessions: Vec<i64>,
    class: i64,
    accounts: Vec<i64>,
    running: xiaotong::server::Running,
}

async fn post(s: &Setup, path: &str, body: Value) -> Value {
    let r = s
        .client
        .post(format!("{}{path}", s.base))
        .header("x-csrf-token", &s.csrf)
        .json(&body)
        .send()
        .await
        .expect("post");
    let st = r.status();
    let v: Value = r.json().await.expect("json");
    assert!(st.is_success(), "{path}: {st} {v}");
    v
}

async fn login(base: &str, user: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(128)
        .build()
        .expect("client");
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"tenant": "bench", "login": user, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert!(r.status().is_success());
    let csrf = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("xt_csrf=")
                .map(|r| r.split(';').next().unwrap_or("").to_string())
        })
        .expect("csrf");
    (client, csrf)
}

/// Ids of a tenant's people of one kind, by number.
async fn ids_of_kind(app: &App, tenant_id: i64, kind: &str) -> Vec<i64> {
    app.db
        .fetch_all(
            &Sql::new("SELECT id FROM people WHERE tenant_id = ? AND kind = ? ORDER BY number")
                .bind(tenant_id)
                .bind(kind),
        )
        .await
        .expect("ids")
        .iter()
        .map(|r| r.i64("id").expect("id"))
        .collect()
}

async fn setup(app: &App) -> Setup {
    let t = xiaotong::directory::service::create_tenant(app, "bench", "压测培训中心")
        .await
        .expect("tenant");
    use xiaotong::demo::create_account;
    create_account(
        app,
        t.id,
        "staff",
        "管理员",
        "admin",
        PASSWORD,
        &["institution_admin"],
        false,
    )
    .await
    .expect("admin");
    let teacher = create_account(
        app,
        t.id,
        "teacher",
        "老师",
        "teacher",
        PASSWORD,
        &["teacher"],
        false,
    )
    .await
    .expect("teacher");
    let people = |kind: &str, number: &str, name: &str| -> Vec<PersonRecord> {
        (0..STUDENTS)
            .map(|i| PersonRecord {
                kind: kind.into(),
                number: Some(format!("{number}{i:05}")),
                name: format!("{name}{i}"),
                ..PersonRecord::default()
            })
            .collect()
    };
    let recs = people("student", "B", "学员");
    // Every student has a parent, so each check-in's notice really goes
    // to an inbox through the message center while the check-ins run.
    let parents = people("parent", "P", "家长");
    let mut tx = app.db.begin().await.expect("tx");
    insert_people(&mut tx, t.id, &recs).await.expect("people");
    insert_people(&mut tx, t.id, &parents)
        .await
        .expect("parents");
    tx.commit().await.expect("commit");
    let students = ids_of_kind(app, t.id, "student").await;
    let parent_ids = ids_of_kind(app, t.id, "parent").await;
    let mut tx = app.db.begin().await.expect("tx");
    for (parent, student) in parent_ids.iter().zip(&students) {
        xiaotong::directory::store::link_guardian(&mut tx, t.id, *parent, *student)
            .await
            .expect("guardian");
    }
    tx.commit().await.expect("commit");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Jobs run too: the parent notices are part of the load.
    let running = xiaotong::server::start(app.clone(), listener, true)
        .await
        .expect("serve");
    let base = format!("http://{}", running.addr);
    let (client, csrf) = login(&base, "admin").await;
    let mut s = Setup {
        base,
        client,
        csrf,
        tenant_id: t.id,
        students,
        sessions: vec![],
        class: 0,
        accounts: vec![],
        running,
    };
    let course = post(&s, "/api/v1/lessons/courses", json!({"name": "钢琴大班", "kind": "large_class", "lesson_minutes": 60, "hours_per_lesson": 100})).await;
    let class = post(&s, "/api/v1/lessons/classes", json!({"course_id": course["id"], "name": "大班", "capacity": STUDENTS, "teacher_ids": [teacher], "student_ids": s.students})).await;
    s.class = class["id"].as_i64().expect("class");
    let pk = post(&s, "/api/v1/lessons/packages", json!({"name": "1200课时", "validity_days": 365, "pools": [{"name": "全部", "paid_hours": 120000, "price_fen": 6000000}]})).await;
    let pk = xiaotong::lessons::store::package(&app.db, t.id, pk["id"].as_i64().expect("pk"))
        .await
        .expect("q")
        .expect("package");
    let actor = Actor::system(t.id, "bench");
    for st in &s.students {
        let sale = xiaotong::lessons::service::sell_package(
            app,
            &actor,
            *st,
            &pk,
            None,
            xiaotong::db::now_ms(),
        )
        .await
        .expect("sale");
        s.accounts.push(sale.accounts[0].id);
    }
    for i in 0..*SESSIONS + 5 {
        let starts = chrono::Utc::now() - chrono::Duration::hours(i as i64);
        let v = post(
            &s,
            "/api/v1/lessons/sessions",
            json!({"class_id": s.class, "starts_at": starts.to_rfc3339()}),
        )
        .await;
        s.sessions.push(v["id"].as_i64().expect("session"));
    }
    s
}

/// Single check-ins from 64 clients. `rate`: Some(per second) for an open
/// loop, None for as fast as possible. Returns (achieved rate, p50, p99 ms).
async fn singles(s: &Setup, n: usize, rate: Option<f64>) -> (f64, f64, f64) {
    let (client, csrf) = login(&s.base, "teacher").await;
    let work: Arc<Vec<(i64, i64)>> = Arc::new(
        (0..n)
            .map(|k| (s.sessions[k / STUDENTS], s.students[k % STUDENTS]))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = vec![];
    for _ in 0..64 {
        let (client, csrf, work, next, base) = (
            client.clone(),
            csrf.clone(),
            work.clone(),
            next.clone(),
            s.base.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut lat = vec![];
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= work.len() {
                    break;
                }
                let due = match rate {
                    Some(r) => start + Duration::from_secs_f64(k as f64 / r),
                    None => Instant::now(),
                };
                tokio::time::sleep_until(due.into()).await;
                let (session, student) = work[k];
                let r = client
                    .post(format!("{base}/api/v1/lessons/sessions/{session}/checkin"))
                    .header("x-csrf-token", &csrf)
                    .json(&json!({"marks": [{"student_id": student, "status": "present"}]}))
                    .send()
                    .await
                    .expect("checkin");
                assert!(
                    r.status().is_success(),
                    "{}",
                    r.text().await.unwrap_or_default()
                );
                let _ = r.bytes().await;
                lat.push(due.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = vec![];
    for h in handles {
        lat.extend(h.await.expect("worker"));
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    (
        n as f64 / secs,
        common::percentile(&lat, 0.5),
        common::percentile(&lat, 0.99),
    )
}

fn n_singles(backend: &str) -> usize {
    if backend == "sqlite" {
        6000
    } else {
        *SESSIONS * STUDENTS
    }
}

/// Fill the ledger with synthetic consumption entries over the past year
/// (in a chain number `verify` does not read: only the reports read them).
async fn fill_ledger(app: &App, s: &Setup, total: usize) {
    let max_seq = app
        .db
        .fetch_one(
            &Sql::new("SELECT COALESCE(MAX(seq), 0) AS n FROM ledger_entries WHERE tenant_id = ? AND chain_no = 1000")
                .bind(s.tenant_id),
        )
        .await
        .expect("max")
        .i64("n")
        .expect("n");
    let course: i64 = app
        .db
        .fetch_one(
            &Sql::new("SELECT MIN(id) AS n FROM courses WHERE tenant_id = ?").bind(s.tenant_id),
        )
        .await
        .expect("course")
        .i64("n")
        .expect("n");
    let teachers = 40i64;
    let today = chrono::Utc::now().date_naive();
    let per_row = 16;
    let chunk = 30_000 / per_row;
    let mut k = 0usize;
    while k < total {
        let mut sql = Sql::new("INSERT INTO ledger_entries (tenant_id, chain_no, seq, at, day, account_id, student_id, kind, amount, value_fen, balance_after_enc, session_id, teacher_id, course_id, campus_id, prev_hash, hash) VALUES ");
        let mut tx = app.db.begin().await.expect("tx");
        for i in 0..chunk.min(total - k) {
            let n = k + i;
            let date = today - chrono::Duration::days((n % 365) as i64);
            use chrono::Datelike;
            let day = date.year() as i64 * 10000 + date.month() as i64 * 100 + date.day() as i64;
            let who = n % STUDENTS;
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?, 1000", s.tenant_id)
                .push_bind(", ?", max_seq + 1 + n as i64)
                .push_bind(", ?", 0i64)
                .push_bind(", ?", day)
                .push_bind(", ?", s.accounts[who])
                .push_bind(", ?", s.students[who])
                .push_bind(", 'consume', ?", -100i64)
                .push_bind(", ?, 'x'", 5000i64)
                .push_bind(", ?", 1_000_000 + (n / 20) as i64)
                .push_bind(", ?", 1_000_000 + ((n / 20) as i64 % teachers))
                .push_bind(", ?", course)
                .push_bind(", ?, 'x', 'x')", Option::<i64>::None);
        }
        tx.execute(&sql).await.expect("insert");
        tx.commit().await.expect("commit");
        k += chunk;
    }
}

#[tokio::main]
async fn main() {
    println!("machine: {}", common::machine());
    let entries: usize = std::env::var("XIAOTONG_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut lines = vec![];
    for backend in ["sqlite", "postgres"] {
        let Some(app) = common::fresh(backend).await else {
            continue;
        };
        let t0 = Instant::now();
        let s = setup(&app).await;
        common::analyze(&app).await;
        println!(
            "{backend}: set up {STUDENTS} students with accounts and {} sessions in {:.1} s",
            s.sessions.len(),
            t0.elapsed().as_secs_f64()
        );
        let n = n_singles(backend);
        let rate = (backend == "sqlite").then_some(500.0);
        let cpu = common::busy_cpu_seconds();
        let (rate, p50, p99) = singles(&s, n, rate).await;
        let cpu_us = (common::busy_cpu_seconds() - cpu) * 1e6 / n as f64;
        println!("{backend}: {n} single check-ins, 64 clients: {rate:.0}/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {cpu_us:.0} µs CPU each (machine-wide)");
        // The parents' notices: how far the job runner is behind when the
        // last check-in returns.
        let t = Instant::now();
        let sent = loop {
            let n: i64 = app
                .db
                .fetch_one(
                    &Sql::new("SELECT COUNT(*) AS n FROM lesson_notices WHERE tenant_id = ?")
                        .bind(s.tenant_id),
                )
                .await
                .expect("count")
                .i64("n")
                .expect("n");
            if n as usize >= n_singles(backend) || t.elapsed() > Duration::from_secs(120) {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "{backend}: {sent} parent notices in inboxes {:.2} s after the last check-in",
            t.elapsed().as_secs_f64()
        );
        let (client, csrf) = login(&s.base, "teacher").await;
        let mut batch = vec![];
        for i in 0..3 {
            let session = s.sessions[*SESSIONS + i];
            let marks: Vec<Value> = s
                .students
                .iter()
                .map(|st| json!({"student_id": st, "status": "present"}))
                .collect();
            let t = Instant::now();
            let r = client
                .post(format!(
                    "{}/api/v1/lessons/sessions/{session}/checkin",
                    s.base
                ))
                .header("x-csrf-token", &csrf)
                .json(&json!({ "marks": marks }))
                .send()
                .await
                .expect("batch");
            assert!(r.status().is_success());
            let _ = r.bytes().await;
            batch.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        batch.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let batch300 = batch[1];
        println!(
            "{backend}: batch of {STUDENTS} in one request: {batch:.1?} ms (median {batch300:.1})"
        );
        let r = xiaotong::lessons::verify(&app.db, &app.keys, s.tenant_id)
            .await
            .expect("verify");
        assert!(r.ok, "{r:?}");
        println!("{backend}: ledger verified, {} entries", r.checked);
        let t = Instant::now();
        fill_ledger(&app, &s, entries).await;
        println!(
            "{backend}: wrote {entries} ledger entries in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let tr = Instant::now();
        xiaotong::lessons::reports::rebuild_daily(&app.db, s.tenant_id)
            .await
            .expect("rebuild");
        println!(
            "{backend}: daily totals rebuilt from the ledger in {:.1} s",
            tr.elapsed().as_secs_f64()
        );
        common::analyze(&app).await;
        let today = chrono::Utc::now().date_naive();
        use chrono::Datelike;
        let (y, m) = (today.year() as i64, today.month() as i64);
        let mut payroll = vec![];
        let mut heat = vec![];
        let mut rows = 0;
        let mut days = 0;
        for _ in 0..3 {
            let t = Instant::now();
            rows = xiaotong::lessons::reports::payroll(&app.db, s.tenant_id, y, m)
                .await
                .expect("payroll")
                .len();
            payroll.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            days = xiaotong::lessons::reports::heatmap(&app.db, s.tenant_id, y)
                .await
                .expect("heatmap")
                .len();
            heat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        payroll.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        heat.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        println!("{backend}: payroll {y}-{m:02}: {rows} teachers, {payroll:.1?} ms; heatmap {y}: {days} days, {heat:.1?} ms");
        s.running.stop().await;
        lines.push(format!(
            "bench=checkin db={backend} rate={rate:.0} p99_ms={p99:.1} batch300_ms={batch300:.1} payroll_ms={:.1} heatmap_ms={:.1}",
            payroll[1], heat[1]
        ));
        common::discard(app).await;
    }
    for l in lines {
        println!("{l}");
    }
}
