//! Directory database access. Every function takes the caller's tenant.

use super::model::*;
use crate::auth::model::{ChildRef, RoleRef};
use crate::db::{ms_to_rfc3339, now_ms, Db, RowExt, Sql, Tx};
use crate::error::Result;
use sqlx::any::AnyRow;
use std::collections::HashMap;

pub async fn tenant(db: &Db, id: i64) -> Result<Option<Tenant>> {
    db.fetch_optional(&Sql::new("SELECT id, code, name FROM tenants WHERE id = ?").bind(id))
        .await?
        .map(|r| {
            Ok(Tenant {
                id: r.i64("id")?,
                code: r.str("code")?,
                name: r.str("name")?,
            })
        })
        .transpose()
}

pub async fn tenants(db: &Db) -> Result<Vec<Tenant>> {
    db.fetch_all(&Sql::new("SELECT id, code, name FROM tenants ORDER BY id"))
        .await?
        .iter()
        .map(|r| {
            Ok(Tenant {
                id: r.i64("id")?,
                code: r.str("code")?,
                name: r.str("name")?,
            })
        })
        .collect()
}

pub async fn insert_tenant(tx: &mut Tx, code: &str, name: &str) -> Result<i64> {
    tx.insert_id(
        &Sql::new("INSERT INTO tenants (code, name, created_at) VALUES (?, ?, ?)")
            .bind(code)
            .bind(name)
            .bind(now_ms()),
    )
    .await
}

/// Which people a caller may see, derived from their scopes.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub tenant_wide: bool,
    pub self_id: i64,
    pub department_ids: Vec<i64>,
    pub own_classes: bool,
    pub own_children: bool,
}

impl Reach {
    /// `AND (...)` restricting `p` (the people alias) to what the caller reaches.
    fn push_filter(&self, tenant_id: i64, sql: &mut Sql) {
        if self.tenant_wide {
            return;
        }
        sql.push_bind(" AND (p.id = ?", self.self_id);
        if !self.department_ids.is_empty() {
            sql.push(" OR p.department_id IN ");
            sql.push_in(self.department_ids.iter().copied());
        }
        if self.own_classes {
            sql.push_bind(" OR p.class_id IN (SELECT ct.class_id FROM class_teachers ct WHERE ct.tenant_id = ?", tenant_id)
                .push_bind(" AND ct.person_id = ?)", self.self_id);
            sql.push_bind(
                " OR p.id IN (SELECT g.parent_id FROM guardianships g JOIN people s ON s.id = g.student_id WHERE g.tenant_id = ?",
                tenant_id,
            )
            .push_bind(" AND s.class_id IN (SELECT ct2.class_id FROM class_teachers ct2 WHERE ct2.tenant_id = ?", tenant_id)
            .push_bind(" AND ct2.person_id = ?))", self.self_id);
        }
        if self.own_children {
            sql.push_bind(
                " OR p.id IN (SELECT g3.student_id FROM guardianships g3 WHERE g3.tenant_id = ?",
                tenant_id,
            )
            .push_bind(" AND g3.parent_id = ?)", self.self_id);
        }
        sql.push(")");
    }
}

/// Department and its descendants.
pub async fn department_subtree(db: &Db, tenant_id: i64, dept_id: i64) -> Result<Vec<i64>> {
    let Some(root) = db
        .fetch_optional(
            &Sql::new("SELECT path FROM departments WHERE tenant_id = ? AND id = ?")
                .bind(tenant_id)
                .bind(dept_id),
        )
        .await?
    else {
        return Ok(vec![]);
    };
    let path = root.str("path")?;
    let rows = db
        .fetch_all(
            &Sql::new("SELECT id, path FROM departments WHERE tenant_id = ?").bind(tenant_id),
        )
        .await?;
    let prefix = format!("{path}/");
    let mut out = vec![];
    for r in rows {
        let p = r.str("path")?;
        if p == path || p.starts_with(&prefix) {
            out.push(r.i64("id")?);
        }
    }
    Ok(out)
}

pub async fn department_of(db: &Db, tenant_id: i64, person_id: i64) -> Result<Option<i64>> {
    Ok(db
        .fetch_optional(
            &Sql::new("SELECT department_id FROM people WHERE tenant_id = ? AND id = ?")
                .bind(tenant_id)
                .bind(person_id),
        )
        .await?
        .map(|r| r.opt_i64("department_id"))
        .transpose()?
        .flatten())
}

/// Search terms, prepared once.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Lower-cased, for names, pinyin, usernames and e-mail.
    pub text: Option<String>,
    /// As typed (trimmed), for student/staff numbers, which keep their case.
    pub raw: String,
    pub phone_index: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    pub search: Search,
    pub kind: Option<String>,
    pub department_ids: Option<Vec<i64>>,
    pub class_id: Option<i64>,
    pub active: Option<bool>,
}

const PERSON_COLS: &str = "p.id, p.kind, p.name, p.name_pinyin, p.number, p.gender, p.phone_enc, p.email, p.username, p.active, \
    p.department_id, d.name AS department_name, p.class_id, c.name AS class_name, p.created_at, p.updated_at";
const PERSON_FROM: &str = " FROM people p LEFT JOIN departments d ON d.id = p.department_id LEFT JOIN classes c ON c.id = p.class_id";

fn filter_sql(tenant_id: i64, reach: &Reach, f: &PeopleFilter) -> Sql {
    let mut sql = Sql::new(" WHERE p.tenant_id = ?").bind(tenant_id);
    reach.push_filter(tenant_id, &mut sql);
    if let Some(k) = &f.kind {
        sql.push_bind(" AND p.kind = ?", k.as_str());
    }
    if let Some(ids) = &f.department_ids {
        sql.push(" AND p.department_id IN ");
        sql.push_in(ids.iter().copied());
    }
    if let Some(c) = f.class_id {
        sql.push_bind(" AND p.class_id = ?", c);
    }
    if let Some(a) = f.active {
        sql.push_bind(" AND p.active = ?", a);
    }
    if let Some(t) = &f.search.text {
        sql.push_bind(" AND (p.search_key LIKE ?", format!("%{t}%"));
        if let Some(pi) = &f.search.phone_index {
            sql.push_bind(" OR p.phone_index = ?", pi.as_str());
        }
        sql.push(")");
    }
    sql
}

/// One page of people, best matches first, then by pinyin.
pub async fn list_people(
    db: &Db,
    tenant_id: i64,
    reach: &Reach,
    f: &PeopleFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AnyRow>, i64)> {
    let filter = filter_sql(tenant_id, reach, f);
    let count = || async {
        db.fetch_one(&Sql::around(
            format!("SELECT COUNT(*) AS n FROM people p{}", filter.text()),
            &filter,
        ))
        .await?
        .i64("n")
    };
    let Some(t) = &f.search.text else {
        // Plain lists: read the page in index order, count from the index.
        let mut sql = Sql::around(
            format!(
                "SELECT {PERSON_COLS}{PERSON_FROM}{} ORDER BY p.name_pinyin, p.id",
                filter.text()
            ),
            &filter,
        );
        sql.push_bind(" LIMIT ?", limit)
            .push_bind(" OFFSET ?", offset);
        // Page and count at once, on two connections.
        let (rows, total) = futures::try_join!(db.fetch_all(&sql), count())?;
        return Ok((rows, total));
    };
    // Searches scan once: the window count comes with the page.
    let mut sql = Sql::around(
        format!(
            "SELECT {PERSON_COLS}, COUNT(*) OVER () AS total_count{PERSON_FROM}{}",
            filter.text()
        ),
        &filter,
    );
    let prefix = format!("{t}%");
    sql.push_bind(" ORDER BY CASE WHEN p.name = ?", t.as_str())
        .push_bind(" OR p.name_initials = ?", t.as_str())
        .push_bind(" OR p.number = ? THEN 0", f.search.raw.as_str())
        .push_bind(" WHEN p.name LIKE ?", prefix.as_str())
        .push_bind(
            " OR p.name_pinyin LIKE ? THEN 1 ELSE 2 END, p.name_pinyin, p.id",
            prefix.as_str(),
        )
        .push_bind(" LIMIT ?", limit)
        .push_bind(" OFFSET ?", offset);
    let rows = db.fetch_all(&sql).await?;
    let total = match rows.first() {
        Some(r) => r.i64("total_count")?,
        None => count().await?,
    };
    Ok((rows, total))
}

pub async fn person_row(db: &Db, tenant_id: i64, reach: &Reach, id: i64) -> Result<Option<AnyRow>> {
    let mut sql = Sql::new(format!(
        "SELECT {PERSON_COLS}{PERSON_FROM} WHERE p.tenant_id = ?"
    ))
    .bind(tenant_id);
    sql.push_bind(" AND p.id = ?", id);
    reach.push_filter(tenant_id, &mut sql);
    db.fetch_optional(&sql).await
}

/// Related data for a page of people, fetched in four queries.
#[derive(Default)]
pub struct Related {
    pub roles: HashMap<i64, Vec<RoleRef>>,
    pub tags: HashMap<i64, Vec<String>>,
    pub parents: HashMap<i64, Vec<(i64, String, Option<String>)>>,
    pub children: HashMap<i64, Vec<ChildRef>>,
}

/// The four lookups run at once, on separate connections: on a server
/// database the page costs one round trip for them, not four.
pub async fn related(db: &Db, tenant_id: i64, ids: &[i64]) -> Result<Related> {
    let mut out = Related::default();
    if ids.is_empty() {
        return Ok(out);
    }
    let query = |text: &str, order: &str| {
        let mut sql = Sql::new(text).bind(tenant_id);
        sql.push_in(ids.iter().copied()).push(order);
        sql
    };
    let roles = query(
        "SELECT pr.person_id, r.id, r.role_key, r.name FROM person_roles pr JOIN roles r ON r.id = pr.role_id WHERE pr.tenant_id = ? AND pr.person_id IN ",
        " ORDER BY r.id",
    );
    let tags = query(
        "SELECT pt.person_id, t.name FROM person_tags pt JOIN tags t ON t.id = pt.tag_id WHERE pt.tenant_id = ? AND pt.person_id IN ",
        " ORDER BY t.name",
    );
    let parents = query(
        "SELECT g.student_id, p.id, p.name, p.phone_enc FROM guardianships g JOIN people p ON p.id = g.parent_id WHERE g.tenant_id = ? AND g.student_id IN ",
        " ORDER BY p.id",
    );
    let children = query(
        "SELECT g.parent_id, p.id, p.name, c.name AS class_name FROM guardianships g JOIN people p ON p.id = g.student_id \
         LEFT JOIN classes c ON c.id = p.class_id WHERE g.tenant_id = ? AND g.parent_id IN ",
        " ORDER BY p.id",
    );
    let (roles, tags, parents, children) = futures::try_join!(
        db.fetch_all(&roles),
        db.fetch_all(&tags),
        db.fetch_all(&parents),
        db.fetch_all(&children)
    )?;
    for r in roles {
        out.roles
            .entry(r.i64("person_id")?)
            .or_default()
            .push(RoleRef {
                id: r.i64("id")?,
                key: r.str("role_key")?,
                name: r.str("name")?,
            });
    }
    for r in tags {
        out.tags
            .entry(r.i64("person_id")?)
            .or_default()
            .push(r.str("name")?);
    }
    for r in parents {
        out.parents.entry(r.i64("student_id")?).or_default().push((
            r.i64("id")?,
            r.str("name")?,
            r.opt_str("phone_enc")?,
        ));
    }
    for r in children {
        out.children
            .entry(r.i64("parent_id")?)
            .or_default()
            .push(ChildRef {
                id: r.i64("id")?,
                name: r.str("name")?,
                class_name: r.opt_str("class_name")?,
            });
    }
    Ok(out)
}

pub fn person_base(r: &AnyRow, phone: Option<String>) -> Result<Person> {
    let opt_ref =
        |id: Option<i64>, name: Option<String>| id.zip(name).map(|(id, name)| NameRef { id, name });
    Ok(Person {
        id: r.i64("id")?,
        kind: r.str("kind")?,
        name: r.str("name")?,
        name_pinyin: r.str("name_pinyin")?,
        number: r.opt_str("number")?,
        gender: r.opt_str("gender")?,
        phone,
        email: r.opt_str("email")?,
        username: r.opt_str("username")?,
        active: r.bool("active")?,
        department: opt_ref(r.opt_i64("department_id")?, r.opt_str("department_name")?),
        class: opt_ref(r.opt_i64("class_id")?, r.opt_str("class_name")?),
        tags: vec![],
        roles: vec![],
        parents: vec![],
        children: vec![],
        created_at: ms_to_rfc3339(r.i64("created_at")?),
        updated_at: ms_to_rfc3339(r.i64("updated_at")?),
    })
}

pub async fn departments(db: &Db, tenant_id: i64) -> Result<Vec<Department>> {
    db.fetch_all(
        &Sql::new(
            "SELECT id, parent_id, name, path FROM departments WHERE tenant_id = ? ORDER BY path",
        )
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Department {
            id: r.i64("id")?,
            parent_id: r.opt_i64("parent_id")?,
            name: r.str("name")?,
            path: r.str("path")?,
        })
    })
    .collect()
}

pub async fn classes(db: &Db, tenant_id: i64) -> Result<Vec<Class>> {
    db.fetch_all(
        &Sql::new(
            "SELECT c.id, c.name, g.name AS grade_name, c.department_id, \
             (SELECT COUNT(*) FROM people p WHERE p.class_id = c.id AND p.active = 1 AND p.kind = 'student') AS student_count \
             FROM classes c LEFT JOIN grades g ON g.id = c.grade_id WHERE c.tenant_id = ? ORDER BY c.name",
        )
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Class {
            id: r.i64("id")?,
            name: r.str("name")?,
            grade_name: r.opt_str("grade_name")?,
            department_id: r.opt_i64("department_id")?,
            student_count: r.i64("student_count")?,
        })
    })
    .collect()
}

pub async fn tags(db: &Db, tenant_id: i64) -> Result<Vec<NameRef>> {
    db.fetch_all(
        &Sql::new("SELECT id, name FROM tags WHERE tenant_id = ? ORDER BY name").bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(NameRef {
            id: r.i64("id")?,
            name: r.str("name")?,
        })
    })
    .collect()
}

/// Find or create a department by its path of names ("信息工程系/软件教研室").
pub async fn ensure_department_path(tx: &mut Tx, tenant_id: i64, path: &str) -> Result<i64> {
    let mut parent: Option<i64> = None;
    let mut so_far = String::new();
    for part in path.split('/').map(str::trim).filter(|s| !s.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        let found = tx
            .fetch_optional(
                &Sql::new("SELECT id FROM departments WHERE tenant_id = ? AND path = ?")
                    .bind(tenant_id)
                    .bind(so_far.as_str()),
            )
            .await?;
        parent = Some(match found {
            Some(r) => r.i64("id")?,
            None => {
                tx.insert_id(
                    &Sql::new("INSERT INTO departments (tenant_id, parent_id, name, path, created_at) VALUES (?, ?, ?, ?, ?)")
                        .bind(tenant_id)
                        .bind(parent)
                        .bind(part)
                        .bind(so_far.as_str())
                        .bind(now_ms()),
                )
                .await?
            }
        });
    }
    parent.ok_or_else(|| crate::error::Error::validation("department", "empty department path"))
}

/// The id of the tenant's row in `table` (a constant) with this name,
/// inserted with `insert` when there is none.
async fn find_or_insert(
    tx: &mut Tx,
    table: &str,
    tenant_id: i64,
    name: &str,
    insert: Sql,
) -> Result<i64> {
    let found = tx
        .fetch_optional(
            &Sql::new(format!(
                "SELECT id FROM {table} WHERE tenant_id = ? AND name = ?"
            ))
            .bind(tenant_id)
            .bind(name),
        )
        .await?;
    match found {
        Some(r) => r.i64("id"),
        None => tx.insert_id(&insert).await,
    }
}

pub async fn ensure_class(
    tx: &mut Tx,
    tenant_id: i64,
    name: &str,
    department_id: Option<i64>,
) -> Result<i64> {
    let insert = Sql::new(
        "INSERT INTO classes (tenant_id, department_id, name, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(tenant_id)
    .bind(department_id)
    .bind(name)
    .bind(now_ms());
    find_or_insert(tx, "classes", tenant_id, name, insert).await
}

pub async fn ensure_grade(
    tx: &mut Tx,
    tenant_id: i64,
    name: &str,
    entry_year: Option<i64>,
) -> Result<i64> {
    let insert = Sql::new(
        "INSERT INTO grades (tenant_id, name, entry_year, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(tenant_id)
    .bind(name)
    .bind(entry_year)
    .bind(now_ms());
    find_or_insert(tx, "grades", tenant_id, name, insert).await
}

pub async fn grades(db: &Db, tenant_id: i64) -> Result<Vec<Grade>> {
    db.fetch_all(
        &Sql::new(
            "SELECT g.id, g.name, g.entry_year, (SELECT COUNT(*) FROM classes c WHERE c.grade_id = g.id) AS class_count \
             FROM grades g WHERE g.tenant_id = ? ORDER BY g.name",
        )
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Grade {
            id: r.i64("id")?,
            name: r.str("name")?,
            entry_year: r.opt_i64("entry_year")?,
            class_count: r.i64("class_count")?,
        })
    })
    .collect()
}

pub async fn campuses(db: &Db, tenant_id: i64) -> Result<Vec<Campus>> {
    db.fetch_all(
        &Sql::new(
            "SELECT m.id, m.name, m.address, (SELECT COUNT(*) FROM classes c WHERE c.campus_id = m.id) AS class_count \
             FROM campuses m WHERE m.tenant_id = ? ORDER BY m.id",
        )
        .bind(tenant_id),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Campus {
            id: r.i64("id")?,
            name: r.str("name")?,
            address: r.opt_str("address")?,
            class_count: r.i64("class_count")?,
        })
    })
    .collect()
}

pub async fn ensure_tag(tx: &mut Tx, tenant_id: i64, name: &str) -> Result<i64> {
    let insert = Sql::new("INSERT INTO tags (tenant_id, name) VALUES (?, ?)")
        .bind(tenant_id)
        .bind(name);
    find_or_insert(tx, "tags", tenant_id, name, insert).await
}

pub async fn set_tags(tx: &mut Tx, tenant_id: i64, person_id: i64, tag_ids: &[i64]) -> Result<()> {
    tx.execute(
        &Sql::new("DELETE FROM person_tags WHERE tenant_id = ? AND person_id = ?")
            .bind(tenant_id)
            .bind(person_id),
    )
    .await?;
    for t in tag_ids {
        tx.execute(
            &Sql::new("INSERT INTO person_tags (tenant_id, person_id, tag_id) VALUES (?, ?, ?)")
                .bind(tenant_id)
                .bind(person_id)
                .bind(*t),
        )
        .await?;
    }
    Ok(())
}

/// Bulk tag writes: drop the tags of `replace_for`, then add `(person, tag)` pairs.
pub async fn write_tags(
    tx: &mut Tx,
    tenant_id: i64,
    replace_for: &[i64],
    pairs: &[(i64, i64)],
) -> Result<()> {
    for chunk in replace_for.chunks(500) {
        let mut sql = Sql::new("DELETE FROM person_tags WHERE tenant_id = ? AND person_id IN ")
            .bind(tenant_id);
        sql.push_in(chunk.iter().copied());
        tx.execute(&sql).await?;
    }
    for chunk in pairs.chunks(500) {
        let mut sql = Sql::new("INSERT INTO person_tags (tenant_id, person_id, tag_id) VALUES ");
        for (i, (person, tag)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", tenant_id)
                .push_bind(", ?", *person)
                .push_bind(", ?)", *tag);
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

pub async fn link_guardian(
    tx: &mut Tx,
    tenant_id: i64,
    parent_id: i64,
    student_id: i64,
) -> Result<()> {
    tx.execute(
        &Sql::new(crate::db::insert_ignore(
            tx.backend(),
            "guardianships (tenant_id, parent_id, student_id, relation) VALUES (?, ?, ?, NULL)",
        ))
        .bind(tenant_id)
        .bind(parent_id)
        .bind(student_id),
    )
    .await?;
    Ok(())
}

/// Stored columns of a person, as written by create/update/import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonRecord {
    pub kind: String,
    pub number: Option<String>,
    pub name: String,
    pub gender: Option<String>,
    pub phone_enc: Option<String>,
    pub phone_index: Option<String>,
    pub email: Option<String>,
    pub id_number_enc: Option<String>,
    pub id_number_index: Option<String>,
    pub username: Option<String>,
    pub department_id: Option<i64>,
    pub class_id: Option<i64>,
}

const PEOPLE_INSERT: &str = "INSERT INTO people (tenant_id, kind, number, name, name_pinyin, name_initials, search_key, gender, phone_enc, phone_index, email, \
     id_number_enc, id_number_index, username, must_change_password, platform_admin, department_id, class_id, active, created_at, updated_at) VALUES ";

/// Pinyin, initials and search key of a person.
fn search_columns(p: &PersonRecord) -> (String, String, String) {
    let (py, ini) = super::validate::pinyin_of(&p.name);
    let key = super::validate::search_key(
        &p.name,
        &py,
        &ini,
        p.number.as_deref(),
        p.username.as_deref(),
        p.email.as_deref(),
    );
    (py, ini, key)
}

fn push_person_values(sql: &mut Sql, tenant_id: i64, p: &PersonRecord, now: i64) {
    let (py, ini, key) = search_columns(p);
    sql.push_bind("(?", tenant_id)
        .push_bind(", ?", p.kind.as_str())
        .push_bind(", ?", p.number.clone())
        .push_bind(", ?", p.name.as_str())
        .push_bind(", ?", py)
        .push_bind(", ?", ini)
        .push_bind(", ?", key)
        .push_bind(", ?", p.gender.clone())
        .push_bind(", ?", p.phone_enc.clone())
        .push_bind(", ?", p.phone_index.clone())
        .push_bind(", ?", p.email.clone())
        .push_bind(", ?", p.id_number_enc.clone())
        .push_bind(", ?", p.id_number_index.clone())
        .push_bind(", ?, 0, 0", p.username.clone())
        .push_bind(", ?", p.department_id)
        .push_bind(", ?, 1", p.class_id)
        .push_bind(", ?", now)
        .push_bind(", ?)", now);
}

/// Insert many people in multi-row statements; callers look ids up by number afterwards.
pub async fn insert_people(tx: &mut Tx, tenant_id: i64, people: &[PersonRecord]) -> Result<()> {
    let now = now_ms();
    for chunk in people.chunks(400) {
        let mut sql = Sql::new(PEOPLE_INSERT);
        for (i, p) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            push_person_values(&mut sql, tenant_id, p, now);
        }
        tx.execute(&sql).await?;
    }
    Ok(())
}

pub async fn insert_person(tx: &mut Tx, tenant_id: i64, p: &PersonRecord) -> Result<i64> {
    let mut sql = Sql::new(PEOPLE_INSERT);
    push_person_values(&mut sql, tenant_id, p, now_ms());
    tx.insert_id(&sql).await
}

pub async fn update_person(tx: &mut Tx, tenant_id: i64, id: i64, p: &PersonRecord) -> Result<()> {
    let (py, ini, key) = search_columns(p);
    tx.execute(
        &Sql::new(
            "UPDATE people SET kind = ?, number = ?, name = ?, name_pinyin = ?, name_initials = ?, search_key = ?, gender = ?, phone_enc = ?, phone_index = ?, \
             email = ?, id_number_enc = ?, id_number_index = ?, username = ?, department_id = ?, class_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
        )
        .bind(p.kind.as_str())
        .bind(p.number.clone())
        .bind(p.name.as_str())
        .bind(py)
        .bind(ini)
        .bind(key)
        .bind(p.gender.clone())
        .bind(p.phone_enc.clone())
        .bind(p.phone_index.clone())
        .bind(p.email.clone())
        .bind(p.id_number_enc.clone())
        .bind(p.id_number_index.clone())
        .bind(p.username.clone())
        .bind(p.department_id)
        .bind(p.class_id)
        .bind(now_ms())
        .bind(tenant_id)
        .bind(id),
    )
    .await?;
    Ok(())
}

pub async fn set_active(tx: &mut Tx, tenant_id: i64, id: i64, active: bool) -> Result<()> {
    tx.execute(
        &Sql::new("UPDATE people SET active = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(active)
            .bind(now_ms())
            .bind(tenant_id)
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Existing people of a tenant, keyed for import matching.
#[derive(Debug, Clone)]
pub struct Existing {
    pub id: i64,
    pub record: PersonRecord,
    pub tags: Vec<String>,
}

/// All people of a tenant, or just `only` when given.
pub async fn existing_people(
    tx: &mut Tx,
    tenant_id: i64,
    only: Option<i64>,
) -> Result<Vec<Existing>> {
    let mut sql = Sql::new(
        "SELECT id, kind, number, name, gender, phone_enc, phone_index, email, id_number_enc, id_number_index, username, department_id, class_id \
         FROM people WHERE tenant_id = ?",
    )
    .bind(tenant_id);
    let mut tag_sql = Sql::new("SELECT pt.person_id, t.name FROM person_tags pt JOIN tags t ON t.id = pt.tag_id WHERE pt.tenant_id = ?").bind(tenant_id);
    if let Some(id) = only {
        sql.push_bind(" AND id = ?", id);
        tag_sql.push_bind(" AND pt.person_id = ?", id);
    }
    tag_sql.push(" ORDER BY t.name");
    let rows = tx.fetch_all(&sql).await?;
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    for r in tx.fetch_all(&tag_sql).await? {
        tags.entry(r.i64("person_id")?)
            .or_default()
            .push(r.str("name")?);
    }
    rows.iter()
        .map(|r| {
            let id = r.i64("id")?;
            Ok(Existing {
                id,
                record: PersonRecord {
                    kind: r.str("kind")?,
                    number: r.opt_str("number")?,
                    name: r.str("name")?,
                    gender: r.opt_str("gender")?,
                    phone_enc: r.opt_str("phone_enc")?,
                    phone_index: r.opt_str("phone_index")?,
                    email: r.opt_str("email")?,
                    id_number_enc: r.opt_str("id_number_enc")?,
                    id_number_index: r.opt_str("id_number_index")?,
                    username: r.opt_str("username")?,
                    department_id: r.opt_i64("department_id")?,
                    class_id: r.opt_i64("class_id")?,
                },
                tags: tags.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

pub async fn ids_by_number(
    tx: &mut Tx,
    tenant_id: i64,
    numbers: &[String],
) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for chunk in numbers.chunks(500) {
        let mut sql = Sql::new("SELECT id, number FROM people WHERE tenant_id = ? AND number IN ")
            .bind(tenant_id);
        sql.push_in(chunk.iter().map(String::as_str));
        for r in tx.fetch_all(&sql).await? {
            if let Some(n) = r.opt_str("number")? {
                out.insert(n, r.i64("id")?);
            }
        }
    }
    Ok(out)
}
