//! The HTTP API end to end: log-in, sessions, CSRF, throttling, roles and
//! scopes, cross-tenant isolation, bad input, audit trail — on every backend.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn auth_flow(url: String) {
    let s = TestServer::start(&url, true).await;

    // Wrong password: 401 problem, no cookie.
    let err = s
        .login_with("school", "admin", "nope")
        .await
        .err()
        .expect("must fail");
    let p = problem(err, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("password"));

    // Log-in by username, phone and student number all work.
    let admin = s.login("school", "admin").await;
    assert_eq!(admin.me["tenant"]["code"], "school");
    assert!(admin.me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "audit.read"));
    let by_phone = s.login("school", "13800138000").await;
    assert_eq!(by_phone.me["name"], "张三");
    let by_number = s.login("school", "2024010001").await;
    assert_eq!(by_number.me["name"], "张三");

    // State-changing request without the CSRF header is refused.
    let r = admin
        .client
        .post(s.url("/api/v1/roles"))
        .json(&json!({"key": "librarian", "name": "图书管理员", "permissions": ["people.read"], "scope": "tenant"}))
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    let r = admin
        .post("/api/v1/roles", json!({"key": "librarian", "name": "图书管理员", "permissions": ["people.read"], "scope": "tenant"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Log out: the cookie no longer works.
    let r = admin.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(admin.get("/api/v1/auth/me").await, 401).await;

    // Log out everywhere ends the other sessions too.
    let a1 = s.login("school", "academic").await;
    let a2 = s.login("school", "academic").await;
    assert_eq!(
        a1.post("/api/v1/auth/logout-all", json!({})).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(a2.get("/api/v1/auth/me").await, 401).await;

    // Throttling: five failures lock the account for a while, with Retry-After.
    for _ in 0..5 {
        let e = s
            .login_with("school", "vendor", "wrong-password")
            .await
            .err()
            .unwrap();
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    }
    let e = s
        .login_with("school", "vendor", PASSWORD)
        .await
        .err()
        .expect("throttled");
    assert!(e.headers().get("retry-after").is_some());
    problem(e, 429).await;

    // Password change: wrong current password is a field error; then the new one works.
    let t = s.login("school", "teacher").await;
    let r = t
        .post(
            "/api/v1/auth/password",
            json!({"current_password": "x", "new_password": "NewPass123"}),
        )
        .await;
    let p = problem(r, 422).await;
    assert_eq!(p["errors"][0]["field"], "current_password");
    let r = t
        .post(
            "/api/v1/auth/password",
            json!({"current_password": PASSWORD, "new_password": "NewPass123"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(s.login_with("school", "teacher", PASSWORD).await.is_err());
    assert!(s
        .login_with("school", "teacher", "NewPass123")
        .await
        .is_ok());
    s.stop().await;
}
on_all_backends!(auth, auth_flow);

/// Role × endpoint matrix: who may call what.
async fn role_matrix(url: String) {
    let s = TestServer::start(&url, true).await;
    let endpoints: &[(&str, Method, &str, Option<Value>)] = &[
        ("people.list", Method::GET, "/api/v1/people", None),
        (
            "people.create",
            Method::POST,
            "/api/v1/people",
            Some(json!({"kind": "staff", "name": "新员工", "number": "NEWX1"})),
        ),
        ("roles.list", Method::GET, "/api/v1/roles", None),
        (
            "roles.create",
            Method::POST,
            "/api/v1/roles",
            Some(json!({"key": "k_ROLE", "name": "n", "permissions": [], "scope": "self"})),
        ),
        ("audit.list", Method::GET, "/api/v1/audit", None),
        ("jobs.list", Method::GET, "/api/v1/jobs", None),
        ("tokens.list", Method::GET, "/api/v1/tokens", None),
        ("tenants.list", Method::GET, "/api/v1/tenants", None),
        ("me", Method::GET, "/api/v1/auth/me", None),
    ];
    // Expected allow (true) per role, in the order of `endpoints`.
    let matrix: &[(&str, &str, [bool; 9])] = &[
        (
            "school",
            "admin",
            [true, true, true, true, true, true, true, false, true],
        ),
        (
            "school",
            "academic",
            [true, true, true, false, false, false, true, false, true],
        ),
        (
            "school",
            "staff",
            [true, true, false, false, false, false, false, false, true],
        ),
        (
            "school",
            "teacher",
            [true, false, false, false, false, false, false, false, true],
        ),
        (
            "school",
            "parent",
            [false, false, false, false, false, false, false, false, true],
        ),
        (
            "school",
            "student",
            [false, false, false, false, false, false, false, false, true],
        ),
        (
            "school",
            "vendor",
            [false, false, false, false, false, false, false, false, true],
        ),
        (
            "platform",
            "root",
            [true, true, true, true, true, true, true, true, true],
        ),
    ];
    for (tenant, login, allowed) in matrix {
        let sess = s.login(tenant, login).await;
        for (i, (name, method, path, body)) in endpoints.iter().enumerate() {
            let mut body = body.clone();
            if let Some(b) = body.as_mut() {
                // Unique values per caller so allowed creates do not collide.
                if let Some(k) = b.get("key").and_then(|v| v.as_str()) {
                    b["key"] = json!(format!("{}_{login}", k.to_lowercase()));
                }
                if b.get("number").is_some() {
                    b["number"] = json!(format!("NEW{login}"));
                }
            }
            let r = sess.send(method.clone(), path, body).await;
            let status = r.status().as_u16();
            let ok = (200..300).contains(&status);
            // Department staff is allowed people.write but only within their department: a 422 is the scope speaking.
            let ok = ok || (*login == "staff" && *name == "people.create" && status == 422);
            assert_eq!(ok, allowed[i], "{tenant}/{login} {name}: status {status}");
            if !ok {
                assert_eq!(status, 403, "{tenant}/{login} {name}: denied must be 403");
            }
        }
    }
    s.stop().await;
}
on_all_backends!(roles, role_matrix);

/// Data scopes: teachers see their classes, staff their department; other tenants' ids are 404.
async fn scopes_and_isolation(url: String) {
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let teacher = s.login("school", "teacher").await;

    let classes = admin.get_json("/api/v1/classes").await;
    let first = &classes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "2024级软件技术1班")
        .unwrap()
        .clone();
    let seen = teacher
        .get_json("/api/v1/people?kind=student&per_page=200")
        .await;
    let names: Vec<&str> = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"]["name"].as_str().unwrap_or(""))
        .collect();
    assert!(!names.is_empty());
    assert!(
        names
            .iter()
            .all(|c| *c == "2024级软件技术1班" || *c == "2025级软件技术1班"),
        "{names:?}"
    );
    assert!(seen["total"].as_i64().unwrap() >= first["student_count"].as_i64().unwrap());
    assert!(
        seen["total"].as_i64().unwrap() < 200,
        "a teacher must not see the whole school"
    );

    // The teacher cannot open a student of another class: 404, not 403.
    let other = admin.get_json("/api/v1/people?kind=student&q=S03000").await;
    let other_id = other["items"][0]["id"].as_i64().unwrap();
    problem(
        teacher.get(&format!("/api/v1/people/{other_id}")).await,
        404,
    )
    .await;

    // Another tenant's person answers 404 for the training centre's admin.
    let training = s.login("training", "admin").await;
    problem(
        training.get(&format!("/api/v1/people/{other_id}")).await,
        404,
    )
    .await;
    let r = training
        .send(
            Method::PATCH,
            &format!("/api/v1/people/{other_id}"),
            Some(json!({"name": "x"})),
        )
        .await;
    problem(r, 404).await;
    problem(
        training
            .post(&format!("/api/v1/people/{other_id}/deactivate"), json!({}))
            .await,
        404,
    )
    .await;

    // A platform admin may act inside a tenant with the tenant header.
    let root = s.login("platform", "root").await;
    let r = root
        .client
        .get(s.url(&format!("/api/v1/people/{other_id}")))
        .header("x-xiaotong-tenant", "school")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Nobody else may.
    let r = training
        .client
        .get(s.url("/api/v1/people"))
        .header("x-xiaotong-tenant", "school")
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    s.stop().await;
}
on_all_backends!(scopes, scopes_and_isolation);

/// Search by name, pinyin, initials, phone and number; filters; pagination.
async fn search(url: String) {
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    for q in ["张三", "zs", "zhangsan", "13800138000", "2024010001"] {
        let r = admin
            .get_json(&format!("/api/v1/people?q={}", urlencode(q)))
            .await;
        assert_eq!(r["items"][0]["name"], "张三", "query {q}");
    }
    let page2 = admin
        .get_json("/api/v1/people?kind=student&page=2&per_page=25")
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 25);
    assert!(page2["total"].as_i64().unwrap() > 3000);
    let parents = admin
        .get_json("/api/v1/people?kind=parent&per_page=5")
        .await;
    assert!(parents["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["kind"] == "parent" && !p["children"].as_array().unwrap().is_empty()));
    let grades = admin.get_json("/api/v1/grades").await;
    assert_eq!(grades["items"].as_array().unwrap().len(), 3, "{grades}");
    assert_eq!(grades["items"][0]["name"], "2024级");
    let classes = admin.get_json("/api/v1/classes").await;
    assert!(classes["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["grade_name"].is_string()));
    let campuses = s
        .login("training", "admin")
        .await
        .get_json("/api/v1/campuses")
        .await;
    let names: Vec<&str> = campuses["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["天河校区", "海珠校区"]);
    problem(admin.get("/api/v1/people?per_page=1000").await, 422).await;
    problem(admin.get("/api/v1/people?page=abc").await, 400).await;
    problem(admin.get("/api/v1/people?kind=alien").await, 422).await;
    s.stop().await;
}
on_all_backends!(people_search, search);

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Bad input answers problem+json naming the field; nothing is half-written.
async fn bad_input(url: String) {
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let before = admin.get_json("/api/v1/people?active=all&per_page=1").await["total"]
        .as_i64()
        .unwrap();

    let r = admin
        .client
        .post(s.url("/api/v1/people"))
        .header("x-csrf-token", &admin.csrf)
        .header("content-type", "application/json")
        .body("{\"kind\": \"staff\", ")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("malformed JSON"));

    let p = problem(
        admin
            .post(
                "/api/v1/people",
                json!({"kind": "staff", "name": "甲", "number": "A1", "colour": "red"}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "colour");
    let p = problem(
        admin
            .post(
                "/api/v1/people",
                json!({"kind": "staff", "name": 5, "number": "A1"}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "name");
    let p = problem(
        admin
            .post(
                "/api/v1/people",
                json!({"kind": "staff", "name": "甲", "number": "A1", "phone": "12345"}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "phone");
    let p = problem(
        admin
            .post(
                "/api/v1/people",
                json!({"kind": "staff", "name": "甲", "number": "A1", "email": "x@"}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "email");
    let p = problem(admin.post("/api/v1/people", json!({"kind": "staff", "name": "甲", "number": "A1", "id_number": "110105194912310021"})).await, 422).await;
    assert_eq!(p["errors"][0]["field"], "id_number");
    let long = "长".repeat(51);
    let p = problem(
        admin
            .post(
                "/api/v1/people",
                json!({"kind": "staff", "name": long, "number": "A1"}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "name");
    // Duplicate number: 409.
    problem(
        admin
            .post(
                "/api/v1/people",
                json!({"kind": "student", "name": "重复", "number": "2024010001"}),
            )
            .await,
        409,
    )
    .await;

    let after = admin.get_json("/api/v1/people?active=all&per_page=1").await["total"]
        .as_i64()
        .unwrap();
    assert_eq!(before, after, "nothing may be written by rejected requests");

    // A good create, then deactivate (never delete).
    let r = admin
        .post("/api/v1/people", json!({"kind": "staff", "name": "王新", "number": "A1", "phone": "13912345678", "tags": ["新教工"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["phone"], "13912345678");
    assert_eq!(created["tags"], json!(["新教工"]));
    let id = created["id"].as_i64().unwrap();
    let r = admin
        .post(&format!("/api/v1/people/{id}/deactivate"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let gone = admin.get_json("/api/v1/people?q=%E7%8E%8B%E6%96%B0").await;
    assert_eq!(gone["total"], 0, "inactive people are hidden by default");
    let all = admin
        .get_json("/api/v1/people?q=%E7%8E%8B%E6%96%B0&active=all")
        .await;
    assert_eq!(all["items"][0]["active"], false);
    problem(admin.get("/api/v1/nope").await, 404).await;
    problem(admin.get("/api/v1/people/abc").await, 400).await;
    s.stop().await;
}
on_all_backends!(validation, bad_input);

/// Every write is in the audit trail with before → after; tampering is named.
async fn audit_trail(url: String) {
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let found = admin.get_json("/api/v1/people?q=2024010001").await;
    let id = found["items"][0]["id"].as_i64().unwrap();
    let r = admin
        .send(
            Method::PATCH,
            &format!("/api/v1/people/{id}"),
            Some(json!({"name": "张三丰"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let log = admin
        .get_json(&format!("/api/v1/audit?entity=person&entity_id={id}"))
        .await;
    let e = &log["items"][0];
    assert_eq!(e["action"], "update");
    assert_eq!(e["before"]["name"], "张三");
    assert_eq!(e["after"]["name"], "张三丰");
    assert_eq!(e["actor_name"], "周校长");
    assert_eq!(
        e["before"]["phone"], "138****8000",
        "no full phone numbers in the audit trail"
    );
    let v = admin.get_json("/api/v1/audit/verify").await;
    assert_eq!(v["ok"], true);

    // Tamper with an entry directly in the database: verification names it.
    let seq = e["seq"].as_i64().unwrap();
    let tenant = admin.me["tenant"]["id"].as_i64().unwrap();
    s.app
        .db
        .execute(
            &xiaotong::db::Sql::new(
                "UPDATE audit_log SET after_json = ? WHERE tenant_id = ? AND seq = ?",
            )
            .bind("{\"name\":\"李四\"}")
            .bind(tenant)
            .bind(seq),
        )
        .await
        .unwrap();
    let v = admin.get_json("/api/v1/audit/verify").await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_broken_seq"], seq);
    s.stop().await;
}
on_all_backends!(audit, audit_trail);

/// API tokens: shown once, scoped, usable without CSRF, revocable.
async fn api_tokens(url: String) {
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let r = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "sync", "scopes": ["people.read"], "expires_in_days": 30}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let t: Value = r.json().await.unwrap();
    let token = t["token"].as_str().unwrap().to_string();
    let listed = admin.get_json("/api/v1/tokens").await;
    assert!(
        !listed.to_string().contains(&token),
        "the secret is never listed"
    );
    let c = reqwest::Client::new();
    let r = c
        .get(s.url("/api/v1/people?per_page=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Scoped: people.read only.
    let r = c
        .get(s.url("/api/v1/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    // Cannot grant what you do not hold.
    let teacher = s.login("school", "academic").await;
    problem(
        teacher
            .post(
                "/api/v1/tokens",
                json!({"name": "x", "scopes": ["audit.read"]}),
            )
            .await,
        422,
    )
    .await;
    let id = t["item"]["id"].as_i64().unwrap();
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let r = c
        .get(s.url("/api/v1/people?per_page=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    s.stop().await;
}
on_all_backends!(tokens, api_tokens);

/// Health, readiness, metrics and the OpenAPI document.
async fn operations(url: String) {
    let s = TestServer::start(&url, false).await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(s.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(s.url("/readyz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ready"
    );
    let _ = c.get(s.url("/api/v1/auth/me")).send().await.unwrap();
    let m = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("xiaotong_http_requests_total"), "{m}");
    assert!(m.contains("route=\"/api/v1/auth/me\""));
    assert!(m.contains("xiaotong_jobs{state=\"ready\"}") || m.contains("xiaotong_queue_depth"));
    let doc: Value = c
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/people",
        "/api/v1/auth/login",
        "/api/v1/audit",
        "/api/v1/jobs",
        "/api/v1/imports/people",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    let r = c.get(s.url("/api/v1/people")).send().await.unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    problem(r, 401).await;
    s.stop().await;
}
on_all_backends!(ops, operations);
