//! A tiny real HTTP server (axum on 127.0.0.1:0) that records every request
//! and answers through a provider-specific closure. The closure checks the
//! request as the provider documents it and pushes every violation into
//! `problems`; tests end with [`Mock::assert_clean`].

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// Decoded query pairs (in order).
    pub fn query(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.raw_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn q(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(v: serde_json::Value) -> Self {
        Self::status_json(StatusCode::OK, v)
    }

    pub fn status_json(status: StatusCode, v: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json;charset=utf-8".to_owned())],
            body: v.to_string(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

pub type Problems = Vec<String>;

/// Records a problem when `cond` is false.
pub fn check(problems: &mut Problems, cond: bool, what: impl Into<String>) {
    if !cond {
        problems.push(what.into());
    }
}

/// Records a problem when `got != want`.
pub fn check_eq<T: PartialEq + std::fmt::Debug>(
    problems: &mut Problems,
    got: T,
    want: T,
    what: &str,
) {
    if got != want {
        problems.push(format!("{what}: got {got:?}, want {want:?}"));
    }
}

type Handler = dyn Fn(&Req, &mut Problems) -> Reply + Send + Sync;

#[derive(Clone)]
struct State {
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<Req>>>,
    problems: Arc<Mutex<Problems>>,
}

/// A running mock provider.
pub struct Mock {
    pub base: String,
    requests: Arc<Mutex<Vec<Req>>>,
    problems: Arc<Mutex<Problems>>,
}

impl Mock {
    pub async fn start(
        handler: impl Fn(&Req, &mut Problems) -> Reply + Send + Sync + 'static,
    ) -> Mock {
        let state = State {
            handler: Arc::new(handler),
            requests: Arc::default(),
            problems: Arc::default(),
        };
        let app = Router::new().fallback(serve).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock server");
        });
        Mock {
            base: format!("http://{addr}"),
            requests: state.requests,
            problems: state.problems,
        }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// Panics with every recorded protocol violation.
    pub fn assert_clean(&self) {
        let p = self.problems.lock().expect("lock");
        assert!(
            p.is_empty(),
            "the mock provider saw protocol violations:\n  {}",
            p.join("\n  ")
        );
    }
}

async fn serve(
    axum::extract::State(state): axum::extract::State<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method,
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or("").to_owned(),
        headers,
        body,
    };
    let mut problems = Vec::new();
    let reply = (state.handler)(&req, &mut problems);
    if !problems.is_empty() {
        let mut all = state.problems.lock().expect("lock");
        all.extend(
            problems
                .into_iter()
                .map(|p| format!("{} {}: {p}", req.method, req.path)),
        );
    }
    state.requests.lock().expect("lock").push(req);
    let mut resp = (reply.status, reply.body).into_response();
    for (k, v) in reply.headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

// ---- independent crypto helpers (do not use the crate's signers) ----

pub fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

pub fn hmac1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(key).expect("hmac key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// RFC 3986 percent-encoding, written out by hand.
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Parses `Key=Value` items of an Authorization header (after the scheme).
pub fn auth_fields(
    header: &str,
    scheme: &str,
    sep: &str,
) -> std::collections::HashMap<String, String> {
    header
        .strip_prefix(scheme)
        .unwrap_or("")
        .trim()
        .split(sep)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// One delivery with a plain message.
pub fn delivery(id: &str, to: &str, text: &str) -> xiaotong_channels::Delivery {
    xiaotong_channels::Delivery {
        id: id.to_owned(),
        to: to.to_owned(),
        message: xiaotong_channels::OutgoingMessage {
            subject: "通知".to_owned(),
            text: text.to_owned(),
            ..Default::default()
        },
    }
}
