//! Shared pieces of the benchmark programs.
#![allow(dead_code)]

use xiaotong::app::{App, Settings};
use xiaotong::crypto::Keys;

pub async fn fresh(backend: &str) -> Option<App> {
    sqlx::any::install_default_drivers();
    // XIAOTONG_BENCH_DBS=postgres (a comma-separated list) runs only those.
    if let Ok(only) = std::env::var("XIAOTONG_BENCH_DBS") {
        if !only.split(',').any(|b| b.trim() == backend) {
            return None;
        }
    }
    let name = format!("xt_bench_{}_{}", std::process::id(), rand::random::<u32>());
    let url = match backend {
        "sqlite" => {
            let dir = std::env::temp_dir().join("xiaotong-bench");
            std::fs::create_dir_all(&dir).ok()?;
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{name}.db")).display()
            )
        }
        "postgres" => {
            let admin = std::env::var("XIAOTONG_TEST_POSTGRES_URL").ok()?;
            on_postgres_server(&admin, &format!("CREATE DATABASE {name}"))
                .await
                .ok()?;
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .unwrap_or(admin);
            format!("{base}/{name}")
        }
        _ => return None,
    };
    let settings = Settings {
        database_url: url,
        ..Settings::default()
    };
    let app = App::open(settings, Keys::from_bytes(&[9u8; 32]))
        .await
        .ok()?;
    xiaotong::db::migrate(&app.db).await.ok()?;
    Some(app)
}

/// Remove the database [`fresh`] made: a run leaves a million ledger
/// entries behind, hundreds of megabytes per database.
pub async fn discard(app: App) {
    let url = app.settings.database_url.clone();
    app.db.close().await;
    drop(app);
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let file = rest.split('?').next().unwrap_or(rest);
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{file}{suffix}")).ok();
        }
    } else if let (Some((_, name)), Ok(admin)) = (
        url.rsplit_once('/'),
        std::env::var("XIAOTONG_TEST_POSTGRES_URL"),
    ) {
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        if let Err(e) = on_postgres_server(&admin, &drop).await {
            eprintln!("could not drop the benchmark database {name}: {e}");
        }
    }
}

/// Run one statement on the PostgreSQL server of `admin` (creating and
/// dropping databases cannot go through a pool on the database itself).
async fn on_postgres_server(admin: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut c = sqlx::AnyConnection::connect(admin).await?;
    c.execute(sql).await?;
    Ok(())
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{} cores, {cpu}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    )
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A 20,000-row people sheet: students with parents, in 400 classes.
pub fn people_xlsx(rows: usize) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in [
        "类型",
        "学号工号",
        "姓名",
        "性别",
        "手机号",
        "部门",
        "班级",
        "标签",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, c as u16, *h).expect("header");
    }
    let surnames = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];
    let given = [
        "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军",
    ];
    for i in 0..rows {
        let r = (i + 1) as u32;
        let name = format!(
            "{}{}{}",
            surnames[i % 10],
            given[(i / 10) % 12],
            given[(i / 120) % 12]
        );
        ws.write_string(r, 0, "学生").expect("cell");
        ws.write_string(r, 1, format!("B{:07}", i + 1))
            .expect("cell");
        ws.write_string(r, 2, name).expect("cell");
        ws.write_string(r, 3, if i % 2 == 0 { "男" } else { "女" })
            .expect("cell");
        ws.write_number(r, 4, 13_000_000_000.0 + i as f64)
            .expect("cell");
        ws.write_string(r, 5, format!("第{}系", i % 8 + 1))
            .expect("cell");
        ws.write_string(r, 6, format!("2026级{}班", i % 400 + 1))
            .expect("cell");
        ws.write_string(r, 7, if i % 5 == 0 { "住校生" } else { "" })
            .expect("cell");
    }
    wb.save_to_buffer().expect("xlsx")
}

/// Planner statistics for a freshly filled PostgreSQL database, as
/// autovacuum gathers them within its next round (up to a minute) on a
/// running server. Without them the planner takes every table for empty
/// and joins people by scanning them per row: the benchmark would time
/// a state no school's server stays in. SQLite and MariaDB keep their
/// statistics as they are in service (neither gathers them on its own here).
pub async fn analyze(app: &App) {
    if app.db.backend() == xiaotong::db::Backend::Postgres {
        app.db
            .execute(&xiaotong::db::Sql::new("ANALYZE"))
            .await
            .expect("analyze");
    }
}

/// The machine's busy CPU time so far, in seconds (all processes: the
/// benchmark, the database server, anything else), from /proc/stat.
/// Differences of it give the CPU a run cost, which varies far less with
/// the machine's other load than the run's wall time does.
pub fn busy_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    busy / 100.0
}
