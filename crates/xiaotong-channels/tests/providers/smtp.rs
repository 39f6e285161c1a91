//! E-mail against a real SMTP server process (Python aiosmtpd, installed by
//! `.ci/setup-channels.sh`).

use crate::common::delivery;
use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use xiaotong_channels::{
    Channel, Delivery, DeliveryOutcome, Idempotency, SmtpChannel, SmtpConfig, SmtpSecurity,
};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/providers/smtp_server.py"
);

struct SmtpServer {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        Self::start_with(&[]).await
    }

    async fn start_with(args: &[&str]) -> SmtpServer {
        let probe = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "the SMTP tests need Python's aiosmtpd (a real SMTP server); run .ci/setup-channels.sh.\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("the SMTP tests need python3 with aiosmtpd; run .ci/setup-channels.sh ({e})"),
        }
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3 smtp_server.py");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                sink.lock().expect("lock").push(line);
            }
        });
        let server = SmtpServer {
            port: 0,
            lines,
            child,
        };
        let port_line = server
            .wait(Duration::from_secs(15), |l| {
                l.iter().any(|x| x.starts_with("PORT "))
            })
            .await
            .into_iter()
            .find_map(|x| x.strip_prefix("PORT ").map(str::to_owned))
            .expect("aiosmtpd did not report its port");
        SmtpServer {
            port: port_line.trim().parse().expect("port"),
            ..server
        }
    }

    /// Waits until `done(lines)` or the timeout; returns the lines.
    async fn wait(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            let now = self.lines.lock().expect("lock").clone();
            if done(&now) || start.elapsed() > timeout {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn messages(&self, n: usize) -> Vec<serde_json::Value> {
        let count = |l: &[String]| l.iter().filter(|x| x.starts_with("MSG ")).count();
        self.wait(Duration::from_secs(20), |l| count(l) >= n)
            .await
            .iter()
            .filter_map(|x| x.strip_prefix("MSG "))
            .map(|j| serde_json::from_str(j).expect("MSG json"))
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    fn connections(&self) -> usize {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|x| x.starts_with("CONN "))
            .count()
    }
}

fn config(port: u16, pool_size: u32) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        from: "校通 <noreply@school.example>".into(),
        reply_to: Some("office@school.example".into()),
        pool_size,
        idle_timeout_secs: 30,
        timeout_secs: 10,
        accept_invalid_certs: false,
        hello_name: Some("xiaotong.test".into()),
        message_id_domain: None,
    }
}

fn mail(i: usize) -> Delivery {
    let mut d = delivery(
        &format!("dl-{i}"),
        &format!("student{i}@example.org"),
        &format!("第{i}号通知：明天考试。"),
    );
    d.message.subject = format!("考试安排 #{i}");
    d.message.html = Some(format!("<p>第{i}号通知：<b>明天考试</b>。</p>"));
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_200_reuses_pooled_connections() {
    let server = SmtpServer::start().await;
    let ch = SmtpChannel::new(config(server.port, 4)).expect("smtp channel");
    assert_eq!(ch.idempotency(), Idempotency::DeliveryIdKey);
    let batch: Vec<Delivery> = (0..200).map(mail).collect();
    let started = Instant::now();
    let out = ch.send(&batch).await;
    eprintln!("200 mails sent in {:?}", started.elapsed());
    let failures: Vec<_> = out.iter().filter(|r| !r.outcome.is_sent()).collect();
    assert!(failures.is_empty(), "not sent: {failures:?}");
    assert_eq!(
        out[7].outcome,
        DeliveryOutcome::Sent {
            provider_message_id: Some("<dl-7@school.example>".into())
        }
    );

    let msgs = server.messages(200).await;
    assert_eq!(
        msgs.len(),
        200,
        "the SMTP server received {} mails",
        msgs.len()
    );
    let mut seen = HashSet::new();
    for m in &msgs {
        let rcpt = m["rcpt_tos"][0].as_str().expect("rcpt");
        assert_eq!(m["rcpt_tos"].as_array().map(Vec::len), Some(1));
        let i: usize = rcpt
            .strip_prefix("student")
            .and_then(|r| r.strip_suffix("@example.org"))
            .and_then(|n| n.parse().ok())
            .expect("recipient index");
        assert!(seen.insert(i), "duplicate mail for {rcpt}");
        assert_eq!(m["mail_from"], "noreply@school.example");
        assert_eq!(m["subject"], format!("考试安排 #{i}"));
        assert_eq!(m["message_id"], format!("<dl-{i}@school.example>"));
        assert_eq!(m["content_type"], "multipart/alternative");
        assert_eq!(
            m["parts"]["text/plain"].as_str().map(str::trim_end),
            Some(format!("第{i}号通知：明天考试。").as_str())
        );
        assert_eq!(
            m["parts"]["text/html"].as_str().map(str::trim_end),
            Some(format!("<p>第{i}号通知：<b>明天考试</b>。</p>").as_str())
        );
    }
    let ports: HashSet<u64> = msgs
        .iter()
        .filter_map(|m| m["peer_port"].as_u64())
        .collect();
    let conns = server.connections();
    eprintln!(
        "200 mails over {} connections ({conns} opened)",
        ports.len()
    );
    assert!(
        (1..=4).contains(&ports.len()) && conns <= 4,
        "200 mails should reuse at most 4 pooled connections, used {} ({conns} opened)",
        ports.len()
    );

    // A second batch reuses the pool: no new connections.
    let out = ch.send(&[mail(200), mail(201)]).await;
    assert!(out.iter().all(|r| r.outcome.is_sent()));
    server.messages(202).await;
    assert_eq!(
        server.connections(),
        conns,
        "second batch opened new connections"
    );
}

#[tokio::test]
async fn refused_recipients_are_mapped() {
    let server = SmtpServer::start().await;
    let ch = SmtpChannel::new(config(server.port, 1)).expect("smtp channel");
    let mut plain = delivery("plain", "parent@example.org", "只有纯文本");
    plain.message.subject = "通知".into();
    let out = ch
        .send(&[
            delivery("nobody", "nobody@example.org", "x"),
            delivery("busy", "busy@example.org", "x"),
            plain,
            delivery("bad", "not an address", "x"),
        ])
        .await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::UnknownRecipient { code, .. } if code == "550"),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(&out[1].outcome, DeliveryOutcome::Failed { retryable: true, code, .. } if code == "451"),
        "{:?}",
        out[1]
    );
    assert!(out[2].outcome.is_sent(), "{:?}", out[2]);
    assert!(matches!(
        &out[3].outcome,
        DeliveryOutcome::UnknownRecipient { .. }
    ));
    let msgs = server.messages(1).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["content_type"], "text/plain");
    assert_eq!(
        msgs[0]["rcpt_tos"],
        serde_json::json!(["parent@example.org"])
    );
    assert_eq!(
        msgs[0]["parts"]["text/plain"].as_str().map(str::trim_end),
        Some("只有纯文本")
    );
}

#[tokio::test]
async fn server_down_is_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let ch = SmtpChannel::new(config(port, 2)).expect("smtp channel");
    let out = ch.send(&[mail(1)]).await;
    assert!(out[0].outcome.is_retryable(), "{:?}", out[0]);
}

fn tls_config(port: u16, security: SmtpSecurity, password: &str) -> SmtpConfig {
    SmtpConfig {
        security,
        username: Some("alice".into()),
        password: Some(xiaotong_channels::Secret::new(password)),
        accept_invalid_certs: true,
        ..config(port, 2)
    }
}

#[tokio::test]
async fn starttls_with_auth() {
    let server = SmtpServer::start_with(&["--tls", "starttls", "--auth", "alice:s3cret"]).await;
    let ch = SmtpChannel::new(tls_config(server.port, SmtpSecurity::StartTls, "s3cret"))
        .expect("channel");
    let out = ch.send(&[mail(1), mail(2), mail(3)]).await;
    assert!(out.iter().all(|r| r.outcome.is_sent()), "{out:?}");
    let msgs = server.messages(3).await;
    assert_eq!(msgs.len(), 3);
    for m in &msgs {
        assert_eq!(m["tls"], true, "mail went over STARTTLS");
        assert_eq!(m["authenticated"], true);
        assert_eq!(m["login"], "alice");
    }
    ch.close().await;

    let wrong =
        SmtpChannel::new(tls_config(server.port, SmtpSecurity::StartTls, "nope")).expect("channel");
    let out = wrong.send(&[mail(4)]).await;
    assert!(
        matches!(&out[0].outcome, DeliveryOutcome::Failed { retryable: false, code, .. } if code == "535"),
        "{:?}",
        out[0]
    );

    // Without accept_invalid_certs the self-signed test certificate is refused.
    let strict = SmtpChannel::new(SmtpConfig {
        accept_invalid_certs: false,
        ..tls_config(server.port, SmtpSecurity::StartTls, "s3cret")
    })
    .expect("channel");
    let out = strict.send(&[mail(5)]).await;
    assert!(
        out[0].outcome.is_retryable() && !out[0].outcome.is_sent(),
        "{:?}",
        out[0]
    );
    assert_eq!(server.messages(3).await.len(), 3);
}

#[tokio::test]
async fn implicit_tls_with_auth() {
    let server = SmtpServer::start_with(&["--tls", "implicit", "--auth", "alice:s3cret"]).await;
    let ch =
        SmtpChannel::new(tls_config(server.port, SmtpSecurity::Tls, "s3cret")).expect("channel");
    let out = ch.send(&[mail(1), mail(2)]).await;
    assert!(out.iter().all(|r| r.outcome.is_sent()), "{out:?}");
    let msgs = server.messages(2).await;
    assert_eq!(msgs.len(), 2);
    assert!(msgs
        .iter()
        .all(|m| m["tls"] == true && m["login"] == "alice"));
}

#[tokio::test]
async fn recovers_after_the_server_restarts() {
    let first = SmtpServer::start().await;
    let port = first.port;
    let ch = SmtpChannel::new(config(port, 2)).expect("channel");
    assert!(ch
        .send(&[mail(1), mail(2)])
        .await
        .iter()
        .all(|r| r.outcome.is_sent()));
    assert_eq!(first.messages(2).await.len(), 2);
    first.stop().await;

    // Down: pooled connections are dead and new ones are refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = ch.send(&[mail(3)]).await;
    assert!(out[0].outcome.is_retryable(), "{:?}", out[0]);

    // Back on the same port: delivered again, without a wasted attempt.
    let port_arg = port.to_string();
    let second = SmtpServer::start_with(&["--port", &port_arg]).await;
    let out = ch.send(&[mail(3), mail(4)]).await;
    assert!(out.iter().all(|r| r.outcome.is_sent()), "{out:?}");
    assert_eq!(second.messages(2).await.len(), 2);
}
