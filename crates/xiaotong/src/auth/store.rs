//! Accounts, sessions, tokens, roles and throttling: database access, scoped by tenant.

use super::model::{Scope, BUILTIN_ROLES};
use crate::db::{now_ms, Db, RowExt, Sql, Tx};
use crate::error::Result;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: i64,
    pub code: String,
    pub name: String,
}

pub async fn tenant_by_code(db: &Db, code: &str) -> Result<Option<TenantRow>> {
    let row = db
        .fetch_optional(&Sql::new("SELECT id, code, name FROM tenants WHERE code = ?").bind(code))
        .await?;
    row.map(|r| {
        Ok(TenantRow {
            id: r.i64("id")?,
            code: r.str("code")?,
            name: r.str("name")?,
        })
    })
    .transpose()
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub password_hash: Option<String>,
    pub active: bool,
    pub must_change_password: bool,
    pub platform_admin: bool,
}

const ACCOUNT_COLS: &str =
    "id, name, kind, password_hash, active, must_change_password, platform_admin";

fn account(r: &sqlx::any::AnyRow) -> Result<Account> {
    Ok(Account {
        id: r.i64("id")?,
        name: r.str("name")?,
        kind: r.str("kind")?,
        password_hash: r.opt_str("password_hash")?,
        active: r.bool("active")?,
        must_change_password: r.bool("must_change_password")?,
        platform_admin: r.bool("platform_admin")?,
    })
}

/// Accounts matching a log-in name: username, e-mail, phone (by blind index)
/// or student/staff number.
pub async fn accounts_for_login(
    db: &Db,
    tenant_id: i64,
    login: &str,
    phone_index: Option<&str>,
) -> Result<Vec<Account>> {
    let lower = login.to_lowercase();
    let mut sql = Sql::new(format!(
        "SELECT {ACCOUNT_COLS} FROM people WHERE tenant_id = ? AND (username = ? OR email = ? OR number = ?"
    ))
    .bind(tenant_id)
    .bind(lower.as_str())
    .bind(lower.as_str())
    .bind(login);
    if let Some(pi) = phone_index {
        sql.push_bind(" OR phone_index = ?", pi);
    }
    sql.push(") LIMIT 5");
    db.fetch_all(&sql).await?.iter().map(account).collect()
}

pub async fn account_by_id(db: &Db, tenant_id: i64, id: i64) -> Result<Option<Account>> {
    db.fetch_optional(
        &Sql::new(format!(
            "SELECT {ACCOUNT_COLS} FROM people WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tenant_id)
        .bind(id),
    )
    .await?
    .as_ref()
    .map(account)
    .transpose()
}

pub async fn set_password(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    hash: &str,
    must_change: bool,
) -> Result<()> {
    tx.execute(
        &Sql::new("UPDATE people SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(hash)
            .bind(must_change)
            .bind(now_ms())
            .bind(tenant_id)
            .bind(person_id),
    )
    .await?;
    Ok(())
}

// ---- sessions ----

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub tenant_id: i64,
    pub person_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[allow(clippy::too_many_arguments)]
pub async fn create_session(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    token_hash: &str,
    csrf: &str,
    ip: Option<&str>,
    user_agent: Option<&str>,
    expires_at: i64,
) -> Result<i64> {
    let now = now_ms();
    tx.insert_id(
        &Sql::new("INSERT INTO sessions (tenant_id, person_id, token_hash, csrf_token, ip, user_agent, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(person_id)
            .bind(token_hash)
            .bind(csrf)
            .bind(ip)
            .bind(user_agent.map(|u| u.chars().take(300).collect::<String>()))
            .bind(now)
            .bind(now)
            .bind(expires_at),
    )
    .await
}

pub async fn session_by_hash(db: &Db, token_hash: &str) -> Result<Option<SessionRow>> {
    let row = db
        .fetch_optional(
            &Sql::new("SELECT id, tenant_id, person_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions WHERE token_hash = ?")
                .bind(token_hash),
        )
        .await?;
    row.map(|r| {
        Ok(SessionRow {
            id: r.i64("id")?,
            tenant_id: r.i64("tenant_id")?,
            person_id: r.i64("person_id")?,
            csrf_token: r.str("csrf_token")?,
            created_at: r.i64("created_at")?,
            last_seen_at: r.i64("last_seen_at")?,
            expires_at: r.i64("expires_at")?,
        })
    })
    .transpose()
}

pub async fn touch_session(db: &Db, id: i64, expires_at: i64) -> Result<()> {
    db.execute(
        &Sql::new("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(expires_at)
            .bind(id),
    )
    .await?;
    Ok(())
}

pub async fn delete_session(db: &Db, id: i64) -> Result<()> {
    db.execute(&Sql::new("DELETE FROM sessions WHERE id = ?").bind(id))
        .await?;
    Ok(())
}

pub async fn delete_sessions_of(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    except: Option<i64>,
) -> Result<u64> {
    tx.execute(
        &Sql::new("DELETE FROM sessions WHERE tenant_id = ? AND person_id = ? AND id <> ?")
            .bind(tenant_id)
            .bind(person_id)
            .bind(except.unwrap_or(-1)),
    )
    .await
}

pub async fn prune_sessions(db: &Db) -> Result<u64> {
    let now = now_ms();
    let n = db
        .execute(&Sql::new("DELETE FROM sessions WHERE expires_at < ?").bind(now))
        .await?;
    db.execute(&Sql::new("DELETE FROM login_failures WHERE at < ?").bind(now - 24 * 3600 * 1000))
        .await?;
    Ok(n)
}

// ---- roles and grants ----

pub async fn ensure_builtin_roles(tx: &mut Tx, tenant_id: i64) -> Result<()> {
    for r in BUILTIN_ROLES {
        let exists = tx
            .fetch_optional(
                &Sql::new("SELECT id FROM roles WHERE tenant_id = ? AND role_key = ?")
                    .bind(tenant_id)
                    .bind(r.key),
            )
            .await?;
        if exists.is_none() {
            tx.execute(
                &Sql::new("INSERT INTO roles (tenant_id, role_key, name, builtin, permissions, scope, created_at) VALUES (?, ?, ?, 1, ?, ?, ?)")
                    .bind(tenant_id)
                    .bind(r.key)
                    .bind(r.name)
                    .bind(serde_json::to_string(r.permissions).unwrap_or_default())
                    .bind(r.scope.as_str())
                    .bind(now_ms()),
            )
            .await?;
        }
    }
    Ok(())
}

/// Permission → scopes, from all of a person's roles.
pub async fn grants(
    db: &Db,
    tenant_id: i64,
    person_id: i64,
) -> Result<BTreeMap<String, Vec<Scope>>> {
    let rows = db
        .fetch_all(
            &Sql::new("SELECT r.permissions, r.scope FROM person_roles pr JOIN roles r ON r.id = pr.role_id WHERE pr.tenant_id = ? AND pr.person_id = ?")
                .bind(tenant_id)
                .bind(person_id),
        )
        .await?;
    let mut out: BTreeMap<String, Vec<Scope>> = BTreeMap::new();
    for r in rows {
        let perms: Vec<String> = serde_json::from_str(&r.str("permissions")?).unwrap_or_default();
        let Some(scope) = Scope::parse(&r.str("scope")?) else {
            continue;
        };
        for p in perms {
            let v = out.entry(p).or_default();
            if !v.contains(&scope) {
                v.push(scope);
            }
        }
    }
    Ok(out)
}

// ---- API tokens ----

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub tenant_id: i64,
    pub person_id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const TOKEN_COLS: &str = "id, tenant_id, person_id, name, prefix, scopes, created_at, last_used_at, expires_at, revoked_at";

fn token_row(r: &sqlx::any::AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: r.i64("id")?,
        tenant_id: r.i64("tenant_id")?,
        person_id: r.i64("person_id")?,
        name: r.str("name")?,
        prefix: r.str("prefix")?,
        scopes: serde_json::from_str(&r.str("scopes")?).unwrap_or_default(),
        created_at: r.i64("created_at")?,
        last_used_at: r.opt_i64("last_used_at")?,
        expires_at: r.opt_i64("expires_at")?,
        revoked_at: r.opt_i64("revoked_at")?,
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn create_token(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    name: &str,
    prefix: &str,
    token_hash: &str,
    scopes: &[String],
    expires_at: Option<i64>,
) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO api_tokens (tenant_id, person_id, name, prefix, token_hash, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(tenant_id)
            .bind(person_id)
            .bind(name)
            .bind(prefix)
            .bind(token_hash)
            .bind(serde_json::to_string(scopes).unwrap_or_default())
            .bind(now_ms())
            .bind(expires_at),
    )
    .await
}

pub async fn token_by_hash(db: &Db, token_hash: &str) -> Result<Option<TokenRow>> {
    db.fetch_optional(
        &Sql::new(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = ?"
        ))
        .bind(token_hash),
    )
    .await?
    .as_ref()
    .map(token_row)
    .transpose()
}

pub async fn token_by_id(db: &Db, tenant_id: i64, id: i64) -> Result<Option<TokenRow>> {
    db.fetch_optional(
        &Sql::new(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tenant_id)
        .bind(id),
    )
    .await?
    .as_ref()
    .map(token_row)
    .transpose()
}

pub async fn tokens_of(db: &Db, tenant_id: i64, person_id: i64) -> Result<Vec<TokenRow>> {
    db.fetch_all(
        &Sql::new(format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE tenant_id = ? AND person_id = ? ORDER BY id DESC"))
            .bind(tenant_id)
            .bind(person_id),
    )
    .await?
    .iter()
    .map(token_row)
    .collect()
}

pub async fn revoke_token(tx: &mut Tx, tenant_id: i64, id: i64) -> Result<()> {
    tx.execute(
        &Sql::new("UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(tenant_id)
            .bind(id),
    )
    .await?;
    Ok(())
}

pub async fn touch_token(db: &Db, id: i64) -> Result<()> {
    db.execute(
        &Sql::new("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(id),
    )
    .await?;
    Ok(())
}

// ---- throttling ----

/// Failures for `key` since `since_ms`, and the oldest one's time.
pub async fn failures_since(db: &Db, key: &str, since_ms: i64) -> Result<(i64, Option<i64>)> {
    let r = db
        .fetch_one(
            &Sql::new("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE throttle_key = ? AND at >= ?")
                .bind(key)
                .bind(since_ms),
        )
        .await?;
    Ok((r.i64("n")?, r.opt_i64("oldest")?))
}

pub async fn record_failures(db: &Db, keys: &[String]) -> Result<()> {
    let mut tx = db.begin().await?;
    for k in keys {
        tx.execute(
            &Sql::new("INSERT INTO login_failures (throttle_key, at) VALUES (?, ?)")
                .bind(k.as_str())
                .bind(now_ms()),
        )
        .await?;
    }
    tx.commit().await
}

pub async fn clear_failures(db: &Db, key: &str) -> Result<()> {
    db.execute(&Sql::new("DELETE FROM login_failures WHERE throttle_key = ?").bind(key))
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RoleRow {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub scope: Scope,
    pub member_count: i64,
}

fn role_row(r: &sqlx::any::AnyRow) -> Result<RoleRow> {
    Ok(RoleRow {
        id: r.i64("id")?,
        key: r.str("role_key")?,
        name: r.str("name")?,
        builtin: r.bool("builtin")?,
        permissions: serde_json::from_str(&r.str("permissions")?).unwrap_or_default(),
        scope: Scope::parse(&r.str("scope")?).unwrap_or(Scope::SelfOnly),
        member_count: r.i64("member_count")?,
    })
}

const ROLE_SELECT: &str = "SELECT r.id, r.role_key, r.name, r.builtin, r.permissions, r.scope, \
    (SELECT COUNT(*) FROM person_roles pr WHERE pr.role_id = r.id) AS member_count FROM roles r";

pub async fn roles(db: &Db, tenant_id: i64) -> Result<Vec<RoleRow>> {
    db.fetch_all(
        &Sql::new(format!(
            "{ROLE_SELECT} WHERE r.tenant_id = ? ORDER BY r.builtin DESC, r.id"
        ))
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(role_row)
    .collect()
}

pub async fn role(tx: &mut Tx, tenant_id: i64, id: i64) -> Result<Option<RoleRow>> {
    tx.fetch_optional(
        &Sql::new(format!("{ROLE_SELECT} WHERE r.tenant_id = ? AND r.id = ?"))
            .bind(tenant_id)
            .bind(id),
    )
    .await?
    .as_ref()
    .map(role_row)
    .transpose()
}

pub async fn role_by_key(tx: &mut Tx, tenant_id: i64, key: &str) -> Result<Option<RoleRow>> {
    tx.fetch_optional(
        &Sql::new(format!(
            "{ROLE_SELECT} WHERE r.tenant_id = ? AND r.role_key = ?"
        ))
        .bind(tenant_id)
        .bind(key),
    )
    .await?
    .as_ref()
    .map(role_row)
    .transpose()
}

pub async fn insert_role(
    tx: &mut Tx,
    tenant_id: i64,
    key: &str,
    name: &str,
    perms: &[String],
    scope: Scope,
) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO roles (tenant_id, role_key, name, builtin, permissions, scope, created_at) VALUES (?, ?, ?, 0, ?, ?, ?)")
            .bind(tenant_id)
            .bind(key)
            .bind(name)
            .bind(serde_json::to_string(perms).unwrap_or_default())
            .bind(scope.as_str())
            .bind(now_ms()),
    )
    .await
}

pub async fn update_role(
    tx: &mut Tx,
    tenant_id: i64,
    id: i64,
    name: &str,
    perms: &[String],
    scope: Scope,
) -> Result<()> {
    tx.execute(
        &Sql::new(
            "UPDATE roles SET name = ?, permissions = ?, scope = ? WHERE tenant_id = ? AND id = ?",
        )
        .bind(name)
        .bind(serde_json::to_string(perms).unwrap_or_default())
        .bind(scope.as_str())
        .bind(tenant_id)
        .bind(id),
    )
    .await?;
    Ok(())
}

pub async fn delete_role(tx: &mut Tx, tenant_id: i64, id: i64) -> Result<()> {
    tx.execute(
        &Sql::new("DELETE FROM person_roles WHERE tenant_id = ? AND role_id = ?")
            .bind(tenant_id)
            .bind(id),
    )
    .await?;
    tx.execute(
        &Sql::new("DELETE FROM roles WHERE tenant_id = ? AND id = ?")
            .bind(tenant_id)
            .bind(id),
    )
    .await?;
    Ok(())
}

pub async fn role_ids_of(tx: &mut Tx, tenant_id: i64, person_id: i64) -> Result<Vec<i64>> {
    tx.fetch_all(
        &Sql::new("SELECT role_id FROM person_roles WHERE tenant_id = ? AND person_id = ? ORDER BY role_id")
            .bind(tenant_id)
            .bind(person_id),
    )
    .await?
    .iter()
    .map(|r| r.i64("role_id"))
    .collect()
}

pub async fn set_person_roles(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    role_ids: &[i64],
) -> Result<()> {
    tx.execute(
        &Sql::new("DELETE FROM person_roles WHERE tenant_id = ? AND person_id = ?")
            .bind(tenant_id)
            .bind(person_id),
    )
    .await?;
    for id in role_ids {
        tx.execute(
            &Sql::new("INSERT INTO person_roles (tenant_id, person_id, role_id) VALUES (?, ?, ?)")
                .bind(tenant_id)
                .bind(person_id)
                .bind(*id),
        )
        .await?;
    }
    Ok(())
}

pub async fn grant_role_by_key(
    tx: &mut Tx,
    tenant_id: i64,
    person_id: i64,
    key: &str,
) -> Result<()> {
    let role = role_by_key(tx, tenant_id, key).await?;
    if let Some(r) = role {
        tx.execute(
            &Sql::new(crate::db::insert_ignore(
                tx.backend(),
                "person_roles (tenant_id, person_id, role_id) VALUES (?, ?, ?)",
            ))
            .bind(tenant_id)
            .bind(person_id)
            .bind(r.id),
        )
        .await?;
    }
    Ok(())
}
