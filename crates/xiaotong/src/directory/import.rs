//! Bulk import of people from CSV (UTF-8 or GB18030, as Excel writes it in
//! China) or XLSX. Every row is validated first; a file with errors imports
//! nothing unless the caller asks for valid rows only; rows are upserted by
//! student/staff number (parents without a number by phone), so importing
//! the same file twice changes nothing the second time.

use super::service::{audit_view, validate_fields, ValidPerson};
use super::store::{self, PersonRecord};
use crate::app::App;
use crate::audit::{self, Change};
use crate::auth::{self, Actor};
use crate::db::{ms_to_rfc3339, now_ms, Db, RowExt, Sql};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RowError {
    /// Spreadsheet row: the header is row 1.
    pub row: usize,
    /// The column's header as written in the file.
    pub column: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    AllOrNothing,
    ValidRowsOnly,
}

impl ImportMode {
    pub fn parse(s: &str) -> Option<ImportMode> {
        match s {
            "" | "all_or_nothing" => Some(ImportMode::AllOrNothing),
            "valid_rows_only" => Some(ImportMode::ValidRowsOnly),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::AllOrNothing => "all_or_nothing",
            ImportMode::ValidRowsOnly => "valid_rows_only",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// succeeded, or rejected when errors stopped an all-or-nothing import.
    pub state: String,
    pub total_rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub errors: Vec<RowError>,
}

/// A parsed sheet: headers and rows of trimmed text.
#[derive(Debug, Clone)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub fn parse_file(file_name: &str, bytes: &[u8]) -> Result<Table> {
    let lower = file_name.to_lowercase();
    if lower.ends_with(".xlsx") || lower.ends_with(".xls") || bytes.starts_with(b"PK\x03\x04") {
        parse_xlsx(bytes)
    } else if lower.ends_with(".csv") || lower.ends_with(".txt") || !bytes.contains(&0) {
        parse_csv(bytes)
    } else {
        Err(Error::BadRequest(
            "unsupported file type: upload .xlsx or .csv".into(),
        ))
    }
}

fn parse_csv(bytes: &[u8]) -> Result<Table> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let (cow, _, bad) = encoding_rs::GB18030.decode(bytes);
            if bad {
                return Err(Error::BadRequest(
                    "the CSV file is neither UTF-8 nor GB18030 text".into(),
                ));
            }
            cow.into_owned()
        }
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = vec![];
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::BadRequest(format!("CSV row {}: {e}", i + 1)))?;
        rows.push(rec.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>());
    }
    split_header(rows)
}

fn parse_xlsx(bytes: &[u8]) -> Result<Table> {
    use calamine::{Data, Reader};
    let mut wb = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes.to_vec()))
        .map_err(|e| Error::BadRequest(format!("cannot read the spreadsheet: {e}")))?;
    let first = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| Error::BadRequest("the spreadsheet has no sheets".into()))?;
    let range = wb
        .worksheet_range(&first)
        .map_err(|e| Error::BadRequest(format!("cannot read sheet {first}: {e}")))?;
    let rows = range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::String(s) => s.trim().to_string(),
                    // Phone numbers typed into Excel become numbers: print integers without ".0".
                    Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                        format!("{}", *f as i64)
                    }
                    Data::Int(i) => i.to_string(),
                    other => other.to_string().trim().to_string(),
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    split_header(rows)
}

fn split_header(mut rows: Vec<Vec<String>>) -> Result<Table> {
    if rows.is_empty() {
        return Err(Error::BadRequest("the file is empty".into()));
    }
    let headers = rows.remove(0);
    Ok(Table { headers, rows })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Kind,
    Number,
    Name,
    Gender,
    Phone,
    Email,
    IdNumber,
    Department,
    Class,
    ParentOf,
    Username,
    Tags,
    Password,
}

fn field_of(header: &str) -> Option<Field> {
    let h = header
        .trim()
        .trim_start_matches('*')
        .to_lowercase()
        .replace(' ', "");
    Some(match h.as_str() {
        "类型" | "人员类型" | "kind" => Field::Kind,
        "学号工号" | "学号/工号" | "学号" | "工号" | "number" => Field::Number,
        "姓名" | "name" => Field::Name,
        "性别" | "gender" => Field::Gender,
        "手机号" | "手机" | "电话" | "phone" => Field::Phone,
        "邮箱" | "电子邮箱" | "email" | "e-mail" => Field::Email,
        "身份证号" | "身份证" | "id_number" => Field::IdNumber,
        "部门" | "院系" | "department" => Field::Department,
        "班级" | "class" => Field::Class,
        "家长的学生学号" | "子女学号" | "parent_of" => Field::ParentOf,
        "用户名" | "username" => Field::Username,
        "标签" | "tags" => Field::Tags,
        "初始密码" | "password" | "initial_password" => Field::Password,
        _ => return None,
    })
}

struct Planned {
    row: usize,
    valid: ValidPerson,
    department: Option<String>,
    class: Option<String>,
    tags: Option<Vec<String>>,
    parent_of: Vec<String>,
    password: Option<String>,
}

fn split_list(s: &str) -> Vec<String> {
    s.split([';', '；', ',', '，'])
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Validate and, unless rejected, apply a table. `progress(done, total)` is
/// called as rows are written.
pub async fn run(
    app: &App,
    actor: &Actor,
    table: &Table,
    mode: ImportMode,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Result<Outcome> {
    let tenant_id = actor.tenant_id;
    let mut cols: HashMap<Field, usize> = HashMap::new();
    for (i, h) in table.headers.iter().enumerate() {
        if let Some(f) = field_of(h) {
            cols.entry(f).or_insert(i);
        }
    }
    let header_of = |f: Field| {
        cols.get(&f)
            .map(|i| table.headers[*i].clone())
            .unwrap_or_default()
    };
    let mut errors = vec![];
    for (f, label) in [(Field::Name, "姓名/name"), (Field::Kind, "类型/kind")] {
        if !cols.contains_key(&f) {
            errors.push(RowError {
                row: 1,
                column: label.to_string(),
                message: format!("required column {label} is missing"),
            });
        }
    }
    if !errors.is_empty() {
        return Ok(Outcome {
            state: "rejected".into(),
            total_rows: table.rows.len(),
            errors,
            ..Outcome::default()
        });
    }
    let get = |row: &[String], f: Field| -> Option<String> {
        cols.get(&f)
            .and_then(|i| row.get(*i))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };

    // 1. Validate every row on its own.
    let mut planned: Vec<Planned> = vec![];
    let mut data_rows = 0usize;
    for (idx, row) in table.rows.iter().enumerate() {
        let row_no = idx + 2;
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        data_rows += 1;
        let field_col = |name: &str| -> String {
            let f = match name {
                "kind" => Field::Kind,
                "name" => Field::Name,
                "number" => Field::Number,
                "gender" => Field::Gender,
                "phone" => Field::Phone,
                "email" => Field::Email,
                "id_number" => Field::IdNumber,
                _ => Field::Username,
            };
            header_of(f)
        };
        match validate_fields(
            app,
            &get(row, Field::Kind).unwrap_or_default(),
            &get(row, Field::Name).unwrap_or_default(),
            get(row, Field::Number).as_deref(),
            get(row, Field::Gender).as_deref(),
            get(row, Field::Phone).as_deref(),
            get(row, Field::Email).as_deref(),
            get(row, Field::IdNumber).as_deref(),
            get(row, Field::Username).as_deref(),
        ) {
            Ok(valid) => {
                let password = get(row, Field::Password);
                if let Some(pw) = &password {
                    if let Err(Error::Validation(e)) = crate::auth::password::check_policy(pw) {
                        for fe in e {
                            errors.push(RowError {
                                row: row_no,
                                column: header_of(Field::Password),
                                message: fe.message,
                            });
                        }
                        continue;
                    }
                }
                let parent_of = get(row, Field::ParentOf)
                    .map(|s| split_list(&s))
                    .unwrap_or_default();
                if !parent_of.is_empty() && valid.record.kind != "parent" {
                    errors.push(RowError {
                        row: row_no,
                        column: header_of(Field::ParentOf),
                        message: "only parents can have children listed".into(),
                    });
                    continue;
                }
                planned.push(Planned {
                    row: row_no,
                    department: get(row, Field::Department),
                    class: get(row, Field::Class),
                    tags: cols.contains_key(&Field::Tags).then(|| {
                        get(row, Field::Tags)
                            .map(|s| split_list(&s))
                            .unwrap_or_default()
                    }),
                    parent_of,
                    password,
                    valid,
                });
            }
            Err(fes) => {
                for fe in fes {
                    errors.push(RowError {
                        row: row_no,
                        column: field_col(&fe.field),
                        message: fe.message,
                    });
                }
            }
        }
    }

    // 2. Checks across rows and against the database.
    let mut tx = app.db.begin().await?;
    let existing = store::existing_people(&mut tx, tenant_id, None).await?;
    tx.rollback().await?;
    let by_number: HashMap<&str, &store::Existing> = existing
        .iter()
        .filter_map(|e| e.record.number.as_deref().map(|n| (n, e)))
        .collect();
    let parents_by_phone: HashMap<&str, &store::Existing> = existing
        .iter()
        .filter(|e| e.record.kind == "parent" && e.record.number.is_none())
        .filter_map(|e| e.record.phone_index.as_deref().map(|p| (p, e)))
        .collect();
    let by_username: HashMap<&str, i64> = existing
        .iter()
        .filter_map(|e| e.record.username.as_deref().map(|u| (u, e.id)))
        .collect();
    let by_email: HashMap<&str, i64> = existing
        .iter()
        .filter_map(|e| e.record.email.as_deref().map(|u| (u, e.id)))
        .collect();
    let match_of = |p: &Planned| -> Option<&store::Existing> {
        match &p.valid.record.number {
            Some(n) => by_number.get(n.as_str()).copied(),
            None if p.valid.record.kind == "parent" => p
                .valid
                .record
                .phone_index
                .as_deref()
                .and_then(|ph| parents_by_phone.get(ph).copied()),
            None => None,
        }
    };
    let mut seen_number: HashMap<String, usize> = HashMap::new();
    let mut seen_username: HashMap<String, usize> = HashMap::new();
    let mut seen_email: HashMap<String, usize> = HashMap::new();
    let students_in_file: HashSet<String> = planned
        .iter()
        .filter(|p| p.valid.record.kind == "student")
        .filter_map(|p| p.valid.record.number.clone())
        .collect();
    let mut bad_rows: HashSet<usize> = HashSet::new();
    for p in &planned {
        let mut err = |column: String, message: String| {
            errors.push(RowError {
                row: p.row,
                column,
                message,
            });
            bad_rows.insert(p.row);
        };
        let me = match_of(p).map(|e| e.id);
        if let Some(n) = &p.valid.record.number {
            if let Some(first) = seen_number.insert(n.clone(), p.row) {
                err(
                    header_of(Field::Number),
                    format!("number {n} also appears in row {first}"),
                );
            }
        }
        if let Some(u) = &p.valid.record.username {
            if let Some(first) = seen_username.insert(u.clone(), p.row) {
                err(
                    header_of(Field::Username),
                    format!("username {u} also appears in row {first}"),
                );
            } else if by_username
                .get(u.as_str())
                .is_some_and(|id| Some(*id) != me)
            {
                err(
                    header_of(Field::Username),
                    format!("username {u} belongs to someone else"),
                );
            }
        }
        if let Some(e) = &p.valid.record.email {
            if let Some(first) = seen_email.insert(e.clone(), p.row) {
                err(
                    header_of(Field::Email),
                    format!("e-mail {e} also appears in row {first}"),
                );
            } else if by_email.get(e.as_str()).is_some_and(|id| Some(*id) != me) {
                err(
                    header_of(Field::Email),
                    format!("e-mail {e} belongs to someone else"),
                );
            }
        }
        if let Some(ex) = match_of(p) {
            if ex.record.kind != p.valid.record.kind {
                err(
                    header_of(Field::Kind),
                    format!(
                        "number {} belongs to a {} already",
                        p.valid.record.number.clone().unwrap_or_default(),
                        ex.record.kind
                    ),
                );
            }
        }
        for s in &p.parent_of {
            let known = students_in_file.contains(s)
                || by_number
                    .get(s.as_str())
                    .is_some_and(|e| e.record.kind == "student");
            if !known {
                err(
                    header_of(Field::ParentOf),
                    format!("no student with number {s}"),
                );
            }
        }
        if p.department
            .as_deref()
            .is_some_and(|d| d.chars().count() > 200)
        {
            err(
                header_of(Field::Department),
                "department path is longer than 200 characters".into(),
            );
        }
        if p.class.as_deref().is_some_and(|c| c.chars().count() > 100) {
            err(
                header_of(Field::Class),
                "class name is longer than 100 characters".into(),
            );
        }
    }
    errors.sort_by(|a, b| a.row.cmp(&b.row).then(a.column.cmp(&b.column)));
    let total_rows = data_rows;
    if !errors.is_empty() && mode == ImportMode::AllOrNothing {
        return Ok(Outcome {
            state: "rejected".into(),
            total_rows,
            errors,
            ..Outcome::default()
        });
    }
    let planned: Vec<Planned> = planned
        .into_iter()
        .filter(|p| !bad_rows.contains(&p.row))
        .collect();
    let skipped = total_rows - planned.len();

    // 3. Apply, in chunks so that other writers are not held up for long.
    let mut out = Outcome {
        state: "succeeded".into(),
        total_rows,
        skipped,
        errors,
        ..Outcome::default()
    };
    let mut dept_ids: HashMap<String, i64> = HashMap::new();
    let mut class_ids: HashMap<String, i64> = HashMap::new();
    let mut tag_ids: HashMap<String, i64> = HashMap::new();
    let mut number_ids: HashMap<String, i64> = existing
        .iter()
        .filter_map(|e| e.record.number.clone().map(|n| (n, e.id)))
        .collect();
    let links: HashSet<(i64, i64)> = load_links(&app.db, tenant_id).await?;
    progress(0, planned.len());
    let mut done = 0usize;
    // Students before parents, so a parent's children exist when linked.
    let mut ordered: Vec<&Planned> = planned.iter().collect();
    ordered.sort_by_key(|p| (p.valid.record.kind == "parent", p.row));
    for chunk in ordered.chunks(2000) {
        let mut tx = app.db.begin().await?;
        let mut changes = vec![];
        let mut creates: Vec<(&Planned, PersonRecord)> = vec![];
        // (person, row, tags to write: Some(true) replaces, Some(false) adds to a new person)
        let mut touched: Vec<(i64, &Planned, Option<bool>)> = vec![];
        for p in chunk {
            let mut record = p.valid.record.clone();
            if let Some(d) = &p.department {
                let id = match dept_ids.get(d) {
                    Some(id) => *id,
                    None => {
                        let id = store::ensure_department_path(&mut tx, tenant_id, d).await?;
                        dept_ids.insert(d.clone(), id);
                        id
                    }
                };
                record.department_id = Some(id);
            }
            if let Some(c) = &p.class {
                let id = match class_ids.get(c) {
                    Some(id) => *id,
                    None => {
                        let id = store::ensure_class(&mut tx, tenant_id, c, record.department_id)
                            .await?;
                        class_ids.insert(c.clone(), id);
                        id
                    }
                };
                record.class_id = Some(id);
            }
            match match_of(p) {
                Some(ex) => {
                    let mut merged = record.clone();
                    // Empty cells and absent columns keep the stored values:
                    // a partial sheet never wipes data.
                    let e = &ex.record;
                    merged.gender = merged.gender.or_else(|| e.gender.clone());
                    if merged.phone_index.is_none() {
                        merged.phone_index = e.phone_index.clone();
                        merged.phone_enc = e.phone_enc.clone();
                    }
                    merged.email = merged.email.or_else(|| e.email.clone());
                    if merged.id_number_index.is_none() {
                        merged.id_number_index = e.id_number_index.clone();
                        merged.id_number_enc = e.id_number_enc.clone();
                    }
                    merged.username = merged.username.or_else(|| e.username.clone());
                    merged.department_id = merged.department_id.or(e.department_id);
                    merged.class_id = merged.class_id.or(e.class_id);
                    let same_fields = same_person(&merged, &ex.record);
                    let mut new_tags = p.tags.clone();
                    if let Some(t) = new_tags.as_mut() {
                        t.sort();
                        t.dedup();
                    }
                    let same_tags = new_tags.as_ref().is_none_or(|t| *t == ex.tags);
                    let new_links = p.parent_of.iter().any(|s| {
                        number_ids
                            .get(s)
                            .is_some_and(|sid| !links.contains(&(ex.id, *sid)))
                    });
                    if same_fields && same_tags && !new_links && p.password.is_none() {
                        out.unchanged += 1;
                        continue;
                    }
                    if !same_fields {
                        if ex.record.phone_index == merged.phone_index {
                            merged.phone_enc = ex.record.phone_enc.clone();
                        }
                        if ex.record.id_number_index == merged.id_number_index {
                            merged.id_number_enc = ex.record.id_number_enc.clone();
                        }
                        store::update_person(&mut tx, tenant_id, ex.id, &merged).await?;
                    }
                    let old_phone = ex
                        .record
                        .phone_enc
                        .as_ref()
                        .and_then(|e| app.keys.decrypt(e).ok());
                    changes.push(
                        Change::new("import_update", "person", ex.id)
                            .before(audit_view(&ex.record, old_phone.as_deref(), &ex.tags))
                            .after(audit_view(
                                &merged,
                                p.valid.phone_plain.as_deref(),
                                new_tags.as_deref().unwrap_or(&ex.tags),
                            )),
                    );
                    out.updated += 1;
                    touched.push((ex.id, p, (!same_tags).then_some(true)));
                }
                None => creates.push((p, record)),
            }
        }
        // Inserts: numbered people in multi-row statements, the rest one by one.
        let numbered: Vec<PersonRecord> = creates
            .iter()
            .filter(|(_, r)| r.number.is_some())
            .map(|(_, r)| r.clone())
            .collect();
        store::insert_people(&mut tx, tenant_id, &numbered).await?;
        let numbers: Vec<String> = numbered.iter().filter_map(|r| r.number.clone()).collect();
        number_ids.extend(store::ids_by_number(&mut tx, tenant_id, &numbers).await?);
        let mut role_grants: Vec<(i64, &str)> = vec![];
        for (p, r) in &creates {
            let id = match &r.number {
                Some(n) => *number_ids.get(n).ok_or_else(|| {
                    Error::Other(anyhow::anyhow!("inserted person {n} not found"))
                })?,
                None => store::insert_person(&mut tx, tenant_id, r).await?,
            };
            changes.push(Change::new("import_create", "person", id).after(audit_view(
                r,
                p.valid.phone_plain.as_deref(),
                p.tags.as_deref().unwrap_or(&[]),
            )));
            role_grants.push((id, super::service::default_role_for(&r.kind)));
            touched.push((
                id,
                p,
                p.tags.as_ref().filter(|t| !t.is_empty()).map(|_| false),
            ));
            out.created += 1;
        }
        let mut tag_deletes = vec![];
        let mut tag_inserts = vec![];
        for (id, p, tag_action) in &touched {
            if let (Some(replace), Some(tags)) = (tag_action, &p.tags) {
                let mut ids = vec![];
                for t in tags {
                    let tid = match tag_ids.get(t) {
                        Some(x) => *x,
                        None => {
                            let x = store::ensure_tag(&mut tx, tenant_id, t).await?;
                            tag_ids.insert(t.clone(), x);
                            x
                        }
                    };
                    ids.push(tid);
                }
                ids.sort_unstable();
                ids.dedup();
                if *replace {
                    tag_deletes.push(*id);
                }
                tag_inserts.extend(ids.into_iter().map(|t| (*id, t)));
            }
            for s in &p.parent_of {
                if let Some(sid) = number_ids
                    .get(s)
                    .filter(|sid| !links.contains(&(*id, **sid)))
                {
                    store::link_guardian(&mut tx, tenant_id, *id, *sid).await?;
                }
            }
            if let Some(pw) = &p.password {
                let hash = crate::auth::password::hash(pw.clone()).await?;
                auth::store::set_password(&mut tx, tenant_id, *id, &hash, true).await?;
            }
        }
        store::write_tags(&mut tx, tenant_id, &tag_deletes, &tag_inserts).await?;
        grant_roles(&mut tx, tenant_id, &role_grants).await?;
        audit::append(&mut tx, actor, &changes).await?;
        tx.commit().await?;
        done += chunk.len();
        progress(done, planned.len());
    }
    Ok(out)
}

async fn grant_roles(tx: &mut crate::db::Tx, tenant_id: i64, grants: &[(i64, &str)]) -> Result<()> {
    let roles = tx
        .fetch_all(&Sql::new("SELECT id, role_key FROM roles WHERE tenant_id = ?").bind(tenant_id))
        .await?;
    let mut by_key = HashMap::new();
    for r in roles {
        by_key.insert(r.str("role_key")?, r.i64("id")?);
    }
    for chunk in grants.chunks(500) {
        let mut sql = Sql::new("INSERT INTO person_roles (tenant_id, person_id, role_id) VALUES ");
        let mut any = false;
        for (pid, key) in chunk {
            let Some(rid) = by_key.get(*key) else {
                continue;
            };
            if any {
                sql.push(", ");
            }
            any = true;
            sql.push_bind("(?", tenant_id)
                .push_bind(", ?", *pid)
                .push_bind(", ?)", *rid);
        }
        if any {
            tx.execute(&sql).await?;
        }
    }
    Ok(())
}

async fn load_links(db: &Db, tenant_id: i64) -> Result<HashSet<(i64, i64)>> {
    let rows = db
        .fetch_all(
            &Sql::new("SELECT parent_id, student_id FROM guardianships WHERE tenant_id = ?")
                .bind(tenant_id),
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.i64("parent_id")?, r.i64("student_id")?)))
        .collect()
}

fn same_person(a: &PersonRecord, b: &PersonRecord) -> bool {
    a.kind == b.kind
        && a.number == b.number
        && a.name == b.name
        && a.gender == b.gender
        && a.phone_index == b.phone_index
        && a.email == b.email
        && a.id_number_index == b.id_number_index
        && a.username == b.username
        && a.department_id == b.department_id
        && a.class_id == b.class_id
}

// ---- import records (for the API and its progress bar) ----

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportInfo {
    pub id: i64,
    /// queued, running, succeeded, rejected or failed.
    pub state: String,
    pub file_name: String,
    pub mode: ImportMode,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub errors: Vec<RowError>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

pub const JOB_KIND: &str = "directory.import_people";

/// Store an upload and enqueue its processing, in one transaction.
pub async fn submit(
    app: &App,
    actor: &Actor,
    file_name: &str,
    bytes: Vec<u8>,
    mode: ImportMode,
) -> Result<ImportInfo> {
    if bytes.is_empty() {
        return Err(Error::validation("file", "the file is empty"));
    }
    // Parse now so an unreadable file is refused at once, with the reason.
    let table = parse_file(file_name, &bytes)?;
    let mut tx = app.db.begin().await?;
    let id = tx
        .insert_id(
            &Sql::new("INSERT INTO imports (tenant_id, actor_id, file_name, mode, state, total_rows, processed_rows, created, updated, unchanged, skipped, errors, content, created_at) VALUES (?, ?, ?, ?, 'queued', ?, 0, 0, 0, 0, 0, NULL, ?, ?)")
                .bind(actor.tenant_id)
                .bind(actor.person_id)
                .bind(file_name.chars().take(300).collect::<String>())
                .bind(mode.as_str())
                .bind(table.rows.len() as i64)
                .bind(bytes)
                .bind(now_ms()),
        )
        .await?;
    crate::jobs::enqueue(
        &mut tx,
        &crate::jobs::NewJob::new(JOB_KIND, serde_json::json!({"import_id": id, "actor_id": actor.person_id, "actor_name": actor.name, "ip": actor.ip}))
            .tenant(actor.tenant_id)
            .unique(format!("import:{id}"))
            .max_attempts(3),
    )
    .await?;
    tx.commit().await?;
    get(&app.db, actor.tenant_id, id).await
}

pub async fn get(db: &Db, tenant_id: i64, id: i64) -> Result<ImportInfo> {
    let r = db
        .fetch_optional(
            &Sql::new("SELECT id, file_name, mode, state, total_rows, processed_rows, created, updated, unchanged, skipped, errors, created_at, finished_at FROM imports WHERE tenant_id = ? AND id = ?")
                .bind(tenant_id)
                .bind(id),
        )
        .await?
        .ok_or(Error::NotFound("import"))?;
    Ok(ImportInfo {
        id: r.i64("id")?,
        state: r.str("state")?,
        file_name: r.str("file_name")?,
        mode: ImportMode::parse(&r.str("mode")?).unwrap_or(ImportMode::AllOrNothing),
        total_rows: r.i64("total_rows")?,
        processed_rows: r.i64("processed_rows")?,
        created: r.i64("created")?,
        updated: r.i64("updated")?,
        unchanged: r.i64("unchanged")?,
        skipped: r.i64("skipped")?,
        errors: r
            .opt_str("errors")?
            .and_then(|e| serde_json::from_str(&e).ok())
            .unwrap_or_default(),
        created_at: ms_to_rfc3339(r.i64("created_at")?),
        finished_at: r.opt_i64("finished_at")?.map(ms_to_rfc3339),
    })
}

/// The job that processes a submitted import.
pub async fn process_job(app: App, job: crate::jobs::Job) -> anyhow::Result<()> {
    let import_id = job.payload["import_id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("payload without import_id"))?;
    let tenant_id = job
        .tenant_id
        .ok_or_else(|| anyhow::anyhow!("import job without tenant"))?;
    let row = app
        .db
        .fetch_optional(&Sql::new("SELECT file_name, mode, state, content FROM imports WHERE tenant_id = ? AND id = ?").bind(tenant_id).bind(import_id))
        .await?
        .ok_or_else(|| anyhow::anyhow!("import {import_id} not found"))?;
    let state = row.str("state")?;
    if matches!(state.as_str(), "succeeded" | "rejected" | "failed") {
        return Ok(());
    }
    let mode = ImportMode::parse(&row.str("mode")?).unwrap_or(ImportMode::AllOrNothing);
    let table = parse_file(&row.str("file_name")?, &row.bytes("content")?)?;
    app.db
        .execute(&Sql::new("UPDATE imports SET state = 'running' WHERE id = ?").bind(import_id))
        .await?;
    let actor = Actor {
        tenant_id,
        person_id: job.payload["actor_id"].as_i64(),
        name: job.payload["actor_name"].as_str().map(str::to_string),
        ip: job.payload["ip"].as_str().map(str::to_string),
        request_id: None,
    };
    let (tx_progress, mut rx_progress) = tokio::sync::watch::channel(0usize);
    let db = app.db.clone();
    let updater = tokio::spawn(async move {
        while rx_progress.changed().await.is_ok() {
            let done = *rx_progress.borrow_and_update();
            db.execute(
                &Sql::new("UPDATE imports SET processed_rows = ? WHERE id = ?")
                    .bind(done as i64)
                    .bind(import_id),
            )
            .await
            .ok();
        }
    });
    let progress = move |done: usize, _total: usize| {
        tx_progress.send(done).ok();
    };
    let result = run(&app, &actor, &table, mode, &progress).await;
    drop(progress);
    updater.await.ok();
    let (state, outcome) = match result {
        Ok(o) => (o.state.clone(), o),
        Err(e) => (
            "failed".to_string(),
            Outcome {
                errors: vec![RowError {
                    row: 0,
                    column: String::new(),
                    message: e.to_string(),
                }],
                ..Outcome::default()
            },
        ),
    };
    let processed = (outcome.created + outcome.updated + outcome.unchanged) as i64;
    app.db
        .execute(
            &Sql::new("UPDATE imports SET state = ?, total_rows = ?, processed_rows = ?, created = ?, updated = ?, unchanged = ?, skipped = ?, errors = ?, content = NULL, finished_at = ? WHERE id = ?")
                .bind(state.as_str())
                .bind(outcome.total_rows as i64)
                .bind(processed)
                .bind(outcome.created as i64)
                .bind(outcome.updated as i64)
                .bind(outcome.unchanged as i64)
                .bind(outcome.skipped as i64)
                .bind(serde_json::to_string(&outcome.errors).unwrap_or_default())
                .bind(now_ms())
                .bind(import_id),
        )
        .await?;
    Ok(())
}
