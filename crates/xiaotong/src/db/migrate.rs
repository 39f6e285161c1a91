//! Migrations: one set of SQL files, with a handful of type tokens rendered
//! per backend, applied in order and recorded in `schema_migrations`.

use super::{Backend, Db, Sql};
use crate::db::RowExt;
use crate::error::Result;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../../migrations/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "messaging",
        sql: include_str!("../../migrations/0002_messaging.sql"),
    },
    Migration {
        version: 3,
        name: "lessons",
        sql: include_str!("../../migrations/0003_lessons.sql"),
    },
    Migration {
        version: 4,
        name: "lesson notice groups",
        sql: include_str!("../../migrations/0004_lesson_notice_groups.sql"),
    },
    Migration {
        version: 5,
        name: "lesson notices without a job",
        sql: include_str!("../../migrations/0005_lesson_notices_inline.sql"),
    },
];

fn render(sql: &str, backend: Backend) -> String {
    let (id_pk, blob, longtext, opts) = match backend {
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "TEXT", ""),
        Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "BYTEA", "TEXT", ""),
        Backend::MySql => (
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "LONGBLOB",
            "LONGTEXT",
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ),
    };
    let sql = only_for(sql, backend)
        .replace("ID_PK", id_pk)
        .replace("BLOB_T", blob)
        .replace("LONGTEXT_T", longtext)
        .replace("TABLE_OPTS", opts);
    on_table(&sql, backend)
}

/// Lines that start with `--@sqlite `, `--@postgres ` or `--@mysql ` are
/// statements for that backend only (changing a column's nullability has no
/// common syntax); for the others they stay comments.
fn only_for(sql: &str, backend: Backend) -> String {
    let mine = match backend {
        Backend::Sqlite => "--@sqlite ",
        Backend::Postgres => "--@postgres ",
        Backend::MySql => "--@mysql ",
    };
    sql.lines()
        .map(|line| line.strip_prefix(mine).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `DROP INDEX name ON_TABLE(t)`: MySQL names the table of an index to
/// drop, the others must not.
fn on_table(sql: &str, backend: Backend) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("ON_TABLE(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "ON_TABLE(".len()..];
        let end = after.find(')').unwrap_or(after.len());
        if backend == Backend::MySql {
            out.push_str("ON ");
            out.push_str(&after[..end]);
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

async fn ensure_table(db: &Db) -> Result<()> {
    let opts = if db.backend() == Backend::MySql {
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    } else {
        ""
    };
    db.execute(&Sql::new(format!(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
         name VARCHAR(200) NOT NULL, applied_at BIGINT NOT NULL) {opts}"
    )))
    .await?;
    Ok(())
}

async fn applied(db: &Db) -> Result<Vec<i64>> {
    let rows = db
        .fetch_all(&Sql::new(
            "SELECT version FROM schema_migrations ORDER BY version",
        ))
        .await?;
    rows.iter().map(|r| r.i64("version")).collect()
}

/// Versions not yet applied (for `/readyz`).
pub async fn pending_migrations(db: &Db) -> Result<Vec<i64>> {
    ensure_table(db).await?;
    let done = applied(db).await?;
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !done.contains(v))
        .collect())
}

/// Apply every pending migration. Safe to call from several processes at
/// once: each migration runs in a transaction that first inserts its row in
/// `schema_migrations`, so a second process blocks on, then fails, that
/// insert and re-reads the state instead of applying it twice.
pub async fn migrate(db: &Db) -> Result<Vec<i64>> {
    migrate_to(db, i64::MAX).await
}

/// Apply the pending migrations up to `version` (tests of an upgrade start
/// from an older schema).
pub async fn migrate_to(db: &Db, version: i64) -> Result<Vec<i64>> {
    ensure_table(db).await?;
    let mut newly = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version <= version) {
        if applied(db).await?.contains(&m.version) {
            continue;
        }
        let mut tx = db.begin().await?;
        let claim = tx
            .execute(
                &Sql::new(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(super::now_ms()),
            )
            .await;
        if let Err(e) = claim {
            if let crate::error::Error::Db(ref d) = e {
                if crate::error::is_unique_violation(d) {
                    tx.rollback().await.ok();
                    continue;
                }
            }
            return Err(e);
        }
        tx.execute_script(&render(m.sql, db.backend())).await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        newly.push(m.version);
    }
    Ok(newly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_index_names_its_table_on_mysql_only() {
        let sql = "DROP INDEX i ON_TABLE(t);\nSELECT 1;";
        assert_eq!(render(sql, Backend::MySql), "DROP INDEX i ON t;\nSELECT 1;");
        assert_eq!(render(sql, Backend::Postgres), "DROP INDEX i ;\nSELECT 1;");
        assert_eq!(render(sql, Backend::Sqlite), "DROP INDEX i ;\nSELECT 1;");
    }

    #[test]
    fn backend_lines_are_statements_for_their_backend_only() {
        let sql = "--@sqlite SELECT 1;\n--@mysql SELECT 2;\nSELECT 3;";
        let stmts = |b| crate::db::split_statements(&render(sql, b));
        assert_eq!(stmts(Backend::Sqlite), vec!["SELECT 1", "SELECT 3"]);
        assert_eq!(stmts(Backend::MySql), vec!["SELECT 2", "SELECT 3"]);
        assert_eq!(stmts(Backend::Postgres), vec!["SELECT 3"]);
    }
}
