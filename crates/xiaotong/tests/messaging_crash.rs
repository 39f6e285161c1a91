//! Delivery survives a crash: `kill -9` of the server after about 5,000 of
//! 20,000 e-mails, then a restart. Every recipient has exactly one inbox
//! entry, no e-mail recipient is missing, and duplicates are no more than
//! the deliveries in flight at the kill.

mod common;

use common::smtp::SmtpSink;
use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use xiaotong::db::{RowExt, Sql};
use xiaotong::messaging::model::{Content, TemplateInput};

const N: usize = 20_000;

async fn scalar(app: &xiaotong::app::App, sql: &str) -> i64 {
    app.db
        .fetch_one(&Sql::new(sql))
        .await
        .unwrap()
        .i64("n")
        .unwrap()
}

fn serve(url: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_xiaotong"))
        .args([
            "--database-url",
            url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--job-concurrency",
            "16",
        ])
        // The test keys: 32 bytes of 42.
        .env(
            "XIAOTONG_SECRET_KEY",
            "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
        )
        .env("XIAOTONG_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn xiaotong serve")
}

async fn crash_and_restart(url: String) {
    let app = open_app(&url).await;
    let tenant = xiaotong::demo::seed_mail_audience(&app, N).await.unwrap();
    let sink = SmtpSink::start(None, None).await;

    // Channel settings, no quiet hours, and the notice itself, published
    // before any server runs: the outbox holds it.
    let mut tx = app.db.begin().await.unwrap();
    let cfg = serde_json::json!({"kind": "email", "host": "127.0.0.1", "port": sink.port, "security": "plain",
        "from": "校通 <noreply@bulk.test>", "pool_size": 8});
    xiaotong::messaging::store::save_channel_config(
        &mut tx,
        tenant,
        "email",
        "email",
        &app.keys.encrypt(&cfg.to_string()),
        true,
        0,
    )
    .await
    .unwrap();
    let settings = xiaotong::messaging::model::MessagingSettings {
        quiet_start: None,
        quiet_end: None,
        ..Default::default()
    };
    xiaotong::messaging::store::save_settings(&mut tx, tenant, &settings)
        .await
        .unwrap();
    let template = TemplateInput {
        code: "exam".into(),
        name: "考试".into(),
        kind: Some("exam".into()),
        content: Content {
            title: "期末考试安排".into(),
            body: "{{ recipient.name }} 同学：请按时参加考试。".into(),
            ..Default::default()
        },
        variables: vec![],
    };
    xiaotong::messaging::store::save_template(&mut tx, tenant, None, &template, "exam", None)
        .await
        .unwrap();
    let notice = xiaotong::messaging::Notify {
        template: "exam".into(),
        audience: serde_json::from_value(
            serde_json::json!({"include": [{"type": "kind", "value": "student"}]}),
        )
        .unwrap(),
        vars: serde_json::json!({}),
        priority: xiaotong::messaging::Priority::Normal,
        channels: vec!["inapp".into(), "email".into()],
        source: "test".into(),
        recipients: None,
    };
    let actor = xiaotong::auth::model::Actor::system(tenant, "test");
    let mid = xiaotong::messaging::notify(&mut tx, tenant, &actor, &notice)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut server = serve(&url);
    let reached = sink.wait_for(5_000, Duration::from_secs(120)).await;
    assert!(reached >= 5_000, "only {reached} mails before the kill");
    server.kill().expect("kill -9");
    server.wait().ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_kill = sink.count();
    assert!(
        at_kill < N,
        "the kill came too late to test anything ({at_kill})"
    );
    // Deliveries in flight: those in send jobs whose lease the dead server held.
    let running = app
        .db
        .fetch_all(&Sql::new(
            "SELECT payload FROM jobs WHERE kind = 'messaging.send' AND state = 'running'",
        ))
        .await
        .unwrap();
    let in_flight: usize = running
        .iter()
        .map(|r| {
            let p: serde_json::Value = serde_json::from_str(&r.str("payload").unwrap()).unwrap();
            p["person_ids"].as_array().map(|a| a.len()).unwrap_or(0)
        })
        .sum();

    let mut server = serve(&url);
    let started = Instant::now();
    loop {
        let sent = app
            .db
            .fetch_one(
                &Sql::new(
                    "SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ? AND state = 'sent'",
                )
                .bind(mid),
            )
            .await
            .unwrap()
            .i64("n")
            .unwrap();
        if sent as usize == N {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "only {sent} of {N} sent after the restart"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sink.wait_for(N, Duration::from_secs(20)).await;
    server.kill().ok();
    server.wait().ok();

    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM inbox").await,
        N as i64,
        "one inbox entry per recipient"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(DISTINCT person_id) AS n FROM inbox").await,
        N as i64
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) AS n FROM deliveries WHERE state = 'dead'"
        )
        .await,
        0
    );
    let received = sink.received.lock().unwrap().clone();
    let mut per_address: HashMap<String, usize> = HashMap::new();
    for (to, _) in &received {
        *per_address.entry(to.clone()).or_default() += 1;
    }
    assert_eq!(per_address.len(), N, "no e-mail recipient is missing");
    let duplicates = received.len() - N;
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicate mails, but only {in_flight} deliveries were in flight at the kill"
    );
    eprintln!("kill after {at_kill} mails: {in_flight} in flight, {duplicates} duplicates");
    sink.stop().await;
}
on_all_backends!(kill_during_fanout, crash_and_restart);
