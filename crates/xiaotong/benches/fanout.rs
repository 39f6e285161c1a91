//! `cargo xtask bench fanout`: one notice to 20,000 recipients, in-app plus
//! e-mail to a real SMTP server process on this machine. Measures the
//! publish call, the time until every inbox entry is readable, and the time
//! until the SMTP server has accepted every mail; on SQLite and, when
//! XIAOTONG_TEST_POSTGRES_URL is set, PostgreSQL.

mod common;
#[path = "../tests/common/smtp.rs"]
mod smtp;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use xiaotong::db::{RowExt, Sql};

const RECIPIENTS: usize = 20_000;

async fn run(backend: &str) -> Option<String> {
    let app = common::fresh(backend).await?;
    let t = Instant::now();
    xiaotong::demo::seed_mail_audience(&app, RECIPIENTS)
        .await
        .expect("seed");
    eprintln!(
        "[{backend}] seeded {RECIPIENTS} recipients in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let sink = smtp::SmtpSink::start(None, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = xiaotong::server::start(app.clone(), listener, true)
        .await
        .expect("server");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login: reqwest::Response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(
            &json!({"tenant": "bulk", "login": "admin", "password": xiaotong::demo::DEMO_PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    let csrf = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("xt_csrf=")
                .map(|r| r.split(';').next().unwrap_or("").to_string())
        })
        .expect("csrf");
    let call = |method: reqwest::Method, path: &str, body: Value| {
        client
            .request(method, format!("{base}{path}"))
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let ok = |r: reqwest::Response| async move {
        let st = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(st.is_success(), "{st}: {body}");
        serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)
    };
    ok(call(
        reqwest::Method::PUT,
        "/api/v1/messaging/settings",
        json!({"quiet_start": null, "quiet_end": null,
        "fallbacks": {}, "urgent_sms": false, "max_attachment_bytes": 10485760}),
    )
    .await
    .unwrap())
    .await;
    ok(call(reqwest::Method::PUT, "/api/v1/channels/email", json!({"config": {"kind": "email", "host": "127.0.0.1",
        "port": sink.port, "security": "plain", "from": "校通 <noreply@bulk.test>", "pool_size": 8}})).await.unwrap()).await;
    let msg = ok(call(reqwest::Method::POST, "/api/v1/messages", json!({
        "kind": "notice", "channels": ["inapp", "email"],
        "content": {"title": "期末考试安排", "body": "{{ recipient.name }} 同学：\n\n期末考试于 1 月 12 日开始，请按时参加。"},
        "audience": {"include": [{"type": "kind", "value": "student"}]}})).await.unwrap()).await;
    let id = msg["id"].as_i64().unwrap();

    let t0 = Instant::now();
    let published = ok(call(
        reqwest::Method::POST,
        &format!("/api/v1/messages/{id}/publish"),
        json!({}),
    )
    .await
    .unwrap())
    .await;
    let publish_ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        published["recipient_count"].as_i64(),
        Some(RECIPIENTS as i64)
    );
    let after = Instant::now();
    let count = Sql::new("SELECT COUNT(*) AS n FROM inbox WHERE message_id = ?").bind(id);
    loop {
        let n = app.db.fetch_one(&count).await.unwrap().i64("n").unwrap();
        if n as usize >= RECIPIENTS {
            break;
        }
        assert!(
            after.elapsed() < Duration::from_secs(120),
            "inbox stuck at {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let inbox_ms = after.elapsed().as_secs_f64() * 1000.0;
    let got = sink.wait_for(RECIPIENTS, Duration::from_secs(600)).await;
    let smtp_s = after.elapsed().as_secs_f64();
    assert_eq!(got, RECIPIENTS, "mails accepted");
    running.stop().await;
    sink.stop().await;
    common::discard(app).await;
    Some(format!(
        "bench=fanout db={backend} recipients={RECIPIENTS} publish_ms={publish_ms:.1} inbox_ms={inbox_ms:.0} smtp_s={smtp_s:.1}"
    ))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("XIAOTONG_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    eprintln!("machine: {}", common::machine());
    let mut lines = vec![];
    // XIAOTONG_BENCH_DB=sqlite|postgres runs one of them.
    let only = std::env::var("XIAOTONG_BENCH_DB").ok();
    for backend in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        match run(backend).await {
            Some(l) => {
                println!("{l}");
                lines.push(l);
            }
            None => eprintln!("{backend}: not configured, skipped"),
        }
    }
}
