//! Shared pieces of the benchmark programs.
#![allow(dead_code)]

use xiaotong::app::{App, Settings};
use xiaotong::crypto::Keys;

pub async fn fresh(backend: &str) -> Option<App> {
    sqlx::any::install_default_drivers();
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
            use sqlx::{Connection, Executor};
            let mut c = sqlx::AnyConnection::connect(&admin).await.ok()?;
            c.execute(format!("CREATE DATABASE {name}").as_str())
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
