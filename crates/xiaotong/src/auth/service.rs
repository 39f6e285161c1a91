//! Log-in, sessions, API tokens, roles: the rules.

use super::model::*;
use super::{password, store};
use crate::app::App;
use crate::audit::{self, Change};
use crate::crypto::{random_token, sha256_hex};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
const MAX_FAILURES_PER_ADDRESS: i64 = 30;

/// A real argon2id hash of a random secret, verified when no account
/// matches, so that timing does not reveal which log-in names exist.
async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async { password::hash(random_token(16)).await.unwrap_or_default() })
        .await
        .clone()
}

pub struct LoggedIn {
    pub session_token: String,
    pub csrf_token: String,
    pub me: Me,
}

fn normalize_phone(s: &str) -> Option<String> {
    crate::directory::validate::normalize_phone(s)
}

async fn check_throttle(app: &App, key: &str, max: i64) -> Result<()> {
    let since = now_ms() - THROTTLE_WINDOW_MS;
    let (n, oldest) = store::failures_since(&app.db, key, since).await?;
    if n >= max {
        let wait_ms = oldest
            .map(|o| o + THROTTLE_WINDOW_MS - now_ms())
            .unwrap_or(THROTTLE_WINDOW_MS);
        return Err(Error::Throttled {
            retry_after: Duration::from_millis(wait_ms.max(1000) as u64),
        });
    }
    Ok(())
}

pub async fn login(
    app: &App,
    req: &LoginRequest,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<LoggedIn> {
    let tenant_code = req.tenant.trim().to_lowercase();
    let login = req.login.trim();
    if tenant_code.is_empty() || login.is_empty() || req.password.is_empty() {
        return Err(Error::InvalidCredentials(
            "tenant, log-in name and password are required".into(),
        ));
    }
    let acct_key = format!("acct:{tenant_code}:{}", login.to_lowercase());
    let ip_key = format!("ip:{}", ip.unwrap_or("unknown"));
    check_throttle(app, &acct_key, MAX_FAILURES_PER_ACCOUNT).await?;
    check_throttle(app, &ip_key, MAX_FAILURES_PER_ADDRESS).await?;

    let tenant = store::tenant_by_code(&app.db, &tenant_code).await?;
    let candidates = match &tenant {
        Some(t) => {
            let phone_index = normalize_phone(login).map(|p| app.keys.blind_index("phone", &p));
            store::accounts_for_login(&app.db, t.id, login, phone_index.as_deref()).await?
        }
        None => vec![],
    };
    let mut matched = None;
    for acct in candidates.iter().filter(|a| a.active) {
        if let Some(h) = &acct.password_hash {
            if password::verify(req.password.clone(), h.clone()).await {
                matched = Some(acct.clone());
                break;
            }
        }
    }
    if candidates.is_empty() {
        password::verify(req.password.clone(), dummy_hash().await).await;
    }
    let (Some(tenant), Some(acct)) = (tenant, matched) else {
        store::record_failures(&app.db, &[acct_key, ip_key]).await?;
        return Err(Error::InvalidCredentials(
            "wrong tenant, log-in name or password".into(),
        ));
    };
    store::clear_failures(&app.db, &acct_key).await?;

    let token = random_token(32);
    let csrf = random_token(24);
    let mut tx = app.db.begin().await?;
    let expires = now_ms() + app.settings.session_idle_ms;
    let session_id = store::create_session(
        &mut tx,
        tenant.id,
        acct.id,
        &sha256_hex(token.as_bytes()),
        &csrf,
        ip,
        user_agent,
        expires,
    )
    .await?;
    let actor = Actor {
        tenant_id: tenant.id,
        person_id: Some(acct.id),
        name: Some(acct.name.clone()),
        ip: ip.map(str::to_string),
        request_id: None,
    };
    audit::append(
        &mut tx,
        &actor,
        &[Change::new("login", "session", session_id)],
    )
    .await?;
    tx.commit().await?;
    let principal = principal_for(
        app,
        tenant.id,
        acct.id,
        AuthVia::Session {
            session_id,
            csrf_token: csrf.clone(),
        },
        None,
    )
    .await?;
    Ok(LoggedIn {
        session_token: token,
        csrf_token: csrf,
        me: me(app, &principal).await?,
    })
}

/// Build the principal for a person in a tenant.
pub async fn principal_for(
    app: &App,
    tenant_id: i64,
    person_id: i64,
    via: AuthVia,
    scopes: Option<&[String]>,
) -> Result<Principal> {
    let acct = store::account_by_id(&app.db, tenant_id, person_id)
        .await?
        .filter(|a| a.active)
        .ok_or(Error::Unauthenticated)?;
    let tenant = crate::directory::store::tenant(&app.db, tenant_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let mut grants = store::grants(&app.db, tenant_id, person_id).await?;
    if acct.platform_admin {
        grants = all_grants();
    }
    if let Some(scopes) = scopes {
        grants.retain(|k, _| scopes.iter().any(|s| s == k));
    }
    Ok(Principal {
        tenant_id,
        tenant_code: tenant.code,
        tenant_name: tenant.name,
        person_id,
        name: acct.name,
        kind: acct.kind,
        platform_admin: acct.platform_admin,
        must_change_password: acct.must_change_password,
        grants,
        via,
        ip: None,
        request_id: None,
    })
}

fn all_grants() -> BTreeMap<String, Vec<Scope>> {
    PERMISSIONS
        .iter()
        .map(|(k, _)| (k.to_string(), vec![Scope::All]))
        .collect()
}

/// Resolve a session cookie.
pub async fn principal_from_session(app: &App, token: &str) -> Result<Principal> {
    let key = format!("s:{}", sha256_hex(token.as_bytes()));
    if let Some(p) = app.principals.get(&key) {
        return Ok(p);
    }
    let p = resolve_session(app, token).await?;
    app.principals.put(key, p.clone());
    Ok(p)
}

async fn resolve_session(app: &App, token: &str) -> Result<Principal> {
    let s = store::session_by_hash(&app.db, &sha256_hex(token.as_bytes()))
        .await?
        .ok_or(Error::Unauthenticated)?;
    let now = now_ms();
    if s.expires_at < now || s.created_at + app.settings.session_max_ms < now {
        store::delete_session(&app.db, s.id).await?;
        return Err(Error::Unauthenticated);
    }
    // Slide the idle expiry, at most once a minute per session.
    if now - s.last_seen_at > 60_000 {
        store::touch_session(&app.db, s.id, now + app.settings.session_idle_ms).await?;
    }
    principal_for(
        app,
        s.tenant_id,
        s.person_id,
        AuthVia::Session {
            session_id: s.id,
            csrf_token: s.csrf_token,
        },
        None,
    )
    .await
}

/// Resolve a bearer API token.
pub async fn principal_from_token(app: &App, token: &str) -> Result<Principal> {
    let key = format!("t:{}", sha256_hex(token.as_bytes()));
    if let Some(p) = app.principals.get(&key) {
        return Ok(p);
    }
    let p = resolve_token(app, token).await?;
    app.principals.put(key, p.clone());
    Ok(p)
}

async fn resolve_token(app: &App, token: &str) -> Result<Principal> {
    let t = store::token_by_hash(&app.db, &sha256_hex(token.as_bytes()))
        .await?
        .ok_or(Error::Unauthenticated)?;
    let now = now_ms();
    if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e < now) {
        return Err(Error::Unauthenticated);
    }
    if t.last_used_at.is_none_or(|u| now - u > 60_000) {
        store::touch_token(&app.db, t.id).await?;
    }
    let mut p = principal_for(
        app,
        t.tenant_id,
        t.person_id,
        AuthVia::Token { token_id: t.id },
        Some(&t.scopes),
    )
    .await?;
    // A token cannot be used to change the password of its owner; nor is it blocked by a pending change.
    p.must_change_password = false;
    Ok(p)
}

/// Platform admins may act in another tenant with full rights there.
pub async fn switch_tenant(app: &App, p: Principal, code: &str) -> Result<Principal> {
    if !p.platform_admin {
        return Err(Error::Forbidden(
            "only platform admins may act in another tenant".into(),
        ));
    }
    let t = store::tenant_by_code(&app.db, &code.to_lowercase())
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(Principal {
        tenant_id: t.id,
        tenant_code: t.code,
        tenant_name: t.name,
        grants: all_grants(),
        ..p
    })
}

pub async fn me(app: &App, p: &Principal) -> Result<Me> {
    let person =
        crate::directory::service::get_person_unscoped(app, p.tenant_id, p.person_id).await?;
    Ok(Me {
        id: p.person_id,
        name: p.name.clone(),
        kind: p.kind.clone(),
        username: person.username.clone(),
        tenant: TenantRef {
            id: p.tenant_id,
            code: p.tenant_code.clone(),
            name: p.tenant_name.clone(),
        },
        platform_admin: p.platform_admin,
        roles: person.roles.clone(),
        permissions: p.permissions(),
        must_change_password: p.must_change_password,
        children: person.children.clone(),
    })
}

pub async fn logout(app: &App, p: &Principal) -> Result<()> {
    if let AuthVia::Session { session_id, .. } = p.via {
        store::delete_session(&app.db, session_id).await?;
    }
    app.principals.clear();
    Ok(())
}

/// End every session of the caller (all devices).
pub async fn logout_everywhere(app: &App, p: &Principal) -> Result<u64> {
    app.principals.clear();
    let mut tx = app.db.begin().await?;
    let n = store::delete_sessions_of(&mut tx, p.tenant_id, p.person_id, None).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("logout_all", "person", p.person_id)],
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

pub async fn change_password(app: &App, p: &Principal, req: &ChangePassword) -> Result<()> {
    app.principals.clear();
    let acct = store::account_by_id(&app.db, p.tenant_id, p.person_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let ok = match &acct.password_hash {
        Some(h) => password::verify(req.current_password.clone(), h.clone()).await,
        None => false,
    };
    if !ok {
        return Err(Error::validation("current_password", "is wrong"));
    }
    if req.new_password == req.current_password {
        return Err(Error::validation(
            "new_password",
            "must differ from the current password",
        ));
    }
    password::check_policy(&req.new_password)?;
    let hash = password::hash(req.new_password.clone()).await?;
    let mut tx = app.db.begin().await?;
    store::set_password(&mut tx, p.tenant_id, p.person_id, &hash, false).await?;
    let keep = match p.via {
        AuthVia::Session { session_id, .. } => Some(session_id),
        AuthVia::Token { .. } => None,
    };
    store::delete_sessions_of(&mut tx, p.tenant_id, p.person_id, keep).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("change_password", "person", p.person_id)],
    )
    .await?;
    tx.commit().await
}

/// Set a password as an administrator or at setup; the owner must change it at next log-in.
pub async fn set_initial_password(
    app: &App,
    actor: &Actor,
    person_id: i64,
    new_password: &str,
    must_change: bool,
) -> Result<()> {
    app.principals.clear();
    password::check_policy(new_password)?;
    let hash = password::hash(new_password.to_string()).await?;
    let mut tx = app.db.begin().await?;
    store::set_password(&mut tx, actor.tenant_id, person_id, &hash, must_change).await?;
    store::delete_sessions_of(&mut tx, actor.tenant_id, person_id, None).await?;
    audit::append(
        &mut tx,
        actor,
        &[Change::new("set_password", "person", person_id)],
    )
    .await?;
    tx.commit().await
}

// ---- tokens ----

fn token_info(t: &store::TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id,
        name: t.name.clone(),
        scopes: t.scopes.clone(),
        prefix: t.prefix.clone(),
        created_at: ms_to_rfc3339(t.created_at),
        last_used_at: t.last_used_at.map(ms_to_rfc3339),
        expires_at: t.expires_at.map(ms_to_rfc3339),
        revoked_at: t.revoked_at.map(ms_to_rfc3339),
    }
}

pub async fn list_tokens(app: &App, p: &Principal) -> Result<Vec<TokenInfo>> {
    super::authorize(p, "tokens.manage")?;
    Ok(store::tokens_of(&app.db, p.tenant_id, p.person_id)
        .await?
        .iter()
        .map(token_info)
        .collect())
}

pub async fn create_token(app: &App, p: &Principal, req: &NewToken) -> Result<CreatedToken> {
    super::authorize(p, "tokens.manage")?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::validation("name", "must be 1 to 100 characters"));
    }
    if req.scopes.is_empty() {
        return Err(Error::validation("scopes", "name at least one permission"));
    }
    for s in &req.scopes {
        if !is_permission(s) {
            return Err(Error::validation(
                "scopes",
                format!("unknown permission {s}"),
            ));
        }
        if !p.grants.contains_key(s) {
            return Err(Error::validation(
                "scopes",
                format!("you do not hold {s}, so a token cannot either"),
            ));
        }
    }
    let expires_at = match req.expires_in_days {
        Some(d) if !(1..=3650).contains(&d) => {
            return Err(Error::validation(
                "expires_in_days",
                "must be between 1 and 3650",
            ))
        }
        Some(d) => Some(now_ms() + d * 24 * 3600 * 1000),
        None => None,
    };
    let prefix = random_token(6).chars().take(8).collect::<String>();
    let secret = format!("xt_{prefix}_{}", random_token(32));
    let mut tx = app.db.begin().await?;
    let id = store::create_token(
        &mut tx,
        p.tenant_id,
        p.person_id,
        name,
        &prefix,
        &sha256_hex(secret.as_bytes()),
        &req.scopes,
        expires_at,
    )
    .await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("create", "api_token", id)
            .after(serde_json::json!({"name": name, "scopes": req.scopes, "prefix": prefix}))],
    )
    .await?;
    tx.commit().await?;
    let row = store::token_by_id(&app.db, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("token"))?;
    Ok(CreatedToken {
        token: secret,
        item: token_info(&row),
    })
}

pub async fn revoke_token(app: &App, p: &Principal, id: i64) -> Result<()> {
    app.principals.clear();
    super::authorize(p, "tokens.manage")?;
    let t = store::token_by_id(&app.db, p.tenant_id, id)
        .await?
        .filter(|t| t.person_id == p.person_id || p.platform_admin)
        .ok_or(Error::NotFound("token"))?;
    let mut tx = app.db.begin().await?;
    store::revoke_token(&mut tx, p.tenant_id, t.id).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("revoke", "api_token", t.id)],
    )
    .await?;
    tx.commit().await
}

// ---- roles ----

fn role_out(r: store::RoleRow) -> Role {
    Role {
        id: r.id,
        key: r.key,
        name: r.name,
        builtin: r.builtin,
        permissions: r.permissions,
        scope: r.scope,
        member_count: r.member_count,
    }
}

pub fn permissions() -> Vec<PermissionInfo> {
    PERMISSIONS
        .iter()
        .map(|(k, d)| PermissionInfo {
            key: k.to_string(),
            description: d.to_string(),
        })
        .collect()
}

pub async fn list_roles(app: &App, p: &Principal) -> Result<Vec<Role>> {
    super::authorize(p, "roles.read")?;
    Ok(store::roles(&app.db, p.tenant_id)
        .await?
        .into_iter()
        .map(role_out)
        .collect())
}

fn check_role_fields(p: &Principal, name: &str, perms: &[String], scope: Scope) -> Result<()> {
    let mut errs = vec![];
    if name.trim().is_empty() || name.chars().count() > 100 {
        errs.push(crate::error::FieldError::new(
            "name",
            "must be 1 to 100 characters",
        ));
    }
    for perm in perms {
        if !is_permission(perm) {
            errs.push(crate::error::FieldError::new(
                "permissions",
                format!("unknown permission {perm}"),
            ));
        } else if perm == "tenants.manage" && !p.platform_admin {
            errs.push(crate::error::FieldError::new(
                "permissions",
                "tenants.manage is reserved for platform admins",
            ));
        }
    }
    if scope == Scope::All && !p.platform_admin {
        errs.push(crate::error::FieldError::new(
            "scope",
            "scope all is reserved for platform admins",
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errs))
    }
}

pub async fn create_role(app: &App, p: &Principal, req: &NewRole) -> Result<Role> {
    super::authorize(p, "roles.manage")?;
    let key = req.key.trim().to_lowercase();
    let key_ok = (2..=64).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !key_ok {
        return Err(Error::validation(
            "key",
            "must be 2 to 64 characters of a-z, 0-9 and _",
        ));
    }
    check_role_fields(p, &req.name, &req.permissions, req.scope)?;
    let mut tx = app.db.begin().await?;
    if store::role_by_key(&mut tx, p.tenant_id, &key)
        .await?
        .is_some()
    {
        return Err(Error::Conflict(format!(
            "a role with key {key} already exists"
        )));
    }
    let id = store::insert_role(
        &mut tx,
        p.tenant_id,
        &key,
        req.name.trim(),
        &req.permissions,
        req.scope,
    )
    .await?;
    let role = store::role(&mut tx, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("role"))?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("create", "role", id).after(role_out(role.clone()))],
    )
    .await?;
    tx.commit().await?;
    Ok(role_out(role))
}

pub async fn update_role(app: &App, p: &Principal, id: i64, req: &RolePatch) -> Result<Role> {
    app.principals.clear();
    super::authorize(p, "roles.manage")?;
    let mut tx = app.db.begin().await?;
    let before = store::role(&mut tx, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("role"))?;
    if before.builtin {
        return Err(Error::Conflict(
            "built-in roles cannot be changed; create a custom role instead".into(),
        ));
    }
    let name = req.name.clone().unwrap_or_else(|| before.name.clone());
    let perms = req
        .permissions
        .clone()
        .unwrap_or_else(|| before.permissions.clone());
    let scope = req.scope.unwrap_or(before.scope);
    check_role_fields(p, &name, &perms, scope)?;
    store::update_role(&mut tx, p.tenant_id, id, name.trim(), &perms, scope).await?;
    let after = store::role(&mut tx, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("role"))?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("update", "role", id)
            .before(role_out(before))
            .after(role_out(after.clone()))],
    )
    .await?;
    tx.commit().await?;
    Ok(role_out(after))
}

pub async fn delete_role(app: &App, p: &Principal, id: i64) -> Result<()> {
    app.principals.clear();
    super::authorize(p, "roles.manage")?;
    let mut tx = app.db.begin().await?;
    let before = store::role(&mut tx, p.tenant_id, id)
        .await?
        .ok_or(Error::NotFound("role"))?;
    if before.builtin {
        return Err(Error::Conflict("built-in roles cannot be deleted".into()));
    }
    store::delete_role(&mut tx, p.tenant_id, id).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("delete", "role", id).before(role_out(before))],
    )
    .await?;
    tx.commit().await
}
