//! Bulk import through the API and the CLI: per-row errors, all-or-nothing,
//! valid rows only, upsert (a re-import changes nothing), XLSX and GB18030 CSV.

mod common;

use common::*;
use serde_json::Value;

const GOOD_ROWS: &str = "学生,2026990001,测试甲,男,13700000001,jia@example.com,信息工程系/软件教研室,2026级测试1班,,住校生
学生,2026990002,测试乙,女,13700000002,,信息工程系/软件教研室,2026级测试1班,,
家长,,测试家长,女,13700000009,,,,2026990001;2026990002,家委会
";
const HEADER: &str = "类型,学号工号,姓名,性别,手机号,邮箱,部门,班级,家长的学生学号,标签\n";
const BAD_ROW: &str = "学生,2026990003,测试丙,男,12345,,信息工程系,2026级测试1班,,\n";

async fn upload(s: &Session, name: &str, bytes: Vec<u8>, mode: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        )
        .text("mode", mode.to_string());
    let r = s
        .client
        .post(format!("{}/api/v1/imports/people", s.base))
        .header("x-csrf-token", &s.csrf)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let started: Value = r.json().await.unwrap();
    let id = started["id"].as_i64().unwrap();
    for _ in 0..300 {
        let v = s.get_json(&format!("/api/v1/imports/{id}")).await;
        if !matches!(v["state"].as_str(), Some("queued" | "running")) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("import {id} did not finish");
}

async fn count(s: &Session, q: &str) -> i64 {
    s.get_json(&format!("/api/v1/people?active=all&per_page=1&q={q}"))
        .await["total"]
        .as_i64()
        .unwrap()
}

async fn import_flow(url: String) {
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let before = count(&admin, "").await;
    let file = format!("{HEADER}{GOOD_ROWS}{BAD_ROW}");

    // All or nothing: the bad row is named, nothing is written.
    let v = upload(
        &admin,
        "people.csv",
        file.clone().into_bytes(),
        "all_or_nothing",
    )
    .await;
    assert_eq!(v["state"], "rejected", "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["errors"][0]["row"], 5);
    assert_eq!(v["errors"][0]["column"], "手机号");
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("12345"));
    assert_eq!(count(&admin, "").await, before);

    // Valid rows only: three imported, one skipped, parent linked to both children.
    let v = upload(&admin, "people.csv", file.into_bytes(), "valid_rows_only").await;
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(
        (v["created"].as_i64(), v["skipped"].as_i64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(count(&admin, "").await, before + 3);
    let parent = admin.get_json("/api/v1/people?q=13700000009").await;
    assert_eq!(parent["items"][0]["children"].as_array().unwrap().len(), 2);
    assert_eq!(parent["items"][0]["tags"], serde_json::json!(["家委会"]));
    let student = admin.get_json("/api/v1/people?q=2026990001").await;
    assert_eq!(student["items"][0]["class"]["name"], "2026级测试1班");
    assert_eq!(student["items"][0]["department"]["name"], "软件教研室");

    // Re-import of the same rows changes nothing.
    let v = upload(
        &admin,
        "people.csv",
        format!("{HEADER}{GOOD_ROWS}").into_bytes(),
        "all_or_nothing",
    )
    .await;
    assert_eq!(
        (
            v["created"].as_i64(),
            v["updated"].as_i64(),
            v["unchanged"].as_i64()
        ),
        (Some(0), Some(0), Some(3)),
        "{v}"
    );

    // XLSX with English headers and a changed name: one update, rest unchanged.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["kind", "number", "name", "phone"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.write_string(1, 0, "student").unwrap();
    ws.write_string(1, 1, "2026990001").unwrap();
    ws.write_string(1, 2, "测试甲改").unwrap();
    ws.write_number(1, 3, 13700000001.0).unwrap();
    ws.write_string(2, 0, "student").unwrap();
    ws.write_string(2, 1, "2026990002").unwrap();
    ws.write_string(2, 2, "测试乙").unwrap();
    ws.write_number(2, 3, 13700000002.0).unwrap();
    let bytes = wb.save_to_buffer().unwrap();
    let v = upload(&admin, "people.xlsx", bytes, "all_or_nothing").await;
    assert_eq!(
        (v["updated"].as_i64(), v["unchanged"].as_i64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let audit = admin.get_json("/api/v1/audit?action=import_update").await;
    assert_eq!(audit["items"][0]["after"]["name"], "测试甲改");
    assert_eq!(audit["items"][0]["before"]["name"], "测试甲");

    // GB18030 CSV as Excel writes it in China; duplicate numbers are named.
    let (gbk, _, _) = encoding_rs::GB18030
        .encode("类型,学号工号,姓名\n学生,2026990010,测试丁\n学生,2026990010,测试戊\n");
    let v = upload(&admin, "people.csv", gbk.into_owned(), "all_or_nothing").await;
    assert_eq!(v["state"], "rejected");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("also appears in row 2"),
        "{v}"
    );

    // A file without the required columns is refused with the reason.
    let v = upload(
        &admin,
        "x.csv",
        b"foo,bar\n1,2\n".to_vec(),
        "all_or_nothing",
    )
    .await;
    assert_eq!(v["state"], "rejected");
    assert_eq!(v["errors"][0]["row"], 1);

    // Accounts imported with a first password must change it at first log-in.
    let v = upload(
        &admin,
        "accounts.csv",
        "类型,学号工号,姓名,用户名,初始密码\n教师,T990001,新老师,newteacher,Start2026a\n"
            .as_bytes()
            .to_vec(),
        "all_or_nothing",
    )
    .await;
    assert_eq!(v["created"], 1, "{v}");
    let newbie = s
        .login_with("school", "newteacher", "Start2026a")
        .await
        .expect("first log-in");
    assert_eq!(newbie.me["must_change_password"], true);
    let p = problem(newbie.get("/api/v1/people").await, 403).await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("password change required"));
    let r = newbie
        .post(
            "/api/v1/auth/password",
            serde_json::json!({"current_password": "Start2026a", "new_password": "Mine2026b"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(newbie.get("/api/v1/people").await.status().as_u16(), 200);

    // Only callers with import.run may import.
    let teacher = s.login("school", "teacher").await;
    let r = teacher
        .client
        .post(format!("{}/api/v1/imports/people", s.base))
        .header("x-csrf-token", &teacher.csrf)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"a".to_vec()).file_name("a.csv"),
        ))
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    s.stop().await;
}
on_all_backends!(import_api, import_flow);

/// `xiaotong import people`: non-zero exit naming the bad row; then a clean import.
#[tokio::test]
async fn cli_import() {
    let url = fresh_database(Backend::Sqlite).await.unwrap();
    let app = open_app(&url).await;
    xiaotong::directory::service::create_tenant(&app, "cli", "CLI school")
        .await
        .unwrap();
    app.db.close().await;
    let dir = tempdir();
    let file = dir.join("people.csv");
    std::fs::write(&file, format!("{HEADER}{GOOD_ROWS}{BAD_ROW}")).unwrap();
    let key = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xiaotong"))
            .args(["--database-url", &url, "import", "people"])
            .arg(&file)
            .args(["--tenant", "cli"])
            .args(extra)
            .env("XIAOTONG_SECRET_KEY", key)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 5 column 手机号"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("state=rejected"));
    let out = run(&["--valid-rows-only"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("created=3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["--valid-rows-only"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("created=0 updated=0 unchanged=3"));
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "xiaotong-cli-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
