//! `cargo xtask bench people`: list and search latency over HTTP with 20,000 people.

#[path = "common.rs"]
mod common;

use std::time::Instant;
use xiaotong::auth::Actor;
use xiaotong::directory::import::{self, ImportMode};

#[tokio::main]
async fn main() {
    println!("machine: {}", common::machine());
    for backend in ["sqlite", "postgres"] {
        let Some(app) = common::fresh(backend).await else {
            continue;
        };
        xiaotong::demo::seed(&app).await.expect("seed");
        let school = xiaotong::auth::store::tenant_by_code(&app.db, "school")
            .await
            .expect("q")
            .expect("school");
        // The demo has ≈ 7,800 people in the school; top up to 20,000.
        let extra = 12_300;
        let table = import::parse_file("p.xlsx", &common::people_xlsx(extra)).expect("parse");
        import::run(
            &app,
            &Actor::system(school.id, "bench"),
            &table,
            ImportMode::AllOrNothing,
            &|_, _| {},
        )
        .await
        .expect("import");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = xiaotong::server::start(app.clone(), listener, false)
            .await
            .expect("serve");
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let login = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"tenant": "school", "login": "admin", "password": xiaotong::demo::DEMO_PASSWORD}))
            .send()
            .await
            .expect("login");
        assert!(login.status().is_success());
        let total: serde_json::Value = client
            .get(format!("{base}/api/v1/people?per_page=1"))
            .send()
            .await
            .expect("q")
            .json()
            .await
            .expect("json");
        let queries = [
            "",
            "q=zs",
            "q=%E5%BC%A0",
            "q=wang",
            "q=13800138000",
            "q=B00123",
            "kind=student&page=50",
            "q=li&kind=parent",
        ];
        let mut lat = vec![];
        let mut by_shape: Vec<Vec<f64>> = vec![vec![]; queries.len()];
        for round in 0..100 {
            for (qi, q) in queries.iter().enumerate() {
                let t = Instant::now();
                let r = client
                    .get(format!("{base}/api/v1/people?{q}&per_page=20"))
                    .send()
                    .await
                    .expect("get");
                assert!(r.status().is_success());
                let _ = r.bytes().await;
                if round > 0 {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    lat.push(ms);
                    by_shape[qi].push(ms);
                }
            }
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        for (q, mut l) in queries.iter().zip(by_shape) {
            l.sort_by(|a, b| a.total_cmp(b));
            println!(
                "  {backend} {q:<24} p50 {:.1} ms  p99 {:.1} ms",
                common::percentile(&l, 0.5),
                common::percentile(&l, 0.99)
            );
        }
        running.stop().await;
        println!(
            "bench=people db={backend} people={} requests={} p50_ms={:.1} p99_ms={:.1}",
            total["total"],
            lat.len(),
            common::percentile(&lat, 0.5),
            common::percentile(&lat, 0.99)
        );
        common::discard(app).await;
    }
}
