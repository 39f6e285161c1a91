//! Lesson hours on every backend: check-ins that deduct exactly once under
//! concurrency, balances that always equal the ledger, `ledger verify`
//! catching tampering, the insufficient-hours policy, scopes, refunds,
//! transfers, alerts, and a batch check-in that is all-or-nothing across a
//! kill -9 of the real server process.

mod common;

use common::*;
use proptest::prelude::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use xiaotong::app::App;
use xiaotong::db::{RowExt, Sql};
use xiaotong::directory::store::{insert_people, link_guardian, PersonRecord};

const SECRET_B64: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

async fn count(app: &App, sql: Sql) -> i64 {
    app.db.fetch_one(&sql).await.unwrap().i64("n").unwrap()
}

/// Students T0000.. of a tenant, created without log-ins.
async fn add_students(app: &App, tenant_id: i64, prefix: &str, n: usize) -> Vec<i64> {
    let recs: Vec<PersonRecord> = (0..n)
        .map(|i| PersonRecord {
            kind: "student".into(),
            number: Some(format!("{prefix}{i:05}")),
            name: format!("学生{prefix}{i}"),
            ..PersonRecord::default()
        })
        .collect();
    let mut tx = app.db.begin().await.unwrap();
    insert_people(&mut tx, tenant_id, &recs).await.unwrap();
    tx.commit().await.unwrap();
    let rows = app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT id FROM people WHERE tenant_id = ? AND number LIKE ? ORDER BY number",
            )
            .bind(tenant_id)
            .bind(format!("{prefix}%")),
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.i64("id").unwrap()).collect()
}

struct Fx {
    server: TestServer,
    admin: Session,
    academic: Session,
    teacher: Session,
    parent: Session,
    other_admin: Session,
    students: Vec<i64>,
    /// The parent's child (students[0]).
    child: i64,
    class: i64,
    package: i64,
    tenant_id: i64,
}

async fn json_ok(resp: reqwest::Response, status: u16) -> Value {
    let st = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(st, status, "unexpected status; body {body}");
    body
}

/// A tenant with an admin, academic affairs, a teacher of one class of
/// `n` students, the parent of the first student, a 10-hour package; and a
/// second tenant with its own admin.
async fn fixture(url: &str, n: usize) -> Fx {
    let server = TestServer::start(url, false).await;
    let app = server.app.clone();
    let t = xiaotong::directory::service::create_tenant(&app, "centre", "培训中心")
        .await
        .unwrap();
    let t2 = xiaotong::directory::service::create_tenant(&app, "other", "别家")
        .await
        .unwrap();
    use xiaotong::demo::create_account;
    create_account(
        &app,
        t.id,
        "staff",
        "管理员",
        "admin",
        PASSWORD,
        &["institution_admin"],
        false,
    )
    .await
    .unwrap();
    create_account(
        &app,
        t.id,
        "staff",
        "教务",
        "academic",
        PASSWORD,
        &["academic_affairs"],
        false,
    )
    .await
    .unwrap();
    let teacher = create_account(
        &app,
        t.id,
        "teacher",
        "黄老师",
        "teacher",
        PASSWORD,
        &["teacher"],
        false,
    )
    .await
    .unwrap();
    let parent = create_account(
        &app,
        t.id,
        "parent",
        "家长",
        "parent",
        PASSWORD,
        &["parent"],
        false,
    )
    .await
    .unwrap();
    create_account(
        &app,
        t2.id,
        "staff",
        "别家管理员",
        "admin",
        PASSWORD,
        &["institution_admin"],
        false,
    )
    .await
    .unwrap();
    let students = add_students(&app, t.id, "S", n).await;
    let mut tx = app.db.begin().await.unwrap();
    link_guardian(&mut tx, t.id, parent, students[0])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let admin = server.login("centre", "admin").await;
    let academic = server.login("centre", "academic").await;
    let teacher_s = server.login("centre", "teacher").await;
    let parent_s = server.login("centre", "parent").await;
    let other_admin = server.login("other", "admin").await;
    let subject = json_ok(
        admin
            .post("/api/v1/lessons/subjects", json!({"name": "钢琴"}))
            .await,
        201,
    )
    .await;
    let course = json_ok(
        admin
            .post(
                "/api/v1/lessons/courses",
                json!({"name": "钢琴小组课", "subject_id": subject["id"], "kind": "small_group", "lesson_minutes": 60, "hours_per_lesson": 150}),
            )
            .await,
        201,
    )
    .await;
    let class = json_ok(
        admin
            .post(
                "/api/v1/lessons/classes",
                json!({"course_id": course["id"], "name": "钢琴A班", "capacity": n, "teacher_ids": [teacher], "student_ids": students}),
            )
            .await,
        201,
    )
    .await;
    let package = json_ok(
        admin
            .post(
                "/api/v1/lessons/packages",
                json!({"name": "钢琴10课时", "validity_days": 365, "pools": [{"name": "钢琴", "paid_hours": 1000, "bonus_hours": 0, "price_fen": 200000, "subject_ids": [subject["id"]]}]}),
            )
            .await,
        201,
    )
    .await;
    Fx {
        server,
        admin,
        academic,
        teacher: teacher_s,
        parent: parent_s,
        other_admin,
        students,
        child: 0,
        class: class["id"].as_i64().unwrap(),
        package: package["id"].as_i64().unwrap(),
        tenant_id: t.id,
    }
    .with_child()
}

impl Fx {
    fn with_child(mut self) -> Fx {
        self.child = self.students[0];
        self
    }

    async fn sell(&self, student: i64) -> i64 {
        let sale = json_ok(
            self.admin
                .post(
                    "/api/v1/lessons/sales",
                    json!({"student_id": student, "package_id": self.package}),
                )
                .await,
            201,
        )
        .await;
        sale["accounts"][0]["id"].as_i64().unwrap()
    }

    async fn session(&self, day_offset: i64, makeup: bool) -> i64 {
        let starts = chrono::Utc::now() - chrono::Duration::days(day_offset);
        let s = json_ok(
            self.admin
                .post(
                    "/api/v1/lessons/sessions",
                    json!({"class_id": self.class, "starts_at": starts.to_rfc3339(), "makeup": makeup}),
                )
                .await,
            201,
        )
        .await;
        s["id"].as_i64().unwrap()
    }

    async fn balance(&self, account: i64) -> i64 {
        let a = json_ok(
            self.admin
                .get(&format!("/api/v1/lessons/accounts/{account}"))
                .await,
            200,
        )
        .await;
        a["balance"].as_i64().unwrap()
    }

    async fn ledger_sum(&self, account: i64) -> i64 {
        // Summed here: SUM's result type differs per backend.
        self.server
            .app
            .db
            .fetch_all(
                &Sql::new(
                    "SELECT amount FROM ledger_entries WHERE tenant_id = ? AND account_id = ?",
                )
                .bind(self.tenant_id)
                .bind(account),
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.i64("amount").unwrap())
            .sum()
    }

    async fn verify_ok(&self) {
        let r = json_ok(self.admin.get("/api/v1/lessons/ledger/verify").await, 200).await;
        assert_eq!(r["ok"], json!(true), "ledger verifies: {r}");
    }
}

fn marks(students: &[i64], status: &str) -> Value {
    json!({"marks": students.iter().map(|s| json!({"student_id": s, "status": status})).collect::<Vec<_>>()})
}

async fn checkin_flow(url: String) {
    let fx = fixture(&url, 5).await;
    let acc = fx.sell(fx.child).await;
    assert_eq!(fx.balance(acc).await, 1000);
    let s1 = fx.session(0, false).await;

    // A single check-in by the class's teacher: 1.50 h from the account.
    let r = json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["results"][0]["created"], json!(true));
    assert_eq!(r["results"][0]["hours"], json!(150));
    assert_eq!(r["results"][0]["balance_after"], json!(850));
    // Repeating changes nothing.
    let r = json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["results"][0]["created"], json!(false));
    assert_eq!(fx.balance(acc).await, 850);

    // Not enough hours: refused by default with a 422 naming the student.
    let poor = fx.students[1];
    let p = problem(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[poor], "present"),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], json!("marks[0].student_id"));
    assert!(p["detail"].as_str().unwrap().contains("covers"), "{p}");
    let poor_acc = fx.sell(poor).await;
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/accounts/{poor_acc}/adjust"),
                json!({"hours": -900, "note": "test"}),
            )
            .await,
        200,
    )
    .await;
    let p = problem(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[poor], "present"),
            )
            .await,
        422,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not enough lesson hours"),
        "{p}"
    );
    // The whole batch is refused: the student with hours was not checked in either.
    let rich = fx.sell(fx.students[2]).await;
    let p = problem(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[fx.students[2], poor], "present"),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 1);
    assert_eq!(p["errors"][0]["field"], json!("marks[1].student_id"));
    assert_eq!(fx.balance(rich).await, 1000);
    let sheet = json_ok(
        fx.teacher
            .get(&format!("/api/v1/lessons/sessions/{s1}/attendance"))
            .await,
        200,
    )
    .await;
    let marked = sheet["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["status"].is_null())
        .count();
    assert_eq!(marked, 1, "only the first check-in is on the sheet");

    // Policy: allow credit down to 1.00 h.
    let mut settings = json_ok(fx.admin.get("/api/v1/lessons/settings").await, 200).await;
    settings["allow_credit"] = json!(true);
    settings["credit_limit"] = json!(100);
    json_ok(
        fx.admin
            .send(
                reqwest::Method::PUT,
                "/api/v1/lessons/settings",
                Some(settings.clone()),
            )
            .await,
        200,
    )
    .await;
    let r = json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[poor], "late"),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["results"][0]["balance_after"], json!(-50));
    let s2 = fx.session(0, false).await;
    let p = problem(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s2}/checkin"),
                marks(&[poor], "present"),
            )
            .await,
        422,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("not enough"), "{p}");

    // Correction: present → excused reverses the debit with a new entry.
    let r = json_ok(
        fx.teacher
            .post(
                &format!(
                    "/api/v1/lessons/sessions/{s1}/attendance/{}/correct",
                    fx.child
                ),
                json!({"status": "excused"}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["hours"], json!(0));
    assert_eq!(fx.balance(acc).await, 1000);
    let kinds: Vec<String> = json_ok(
        fx.admin
            .get(&format!("/api/v1/lessons/accounts/{acc}/ledger"))
            .await,
        200,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["purchase", "consume", "reverse"]);

    // Make-up lessons consume by the ratio (200%: 3.00 h).
    let mk = fx.session(0, true).await;
    let r = json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{mk}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["results"][0]["hours"], json!(300));
    assert_eq!(fx.balance(acc).await, 700);

    // Absences deduct only by policy; excused leave never.
    let s3 = fx.session(0, false).await;
    let r = json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s3}/checkin"),
                marks(&[fx.child], "absent"),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["results"][0]["hours"], json!(0));
    settings["absent_deducts"] = json!(true);
    json_ok(
        fx.admin
            .send(
                reqwest::Method::PUT,
                "/api/v1/lessons/settings",
                Some(settings),
            )
            .await,
        200,
    )
    .await;
    let s4 = fx.session(0, false).await;
    let r = json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s4}/checkin"),
                marks(&[fx.child], "absent"),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(r["results"][0]["hours"], json!(150));

    // Scopes: the parent sees their child's accounts only; others are 404.
    let mine = json_ok(fx.parent.get("/api/v1/lessons/accounts").await, 200).await;
    let ids: Vec<i64> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![acc]);
    problem(
        fx.parent
            .get(&format!("/api/v1/lessons/accounts/{poor_acc}"))
            .await,
        404,
    )
    .await;
    problem(
        fx.parent
            .get(&format!("/api/v1/lessons/accounts/{poor_acc}/ledger"))
            .await,
        404,
    )
    .await;
    problem(
        fx.parent
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        403,
    )
    .await;
    problem(
        fx.parent
            .post(&format!("/api/v1/lessons/accounts/{acc}/freeze"), json!({}))
            .await,
        403,
    )
    .await;
    let entries = json_ok(
        fx.parent
            .get(&format!("/api/v1/lessons/accounts/{acc}/ledger"))
            .await,
        200,
    )
    .await;
    assert!(entries["items"][0]["hash"].as_str().unwrap().len() == 64);
    // Another tenant's ids are not found.
    problem(
        fx.other_admin
            .get(&format!("/api/v1/lessons/accounts/{acc}"))
            .await,
        404,
    )
    .await;
    problem(
        fx.other_admin
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        404,
    )
    .await;
    problem(
        fx.other_admin
            .post(
                &format!("/api/v1/lessons/accounts/{acc}/top-up"),
                json!({"paid_hours": 100, "price_fen": 1}),
            )
            .await,
        404,
    )
    .await;

    // The parent was told: at once on SQLite (in the check-in's own
    // transaction), within moments elsewhere (through the outbox).
    let mut n = 0;
    for _ in 0..100 {
        let ns = json_ok(fx.parent.get("/api/v1/lessons/notices").await, 200).await;
        n = ns["items"].as_array().unwrap().len();
        if n >= 5 {
            assert!(ns["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["body"].as_str().unwrap().contains("剩余")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(n >= 5, "notices for each mark of the child: {n}");
    // ... and through the message center: the same notices in the parent's inbox.
    let mut inbox = 0;
    for _ in 0..100 {
        let page = json_ok(fx.parent.get("/api/v1/inbox?kind=system").await, 200).await;
        let items = page["items"].as_array().unwrap().clone();
        inbox = items.len();
        if inbox >= n {
            assert!(
                items
                    .iter()
                    .any(|x| x["body_html"].as_str().unwrap().contains("剩余")),
                "{items:?}"
            );
            assert!(items
                .iter()
                .all(|x| x["title"].as_str().unwrap().contains("课时通知")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        inbox >= n,
        "inbox entries for the lesson notices: {inbox} of {n}"
    );

    // Freeze: a frozen account pays for nothing.
    json_ok(
        fx.admin
            .post(&format!("/api/v1/lessons/accounts/{acc}/freeze"), json!({}))
            .await,
        200,
    )
    .await;
    let s5 = fx.session(0, false).await;
    problem(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s5}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        422,
    )
    .await;
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/accounts/{acc}/unfreeze"),
                json!({}),
            )
            .await,
        200,
    )
    .await;

    // Transfer with approval by someone else.
    let other = fx.students[3];
    let t = json_ok(
        fx.admin
            .post(
                "/api/v1/lessons/transfers",
                json!({"from_account_id": acc, "to_student_id": other, "hours": 200}),
            )
            .await,
        201,
    )
    .await;
    let tid = t["id"].as_i64().unwrap();
    problem(
        fx.admin
            .post(
                &format!("/api/v1/lessons/transfers/{tid}/approve"),
                json!({}),
            )
            .await,
        403,
    )
    .await;
    let t = json_ok(
        fx.academic
            .post(
                &format!("/api/v1/lessons/transfers/{tid}/approve"),
                json!({}),
            )
            .await,
        200,
    )
    .await;
    let to_acc = t["to_account_id"].as_i64().unwrap();
    assert_eq!(fx.balance(to_acc).await, 200);
    assert_eq!(fx.balance(acc).await, 550 - 200);
    problem(
        fx.academic
            .post(
                &format!("/api/v1/lessons/transfers/{tid}/approve"),
                json!({}),
            )
            .await,
        409,
    )
    .await;

    // Refund of the unused paid hours, confirmed by repeating the amount.
    let r = json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/accounts/{acc}/refunds"),
                json!({}),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(r["hours"], json!(350));
    assert_eq!(r["amount_fen"], json!(350 * 200000 / 1000));
    let rid = r["id"].as_i64().unwrap();
    problem(
        fx.admin
            .post(
                &format!("/api/v1/lessons/refunds/{rid}/confirm"),
                json!({"amount_fen": 1}),
            )
            .await,
        422,
    )
    .await;
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/refunds/{rid}/confirm"),
                json!({"amount_fen": 70000}),
            )
            .await,
        200,
    )
    .await;
    let a = json_ok(
        fx.admin
            .get(&format!("/api/v1/lessons/accounts/{acc}"))
            .await,
        200,
    )
    .await;
    assert_eq!(a["state"], json!("refunded"));
    assert_eq!(a["balance"], json!(0));
    for a in [acc, poor_acc, to_acc] {
        assert_eq!(fx.balance(a).await, fx.ledger_sum(a).await);
    }
    daily_totals_match(&fx.server.app, fx.tenant_id).await;
    fx.verify_ok().await;
    fx.server.stop().await;
}
on_all_backends!(flow, checkin_flow);

/// 64 concurrent check-ins of one student for one session: one debit.
async fn concurrent_same_checkin(url: String) {
    let fx = fixture(&url, 2).await;
    let acc = fx.sell(fx.child).await;
    let s = fx.session(0, false).await;
    let mut handles = vec![];
    for _ in 0..64 {
        let client = fx.teacher.client.clone();
        let url = format!("{}/api/v1/lessons/sessions/{s}/checkin", fx.teacher.base);
        let csrf = fx.teacher.csrf.clone();
        let body = marks(&[fx.child], "present");
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-csrf-token", csrf)
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(st, StatusCode::OK, "{v}");
            v["results"][0]["created"].as_bool().unwrap()
        }));
    }
    let mut created = 0;
    for h in handles {
        if h.await.unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one request checked the student in");
    let debits = count(
        &fx.server.app,
        Sql::new("SELECT COUNT(*) AS n FROM ledger_entries WHERE tenant_id = ? AND kind = 'consume' AND session_id = ?").bind(fx.tenant_id).bind(s),
    )
    .await;
    assert_eq!(debits, 1);
    assert_eq!(fx.balance(acc).await, 850);
    fx.verify_ok().await;
    fx.server.stop().await;
}
on_all_backends!(concurrent_same, concurrent_same_checkin);

/// Check-ins of a whole class arriving at once, one request per student,
/// are committed in groups; a student without hours fails alone, and a
/// second round changes nothing.
async fn concurrent_class_singles(url: String) {
    let fx = fixture(&url, 40).await;
    let (broke, paying) = fx.students.split_first().unwrap();
    let mut accounts = vec![];
    for st in paying {
        accounts.push(fx.sell(*st).await);
    }
    let s = fx.session(0, false).await;
    // Yesterday's lesson too, checked in at the same time: a group spans
    // sessions and days, and a student in both is debited twice.
    let s2 = fx.session(1, false).await;
    // The parent also has two paying children in the class: checked in in
    // the same group, each gets a notice.
    let siblings = [fx.students[1], fx.students[2]];
    let parent_id: i64 = fx
        .server
        .app
        .db
        .fetch_one(
            &Sql::new("SELECT parent_id FROM guardianships WHERE tenant_id = ? AND student_id = ?")
                .bind(fx.tenant_id)
                .bind(fx.child),
        )
        .await
        .unwrap()
        .i64("parent_id")
        .unwrap();
    // A second parent of the first sibling, whose account was deactivated:
    // no notice for them.
    let mut tx = fx.server.app.db.begin().await.unwrap();
    insert_people(
        &mut tx,
        fx.tenant_id,
        &[PersonRecord {
            kind: "parent".into(),
            number: Some("GONE00001".into()),
            name: "已停用家长".into(),
            ..PersonRecord::default()
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let gone: i64 = fx
        .server
        .app
        .db
        .fetch_one(
            &Sql::new("SELECT id FROM people WHERE tenant_id = ? AND number = 'GONE00001'")
                .bind(fx.tenant_id),
        )
        .await
        .unwrap()
        .i64("id")
        .unwrap();
    let mut tx = fx.server.app.db.begin().await.unwrap();
    for st in siblings {
        link_guardian(&mut tx, fx.tenant_id, parent_id, st)
            .await
            .unwrap();
    }
    link_guardian(&mut tx, fx.tenant_id, gone, siblings[0])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = fx
        .admin
        .post(&format!("/api/v1/people/{gone}/deactivate"), json!({}))
        .await;
    assert!(r.status().is_success(), "deactivate: {}", r.status());
    for round in 0..2 {
        let mut handles = vec![];
        // Among them, requests the group's writer must refuse one by one:
        // an unknown student and an unknown session.
        let bad = [
            (s, 999_999_999i64, 422u16),
            (999_999_999, fx.students[3], 404),
        ];
        for (session, st, status) in bad {
            let (client, base, csrf) = (
                fx.teacher.client.clone(),
                fx.teacher.base.clone(),
                fx.teacher.csrf.clone(),
            );
            handles.push(tokio::spawn(async move {
                let r = client
                    .post(format!("{base}/api/v1/lessons/sessions/{session}/checkin"))
                    .header("x-csrf-token", csrf)
                    .json(&marks(&[st], "present"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), status);
                let v: Value = r.json().await.unwrap();
                if status == 422 {
                    assert!(v.to_string().contains("no such student"), "{v}");
                }
                (0, 0, Value::Null)
            }));
        }
        for (st, session) in fx.students.iter().flat_map(|st| [(*st, s), (*st, s2)]) {
            let (client, base, csrf) = (
                fx.teacher.client.clone(),
                fx.teacher.base.clone(),
                fx.teacher.csrf.clone(),
            );
            let body = marks(&[st], "present");
            handles.push(tokio::spawn(async move {
                let r = client
                    .post(format!("{base}/api/v1/lessons/sessions/{session}/checkin"))
                    .header("x-csrf-token", csrf)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (st, r.status().as_u16(), r.json::<Value>().await.unwrap())
            }));
        }
        let mut after: HashMap<i64, Vec<i64>> = HashMap::new();
        for h in handles {
            let (st, status, v) = h.await.unwrap();
            if st == 0 {
                continue;
            }
            if st == *broke {
                assert_eq!(status, 422, "{v}");
                assert!(
                    v.to_string().contains("no active lesson-hour account"),
                    "{v}"
                );
            } else {
                assert_eq!(status, 200, "{v}");
                let r = &v["results"][0];
                assert_eq!(r["student_id"], json!(st));
                assert_eq!(r["created"], json!(round == 0), "round {round}: {v}");
                if round == 0 {
                    assert_eq!(r["hours"], json!(150));
                    after
                        .entry(st)
                        .or_default()
                        .push(r["balance_after"].as_i64().unwrap());
                }
            }
        }
        // Two debits of each account, one after the other, whichever
        // group each landed in.
        for (st, mut seen) in after {
            seen.sort_unstable();
            assert_eq!(seen, [700, 850], "student {st}");
        }
    }
    for acc in &accounts {
        assert_eq!(fx.balance(*acc).await, 700);
        assert_eq!(fx.ledger_sum(*acc).await, 700);
    }
    for session in [s, s2] {
        let debits = count(
            &fx.server.app,
            Sql::new("SELECT COUNT(*) AS n FROM ledger_entries WHERE tenant_id = ? AND kind = 'consume' AND session_id = ?").bind(fx.tenant_id).bind(session),
        )
        .await;
        assert_eq!(debits, paying.len() as i64);
    }
    // The day totals behind the reports: each lesson's hours on its own day.
    let daily_hours: i64 = fx
        .server
        .app
        .db
        .fetch_all(
            &Sql::new("SELECT hours FROM lesson_daily WHERE tenant_id = ?").bind(fx.tenant_id),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.i64("hours").unwrap())
        .sum();
    assert_eq!(daily_hours, 2 * 150 * paying.len() as i64);
    let days = count(
        &fx.server.app,
        Sql::new(
            "SELECT COUNT(DISTINCT day) AS n FROM lesson_daily WHERE tenant_id = ? AND hours > 0",
        )
        .bind(fx.tenant_id),
    )
    .await;
    assert_eq!(days, 2);
    if url.starts_with("sqlite") {
        // SQLite writes the notices in the check-ins' own transaction.
        let ns = json_ok(fx.parent.get("/api/v1/lessons/notices").await, 200).await;
        assert_eq!(ns["items"].as_array().unwrap().len(), 4, "{ns}");
    }
    let mut told = vec![];
    for _ in 0..100 {
        let ns = json_ok(fx.parent.get("/api/v1/lessons/notices").await, 200).await;
        told = ns["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["student_id"].as_i64().unwrap())
            .collect();
        if told.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    told.sort_unstable();
    assert_eq!(
        told,
        [siblings[0], siblings[0], siblings[1], siblings[1]],
        "one notice per child and lesson, none for the refused one"
    );
    for table in ["lesson_notices WHERE parent_id", "inbox WHERE person_id"] {
        assert_eq!(
            count(
                &fx.server.app,
                Sql::new(format!("SELECT COUNT(*) AS n FROM {table} = ?")).bind(gone)
            )
            .await,
            0,
            "nothing for a deactivated parent in {table}"
        );
    }
    fx.verify_ok().await;
    fx.server.stop().await;
}
on_all_backends!(class_singles, concurrent_class_singles);

/// Concurrent top-ups and check-ins on one account: the balance equals the ledger sum.
async fn concurrent_sales_checkins(url: String) {
    let fx = fixture(&url, 2).await;
    let acc = fx.sell(fx.child).await;
    let mut sessions = vec![];
    for d in 0..12 {
        sessions.push(fx.session(d, false).await);
    }
    let mut handles = vec![];
    for (i, s) in sessions.iter().enumerate() {
        let (client, base, csrf) = (
            fx.teacher.client.clone(),
            fx.teacher.base.clone(),
            fx.teacher.csrf.clone(),
        );
        let body = marks(&[fx.child], "present");
        let s = *s;
        handles.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/api/v1/lessons/sessions/{s}/checkin"))
                .header("x-csrf-token", csrf)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
        let (client, base, csrf) = (
            fx.admin.client.clone(),
            fx.admin.base.clone(),
            fx.admin.csrf.clone(),
        );
        handles.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/api/v1/lessons/accounts/{acc}/top-up"))
                .header("x-csrf-token", csrf)
                .json(&json!({"paid_hours": 100 + i as i64, "price_fen": 1000}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    let expected = 1000 - 12 * 150 + (0..12).map(|i| 100 + i).sum::<i64>();
    assert_eq!(fx.balance(acc).await, expected);
    assert_eq!(fx.ledger_sum(acc).await, expected);
    fx.verify_ok().await;
    fx.server.stop().await;
}
on_all_backends!(concurrent_mixed, concurrent_sales_checkins);

/// `ledger verify` (API and CLI) names a changed amount, a deleted entry and a swapped pair.
async fn verify_catches_tampering(url: String) {
    let fx = fixture(&url, 4).await;
    let mut accounts = vec![];
    for s in &fx.students {
        accounts.push(fx.sell(*s).await);
    }
    for d in 0..3 {
        let s = fx.session(d, false).await;
        json_ok(
            fx.teacher
                .post(
                    &format!("/api/v1/lessons/sessions/{s}/checkin"),
                    marks(&fx.students, "present"),
                )
                .await,
            200,
        )
        .await;
    }
    fx.verify_ok().await;
    let app = fx.server.app.clone();
    let t = fx.tenant_id;
    // The child's account: its chain holds its purchase and three lessons, seq 1–4.
    let c = accounts[0] % 16;
    let cli = |expect_ok: bool| {
        let url = url.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiaotong"))
                .args([
                    "--database-url",
                    &url,
                    "ledger",
                    "verify",
                    "--tenant",
                    "centre",
                ])
                .env("XIAOTONG_SECRET_KEY", SECRET_B64)
                .env("XIAOTONG_LOG", "warn")
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.success(), expect_ok);
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let out = cli(true).await;
    assert!(out.contains("ok, 16 ledger entries"), "{out}");
    let report = || async {
        xiaotong::lessons::verify(&app.db, &app.keys, t)
            .await
            .unwrap()
    };
    let exec = |sql: Sql| {
        let app = app.clone();
        async move {
            app.db.execute(&sql).await.unwrap();
        }
    };

    // A changed amount.
    exec(Sql::new("UPDATE ledger_entries SET amount = amount - 100 WHERE tenant_id = ? AND chain_no = ? AND seq = 3").bind(t).bind(c)).await;
    let r = report().await;
    assert_eq!(
        (r.first_broken_chain, r.first_broken_seq),
        (Some(c), Some(3)),
        "{r:?}"
    );
    let out = cli(false).await;
    assert!(
        out.contains(&format!("BROKEN at chain {c} entry 3")),
        "{out}"
    );
    exec(Sql::new("UPDATE ledger_entries SET amount = amount + 100 WHERE tenant_id = ? AND chain_no = ? AND seq = 3").bind(t).bind(c)).await;
    assert!(report().await.ok);

    // A deleted entry.
    let row = app
        .db
        .fetch_one(
            &Sql::new(
                "SELECT * FROM ledger_entries WHERE tenant_id = ? AND chain_no = ? AND seq = 2",
            )
            .bind(t)
            .bind(c),
        )
        .await
        .unwrap();
    let cols = "tenant_id, chain_no, seq, at, day, account_id, student_id, kind, amount, value_fen, balance_after_enc, ref, session_id, teacher_id, course_id, campus_id, actor_id, prev_hash, hash";
    exec(
        Sql::new("DELETE FROM ledger_entries WHERE tenant_id = ? AND chain_no = ? AND seq = 2")
            .bind(t)
            .bind(c),
    )
    .await;
    let r = report().await;
    assert_eq!(
        (r.first_broken_chain, r.first_broken_seq),
        (Some(c), Some(2)),
        "{r:?}"
    );
    let mut ins = Sql::new(format!("INSERT INTO ledger_entries ({cols}) VALUES "));
    ins.push_in(cols.split(", ").map(|col| match col {
        "tenant_id" | "chain_no" | "seq" | "at" | "day" | "account_id" | "student_id"
        | "amount" | "value_fen" => xiaotong::db::Val::I64(row.i64(col).unwrap()),
        "session_id" | "teacher_id" | "course_id" | "campus_id" | "actor_id" => {
            xiaotong::db::Val::OptI64(row.opt_i64(col).unwrap())
        }
        "ref" => xiaotong::db::Val::OptStr(row.opt_str(col).unwrap()),
        _ => xiaotong::db::Val::Str(row.str(col).unwrap()),
    }));
    exec(ins).await;
    assert!(report().await.ok);

    // A removed last entry (the head still records it).
    let last = app
        .db
        .fetch_one(
            &Sql::new(
                "SELECT * FROM ledger_entries WHERE tenant_id = ? AND chain_no = ? AND seq = 4",
            )
            .bind(t)
            .bind(c),
        )
        .await
        .unwrap();
    exec(
        Sql::new("DELETE FROM ledger_entries WHERE tenant_id = ? AND chain_no = ? AND seq = 4")
            .bind(t)
            .bind(c),
    )
    .await;
    let r = report().await;
    assert_eq!(
        (r.first_broken_chain, r.first_broken_seq),
        (Some(c), Some(4)),
        "{r:?}"
    );
    let mut ins = Sql::new(format!("INSERT INTO ledger_entries ({cols}) VALUES "));
    ins.push_in(cols.split(", ").map(|col| match col {
        "tenant_id" | "chain_no" | "seq" | "at" | "day" | "account_id" | "student_id"
        | "amount" | "value_fen" => xiaotong::db::Val::I64(last.i64(col).unwrap()),
        "session_id" | "teacher_id" | "course_id" | "campus_id" | "actor_id" => {
            xiaotong::db::Val::OptI64(last.opt_i64(col).unwrap())
        }
        "ref" => xiaotong::db::Val::OptStr(last.opt_str(col).unwrap()),
        _ => xiaotong::db::Val::Str(last.str(col).unwrap()),
    }));
    exec(ins).await;
    assert!(report().await.ok);

    // A swapped pair (entries 2 and 3 trade places).
    let swap = |a: i64, b: i64| async move {
        exec(Sql::new("UPDATE ledger_entries SET seq = -1 WHERE tenant_id = ? AND chain_no = ? AND seq = ?").bind(t).bind(c).bind(a)).await;
        exec(Sql::new("UPDATE ledger_entries SET seq = ? WHERE tenant_id = ? AND chain_no = ? AND seq = ?").bind(a).bind(t).bind(c).bind(b)).await;
        exec(Sql::new("UPDATE ledger_entries SET seq = ? WHERE tenant_id = ? AND chain_no = ? AND seq = -1").bind(b).bind(t).bind(c)).await;
    };
    swap(2, 3).await;
    let r = report().await;
    assert_eq!(
        (r.first_broken_chain, r.first_broken_seq),
        (Some(c), Some(2)),
        "{r:?}"
    );
    let api = json_ok(fx.admin.get("/api/v1/lessons/ledger/verify").await, 200).await;
    assert_eq!(api["first_broken_seq"], json!(2));
    assert_eq!(api["first_broken_chain"], json!(c));
    swap(2, 3).await;
    assert!(report().await.ok);

    // A balance copied from another row does not decrypt for this one.
    let other = app
        .db
        .fetch_one(&Sql::new("SELECT balance_after_enc FROM ledger_entries WHERE tenant_id = ? AND chain_no = ? AND seq = 2").bind(t).bind(c))
        .await
        .unwrap()
        .str("balance_after_enc")
        .unwrap();
    exec(Sql::new("UPDATE ledger_entries SET balance_after_enc = ? WHERE tenant_id = ? AND chain_no = ? AND seq = 3").bind(other).bind(t).bind(c)).await;
    let r = report().await;
    assert_eq!(
        (r.first_broken_chain, r.first_broken_seq),
        (Some(c), Some(3)),
        "{r:?}"
    );
    fx.server.stop().await;
}
on_all_backends!(tampering, verify_catches_tampering);

/// Alerts: one low-balance notice per crossing, expiry reminders, expiry.
async fn alerts(url: String) {
    let fx = fixture(&url, 2).await;
    let app = fx.server.app.clone();
    let acc = fx.sell(fx.child).await;
    let now = xiaotong::db::now_ms();
    let c = xiaotong::lessons::alerts::run_alerts(&app, now)
        .await
        .unwrap();
    assert_eq!(c.low_balance, 0);
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/accounts/{acc}/adjust"),
                json!({"hours": -700, "note": "x"}),
            )
            .await,
        200,
    )
    .await;
    let c = xiaotong::lessons::alerts::run_alerts(&app, now)
        .await
        .unwrap();
    assert_eq!(c.low_balance, 1);
    let c = xiaotong::lessons::alerts::run_alerts(&app, now)
        .await
        .unwrap();
    assert_eq!(c.low_balance, 0, "one notice per crossing");
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/accounts/{acc}/top-up"),
                json!({"paid_hours": 500, "price_fen": 100}),
            )
            .await,
        200,
    )
    .await;
    xiaotong::lessons::alerts::run_alerts(&app, now)
        .await
        .unwrap();
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/accounts/{acc}/adjust"),
                json!({"hours": -500, "note": "x"}),
            )
            .await,
        200,
    )
    .await;
    let c = xiaotong::lessons::alerts::run_alerts(&app, now)
        .await
        .unwrap();
    assert_eq!(c.low_balance, 1, "a new crossing notifies again");
    // Expiry reminder 7 days before, then expiry.
    let day = 86_400_000;
    let c = xiaotong::lessons::alerts::run_alerts(&app, now + 360 * day)
        .await
        .unwrap();
    assert_eq!(c.expiry_reminders, 1);
    let c = xiaotong::lessons::alerts::run_alerts(&app, now + 366 * day)
        .await
        .unwrap();
    assert_eq!(c.expired, 1);
    assert_eq!(fx.balance(acc).await, 0);
    assert_eq!(fx.ledger_sum(acc).await, 0);
    fx.verify_ok().await;
    fx.server.stop().await;
}
on_all_backends!(alert_scan, alerts);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn login_at(base: &str, tenant: &str, login: &str) -> Option<Session> {
    let client = Client::builder().cookie_store(true).build().unwrap();
    let resp = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"tenant": tenant, "login": login, "password": PASSWORD}))
        .send()
        .await
        .ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let csrf = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("xt_csrf=")
                .map(|r| r.split(';').next().unwrap_or("").to_string())
        })?;
    let me: Value = resp.json().await.ok()?;
    Some(Session {
        client,
        base: base.to_string(),
        csrf,
        me,
    })
}

/// kill -9 of the real server during a batch check-in of 300: after a
/// restart, all of the batch or none of it is there.
async fn kill_during_batch(url: String) {
    let fx = fixture(&url, 300).await;
    for s in &fx.students {
        fx.sell(*s).await;
    }
    let mut sessions = vec![];
    for d in 0..4 {
        sessions.push(fx.session(d, false).await);
    }
    let t = fx.tenant_id;
    let students = fx.students.clone();
    fx.server.stop().await;
    let app = open_app(&url).await;
    let mut outcomes = vec![];
    for (round, s) in sessions.iter().enumerate() {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xiaotong"))
            .args([
                "--database-url",
                &url,
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("XIAOTONG_SECRET_KEY", SECRET_B64)
            .env("XIAOTONG_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut teacher = None;
        for _ in 0..200 {
            if let Some(s) = login_at(&base, "centre", "teacher").await {
                teacher = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let teacher = teacher.expect("server came up");
        let body = marks(&students, "present");
        let req = teacher
            .client
            .post(format!("{base}/api/v1/lessons/sessions/{s}/checkin"))
            .header("x-csrf-token", &teacher.csrf)
            .json(&body)
            .send();
        let delay = [3u64, 40, 150, 3000][round % 4];
        tokio::select! {
            _ = req => {},
            _ = tokio::time::sleep(Duration::from_millis(delay)) => {},
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let att = count(
            &app,
            Sql::new("SELECT COUNT(*) AS n FROM attendance WHERE tenant_id = ? AND session_id = ?")
                .bind(t)
                .bind(*s),
        )
        .await;
        let debits = count(
            &app,
            Sql::new(
                "SELECT COUNT(*) AS n FROM ledger_entries WHERE tenant_id = ? AND session_id = ?",
            )
            .bind(t)
            .bind(*s),
        )
        .await;
        assert!(att == 0 || att == 300, "all or none: {att}");
        assert_eq!(att, debits, "every mark has its debit");
        outcomes.push(att);
    }
    let r = xiaotong::lessons::verify(&app.db, &app.keys, t)
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    eprintln!("batch outcomes after kill -9: {outcomes:?}");
}
on_all_backends!(kill9, kill_during_batch);

/// Property: whatever the sequence of operations, every account's balance
/// equals the sum of its ledger entries, and the chain verifies.
#[derive(Debug, Clone)]
enum Op {
    CheckIn {
        student: usize,
        session: usize,
        status: usize,
    },
    Correct {
        student: usize,
        session: usize,
        status: usize,
    },
    TopUp {
        student: usize,
        hours: i64,
    },
    Adjust {
        student: usize,
        hours: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4usize, 0..4usize).prop_map(|(student, session, status)| Op::CheckIn { student, session, status }),
        2 => (0..3usize, 0..4usize, 0..4usize).prop_map(|(student, session, status)| Op::Correct { student, session, status }),
        1 => (0..3usize, 1..500i64).prop_map(|(student, hours)| Op::TopUp { student, hours }),
        1 => (0..3usize, -600..600i64).prop_map(|(student, hours)| Op::Adjust { student, hours }),
    ]
}

async fn run_ops(ops: Vec<Op>, credit: bool) {
    let Some(url) = fresh_database(Backend::Sqlite).await else {
        return;
    };
    let fx = fixture(&url, 3).await;
    let mut accounts = vec![];
    for s in &fx.students {
        accounts.push(fx.sell(*s).await);
    }
    if credit {
        let mut settings = json_ok(fx.admin.get("/api/v1/lessons/settings").await, 200).await;
        settings["allow_credit"] = json!(true);
        settings["credit_limit"] = json!(300);
        settings["absent_deducts"] = json!(true);
        json_ok(
            fx.admin
                .send(
                    reqwest::Method::PUT,
                    "/api/v1/lessons/settings",
                    Some(settings),
                )
                .await,
            200,
        )
        .await;
    }
    let mut sessions = vec![];
    for d in 0..3 {
        sessions.push(fx.session(d, false).await);
    }
    sessions.push(fx.session(0, true).await);
    let st = ["present", "late", "absent", "excused"];
    for o in ops {
        let resp = match o {
            Op::CheckIn {
                student,
                session,
                status,
            } => {
                fx.teacher
                    .post(
                        &format!("/api/v1/lessons/sessions/{}/checkin", sessions[session]),
                        marks(&[fx.students[student]], st[status]),
                    )
                    .await
            }
            Op::Correct {
                student,
                session,
                status,
            } => {
                fx.teacher
                    .post(
                        &format!(
                            "/api/v1/lessons/sessions/{}/attendance/{}/correct",
                            sessions[session], fx.students[student]
                        ),
                        json!({"status": st[status]}),
                    )
                    .await
            }
            Op::TopUp { student, hours } => {
                fx.admin
                    .post(
                        &format!("/api/v1/lessons/accounts/{}/top-up", accounts[student]),
                        json!({"paid_hours": hours, "price_fen": hours * 10}),
                    )
                    .await
            }
            Op::Adjust { student, hours } => {
                fx.admin
                    .post(
                        &format!("/api/v1/lessons/accounts/{}/adjust", accounts[student]),
                        json!({"hours": if hours == 0 { 1 } else { hours }, "note": "p"}),
                    )
                    .await
            }
        };
        let code = resp.status().as_u16();
        assert!(matches!(code, 200 | 404 | 422), "unexpected {code}");
    }
    for a in &accounts {
        let b = fx.balance(*a).await;
        assert_eq!(b, fx.ledger_sum(*a).await, "balance equals the ledger sum");
    }
    daily_totals_match(&fx.server.app, fx.tenant_id).await;
    fx.verify_ok().await;
    fx.server.stop().await;
}

/// The daily totals the heatmap reads equal the ledger's consumption per day.
async fn daily_totals_match(app: &App, tenant_id: i64) {
    use std::collections::BTreeMap;
    let mut raw: BTreeMap<i64, i64> = BTreeMap::new();
    for r in app
        .db
        .fetch_all(&Sql::new("SELECT day, amount FROM ledger_entries WHERE tenant_id = ? AND kind IN ('consume', 'reverse')").bind(tenant_id))
        .await
        .unwrap()
    {
        *raw.entry(r.i64("day").unwrap()).or_default() -= r.i64("amount").unwrap();
    }
    let mut daily: BTreeMap<i64, i64> = BTreeMap::new();
    for r in app
        .db
        .fetch_all(
            &Sql::new("SELECT day, hours FROM lesson_daily WHERE tenant_id = ?").bind(tenant_id),
        )
        .await
        .unwrap()
    {
        *daily.entry(r.i64("day").unwrap()).or_default() += r.i64("hours").unwrap();
    }
    daily.retain(|_, v| *v != 0);
    raw.retain(|_, v| *v != 0);
    assert_eq!(daily, raw, "daily totals equal the ledger");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn balances_equal_ledger_sums(ops in proptest::collection::vec(op(), 1..30), credit in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_ops(ops, credit));
    }
}

/// Reports: consumption by course and teacher, heatmap with drill-down,
/// payroll (JSON and XLSX) and the KPIs, from real check-ins.
async fn reports(url: String) {
    let fx = fixture(&url, 3).await;
    for s in &fx.students {
        fx.sell(*s).await;
    }
    let s1 = fx.session(0, false).await;
    json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s1}/checkin"),
                marks(&fx.students, "present"),
            )
            .await,
        200,
    )
    .await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let date = today.format("%Y-%m-%d").to_string();
    let month = today.format("%Y-%m").to_string();
    let year = today.format("%Y").to_string();
    // Teachers and parents have no reports.
    problem(
        fx.teacher
            .get(&format!("/api/v1/lessons/reports/heatmap?year={year}"))
            .await,
        403,
    )
    .await;
    let c = json_ok(
        fx.admin
            .get(&format!(
                "/api/v1/lessons/reports/consumption?from={date}&to={date}&by=teacher"
            ))
            .await,
        200,
    )
    .await;
    assert_eq!(c["items"][0]["hours"], json!(450));
    assert_eq!(c["items"][0]["key_name"], json!("黄老师"));
    assert_eq!(c["items"][0]["value_fen"], json!(3 * 150 * 200000 / 1000));
    let h = json_ok(
        fx.admin
            .get(&format!("/api/v1/lessons/reports/heatmap?year={year}"))
            .await,
        200,
    )
    .await;
    assert_eq!(h["items"], json!([{"date": date, "hours": 450}]));
    let d = json_ok(
        fx.admin
            .get(&format!("/api/v1/lessons/reports/day?date={date}"))
            .await,
        200,
    )
    .await;
    assert_eq!(d["items"][0]["session_id"], json!(s1));
    assert_eq!(d["items"][0]["students"], json!(3));
    let p = json_ok(
        fx.admin
            .get(&format!("/api/v1/lessons/reports/payroll?month={month}"))
            .await,
        200,
    )
    .await;
    // small group: 100.00 yuan/h × 1 h + 10.00 yuan per student-hour × 4.5
    assert_eq!(p["items"][0]["pay_fen"], json!(10_000 + 4_500));
    let x = fx
        .admin
        .get(&format!(
            "/api/v1/lessons/reports/payroll?month={month}&format=xlsx"
        ))
        .await;
    assert_eq!(x.status(), 200);
    let bytes = x.bytes().await.unwrap();
    assert_eq!(&bytes[..2], b"PK");
    daily_totals_match(&fx.server.app, fx.tenant_id).await;
    xiaotong::lessons::reports::rebuild_daily(&fx.server.app.db, fx.tenant_id)
        .await
        .unwrap();
    daily_totals_match(&fx.server.app, fx.tenant_id).await;
    let k = json_ok(
        fx.admin
            .get(&format!(
                "/api/v1/lessons/reports/kpis?from={date}&to={date}"
            ))
            .await,
        200,
    )
    .await;
    assert_eq!(k["revenue_fen"], json!(3 * 200000));
    assert_eq!(k["conversion_permille"], json!(150));
    assert!(k["saturation_permille"].as_i64().unwrap() > 0);
    fx.server.stop().await;
}
on_all_backends!(report_api, reports);

/// The demo's year of lesson history goes through the real check-in path and
/// leaves a ledger that verifies and balances that equal it.
async fn demo_history(url: String) {
    let app = open_app(&url).await;
    xiaotong::demo::seed(&app).await.unwrap();
    let out = xiaotong::lessons::demo::seed_training(&app).await.unwrap();
    assert!(out.contains("750 lessons"), "{out}");
    let t = xiaotong::auth::store::tenant_by_code(&app.db, "training")
        .await
        .unwrap()
        .unwrap();
    let r = xiaotong::lessons::verify(&app.db, &app.keys, t.id)
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert!(r.checked > 10_000);
    let heat = xiaotong::lessons::reports::heatmap(&app.db, t.id, 2026)
        .await
        .unwrap();
    assert!(!heat.is_empty());
}
on_all_backends!(demo, demo_history);

/// Key rotation re-encrypts every balance under the new key id; the ledger
/// then verifies with the new key only, and balances read the same.
async fn key_rotation(url: String) {
    let fx = fixture(&url, 2).await;
    let acc = fx.sell(fx.child).await;
    let s = fx.session(0, false).await;
    json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{s}/checkin"),
                marks(&[fx.child], "present"),
            )
            .await,
        200,
    )
    .await;
    let t = fx.tenant_id;
    let before = fx.balance(acc).await;
    fx.server.stop().await;
    let app2 = open_app(&url).await;
    let new = xiaotong::crypto::Keys::from_bytes(&[7u8; 32]);
    let n = xiaotong::lessons::rotate_keys(&app2.db, &app2.keys, &new)
        .await
        .unwrap();
    // One account and its two entries (purchase, consume).
    assert_eq!(n, 3);
    assert_eq!(
        xiaotong::lessons::rotate_keys(&app2.db, &app2.keys, &new)
            .await
            .unwrap(),
        0,
        "nothing left under the old key"
    );
    assert!(
        xiaotong::lessons::verify(&app2.db, &new, t)
            .await
            .unwrap()
            .ok
    );
    assert!(
        !xiaotong::lessons::verify(&app2.db, &app2.keys, t)
            .await
            .unwrap()
            .ok
    );
    let reach = xiaotong::lessons::store::Reach {
        tenant_wide: true,
        ..Default::default()
    };
    let a = xiaotong::lessons::store::accounts(&app2.db, &new, t, &reach, None, Some(acc))
        .await
        .unwrap();
    assert_eq!(a[0].balance.total(), before);
}
on_all_backends!(rotation, key_rotation);

/// What a parent's "my lesson hours" page reads: their children, each
/// child's upcoming lessons and attendance history, and the attendance
/// sheet's remaining hours; nobody reaches another family's child.
async fn student_pages(url: String) {
    let fx = fixture(&url, 3).await;
    let acc = fx.sell(fx.child).await;
    let past = fx.session(0, false).await;
    let next = fx.session(-2, false).await;
    json_ok(
        fx.teacher
            .post(
                &format!("/api/v1/lessons/sessions/{past}/checkin"),
                json!({"marks": [{"student_id": fx.child, "status": "present"}]}),
            )
            .await,
        200,
    )
    .await;

    // The sheet shows each student's hours left for this course.
    let sheet = json_ok(
        fx.teacher
            .get(&format!("/api/v1/lessons/sessions/{next}/attendance"))
            .await,
        200,
    )
    .await;
    for row in sheet["rows"].as_array().unwrap() {
        if row["student_id"] == json!(fx.child) {
            assert_eq!(row["remaining"], json!(850));
        } else {
            assert_eq!(row["remaining"], Value::Null, "no account: {row}");
        }
    }

    // The parent's children.
    let mine = json_ok(fx.parent.get("/api/v1/lessons/my-students").await, 200).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["items"][0]["id"], json!(fx.child));
    assert_eq!(mine["items"][0]["is_self"], json!(false));
    // Staff follow no students of their own.
    let none = json_ok(fx.admin.get("/api/v1/lessons/my-students").await, 200).await;
    assert_eq!(none["items"], json!([]));

    let l = json_ok(
        fx.parent
            .get(&format!("/api/v1/lessons/students/{}/lessons", fx.child))
            .await,
        200,
    )
    .await;
    assert_eq!(l["student_id"], json!(fx.child));
    let upcoming: Vec<i64> = l["upcoming"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(upcoming, vec![next]);
    assert_eq!(l["history"].as_array().unwrap().len(), 1);
    assert_eq!(l["history"][0]["session_id"], json!(past));
    assert_eq!(l["history"][0]["status"], json!("present"));
    assert_eq!(l["history"][0]["hours"], json!(150));
    assert_eq!(l["history"][0]["course_name"], json!("钢琴小组课"));
    // The ledger the page shows as receipts matches.
    let ledger = json_ok(
        fx.parent
            .get(&format!("/api/v1/lessons/accounts/{acc}/ledger"))
            .await,
        200,
    )
    .await;
    assert!(ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == json!("consume") && e["amount"] == json!(-150)));

    // Another family's child, and another tenant: not found.
    problem(
        fx.parent
            .get(&format!(
                "/api/v1/lessons/students/{}/lessons",
                fx.students[1]
            ))
            .await,
        404,
    )
    .await;
    problem(
        fx.other_admin
            .get(&format!("/api/v1/lessons/students/{}/lessons", fx.child))
            .await,
        404,
    )
    .await;
    // The teacher reaches the students of their class; staff reach all.
    json_ok(
        fx.teacher
            .get(&format!(
                "/api/v1/lessons/students/{}/lessons",
                fx.students[2]
            ))
            .await,
        200,
    )
    .await;
    json_ok(
        fx.academic
            .get(&format!(
                "/api/v1/lessons/students/{}/lessons",
                fx.students[2]
            ))
            .await,
        200,
    )
    .await;
    fx.server.stop().await;
}
on_all_backends!(student_pages_api, student_pages);

/// The staff list of transfers: pending after the request, approved after
/// the decision, with names; teachers and other tenants see none of it.
async fn transfer_list(url: String) {
    let fx = fixture(&url, 3).await;
    let acc = fx.sell(fx.child).await;
    let to = fx.students[2];
    let t = json_ok(
        fx.admin
            .post(
                "/api/v1/lessons/transfers",
                json!({"from_account_id": acc, "to_student_id": to, "hours": 300}),
            )
            .await,
        201,
    )
    .await;
    let tid = t["id"].as_i64().unwrap();
    let pending = json_ok(
        fx.academic
            .get("/api/v1/lessons/transfers?state=pending")
            .await,
        200,
    )
    .await;
    let items = pending["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending}");
    assert_eq!(items[0]["id"], json!(tid));
    assert_eq!(items[0]["state"], json!("pending"));
    assert_eq!(items[0]["hours"], json!(300));
    assert_eq!(items[0]["from_student_id"], json!(fx.child));
    assert_eq!(items[0]["from_student_name"], json!("学生S0"));
    assert_eq!(items[0]["to_student_name"], json!("学生S2"));
    assert_eq!(items[0]["pool_name"], json!("钢琴"));
    assert_eq!(items[0]["requested_by_name"], json!("管理员"));
    let approved = json_ok(
        fx.academic
            .get("/api/v1/lessons/transfers?state=approved")
            .await,
        200,
    )
    .await;
    assert!(approved["items"].as_array().unwrap().is_empty());

    let t = json_ok(
        fx.academic
            .post(
                &format!("/api/v1/lessons/transfers/{tid}/approve"),
                json!({}),
            )
            .await,
        200,
    )
    .await;
    let to_acc = t["to_account_id"].as_i64().unwrap();
    let approved = json_ok(
        fx.admin
            .get("/api/v1/lessons/transfers?state=approved")
            .await,
        200,
    )
    .await;
    let items = approved["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{approved}");
    assert_eq!(items[0]["id"], json!(tid));
    assert_eq!(items[0]["to_account_id"], json!(to_acc));
    assert_eq!(items[0]["decided_by_name"], json!("教务"));
    assert!(items[0]["decided_at"].is_string());
    let pending = json_ok(
        fx.admin
            .get("/api/v1/lessons/transfers?state=pending")
            .await,
        200,
    )
    .await;
    assert!(pending["items"].as_array().unwrap().is_empty());
    assert_eq!(fx.balance(acc).await, 1000 - 300);
    assert_eq!(fx.balance(to_acc).await, 300);

    // A second, rejected one comes first in the unfiltered list.
    let t2 = json_ok(
        fx.admin
            .post(
                "/api/v1/lessons/transfers",
                json!({"from_account_id": acc, "to_student_id": fx.students[1], "hours": 100}),
            )
            .await,
        201,
    )
    .await;
    json_ok(
        fx.admin
            .post(
                &format!("/api/v1/lessons/transfers/{}/reject", t2["id"]),
                json!({}),
            )
            .await,
        200,
    )
    .await;
    let all = json_ok(fx.admin.get("/api/v1/lessons/transfers").await, 200).await;
    let states: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["rejected", "approved"]);
    assert_eq!(all["total"], 2);
    // A page at a time, newest first.
    let second = json_ok(
        fx.admin
            .get("/api/v1/lessons/transfers?per_page=1&page=2")
            .await,
        200,
    )
    .await;
    assert_eq!(second["total"], 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["state"], "approved");
    let beyond = json_ok(
        fx.admin
            .get("/api/v1/lessons/transfers?per_page=1&page=3")
            .await,
        200,
    )
    .await;
    assert!(beyond["items"].as_array().unwrap().is_empty());
    problem(
        fx.admin.get("/api/v1/lessons/transfers?per_page=0").await,
        422,
    )
    .await;

    problem(
        fx.admin.get("/api/v1/lessons/transfers?state=done").await,
        422,
    )
    .await;
    problem(fx.teacher.get("/api/v1/lessons/transfers").await, 403).await;
    problem(fx.parent.get("/api/v1/lessons/transfers").await, 403).await;
    let other = json_ok(fx.other_admin.get("/api/v1/lessons/transfers").await, 200).await;
    assert!(other["items"].as_array().unwrap().is_empty());
    fx.server.stop().await;
}
on_all_backends!(transfer_list_api, transfer_list);

/// Upgrading a database whose parents' notices were recorded by jobs: the
/// notices keep their ids and jobs, and notices written by check-ins (no
/// job) can follow, two for the same parent and child.
async fn notices_upgrade(url: String) {
    let db = xiaotong::db::Db::connect(&url).await.unwrap();
    xiaotong::db::migrate_to(&db, 4).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.execute(&Sql::new(
        "INSERT INTO tenants (code, name, created_at) VALUES ('up', '升级', 0)",
    ))
    .await
    .unwrap();
    let tenant = tx
        .fetch_one(&Sql::new("SELECT id AS n FROM tenants WHERE code = 'up'"))
        .await
        .unwrap()
        .i64("n")
        .unwrap();
    for (kind, name) in [("student", "学生"), ("parent", "家长")] {
        tx.execute(
            &Sql::new(
                "INSERT INTO people (tenant_id, kind, name, name_pinyin, name_initials, search_key, \
                 must_change_password, platform_admin, active, created_at, updated_at) \
                 VALUES (?, ?, ?, '', '', '', 0, 0, 1, 0, 0)",
            )
            .bind(tenant)
            .bind(kind)
            .bind(name),
        )
        .await
        .unwrap();
    }
    let person = |kind: &'static str| {
        Sql::new("SELECT id AS n FROM people WHERE tenant_id = ? AND kind = ?")
            .bind(tenant)
            .bind(kind)
    };
    let student = tx
        .fetch_one(&person("student"))
        .await
        .unwrap()
        .i64("n")
        .unwrap();
    let parent = tx
        .fetch_one(&person("parent"))
        .await
        .unwrap()
        .i64("n")
        .unwrap();
    let insert = |job: Option<i64>, body: &str| {
        Sql::new(
            "INSERT INTO lesson_notices (tenant_id, parent_id, student_id, kind, job_id, body, payload, created_at) \
             VALUES (?, ?, ?, 'attendance', ?, ?, '{}', 0)",
        )
        .bind(tenant)
        .bind(parent)
        .bind(student)
        .bind(job)
        .bind(body.to_string())
    };
    tx.execute(&insert(Some(7), "旧通知")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        db.execute(&insert(None, "无任务")).await.is_err(),
        "before the upgrade a notice needs its job"
    );

    assert_eq!(xiaotong::db::migrate(&db).await.unwrap(), vec![5]);
    db.execute(&insert(None, "第一节")).await.unwrap();
    db.execute(&insert(None, "第二节")).await.unwrap();
    // A job's retry still records its notice once.
    let again = db.execute(&insert(Some(7), "旧通知")).await;
    assert!(again.is_err(), "the same job's notice twice");
    let rows = db
        .fetch_all(&Sql::new(
            "SELECT id, job_id, body FROM lesson_notices ORDER BY id",
        ))
        .await
        .unwrap();
    let got: Vec<(Option<i64>, String)> = rows
        .iter()
        .map(|r| (r.opt_i64("job_id").unwrap(), r.str("body").unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(7), "旧通知".to_string()),
            (None, "第一节".to_string()),
            (None, "第二节".to_string())
        ]
    );
    let ids: Vec<i64> = rows.iter().map(|r| r.i64("id").unwrap()).collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
}
on_all_backends!(notices_after_upgrade, notices_upgrade);
