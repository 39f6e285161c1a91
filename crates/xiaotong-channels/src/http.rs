//! Shared HTTP plumbing for the HTTP-based adapters.

use crate::error::{ChannelError, Result};
use crate::model::DeliveryOutcome;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Timeouts shared by the HTTP adapters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpOptions {
    /// Whole-request timeout in seconds.
    pub timeout_secs: u64,
    /// Connect timeout in seconds.
    pub connect_timeout_secs: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout_secs: 15,
            connect_timeout_secs: 5,
        }
    }
}

/// Delay used when a provider rate-limits without saying for how long.
pub(crate) const DEFAULT_RATE_LIMIT_DELAY: Duration = Duration::from_secs(60);

pub(crate) fn client(opts: &HttpOptions) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(opts.timeout_secs.max(1)))
        .connect_timeout(Duration::from_secs(opts.connect_timeout_secs.max(1)))
        .user_agent(concat!("xiaotong-channels/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ChannelError::Http)
}

/// Parses and normalises a base URL (no trailing slash).
pub(crate) fn base_url(raw: &str, what: &str) -> Result<String> {
    let url = url::Url::parse(raw)
        .map_err(|e| ChannelError::Config(format!("{what}: invalid URL {raw:?}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ChannelError::Config(format!(
            "{what}: URL must be http(s), got {raw:?}"
        )));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// A transport failure (no HTTP answer): always retryable.
pub(crate) fn transport_failure(err: &reqwest::Error) -> DeliveryOutcome {
    let code = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "transport"
    };
    // reqwest errors carry the URL, which may contain secrets (webhook keys,
    // access tokens): strip it before the message is stored.
    let msg = err.to_string();
    let msg = match err.url() {
        Some(u) => msg.replace(u.as_str(), "<url>"),
        None => msg,
    };
    DeliveryOutcome::failed(true, code, msg)
}

/// `Retry-After` as delta-seconds or HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(delta).unwrap_or(0)))
}

/// Maps a non-success HTTP status to an outcome: 429 → retry after, 408 and
/// 5xx → retryable, other 4xx → permanent.
pub(crate) fn status_outcome(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> DeliveryOutcome {
    let snippet: String = body.chars().take(300).collect();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = retry_after(headers).unwrap_or(DEFAULT_RATE_LIMIT_DELAY);
        return DeliveryOutcome::retry_after(after, "429", snippet);
    }
    let retryable = status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        if let Some(after) = retry_after(headers) {
            return DeliveryOutcome::retry_after(after, "503", snippet);
        }
    }
    DeliveryOutcome::failed(retryable, status.as_u16().to_string(), snippet)
}

/// Sends a prepared request and returns `(status, headers, body)`, or the
/// transport failure outcome.
pub(crate) async fn execute(
    req: reqwest::RequestBuilder,
) -> std::result::Result<(StatusCode, HeaderMap, String), DeliveryOutcome> {
    let resp = req.send().await.map_err(|e| transport_failure(&e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| transport_failure(&e))?;
    Ok((status, headers, body))
}

/// Current Unix time in seconds.
pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Random lower-case hex nonce of `bytes` random bytes.
pub(crate) fn nonce_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(17)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn status_mapping() {
        let h = HeaderMap::new();
        assert!(matches!(
            status_outcome(StatusCode::TOO_MANY_REQUESTS, &h, ""),
            DeliveryOutcome::RetryAfter { after, .. } if after == DEFAULT_RATE_LIMIT_DELAY
        ));
        assert!(status_outcome(StatusCode::BAD_GATEWAY, &h, "").is_retryable());
        assert!(!status_outcome(StatusCode::FORBIDDEN, &h, "").is_retryable());
    }

    #[test]
    fn base_url_checks() {
        assert_eq!(
            base_url("http://127.0.0.1:9/", "x").expect("ok"),
            "http://127.0.0.1:9"
        );
        assert!(base_url("ftp://x", "x").is_err());
        assert!(base_url("not a url", "x").is_err());
    }
}
