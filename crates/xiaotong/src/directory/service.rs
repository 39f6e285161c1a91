//! Directory rules: who sees whom, validation, create/update/deactivate.

use super::model::*;
use super::store::{self, PeopleFilter, PersonRecord, Reach, Search};
use super::validate;
use crate::app::App;
use crate::audit::{self, Change};
use crate::auth::model::{Principal, Scope};
use crate::auth::{self, authorize};
use crate::error::{Error, FieldError, Result};

/// Turn scopes into the set of people a caller reaches.
pub async fn reach(app: &App, p: &Principal, scopes: &[Scope]) -> Result<Reach> {
    let mut r = Reach {
        self_id: p.person_id,
        ..Reach::default()
    };
    for s in scopes {
        match s {
            Scope::All | Scope::Tenant => r.tenant_wide = true,
            Scope::OwnDepartment => {
                if let Some(d) = store::department_of(&app.db, p.tenant_id, p.person_id).await? {
                    r.department_ids
                        .extend(store::department_subtree(&app.db, p.tenant_id, d).await?);
                }
            }
            Scope::OwnClasses => r.own_classes = true,
            Scope::OwnChildren => r.own_children = true,
            Scope::SelfOnly => {}
        }
    }
    Ok(r)
}

fn clean_search(app: &App, q: &str) -> Search {
    let raw: String = q
        .trim()
        .chars()
        .filter(|c| !matches!(c, '%' | '_' | ' '))
        .take(50)
        .collect();
    let t = raw.to_lowercase();
    if t.is_empty() {
        return Search::default();
    }
    Search {
        raw,
        phone_index: validate::normalize_phone(&t).map(|p| app.keys.blind_index("phone", &p)),
        text: Some(t),
    }
}

async fn hydrate(app: &App, tenant_id: i64, rows: &[sqlx::any::AnyRow]) -> Result<Vec<Person>> {
    use crate::db::RowExt;
    let ids: Vec<i64> = rows.iter().map(|r| r.i64("id")).collect::<Result<_>>()?;
    let mut rel = store::related(&app.db, tenant_id, &ids).await?;
    let decrypt = |enc: Option<String>| enc.and_then(|e| app.keys.decrypt(&e).ok());
    rows.iter()
        .map(|r| {
            let mut p = store::person_base(r, decrypt(r.opt_str("phone_enc")?))?;
            p.roles = rel.roles.remove(&p.id).unwrap_or_default();
            p.tags = rel.tags.remove(&p.id).unwrap_or_default();
            p.children = rel.children.remove(&p.id).unwrap_or_default();
            p.parents = rel
                .parents
                .remove(&p.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(id, name, phone)| ParentRef {
                    id,
                    name,
                    phone: decrypt(phone),
                })
                .collect();
            Ok(p)
        })
        .collect()
}

pub async fn list_people(app: &App, p: &Principal, q: &PeopleQuery) -> Result<Page<Person>> {
    let scopes = authorize(p, "people.read")?;
    let reach = reach(app, p, &scopes).await?;
    let (page, per_page) = crate::directory::model::page_args(q.page, q.per_page, 20, 200)?;
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => Some(
            validate::parse_kind(k)
                .ok_or_else(|| {
                    Error::validation(
                        "kind",
                        format!("must be one of {}", validate::KINDS.join(", ")),
                    )
                })?
                .to_string(),
        ),
        None => None,
    };
    let active = match q.active.as_deref().unwrap_or("true") {
        "true" | "" => Some(true),
        "false" => Some(false),
        "all" => None,
        _ => return Err(Error::validation("active", "must be true, false or all")),
    };
    let department_ids = match q.department_id {
        Some(d) => Some(store::department_subtree(&app.db, p.tenant_id, d).await?),
        None => None,
    };
    let filter = PeopleFilter {
        search: clean_search(app, q.q.as_deref().unwrap_or("")),
        kind,
        department_ids,
        class_id: q.class_id,
        active,
    };
    let (rows, total) = store::list_people(
        &app.db,
        p.tenant_id,
        &reach,
        &filter,
        per_page,
        (page - 1) * per_page,
    )
    .await?;
    Ok(Page {
        items: hydrate(app, p.tenant_id, &rows).await?,
        total,
        page,
        per_page,
    })
}

pub async fn get_person(app: &App, p: &Principal, id: i64) -> Result<Person> {
    let scopes = authorize(p, "people.read")?;
    let reach = reach(app, p, &scopes).await?;
    let row = store::person_row(&app.db, p.tenant_id, &reach, id)
        .await?
        .ok_or(Error::NotFound("person"))?;
    Ok(hydrate(app, p.tenant_id, &[row]).await?.remove(0))
}

/// A person of a tenant without a scope check: for the caller's own profile.
pub async fn get_person_unscoped(app: &App, tenant_id: i64, id: i64) -> Result<Person> {
    let reach = Reach {
        tenant_wide: true,
        ..Reach::default()
    };
    let row = store::person_row(&app.db, tenant_id, &reach, id)
        .await?
        .ok_or(Error::NotFound("person"))?;
    Ok(hydrate(app, tenant_id, &[row]).await?.remove(0))
}

/// Validated person fields, ready to store.
pub struct ValidPerson {
    pub record: PersonRecord,
    pub phone_plain: Option<String>,
}

/// Validate raw fields; errors name the field.
#[allow(clippy::too_many_arguments)]
pub fn validate_fields(
    app: &App,
    kind: &str,
    name: &str,
    number: Option<&str>,
    gender: Option<&str>,
    phone: Option<&str>,
    email: Option<&str>,
    id_number: Option<&str>,
    username: Option<&str>,
) -> std::result::Result<ValidPerson, Vec<FieldError>> {
    let mut errs = vec![];
    let nonempty = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let kind_v = validate::parse_kind(kind);
    if kind_v.is_none() {
        errs.push(FieldError::new(
            "kind",
            format!("must be one of {}", validate::KINDS.join(", ")),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 50 {
        errs.push(FieldError::new("name", "must be 1 to 50 characters"));
    }
    let number = nonempty(number);
    if let Some(n) = &number {
        if !validate::valid_number(n) {
            errs.push(FieldError::new(
                "number",
                "must be 1 to 32 letters, digits, - or _",
            ));
        }
    } else if matches!(kind_v, Some("student" | "teacher" | "staff")) {
        errs.push(FieldError::new(
            "number",
            "is required for students, teachers and staff",
        ));
    }
    let gender = match nonempty(gender) {
        Some(g) => match validate::parse_gender(&g) {
            Some(g) => Some(g.to_string()),
            None => {
                errs.push(FieldError::new("gender", "must be 男/女 or male/female"));
                None
            }
        },
        None => None,
    };
    let phone = match nonempty(phone) {
        Some(ph) => match validate::normalize_phone(&ph) {
            Some(p) => Some(p),
            None => {
                errs.push(FieldError::new(
                    "phone",
                    format!("{ph:?} is not a valid mobile number (11 digits starting with 1)"),
                ));
                None
            }
        },
        None => None,
    };
    let email = match nonempty(email) {
        Some(e) => match validate::normalize_email(&e) {
            Some(e) => Some(e),
            None => {
                errs.push(FieldError::new(
                    "email",
                    format!("{e:?} is not a valid e-mail address"),
                ));
                None
            }
        },
        None => None,
    };
    let id_number = match nonempty(id_number) {
        Some(i) => match validate::normalize_id_number(&i) {
            Some(i) => Some(i),
            None => {
                errs.push(FieldError::new(
                    "id_number",
                    "is not a valid 18-character resident ID number (checksum failed)",
                ));
                None
            }
        },
        None => None,
    };
    let username = nonempty(username).map(|u| u.to_lowercase());
    if let Some(u) = &username {
        if !validate::valid_username(u) {
            errs.push(FieldError::new(
                "username",
                "must be 3 to 32 characters of a-z, 0-9, _ . -",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(ValidPerson {
        record: PersonRecord {
            kind: kind_v.unwrap_or("staff").to_string(),
            number,
            name: name.to_string(),
            gender,
            phone_enc: phone.as_deref().map(|p| app.keys.encrypt(p)),
            phone_index: phone.as_deref().map(|p| app.keys.blind_index("phone", p)),
            email,
            id_number_enc: id_number.as_deref().map(|i| app.keys.encrypt(i)),
            id_number_index: id_number
                .as_deref()
                .map(|i| app.keys.blind_index("id_number", i)),
            username,
            department_id: None,
            class_id: None,
        },
        phone_plain: phone,
    })
}

/// What the audit trail keeps of a person: no full phone or ID numbers.
pub fn audit_view(r: &PersonRecord, phone: Option<&str>, tags: &[String]) -> serde_json::Value {
    serde_json::json!({
        "kind": r.kind, "number": r.number, "name": r.name, "gender": r.gender,
        "phone": phone.map(validate::mask_phone), "email": r.email,
        "id_number": r.id_number_index.as_ref().map(|_| "(set)"),
        "username": r.username, "department_id": r.department_id, "class_id": r.class_id, "tags": tags,
    })
}

/// The built-in role a new person of `kind` gets.
pub fn default_role_for(kind: &str) -> &'static str {
    match kind {
        "student" => "student",
        "parent" => "parent",
        "teacher" => "teacher",
        "third_party" => "third_party",
        _ => "department_staff",
    }
}

async fn check_refs(
    app: &App,
    tenant_id: i64,
    department_id: Option<i64>,
    class_id: Option<i64>,
) -> Result<()> {
    if let Some(d) = department_id {
        if !store::departments(&app.db, tenant_id)
            .await?
            .iter()
            .any(|x| x.id == d)
        {
            return Err(Error::validation("department_id", "no such department"));
        }
    }
    if let Some(c) = class_id {
        if !store::classes(&app.db, tenant_id)
            .await?
            .iter()
            .any(|x| x.id == c)
        {
            return Err(Error::validation("class_id", "no such class"));
        }
    }
    Ok(())
}

pub async fn create_person(app: &App, p: &Principal, input: &PersonInput) -> Result<Person> {
    let scopes = authorize(p, "people.write")?;
    let v = validate_fields(
        app,
        &input.kind,
        &input.name,
        input.number.as_deref(),
        input.gender.as_deref(),
        input.phone.as_deref(),
        input.email.as_deref(),
        input.id_number.as_deref(),
        input.username.as_deref(),
    )
    .map_err(Error::Validation)?;
    check_refs(app, p.tenant_id, input.department_id, input.class_id).await?;
    let reach = reach(app, p, &scopes).await?;
    if !reach.tenant_wide
        && !input
            .department_id
            .is_some_and(|d| reach.department_ids.contains(&d))
    {
        return Err(Error::validation(
            "department_id",
            "you may only add people to your own department",
        ));
    }
    let mut record = v.record;
    record.department_id = input.department_id;
    record.class_id = input.class_id;
    let tags: Vec<String> = input
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if tags.iter().any(|t| t.chars().count() > 50) {
        return Err(Error::validation("tags", "a tag has at most 50 characters"));
    }
    let mut tx = app.db.begin().await?;
    let id = store::insert_person(&mut tx, p.tenant_id, &record)
        .await
        .map_err(unique_to_409)?;
    let mut tag_ids = vec![];
    for t in &tags {
        tag_ids.push(store::ensure_tag(&mut tx, p.tenant_id, t).await?);
    }
    store::set_tags(&mut tx, p.tenant_id, id, &tag_ids).await?;
    for child in &input.children_ids {
        store::link_guardian(&mut tx, p.tenant_id, id, *child).await?;
    }
    auth::store::grant_role_by_key(&mut tx, p.tenant_id, id, default_role_for(&record.kind))
        .await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("create", "person", id).after(audit_view(
            &record,
            v.phone_plain.as_deref(),
            &tags,
        ))],
    )
    .await?;
    tx.commit().await?;
    get_person(app, p, id)
        .await
        .or(get_person_unscoped(app, p.tenant_id, id).await)
}

fn unique_to_409(e: Error) -> Error {
    match &e {
        Error::Db(d) if crate::error::is_unique_violation(d) => {
            let msg = d.to_string();
            let what = if msg.contains("number") {
                "student/staff number"
            } else if msg.contains("username") {
                "username"
            } else if msg.contains("email") {
                "e-mail"
            } else {
                "unique value"
            };
            Error::Conflict(format!("another person already has this {what}"))
        }
        _ => e,
    }
}

pub async fn update_person(
    app: &App,
    p: &Principal,
    id: i64,
    patch: &PersonPatch,
) -> Result<Person> {
    let scopes = authorize(p, "people.write")?;
    let reach_ = reach(app, p, &scopes).await?;
    let before = {
        let row = store::person_row(&app.db, p.tenant_id, &reach_, id)
            .await?
            .ok_or(Error::NotFound("person"))?;
        hydrate(app, p.tenant_id, &[row]).await?.remove(0)
    };
    let mut tx = app.db.begin().await?;
    let existing = store::existing_people(&mut tx, p.tenant_id, Some(id)).await?;
    let Some(cur) = existing.into_iter().find(|e| e.id == id) else {
        return Err(Error::NotFound("person"));
    };
    let pick = |new: &Option<String>, old: Option<String>| new.clone().or(old);
    let old_id_number = cur
        .record
        .id_number_enc
        .as_ref()
        .and_then(|e| app.keys.decrypt(e).ok());
    let v = validate_fields(
        app,
        &cur.record.kind,
        patch.name.as_deref().unwrap_or(&cur.record.name),
        pick(&patch.number, cur.record.number.clone()).as_deref(),
        pick(&patch.gender, cur.record.gender.clone()).as_deref(),
        pick(&patch.phone, before.phone.clone()).as_deref(),
        pick(&patch.email, cur.record.email.clone()).as_deref(),
        pick(&patch.id_number, old_id_number).as_deref(),
        pick(&patch.username, cur.record.username.clone()).as_deref(),
    )
    .map_err(Error::Validation)?;
    let mut record = v.record;
    record.department_id = patch.department_id.or(cur.record.department_id);
    record.class_id = patch.class_id.or(cur.record.class_id);
    if patch.department_id.is_some() || patch.class_id.is_some() {
        check_refs(app, p.tenant_id, patch.department_id, patch.class_id).await?;
    }
    store::update_person(&mut tx, p.tenant_id, id, &record)
        .await
        .map_err(unique_to_409)?;
    let tags = match &patch.tags {
        Some(t) => {
            let mut ids = vec![];
            for name in t.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                ids.push(store::ensure_tag(&mut tx, p.tenant_id, name).await?);
            }
            store::set_tags(&mut tx, p.tenant_id, id, &ids).await?;
            t.clone()
        }
        None => cur.tags.clone(),
    };
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("update", "person", id)
            .before(audit_view(&cur.record, before.phone.as_deref(), &cur.tags))
            .after(audit_view(&record, v.phone_plain.as_deref(), &tags))],
    )
    .await?;
    tx.commit().await?;
    get_person(app, p, id).await
}

/// People are never deleted: history refers to them.
pub async fn deactivate_person(app: &App, p: &Principal, id: i64) -> Result<Person> {
    app.principals.clear();
    let scopes = authorize(p, "people.write")?;
    let r = reach(app, p, &scopes).await?;
    store::person_row(&app.db, p.tenant_id, &r, id)
        .await?
        .ok_or(Error::NotFound("person"))?;
    if id == p.person_id {
        return Err(Error::Conflict("you cannot deactivate yourself".into()));
    }
    let mut tx = app.db.begin().await?;
    store::set_active(&mut tx, p.tenant_id, id, false).await?;
    auth::store::delete_sessions_of(&mut tx, p.tenant_id, id, None).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("deactivate", "person", id)
            .before(serde_json::json!({"active": true}))
            .after(serde_json::json!({"active": false}))],
    )
    .await?;
    tx.commit().await?;
    get_person(app, p, id).await
}

pub async fn set_roles(app: &App, p: &Principal, id: i64, req: &SetRoles) -> Result<Person> {
    app.principals.clear();
    authorize(p, "roles.manage")?;
    get_person_unscoped(app, p.tenant_id, id).await?;
    let mut tx = app.db.begin().await?;
    let roles = auth::store::roles(&app.db, p.tenant_id).await?;
    let mut ids = req.role_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    for r in &ids {
        let Some(role) = roles.iter().find(|x| x.id == *r) else {
            return Err(Error::validation(
                "role_ids",
                format!("no role with id {r}"),
            ));
        };
        if role.scope == Scope::All && !p.platform_admin {
            return Err(Error::validation(
                "role_ids",
                "only platform admins grant platform-wide roles",
            ));
        }
    }
    let before = auth::store::role_ids_of(&mut tx, p.tenant_id, id).await?;
    auth::store::set_person_roles(&mut tx, p.tenant_id, id, &ids).await?;
    audit::append(
        &mut tx,
        &p.actor(),
        &[Change::new("set_roles", "person", id)
            .before(serde_json::json!({"role_ids": before}))
            .after(serde_json::json!({"role_ids": ids}))],
    )
    .await?;
    tx.commit().await?;
    get_person_unscoped(app, p.tenant_id, id).await
}

pub async fn departments(app: &App, p: &Principal) -> Result<Vec<Department>> {
    authorize(p, "people.read")?;
    store::departments(&app.db, p.tenant_id).await
}

pub async fn classes(app: &App, p: &Principal) -> Result<Vec<Class>> {
    authorize(p, "people.read")?;
    store::classes(&app.db, p.tenant_id).await
}

pub async fn grades(app: &App, p: &Principal) -> Result<Vec<Grade>> {
    authorize(p, "people.read")?;
    store::grades(&app.db, p.tenant_id).await
}

pub async fn campuses(app: &App, p: &Principal) -> Result<Vec<Campus>> {
    authorize(p, "people.read")?;
    store::campuses(&app.db, p.tenant_id).await
}

pub async fn tags(app: &App, p: &Principal) -> Result<Vec<NameRef>> {
    authorize(p, "people.read")?;
    store::tags(&app.db, p.tenant_id).await
}

pub async fn list_tenants(app: &App, p: &Principal) -> Result<Vec<Tenant>> {
    authorize(p, "tenants.manage")?;
    store::tenants(&app.db).await
}

/// Create a tenant with its built-in roles.
pub async fn create_tenant(app: &App, code: &str, name: &str) -> Result<Tenant> {
    let code = code.trim().to_lowercase();
    if !(2..=64).contains(&code.len())
        || !code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(Error::validation(
            "code",
            "must be 2 to 64 characters of a-z, 0-9 and -",
        ));
    }
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::validation("name", "must be 1 to 200 characters"));
    }
    let mut tx = app.db.begin().await?;
    let id = store::insert_tenant(&mut tx, &code, name.trim())
        .await
        .map_err(|e| match e {
            Error::Db(d) if crate::error::is_unique_violation(&d) => {
                Error::Conflict(format!("tenant {code} already exists"))
            }
            e => e,
        })?;
    auth::store::ensure_builtin_roles(&mut tx, id).await?;
    audit::append(
        &mut tx,
        &crate::auth::Actor::system(id, "setup"),
        &[Change::new("create", "tenant", id)
            .after(serde_json::json!({"code": code, "name": name.trim()}))],
    )
    .await?;
    tx.commit().await?;
    Ok(Tenant {
        id,
        code,
        name: name.trim().to_string(),
    })
}

pub async fn create_tenant_api(app: &App, p: &Principal, req: &NewTenant) -> Result<Tenant> {
    authorize(p, "tenants.manage")?;
    create_tenant(app, &req.code, &req.name).await
}
