//! What every part of the program shares: configuration, database, keys.

use crate::crypto::Keys;
use crate::db::Db;
use chrono_tz::Tz;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub listen: String,
    pub timezone: Tz,
    /// Mark cookies `Secure` (behind HTTPS).
    pub cookie_secure: bool,
    /// Idle session lifetime.
    pub session_idle_ms: i64,
    /// Absolute session lifetime.
    pub session_max_ms: i64,
    pub job_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://data/xiaotong.db?mode=rwc".into(),
            listen: "127.0.0.1:8080".into(),
            timezone: chrono_tz::Asia::Shanghai,
            cookie_secure: false,
            session_idle_ms: 12 * 3600 * 1000,
            session_max_ms: 7 * 24 * 3600 * 1000,
            job_concurrency: 16,
        }
    }
}

/// The shared application context: cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    pub db: Db,
    pub keys: Arc<Keys>,
    pub settings: Arc<Settings>,
    /// Recently resolved callers (see `auth::cache`).
    pub principals: Arc<crate::auth::cache::PrincipalCache>,
    /// Delivery adapters and live inbox updates of this process.
    pub messaging: Arc<crate::messaging::Runtime>,
    /// Check-ins waiting for their group commit (see `lessons::group`).
    pub checkins: Arc<crate::lessons::group::CheckinGroups>,
}

impl App {
    pub async fn open(settings: Settings, keys: Keys) -> crate::error::Result<App> {
        let db = Db::connect(&settings.database_url).await?;
        Ok(App {
            db,
            keys: Arc::new(keys),
            settings: Arc::new(settings),
            principals: Arc::default(),
            messaging: Arc::default(),
            checkins: Arc::default(),
        })
    }
}
