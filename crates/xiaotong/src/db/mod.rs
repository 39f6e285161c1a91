//! One storage layer over SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! Queries are written once with `?` placeholders and portable SQL; [`Sql`]
//! rewrites placeholders for PostgreSQL. The few statements that differ per
//! backend (upserts, row locking) branch on [`Backend`]. Integers are BIGINT,
//! booleans are 0/1 and timestamps are Unix milliseconds, so every backend
//! decodes the same Rust types through sqlx's `Any` driver.

mod migrate;

pub use migrate::{migrate, migrate_to, pending_migrations, MIGRATIONS};

use crate::error::{Error, Result};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Arguments, Executor, Row};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Backend::MySql)
        } else {
            Err(Error::BadRequest(format!(
                "unsupported database URL scheme in {url:?}: use sqlite://, postgres:// or mysql://"
            )))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

/// The database: a read pool and a write pool. On SQLite the write pool has a
/// single connection so writers queue in-process instead of failing with
/// SQLITE_BUSY; on the server databases both are the same pool.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = url.replacen("mariadb:", "mysql:", 1);
        match backend {
            Backend::Sqlite => {
                if let Some(path) = sqlite_path(&url) {
                    if let Some(parent) = std::path::Path::new(&path).parent() {
                        if !parent.as_os_str().is_empty() {
                            std::fs::create_dir_all(parent).map_err(|e| {
                                Error::Unavailable(format!(
                                    "cannot create {}: {e}",
                                    parent.display()
                                ))
                            })?;
                        }
                    }
                }
                let opts = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // A WAL checkpoint runs inside the commit
                                // that crosses `wal_autocheckpoint` pages,
                                // and everything queued on the one writer
                                // waits for it. Shorter, more frequent ones
                                // (300 pages rather than 1,000) took the
                                // check-in p99 at 500/s from 9.5–12.2 ms to
                                // 7.9–13.7 (median 11.9 → 10.0); 100 and
                                // 10,000 were worse, and a checkpointer on a
                                // reader connection let the log grow to
                                // 75 MB under steady reads (see
                                // docs/benchmarks.md).
                                conn.execute(
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                     PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; \
                                     PRAGMA wal_autocheckpoint=300;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let write = opts().max_connections(1).connect(&url).await?;
                let read = opts().max_connections(8).connect(&url).await?;
                Ok(Db {
                    backend,
                    read,
                    write,
                })
            }
            Backend::Postgres | Backend::MySql => {
                let mut opts = AnyPoolOptions::new()
                    .max_connections(24)
                    .acquire_timeout(Duration::from_secs(30));
                if backend == Backend::MySql {
                    opts = opts.after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ANSI_QUOTES'; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION group_concat_max_len = 1073741824")
                                .await?;
                            Ok(())
                        })
                    });
                }
                let pool = opts.connect(&url).await?;
                Ok(Db {
                    backend,
                    read: pool.clone(),
                    write: pool,
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Start a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            inner: self.write.begin().await?,
            backend: self.backend,
        })
    }

    pub async fn fetch_all(&self, sql: &Sql) -> Result<Vec<AnyRow>> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).fetch_all(&self.read).await?)
    }

    pub async fn fetch_optional(&self, sql: &Sql) -> Result<Option<AnyRow>> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).fetch_optional(&self.read).await?)
    }

    pub async fn fetch_one(&self, sql: &Sql) -> Result<AnyRow> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).fetch_one(&self.read).await?)
    }

    /// Run one statement in its own write transaction.
    pub async fn execute(&self, sql: &Sql) -> Result<u64> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).execute(&self.write).await?.rows_affected())
    }

    pub async fn ping(&self) -> Result<()> {
        self.fetch_one(&Sql::new("SELECT 1")).await.map(|_| ())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

/// A write transaction.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    backend: Backend,
}

impl Tx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn commit(self) -> Result<()> {
        Ok(self.inner.commit().await?)
    }

    pub async fn rollback(self) -> Result<()> {
        Ok(self.inner.rollback().await?)
    }

    pub async fn execute(&mut self, sql: &Sql) -> Result<u64> {
        let text = sql.text_for(self.backend);
        Ok(sql
            .query(&text)
            .execute(&mut *self.inner)
            .await?
            .rows_affected())
    }

    pub async fn fetch_all(&mut self, sql: &Sql) -> Result<Vec<AnyRow>> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).fetch_all(&mut *self.inner).await?)
    }

    pub async fn fetch_optional(&mut self, sql: &Sql) -> Result<Option<AnyRow>> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).fetch_optional(&mut *self.inner).await?)
    }

    pub async fn fetch_one(&mut self, sql: &Sql) -> Result<AnyRow> {
        let text = sql.text_for(self.backend);
        Ok(sql.query(&text).fetch_one(&mut *self.inner).await?)
    }

    /// Insert one row and return its generated `id`.
    pub async fn insert_id(&mut self, sql: &Sql) -> Result<i64> {
        if self.backend != Backend::MySql {
            let text = format!("{} RETURNING id", sql.text_for(self.backend));
            let row = sql.query(&text).fetch_one(&mut *self.inner).await?;
            return Ok(row.try_get::<i64, _>(0)?);
        }
        let text = sql.text_for(self.backend);
        let res = sql.query(&text).execute(&mut *self.inner).await?;
        match res.last_insert_id() {
            Some(id) => Ok(id),
            None => {
                // Same connection, same transaction: the id of this insert.
                let row = sqlx::query("SELECT LAST_INSERT_ID()")
                    .fetch_one(&mut *self.inner)
                    .await?;
                Ok(row.try_get::<i64, _>(0)?)
            }
        }
    }

    /// Run raw statements (DDL) separated by semicolons.
    pub async fn execute_script(&mut self, script: &str) -> Result<()> {
        for stmt in split_statements(script) {
            self.inner.execute(stmt.as_str()).await?;
        }
        Ok(())
    }
}

pub(crate) fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if trimmed.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A bound value. Nulls carry their type so PostgreSQL accepts them.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    I64(i64),
    OptI64(Option<i64>),
    Str(String),
    OptStr(Option<String>),
    Bytes(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::I64(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::I64(v as i64)
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::OptI64(v)
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Str(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Str(v.to_string())
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Str(v.clone())
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::OptStr(v)
    }
}
impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Self {
        Val::OptStr(v.map(str::to_string))
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Self {
        Val::Bytes(v)
    }
}

/// A SQL statement with `?` placeholders and its arguments, built up in order.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    args: Vec<Val>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// A statement around an embedded fragment (such as a filter), taking
    /// the fragment's arguments in order.
    pub fn around(text: impl Into<String>, fragment: &Sql) -> Self {
        Sql {
            text: text.into(),
            args: fragment.args.clone(),
        }
    }

    /// Append another statement's arguments after this one's.
    pub fn with_args_of(mut self, other: &Sql) -> Self {
        self.args.extend(other.args.iter().cloned());
        self
    }

    /// Bind the next `?`.
    pub fn bind(mut self, v: impl Into<Val>) -> Self {
        self.args.push(v.into());
        self
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append text that contains exactly one `?` and bind it.
    pub fn push_bind(&mut self, text: &str, v: impl Into<Val>) -> &mut Self {
        self.text.push_str(text);
        self.args.push(v.into());
        self
    }

    /// Append another statement, text and arguments.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.args.extend(other.args.iter().cloned());
        self
    }

    /// Append `(?, ?, …)` for a list of values.
    pub fn push_in<V: Into<Val>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        let mut first = true;
        for v in values {
            if !first {
                self.text.push_str(", ");
            }
            first = false;
            self.text.push('?');
            self.args.push(v.into());
        }
        if first {
            // An empty IN list is a syntax error; NULL matches nothing.
            self.text.push_str("NULL");
        }
        self.text.push(')');
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn args(&self) -> &[Val] {
        &self.args
    }

    /// The statement text with placeholders in the backend's syntax.
    pub fn text_for(&self, backend: Backend) -> String {
        if backend != Backend::Postgres {
            return self.text.clone();
        }
        let mut out = String::with_capacity(self.text.len() + 8);
        let mut n = 0;
        let mut in_str = false;
        for c in self.text.chars() {
            match c {
                '\'' => {
                    in_str = !in_str;
                    out.push(c);
                }
                '?' if !in_str => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
                _ => out.push(c),
            }
        }
        out
    }

    fn query<'q>(&'q self, text: &'q str) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
        let mut args = AnyArguments::default();
        for a in &self.args {
            // Encoding into AnyArguments only fails for unsupported types,
            // which `Val` rules out.
            let _ = match a {
                Val::I64(v) => args.add(*v),
                Val::OptI64(v) => args.add(*v),
                Val::Str(v) => args.add(v.as_str()),
                Val::OptStr(v) => args.add(v.as_deref()),
                Val::Bytes(v) => args.add(v.as_slice()),
            };
        }
        sqlx::query_with(text, args)
    }
}

/// Typed column access on rows from any backend.
pub trait RowExt {
    fn i64(&self, col: &str) -> Result<i64>;
    fn opt_i64(&self, col: &str) -> Result<Option<i64>>;
    fn str(&self, col: &str) -> Result<String>;
    fn opt_str(&self, col: &str) -> Result<Option<String>>;
    fn bool(&self, col: &str) -> Result<bool>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
}

impl RowExt for AnyRow {
    fn i64(&self, col: &str) -> Result<i64> {
        Ok(self.try_get::<i64, _>(col)?)
    }
    fn opt_i64(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get::<Option<i64>, _>(col)?)
    }
    fn str(&self, col: &str) -> Result<String> {
        self.opt_str(col)?.ok_or_else(|| {
            Error::Db(sqlx::Error::ColumnDecode {
                index: col.to_string(),
                source: "unexpected NULL".into(),
            })
        })
    }
    fn opt_str(&self, col: &str) -> Result<Option<String>> {
        match self.try_get::<Option<String>, _>(col) {
            Ok(v) => Ok(v),
            // MySQL reports TEXT/LONGTEXT columns as BLOB through the Any driver.
            Err(sqlx::Error::ColumnDecode { .. }) => self
                .try_get::<Option<Vec<u8>>, _>(col)?
                .map(|b| {
                    String::from_utf8(b).map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))
                })
                .transpose(),
            Err(e) => Err(e.into()),
        }
    }
    fn bool(&self, col: &str) -> Result<bool> {
        Ok(self.try_get::<i64, _>(col)? != 0)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        Ok(self.try_get::<Vec<u8>, _>(col)?)
    }
}

/// `INSERT … ` that silently skips rows violating a unique key.
pub fn insert_ignore(backend: Backend, rest: &str) -> String {
    match backend {
        Backend::MySql => format!("INSERT IGNORE INTO {rest}"),
        Backend::Sqlite | Backend::Postgres => format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"),
    }
}

/// Milliseconds since the Unix epoch: the one timestamp format in the database.
/// Deadlocks, lock timeouts, serialization failures and SQLite's busy/locked
/// errors: the statement or transaction was rolled back whole, so running it
/// again is safe and usually succeeds.
pub fn is_transient(e: &Error) -> bool {
    match e {
        Error::Db(sqlx::Error::Database(d)) => {
            matches!(
                d.code().as_deref(),
                Some("40P01" | "40001" | "1213" | "1205" | "5" | "6" | "517")
            ) || d.message().contains("Deadlock")
                || d.message().contains("deadlock")
        }
        _ => false,
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 text of a stored timestamp, for the API.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_strings() {
        let sql = Sql::new("SELECT '?' , a FROM t WHERE a = ? AND b IN (?, ?)");
        assert_eq!(
            sql.text_for(Backend::Postgres),
            "SELECT '?' , a FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(sql.text_for(Backend::MySql), sql.text());
    }

    #[test]
    fn empty_in_list_matches_nothing() {
        let mut sql = Sql::new("SELECT 1 FROM t WHERE id IN ");
        sql.push_in(Vec::<i64>::new());
        assert_eq!(sql.text(), "SELECT 1 FROM t WHERE id IN (NULL)");
    }

    #[test]
    fn scripts_split_on_statement_ends() {
        let s = split_statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE INDEX i ON a (x);\n");
        assert_eq!(s, vec!["CREATE TABLE a (x INT)", "CREATE INDEX i ON a (x)"]);
    }
}
