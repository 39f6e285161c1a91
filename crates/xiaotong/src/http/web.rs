//! The web app, embedded into the binary from `web/dist` at build time.
//! A build without the app (no npm) still compiles and says how to build it.

use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = r#"<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>校通 Xiaotong</title>
<body style="font-family:sans-serif;max-width:40rem;margin:4rem auto">
<h1>校通 Xiaotong</h1>
<p>The web app is not built into this binary. Build it and then the binary:</p>
<pre>cargo xtask web      # npm ci &amp;&amp; npm run build in web/
cargo build --release</pre>
<p>网页应用尚未构建：请先运行 <code>cargo xtask web</code>，再重新编译。The API is available at <a href="/api/openapi.json">/api/openapi.json</a>.</p>
</body></html>"#;

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if !path.is_empty() {
        if let Some(file) = Assets::get(path) {
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            return (
                [
                    (header::CONTENT_TYPE, file.metadata.mimetype().to_string()),
                    (header::CACHE_CONTROL, cache.to_string()),
                ],
                file.data,
            )
                .into_response();
        }
        if path.starts_with("assets/") {
            return StatusCode::NOT_FOUND.into_response();
        }
    }
    // Client-side routes all get the app's index page.
    match Assets::get("index.html") {
        Some(f) => ([(header::CACHE_CONTROL, "no-cache")], Html(f.data)).into_response(),
        None => Html(NOT_BUILT).into_response(),
    }
}
