//! `cargo xtask bench import`: a 20,000-row XLSX into a fresh database.

#[path = "common.rs"]
mod common;

use std::time::Instant;
use xiaotong::auth::Actor;
use xiaotong::directory::import::{self, ImportMode};

#[tokio::main]
async fn main() {
    let rows = 20_000;
    let bytes = common::people_xlsx(rows);
    println!("machine: {}", common::machine());
    for backend in ["sqlite", "postgres"] {
        let Some(app) = common::fresh(backend).await else {
            continue;
        };
        let t = xiaotong::directory::service::create_tenant(&app, "bench", "Bench")
            .await
            .expect("tenant");
        let actor = Actor::system(t.id, "bench");
        let started = Instant::now();
        let table = import::parse_file("people.xlsx", &bytes).expect("parse");
        let parsed = started.elapsed().as_secs_f64();
        let out = import::run(&app, &actor, &table, ImportMode::AllOrNothing, &|_, _| {})
            .await
            .expect("import");
        let first = started.elapsed().as_secs_f64();
        assert_eq!(out.created, rows, "{:?}", out.errors.first());
        let again = Instant::now();
        let table = import::parse_file("people.xlsx", &bytes).expect("parse");
        let out2 = import::run(&app, &actor, &table, ImportMode::AllOrNothing, &|_, _| {})
            .await
            .expect("re-import");
        assert_eq!(out2.unchanged, rows);
        let second = again.elapsed().as_secs_f64();
        println!("bench=import db={backend} rows={rows} parse_seconds={parsed:.2} seconds={first:.2} reimport_seconds={second:.2}");
        common::discard(app).await;
    }
}
