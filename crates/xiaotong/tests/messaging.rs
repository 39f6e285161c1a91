//! The message center end to end, on every backend: templates, audiences,
//! publishing, the inbox with live updates, read receipts, e-mail to a real
//! SMTP server, withdrawal, permissions, bad input; and the delivery
//! guarantees: provider errors and rate limits with backoff, an SMTP outage.

mod common;

use common::smtp::SmtpSink;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use xiaotong::db::{RowExt, Sql};

async fn count(app: &xiaotong::app::App, sql: Sql) -> i64 {
    app.db.fetch_one(&sql).await.unwrap().i64("n").unwrap()
}

/// 张三's class id.
async fn zhang_class(admin: &Session) -> i64 {
    let page = admin.get_json("/api/v1/people?q=2024010001").await;
    page["items"][0]["class"]["id"]
        .as_i64()
        .expect("张三 has a class")
}

/// Gives the students of a class and their parents e-mail addresses; returns how many.
async fn give_emails(s: &TestServer, class_id: i64) -> usize {
    let rows = s
        .app
        .db
        .fetch_all(
            &Sql::new(
                "SELECT id FROM people WHERE class_id = ? UNION SELECT g.parent_id AS id FROM guardianships g \
                 JOIN people p ON p.id = g.student_id WHERE p.class_id = ?",
            )
            .bind(class_id)
            .bind(class_id),
        )
        .await
        .unwrap();
    for r in &rows {
        let id = r.i64("id").unwrap();
        s.app
            .db
            .execute(
                &Sql::new("UPDATE people SET email = ? WHERE id = ?")
                    .bind(format!("p{id}@school.test"))
                    .bind(id),
            )
            .await
            .unwrap();
    }
    rows.len()
}

async fn quiet_hours_off(admin: &Session, max_attachment: i64) {
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/messaging/settings",
            Some(
                json!({"quiet_start": null, "quiet_end": null, "fallbacks": {}, "urgent_sms": false,
                "max_attachment_bytes": max_attachment}),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn smtp_channel(admin: &Session, port: u16) {
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/channels/email",
            Some(json!({"config": {"kind": "email", "host": "127.0.0.1", "port": port, "security": "plain",
                "from": "校通 <noreply@school.test>", "pool_size": 4}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads server-sent events and returns the next `unread` count.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(s: &Session) -> Sse {
        let resp = s.get("/api/v1/inbox/stream").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn next_unread(&mut self, timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                if event.contains("event: unread") {
                    let data = event
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .unwrap();
                    return serde_json::from_str::<Value>(data).unwrap()["unread"]
                        .as_i64()
                        .unwrap();
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.resp.chunk())
                .await
                .expect("no live event in time")
                .unwrap()
                .expect("stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn message_center(url: String) {
    let sink = SmtpSink::start(None, None).await;
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let parent = s.login("school", "parent").await;
    let student = s.login("school", "student").await;
    let class_id = zhang_class(&admin).await;
    let with_email = give_emails(&s, class_id).await;
    quiet_hours_off(&admin, 1000).await;
    smtp_channel(&admin, sink.port).await;

    // Channel settings come back with secrets masked; a test send reaches the server.
    let chans = admin.get_json("/api/v1/channels").await;
    assert_eq!(chans[0]["channel"], "email");
    let r = admin
        .post(
            "/api/v1/channels/email/test",
            json!({"to": "check@school.test"}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1);
    // Wrong credentials: the test send says what the provider said.
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/channels/webhook",
            Some(json!({"config": {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-value"}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["config"]["secret"], "••••", "secrets are never shown");
    let v: Value = admin
        .post("/api/v1/channels/webhook/test", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        !v["outcome"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{v}"
    );
    admin
        .send(
            Method::PUT,
            "/api/v1/channels/webhook",
            Some(json!({"config": {"kind": "webhook",
            "url": "http://127.0.0.1:9/hook", "secret": "••••"}, "enabled": false})),
        )
        .await;

    // Templates: an unknown variable and a syntax error are refused with their line.
    let p = problem(
        admin
            .post("/api/v1/templates", json!({"code": "exam", "name": "考试安排", "kind": "exam",
                "content": {"title": "考试安排", "body": "{{ student.name }} 同学：\n\n考场 {{ exam_room }}"}}))
            .await,
        422,
    )
    .await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`exam_room` on line 3"),
        "{p}"
    );
    let p = problem(
        admin
            .post(
                "/api/v1/templates",
                json!({"code": "exam", "name": "考试安排", "kind": "exam",
                "content": {"title": "考试安排", "body": "第一行\n{% if x %}没有结束"}}),
            )
            .await,
        422,
    )
    .await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{p}"
    );
    let r = admin
        .post("/api/v1/templates", json!({"code": "exam", "name": "考试安排", "kind": "exam", "variables": ["exam_room"],
            "content": {"title": "{{ student.name }} 的考试安排", "body": "{{ recipient.name }} 您好：\n\n**{{ student.name }}** 的考场是 {{ exam_room }}。"}}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let tmpl: Value = r.json().await.unwrap();
    let tid = tmpl["id"].as_i64().unwrap();
    // A second save is a new version; both are kept.
    let mut edited = tmpl.clone();
    edited["content"]["body"] = json!("{{ recipient.name }} 您好：\n\n**{{ student.name }}** 的考场是 {{ exam_room }}，请带准考证。");
    let r = admin
        .send(
            Method::PUT,
            &format!("/api/v1/templates/{tid}"),
            Some(json!({"code": "exam", "name": "考试安排",
            "kind": "exam", "variables": ["exam_room"], "content": edited["content"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let versions = admin
        .get_json(&format!("/api/v1/templates/{tid}/versions"))
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    // Preview for the parent shows the child's name.
    let parent_id = parent.me["id"].as_i64().unwrap();
    let pv: Value = admin
        .post(
            "/api/v1/templates/preview",
            json!({"template_id": tid, "person_id": parent_id, "vars": {"exam_room": "A301"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pv["title"], "张三 的考试安排", "{pv}");
    assert!(pv["body_html"]
        .as_str()
        .unwrap()
        .contains("<strong>张三</strong>"));

    // The audience count before sending: the class and its parents.
    let audience = json!({"include": [{"type": "class", "value": class_id, "who": "both"}]});
    let cnt: Value = admin
        .post("/api/v1/audience/count", audience.clone())
        .await
        .json()
        .await
        .unwrap();
    let students = count(
        &s.app,
        Sql::new("SELECT COUNT(*) AS n FROM people WHERE class_id = ? AND active = 1")
            .bind(class_id),
    )
    .await;
    assert!(cnt["count"].as_i64().unwrap() > students, "{cnt}");
    let recipients = cnt["count"].as_i64().unwrap();
    // Exclusions apply.
    let zhang_id = student.me["id"].as_i64().unwrap();
    let fewer: Value = admin
        .post(
            "/api/v1/audience/count",
            json!({"include": [{"type": "class", "value": class_id, "who": "both"}],
            "exclude": [{"type": "person", "value": zhang_id, "who": "both"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        fewer["count"].as_i64().unwrap(),
        recipients - 2,
        "张三 and his parent excluded"
    );
    problem(
        admin
            .post(
                "/api/v1/audience/count",
                json!({"include": [{"type": "class", "value": 999999}]}),
            )
            .await,
        422,
    )
    .await;

    // An audience of nobody is refused unless asked for.
    let r = admin
        .post(
            "/api/v1/messages",
            json!({"content": {"title": "空", "body": "x"}, "audience": {"include": []}}),
        )
        .await;
    let empty: Value = r.json().await.unwrap();
    let p = problem(
        admin
            .post(
                &format!("/api/v1/messages/{}/publish", empty["id"]),
                json!({}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "audience");

    // Compose from the template, publish; the parent sees it live.
    let mut live = Sse::open(&parent).await;
    let before = live.next_unread(Duration::from_secs(5)).await;
    let r = admin
        .post(
            "/api/v1/messages",
            json!({"template_id": tid, "vars": {"exam_room": "A301"}, "audience": audience,
            "channels": ["inapp", "email"], "priority": "high", "require_confirm": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let msg: Value = r.json().await.unwrap();
    let mid = msg["id"].as_i64().unwrap();
    assert_eq!(msg["state"], "draft");
    assert_eq!(msg["kind"], "exam");
    let r = admin
        .post(&format!("/api/v1/messages/{mid}/publish"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let published: Value = r.json().await.unwrap();
    assert_eq!(published["state"], "published");
    assert_eq!(published["recipient_count"].as_i64().unwrap(), recipients);
    assert_eq!(
        live.next_unread(Duration::from_secs(10)).await,
        before + 1,
        "live unread count"
    );
    // Editing after publishing is refused.
    problem(
        admin
            .send(
                Method::PATCH,
                &format!("/api/v1/messages/{mid}"),
                Some(json!({"priority": "low"})),
            )
            .await,
        409,
    )
    .await;

    let inbox = parent.get_json("/api/v1/inbox?unread=true").await;
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["message_id"] == mid)
        .expect("in the parent's inbox")
        .clone();
    assert_eq!(item["title"], "张三 的考试安排");
    assert!(
        item["body_html"].as_str().unwrap().contains("张建国 您好"),
        "{item}"
    );
    assert!(
        item["body_html"].as_str().unwrap().contains("请带准考证"),
        "the newest version"
    );
    let s_inbox = student.get_json("/api/v1/inbox").await;
    assert!(s_inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["message_id"] == mid));

    // Every recipient with an address gets one e-mail.
    assert!(with_email as i64 >= recipients - 2);
    let expected_mail = 1 + recipients as usize;
    assert_eq!(
        sink.wait_for(expected_mail, Duration::from_secs(30)).await,
        expected_mail
    );
    let subjects: Vec<String> = sink
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    assert!(
        subjects.iter().any(|s| s == "张三 的考试安排"),
        "{subjects:?}"
    );

    // The parent reads and confirms; the sender sees it.
    let inbox_id = item["id"].as_i64().unwrap();
    let r = parent
        .post(&format!("/api/v1/inbox/{inbox_id}/confirm"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The sink has every mail; a batch's deliveries are marked sent just
    // after the SMTP server accepted it, so the report may lag briefly.
    let sent_of = |report: &Value| {
        report["by_channel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == "email" && c["state"] == "sent")
            .and_then(|c| c["count"].as_i64())
            .unwrap_or(0)
    };
    let mut report = Value::Null;
    for _ in 0..300 {
        report = admin
            .get_json(&format!("/api/v1/messages/{mid}/delivery"))
            .await;
        if sent_of(&report) == recipients {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(report["read"], 1);
    assert_eq!(report["confirmed"], 1);
    assert_eq!(report["inbox"].as_i64().unwrap(), recipients);
    assert_eq!(sent_of(&report), recipients, "{report}");
    let read = admin
        .get_json(&format!("/api/v1/messages/{mid}/recipients?filter=read"))
        .await;
    assert_eq!(read["total"], 1);
    assert_eq!(read["items"][0]["name"], "张建国");
    assert_eq!(read["items"][0]["via"], "张三");
    assert_eq!(read["items"][0]["channels"]["email"], "sent");
    let timeline = admin
        .get_json(&format!("/api/v1/people/{parent_id}/message-timeline"))
        .await;
    assert!(timeline
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "read" && e["message_id"] == mid));
    // History lists it with its read count; the export is a workbook.
    let hist = admin.get_json("/api/v1/messages?kind=exam&q=考试").await;
    assert_eq!(hist["items"][0]["id"], mid);
    assert_eq!(hist["items"][0]["read_count"], 1);
    let x = admin
        .get(&format!("/api/v1/messages/{mid}/export.xlsx"))
        .await;
    assert_eq!(x.status(), StatusCode::OK);
    assert!(x.bytes().await.unwrap().starts_with(b"PK"));

    // Permissions: a teacher addresses own classes only; parents see no history;
    // another tenant's admin does not even see the message exists.
    let teacher = s.login("school", "teacher").await;
    problem(
        teacher
            .post(
                "/api/v1/audience/count",
                json!({"include": [{"type": "all"}]}),
            )
            .await,
        403,
    )
    .await;
    let own: Value = teacher
        .post(
            "/api/v1/audience/count",
            json!({"include": [{"type": "class", "value": class_id}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["count"].as_i64().unwrap(), students);
    problem(teacher.get(&format!("/api/v1/messages/{mid}")).await, 404).await;
    problem(parent.get("/api/v1/messages").await, 403).await;
    problem(
        parent
            .post(
                "/api/v1/messages",
                json!({"content": {"title": "x", "body": "y"}}),
            )
            .await,
        403,
    )
    .await;
    let other = s.login("training", "admin").await;
    problem(other.get(&format!("/api/v1/messages/{mid}")).await, 404).await;
    problem(
        other.get(&format!("/api/v1/messages/{mid}/delivery")).await,
        404,
    )
    .await;
    problem(
        other
            .post(&format!("/api/v1/inbox/{inbox_id}/read"), json!({}))
            .await,
        404,
    )
    .await;

    // Attachments over the limit: 413.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![7u8; 5000]).file_name("big.pdf"),
    );
    let r = admin
        .client
        .post(s.url("/api/v1/attachments"))
        .header("x-csrf-token", &admin.csrf)
        .multipart(form)
        .send()
        .await
        .unwrap();
    problem(r, 413).await;

    // Withdraw: inboxes show it withdrawn, without its body.
    let r = admin
        .post(&format!("/api/v1/messages/{mid}/withdraw"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let inbox = student.get_json("/api/v1/inbox").await;
    let w = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["message_id"] == mid)
        .unwrap()
        .clone();
    assert_eq!(w["state"], "withdrawn");
    assert_eq!(w["body_html"], "");

    // notify(): inside the caller's transaction, all or nothing.
    let tenant_id = admin.me["tenant"]["id"].as_i64().unwrap();
    let actor = xiaotong::auth::model::Actor::system(tenant_id, "lessons");
    let n = xiaotong::messaging::Notify {
        template: "lessons.low_balance".into(),
        audience: serde_json::from_value(
            json!({"include": [{"type": "person", "value": zhang_id, "who": "parents"}]}),
        )
        .unwrap(),
        vars: json!({"package": "钢琴 48 课时", "balance": "3.00"}),
        priority: xiaotong::messaging::Priority::Normal,
        channels: vec![],
        source: "lessons".into(),
        recipients: None,
    };
    let messages_before = count(&s.app, Sql::new("SELECT COUNT(*) AS n FROM messages")).await;
    let mut tx = s.app.db.begin().await.unwrap();
    xiaotong::messaging::notify(&mut tx, tenant_id, &actor, &n)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&s.app, Sql::new("SELECT COUNT(*) AS n FROM messages")).await,
        messages_before,
        "rolled back with the caller"
    );
    let mut tx = s.app.db.begin().await.unwrap();
    let nid = xiaotong::messaging::notify(&mut tx, tenant_id, &actor, &n)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    wait_until(
        "the notice in the parent's inbox",
        Duration::from_secs(10),
        || async {
            let inbox = parent.get_json("/api/v1/inbox?unread=true").await;
            inbox["items"].as_array().unwrap().iter().any(|i| {
                i["message_id"] == nid && i["title"] == "张三 课时不足提醒 / renewal reminder"
            })
        },
    )
    .await;

    // notify_many(): several notices in one go, each with its own audience
    // and variables, ids in the order given.
    let audience =
        |v: Value| -> xiaotong::messaging::Audience { serde_json::from_value(v).unwrap() };
    let notice = |aud: Value, package: &str, channels: Vec<String>| xiaotong::messaging::Notify {
        template: "lessons.low_balance".into(),
        audience: audience(aud),
        vars: json!({"package": package, "balance": "1.00"}),
        priority: xiaotong::messaging::Priority::Normal,
        channels,
        source: "lessons".into(),
        recipients: None,
    };
    let class_size = count(
        &s.app,
        Sql::new("SELECT COUNT(*) AS n FROM people WHERE class_id = ? AND active = 1")
            .bind(class_id),
    )
    .await;
    let zhang_parents = count(
        &s.app,
        Sql::new("SELECT COUNT(*) AS n FROM guardianships WHERE student_id = ?").bind(zhang_id),
    )
    .await;
    assert!(zhang_parents >= 1);
    let batch = vec![
        notice(
            json!({"include": [{"type": "person", "value": zhang_id, "who": "parents"}]}),
            "P1",
            vec![],
        ),
        notice(
            json!({"include": [{"type": "class", "value": class_id}], "exclude": [{"type": "person", "value": zhang_id}]}),
            "P2",
            vec![],
        ),
        notice(
            json!({"include": [{"type": "person", "value": -1}]}),
            "P3",
            vec![],
        ),
        notice(
            json!({"include": [{"type": "person", "value": zhang_id, "who": "parents"}]}),
            "P4",
            vec!["inapp".into(), "email".into()],
        ),
        // The caller has read the recipients already (a check-in's
        // parents): they are taken as given, not looked up again.
        xiaotong::messaging::Notify {
            recipients: Some(vec![xiaotong::messaging::audience::Recipient {
                person_id: zhang_id,
                via: 0,
            }]),
            ..notice(
                json!({"include": [{"type": "person", "value": zhang_id, "who": "parents"}]}),
                "P5",
                vec![],
            )
        },
    ];
    let mut tx = s.app.db.begin().await.unwrap();
    let ids = xiaotong::messaging::notify_many(&mut tx, tenant_id, &actor, &batch)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), 5);
    // (package, recipients, written to the inboxes at once: in-app only and
    // at most 64 people; the others keep a frozen audience for the fan-out)
    let expected = [
        ("P1", zhang_parents, true),
        ("P2", class_size - 1, class_size - 1 <= 64),
        ("P3", 0, true),
        ("P4", zhang_parents, false),
        ("P5", 1, true),
    ];
    for (id, (package, recipients, at_once)) in ids.iter().zip(expected) {
        let row = s
            .app
            .db
            .fetch_one(
                &Sql::new("SELECT vars, recipient_count FROM messages WHERE id = ?").bind(*id),
            )
            .await
            .unwrap();
        let vars: Value = serde_json::from_str(&row.str("vars").unwrap()).unwrap();
        assert_eq!(
            vars["package"], package,
            "message {id} has its own variables"
        );
        assert_eq!(row.i64("recipient_count").unwrap(), recipients, "{package}");
        assert_eq!(
            count(
                &s.app,
                Sql::new("SELECT COUNT(*) AS n FROM message_audiences WHERE message_id = ?")
                    .bind(*id)
            )
            .await,
            if at_once { 0 } else { 1 },
            "{package}'s audience is frozen for its fan-out, and only then"
        );
        if at_once {
            assert_eq!(
                count(
                    &s.app,
                    Sql::new("SELECT COUNT(*) AS n FROM inbox WHERE message_id = ?").bind(*id)
                )
                .await,
                recipients,
                "{package} is in its recipients' inboxes at once"
            );
        }
    }
    let p5_reader: i64 = s
        .app
        .db
        .fetch_one(&Sql::new("SELECT person_id FROM inbox WHERE message_id = ?").bind(ids[4]))
        .await
        .unwrap()
        .i64("person_id")
        .unwrap();
    assert_eq!(
        p5_reader, zhang_id,
        "the recipients given, not the audience's"
    );
    // Resolving many audiences at once finds who resolving each finds.
    let classmates: Vec<i64> = s
        .app
        .db
        .fetch_all(&Sql::new("SELECT id FROM people WHERE class_id = ? ORDER BY id").bind(class_id))
        .await
        .unwrap()
        .iter()
        .map(|r| r.i64("id").unwrap())
        .collect();
    let many = [
        json!({"include": [{"type": "person", "value": zhang_id, "who": "both"}]}),
        json!({"include": [{"type": "person", "value": classmates.clone(), "who": "parents"}]}),
        json!({"include": [{"type": "person", "value": classmates, "who": "self"},
                           {"type": "person", "value": zhang_id, "who": "parents"}]}),
        json!({"include": [{"type": "class", "value": class_id, "who": "both"}]}),
        json!({"include": [{"type": "person", "value": [-1, zhang_id]}]}),
    ]
    .map(audience);
    let refs: Vec<&xiaotong::messaging::Audience> = many.iter().collect();
    let mut exec = xiaotong::messaging::store::Exec::Db(&s.app.db);
    let together = xiaotong::messaging::audience::resolve_many(&mut exec, tenant_id, &refs)
        .await
        .unwrap();
    for (a, got) in many.iter().zip(&together) {
        let alone = xiaotong::messaging::audience::resolve(&mut exec, tenant_id, a)
            .await
            .unwrap();
        let pairs = |rs: &[xiaotong::messaging::audience::Recipient]| -> Vec<(i64, i64)> {
            rs.iter().map(|r| (r.person_id, r.via)).collect()
        };
        assert!(!alone.is_empty(), "{a:?}");
        assert_eq!(pairs(got), pairs(&alone), "{a:?}");
    }
    // The in-app-only notice is in the inbox at once; the one with e-mail
    // goes through the fan-out and arrives a moment later.
    let inbox = parent.get_json("/api/v1/inbox?unread=true").await;
    assert!(inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["message_id"] == ids[0]));
    wait_until(
        "the e-mailed notice in the parent's inbox",
        Duration::from_secs(10),
        || async {
            let inbox = parent.get_json("/api/v1/inbox?unread=true").await;
            inbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["message_id"] == ids[3])
        },
    )
    .await;
    s.stop().await;
    sink.stop().await;
}
on_all_backends!(message_center_end_to_end, message_center);

/// A provider that fails with 500, then rate-limits with 429 and
/// Retry-After, then accepts: the worker backs off and honours the delay.
async fn provider_backoff(url: String) {
    use axum::routing::post;
    let hits: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let h = h.clone();
            async move {
                let n = {
                    let mut v = h.lock().unwrap();
                    v.push(Instant::now());
                    v.len()
                };
                assert!(body.contains("\"message_id\""));
                match n {
                    1 => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [("retry-after", "0")],
                        "boom".to_string(),
                    ),
                    2 => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "3")],
                        "slow down".to_string(),
                    ),
                    _ => (StatusCode::OK, [("retry-after", "0")], "ok".to_string()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    quiet_hours_off(&admin, 1_000_000).await;
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/channels/webhook",
            Some(json!({"config": {"kind": "webhook", "url": hook, "secret": "k"}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let msg: Value = admin
        .post("/api/v1/messages", json!({"content": {"title": "停电通知", "body": "明天停电"}, "channels": ["inapp", "webhook"],
            "audience": {"include": [{"type": "role", "value": "teacher"}]}}))
        .await
        .json()
        .await
        .unwrap();
    let mid = msg["id"].as_i64().unwrap();
    assert_eq!(
        admin
            .post(&format!("/api/v1/messages/{mid}/publish"), json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    wait_until("three attempts", Duration::from_secs(30), || async {
        hits.lock().unwrap().len() >= 3
    })
    .await;
    wait_until(
        "the delivery marked sent",
        Duration::from_secs(10),
        || async {
            let rep = admin
                .get_json(&format!("/api/v1/messages/{mid}/delivery"))
                .await;
            rep["by_channel"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["channel"] == "webhook" && c["state"] == "sent")
        },
    )
    .await;
    let t = hits.lock().unwrap().clone();
    assert_eq!(t.len(), 3, "no further attempt after success");
    assert!(
        t[1] - t[0] >= Duration::from_millis(500),
        "backoff after a 500: {:?}",
        t[1] - t[0]
    );
    assert!(
        t[2] - t[1] >= Duration::from_millis(2900),
        "Retry-After honoured: {:?}",
        t[2] - t[1]
    );
    let attempts = count(
        &s.app,
        Sql::new(
            "SELECT attempts AS n FROM deliveries WHERE message_id = ? AND channel = 'webhook'",
        )
        .bind(mid),
    )
    .await;
    assert_eq!(attempts, 3);
    assert_eq!(
        count(
            &s.app,
            Sql::new("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'dead'")
        )
        .await,
        0
    );
    s.stop().await;
}
on_all_backends!(provider_errors_back_off, provider_backoff);

/// The SMTP server is down for 60 s, then back: everything is delivered,
/// nothing is dead-lettered.
async fn smtp_outage(url: String) {
    let sink = SmtpSink::start(None, None).await;
    let port = sink.port;
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let class_id = zhang_class(&admin).await;
    give_emails(&s, class_id).await;
    quiet_hours_off(&admin, 1_000_000).await;
    smtp_channel(&admin, port).await;
    let received = sink.stop().await;

    let msg: Value = admin
        .post("/api/v1/messages", json!({"content": {"title": "家长会", "body": "周五下午家长会"}, "channels": ["inapp", "email"],
            "audience": {"include": [{"type": "class", "value": class_id, "who": "both"}]}}))
        .await
        .json()
        .await
        .unwrap();
    let mid = msg["id"].as_i64().unwrap();
    let published: Value = admin
        .post(&format!("/api/v1/messages/{mid}/publish"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    let n = published["recipient_count"].as_i64().unwrap() as usize;
    let down_at = Instant::now();
    // While it is down, deliveries are retried, not given up.
    wait_until("a failed attempt", Duration::from_secs(30), || async {
        count(&s.app, Sql::new("SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ? AND attempts > 0 AND state = 'pending'").bind(mid)).await > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_at.elapsed())).await;
    assert_eq!(count(&s.app, Sql::new("SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ? AND state IN ('sent', 'dead', 'failed')").bind(mid)).await, 0);
    let sink = SmtpSink::start(Some(port), Some(received)).await;
    assert_eq!(
        sink.wait_for(n, Duration::from_secs(150)).await,
        n,
        "all delivered after the outage"
    );
    wait_until(
        "every delivery marked sent",
        Duration::from_secs(20),
        || async {
            count(
                &s.app,
                Sql::new(
                    "SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ? AND state = 'sent'",
                )
                .bind(mid),
            )
            .await
                == n as i64
        },
    )
    .await;
    assert_eq!(
        count(
            &s.app,
            Sql::new("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'dead'")
        )
        .await,
        0
    );
    let addresses: std::collections::HashSet<String> = sink
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(addresses.len(), n, "each recipient once");
    s.stop().await;
    sink.stop().await;
}
on_all_backends!(smtp_outage_then_delivered, smtp_outage);

/// Scheduling, fallbacks, personal preferences and quiet hours, resending.
async fn delivery_options(url: String) {
    let sink = SmtpSink::start(None, None).await;
    let s = TestServer::start(&url, true).await;
    let admin = s.login("school", "admin").await;
    let student = s.login("school", "student").await;
    let class_id = zhang_class(&admin).await;
    give_emails(&s, class_id).await;
    smtp_channel(&admin, sink.port).await;
    // No WeCom account → e-mail instead.
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/messaging/settings",
            Some(json!({"quiet_start": null, "quiet_end": null, "fallbacks": {"wecom": "email"}, "urgent_sms": false,
                "max_attachment_bytes": 1000000})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // 张三 wants no e-mail for notices, and has quiet hours all day long
    // (for other message types).
    let zhang = student.me["id"].as_i64().unwrap();
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let start = now - chrono::Duration::minutes(30);
    let end = now + chrono::Duration::minutes(90);
    let r = student
        .send(
            Method::PUT,
            "/api/v1/me/preferences",
            Some(
                json!({"channels": {"notice": []}, "quiet_start": start.format("%H:%M").to_string(),
                "quiet_end": end.format("%H:%M").to_string()}),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    problem(
        student
            .send(
                Method::PUT,
                "/api/v1/me/preferences",
                Some(json!({"channels": {}, "quiet_start": "25:00", "quiet_end": "07:00"})),
            )
            .await,
        422,
    )
    .await;

    // Scheduled two seconds ahead.
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let msg: Value = admin
        .post(
            "/api/v1/messages",
            json!({"content": {"title": "运动会", "body": "周三运动会"}, "kind": "notice",
            "channels": ["inapp", "wecom"], "publish_at": at,
            "audience": {"include": [{"type": "class", "value": class_id}]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let mid = msg["id"].as_i64().unwrap();
    let r: Value = admin
        .post(&format!("/api/v1/messages/{mid}/publish"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "scheduled");
    assert!(student.get_json("/api/v1/inbox").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["message_id"] != mid));
    wait_until(
        "the scheduled message published",
        Duration::from_secs(20),
        || async {
            admin.get_json(&format!("/api/v1/messages/{mid}")).await["state"] == "published"
        },
    )
    .await;
    wait_until("the inbox entry", Duration::from_secs(10), || async {
        student.get_json("/api/v1/inbox").await["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["message_id"] == mid)
    })
    .await;
    let students = count(
        &s.app,
        Sql::new("SELECT COUNT(*) AS n FROM people WHERE class_id = ? AND active = 1")
            .bind(class_id),
    )
    .await as usize;
    // Everyone but 张三 (who declined e-mail for notices) gets the fallback e-mail.
    assert_eq!(
        sink.wait_for(students - 1, Duration::from_secs(30)).await,
        students - 1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), students - 1);
    let fallbacks = count(&s.app, Sql::new("SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ? AND channel = 'email' AND fallback_from = 'wecom'").bind(mid)).await;
    assert_eq!(fallbacks as usize, students - 1);
    assert!(!sink
        .received
        .lock()
        .unwrap()
        .iter()
        .any(|(to, _)| to == &format!("p{zhang}@school.test")));

    // An exam schedule is not a notice: 张三 gets it, but only after his quiet hours.
    let msg: Value = admin
        .post("/api/v1/messages", json!({"content": {"title": "补考", "body": "补考安排"}, "kind": "exam",
            "channels": ["inapp", "email"], "audience": {"include": [{"type": "person", "value": zhang}]}}))
        .await
        .json()
        .await
        .unwrap();
    let exam = msg["id"].as_i64().unwrap();
    admin
        .post(&format!("/api/v1/messages/{exam}/publish"), json!({}))
        .await;
    wait_until("the held delivery", Duration::from_secs(10), || async {
        count(&s.app, Sql::new("SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ? AND state = 'pending' AND next_at > ?")
            .bind(exam).bind(chrono::Utc::now().timestamp_millis() + 3_600_000)).await == 1
    })
    .await;
    // Urgent messages ignore quiet hours.
    let msg: Value = admin
        .post("/api/v1/messages", json!({"content": {"title": "紧急停课", "body": "台风停课"}, "kind": "exam", "priority": "urgent",
            "channels": ["inapp", "email"], "audience": {"include": [{"type": "person", "value": zhang}]}}))
        .await
        .json()
        .await
        .unwrap();
    let urgent = msg["id"].as_i64().unwrap();
    let before = sink.count();
    admin
        .post(&format!("/api/v1/messages/{urgent}/publish"), json!({}))
        .await;
    assert_eq!(
        sink.wait_for(before + 1, Duration::from_secs(20)).await,
        before + 1
    );
    assert_eq!(sink.received.lock().unwrap().last().unwrap().1, "紧急停课");

    // Resend to those who have not read the first notice: e-mail again.
    let before = sink.count();
    let r: Value = admin
        .post(
            &format!("/api/v1/messages/{mid}/resend"),
            json!({"to": "unread"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["deliveries"].as_u64().unwrap() as usize, students - 1);
    assert_eq!(
        sink.wait_for(before + students - 1, Duration::from_secs(30))
            .await,
        before + students - 1
    );
    problem(
        admin
            .post(
                &format!("/api/v1/messages/{mid}/resend"),
                json!({"to": "everyone"}),
            )
            .await,
        422,
    )
    .await;
    s.stop().await;
    sink.stop().await;
}
on_all_backends!(delivery_options_work, delivery_options);
