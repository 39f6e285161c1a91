//! Lesson hours: courses, classes, packages, attendance that consumes hours
//! into a hash-chained ledger, parent notices, alerts and reports.

pub mod alerts;
pub mod demo;
pub mod group;
pub mod http;
pub mod ledger;
pub mod model;
pub mod reports;
pub mod service;
pub mod store;

pub use ledger::{rotate_keys, verify};
pub use service::PARENT_NOTICE;

/// Register the lesson-hour job kinds.
pub fn register(reg: &mut crate::jobs::Registry, app: &crate::app::App) {
    let a = app.clone();
    reg.register(PARENT_NOTICE, move |job| {
        alerts::record_notice(a.clone(), job)
    });
    let a = app.clone();
    reg.register(alerts::ALERTS_JOB, move |_job| {
        let a = a.clone();
        async move {
            alerts::run_alerts(&a, crate::db::now_ms()).await?;
            Ok(())
        }
    });
}

/// Cron schedules of the lesson-hour alerts.
pub fn schedules() -> Vec<crate::jobs::cron::Schedule> {
    vec![crate::jobs::cron::Schedule {
        name: alerts::ALERTS_JOB.into(),
        // Hourly, at the same minute as the session pruning.
        expr: "0 5 * * * *".into(),
        job_kind: alerts::ALERTS_JOB.into(),
        payload: serde_json::json!({}),
    }]
}
