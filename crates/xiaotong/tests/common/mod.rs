//! Test harness: a fresh database per test on each configured backend, and
//! a real server on a random port.

#![allow(dead_code)]

pub mod smtp;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Executor;
use std::sync::atomic::{AtomicU64, Ordering};
use xiaotong::app::{App, Settings};
use xiaotong::crypto::Keys;
use xiaotong::server::Running;

pub const PASSWORD: &str = "Demo@2026";

/// Backends to run on: SQLite always; PostgreSQL and MariaDB when the
/// environment names them (CI always does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    format!(
        "xt_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        rand::random::<u32>()
    )
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[after_scheme..].find('/').map(|i| i + after_scheme);
    let host = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    format!("{host}/{db}{query}")
}

/// A new, empty database; `None` when the backend is not configured.
pub async fn fresh_database(backend: Backend) -> Option<String> {
    sqlx::any::install_default_drivers();
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("xiaotong-tests");
            std::fs::create_dir_all(&dir).ok()?;
            Some(format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{}.db", unique_name())).display()
            ))
        }
        Backend::Postgres => {
            let admin = std::env::var("XIAOTONG_TEST_POSTGRES_URL").ok()?;
            let name = unique_name();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create database");
            Some(replace_db(&admin, &name))
        }
        Backend::MySql => {
            let admin = std::env::var("XIAOTONG_TEST_MYSQL_URL").ok()?;
            let name = unique_name();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect to MariaDB");
            conn.execute(
                format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                    .as_str(),
            )
            .await
            .expect("create database");
            Some(replace_db(&admin, &name))
        }
    }
}

/// Run a test body once per configured backend, each on its own database.
#[macro_export]
macro_rules! on_all_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::common::run_on($crate::common::Backend::Sqlite, |url| $body(url)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::common::run_on($crate::common::Backend::Postgres, |url| $body(url)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                $crate::common::run_on($crate::common::Backend::MySql, |url| $body(url)).await;
            }
        }
    };
}

pub async fn run_on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match fresh_database(backend).await {
        Some(url) => body(url).await,
        None => eprintln!("{backend:?} not configured (XIAOTONG_TEST_POSTGRES_URL / XIAOTONG_TEST_MYSQL_URL); not run"),
    }
}

pub fn test_keys() -> Keys {
    Keys::from_bytes(&[42u8; 32])
}

pub async fn open_app(url: &str) -> App {
    let settings = Settings {
        database_url: url.to_string(),
        ..Settings::default()
    };
    let app = App::open(settings, test_keys())
        .await
        .expect("open database");
    xiaotong::db::migrate(&app.db).await.expect("migrate");
    app
}

/// A running server with the demo data set.
pub struct TestServer {
    pub app: App,
    pub base: String,
    running: Option<Running>,
}

impl TestServer {
    pub async fn start(url: &str, seed: bool) -> TestServer {
        let app = open_app(url).await;
        if seed {
            xiaotong::demo::seed(&app).await.expect("seed demo data");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = xiaotong::server::start(app.clone(), listener, true)
            .await
            .expect("start server");
        TestServer {
            base: format!("http://{}", running.addr),
            app,
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, tenant: &str, login: &str) -> Session {
        self.login_with(tenant, login, PASSWORD)
            .await
            .expect("log in")
    }

    pub async fn login_with(
        &self,
        tenant: &str,
        login: &str,
        password: &str,
    ) -> Result<Session, Response> {
        let client = Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let resp = client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"tenant": tenant, "login": login, "password": password}))
            .send()
            .await
            .expect("login request");
        if resp.status() != StatusCode::OK {
            return Err(resp);
        }
        let csrf = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix("xt_csrf=")
                    .map(|r| r.split(';').next().unwrap_or("").to_string())
            })
            .expect("csrf cookie");
        let me: Value = resp.json().await.expect("me");
        Ok(Session {
            client,
            base: self.base.clone(),
            csrf,
            me,
        })
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// A logged-in browser-like client (cookies + CSRF header).
pub struct Session {
    pub client: Client,
    pub base: String,
    pub csrf: String,
    pub me: Value,
}

impl Session {
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.expect("json")
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let mut rb = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// Assert a problem+json response and return its body.
pub async fn problem(resp: Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(ct, "application/problem+json");
    let v: Value = resp.json().await.expect("problem body");
    assert_eq!(v["status"].as_u64(), Some(status as u64));
    v
}
