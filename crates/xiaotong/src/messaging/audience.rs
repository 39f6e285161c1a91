//! Audiences: rules (people, roles, departments with sub-departments,
//! classes, grades, tags, kinds, "parents of") with exclusions, resolved by
//! one query to the active people they reach.

use super::model::{Audience, AudienceRule};
use super::store::Exec;
use crate::db::{Backend, RowExt, Sql};
use crate::error::{Error, FieldError, Result};

/// One recipient: the person, and for parents reached through a student,
/// that student (0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    pub person_id: i64,
    pub via: i64,
}

const RULE_TYPES: &[&str] = &[
    "all",
    "kind",
    "person",
    "role",
    "department",
    "class",
    "grade",
    "tag",
];

fn ids_of(v: &Option<serde_json::Value>) -> Option<Vec<i64>> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_i64().map(|i| vec![i]),
        Some(serde_json::Value::Array(a)) => a.iter().map(|x| x.as_i64()).collect(),
        Some(serde_json::Value::String(s)) => s.parse().ok().map(|i| vec![i]),
        _ => None,
    }
}

fn text_of(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Checks the shape of every rule and that the ids it names belong to the tenant.
pub async fn validate(exec: &mut Exec<'_>, tenant_id: i64, a: &Audience) -> Result<()> {
    let mut errors = Vec::new();
    for (list, rules) in [("include", &a.include), ("exclude", &a.exclude)] {
        for (i, r) in rules.iter().enumerate() {
            let field = format!("audience.{list}[{i}]");
            if !RULE_TYPES.contains(&r.rule_type.as_str()) {
                errors.push(FieldError::new(
                    &field,
                    format!(
                        "unknown rule type `{}`; one of {}",
                        r.rule_type,
                        RULE_TYPES.join(", ")
                    ),
                ));
                continue;
            }
            if !matches!(
                r.who.as_deref(),
                None | Some("self") | Some("parents") | Some("both")
            ) {
                errors.push(FieldError::new(&field, "who must be self, parents or both"));
            }
            let table = match r.rule_type.as_str() {
                "all" => continue,
                "kind" | "role" => {
                    if text_of(&r.value).is_none() {
                        errors.push(FieldError::new(&field, "needs a value"));
                    }
                    continue;
                }
                "person" => "people",
                "department" => "departments",
                "class" => "classes",
                "grade" => "grades",
                _ => "tags",
            };
            let Some(ids) = ids_of(&r.value).filter(|v| !v.is_empty()) else {
                errors.push(FieldError::new(&field, "needs an id or a list of ids"));
                continue;
            };
            let mut q = Sql::new(format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = ?"
            ))
            .bind(tenant_id);
            q.push(" AND id IN ");
            q.push_in(ids.iter().copied());
            let found = exec.fetch_one(&q).await?.i64("n")?;
            if found != ids.len() as i64 {
                errors.push(FieldError::new(
                    &field,
                    format!("{} not found", r.rule_type),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// The active people a rule matches, as a query selecting `id`.
async fn matched(exec: &mut Exec<'_>, tenant_id: i64, r: &AudienceRule) -> Result<Sql> {
    let mut q =
        Sql::new("SELECT id FROM people WHERE tenant_id = ? AND active = 1").bind(tenant_id);
    match r.rule_type.as_str() {
        "all" => {}
        "kind" => {
            q.push_bind(" AND kind = ?", text_of(&r.value).unwrap_or_default());
        }
        "person" => {
            q.push(" AND id IN ");
            q.push_in(ids_of(&r.value).unwrap_or_default());
        }
        "role" => {
            q = Sql::new(
                "SELECT pr.person_id AS id FROM person_roles pr JOIN roles r ON r.id = pr.role_id \
                 JOIN people p ON p.id = pr.person_id AND p.active = 1 \
                 WHERE pr.tenant_id = ? AND r.tenant_id = ? AND r.role_key = ?",
            )
            .bind(tenant_id)
            .bind(tenant_id)
            .bind(text_of(&r.value).unwrap_or_default());
        }
        "department" => {
            let mut all = Vec::new();
            for id in ids_of(&r.value).unwrap_or_default() {
                all.extend(department_subtree(exec, tenant_id, id).await?);
            }
            all.push(-1);
            q.push(" AND (department_id IN ");
            q.push_in(all.iter().copied());
            q.push_bind(
                " OR class_id IN (SELECT id FROM classes WHERE tenant_id = ?",
                tenant_id,
            );
            q.push(" AND department_id IN ");
            q.push_in(all.iter().copied());
            q.push("))");
        }
        "class" => {
            q.push(" AND class_id IN ");
            q.push_in(ids_of(&r.value).unwrap_or_default());
        }
        "grade" => {
            q.push_bind(
                " AND class_id IN (SELECT id FROM classes WHERE tenant_id = ?",
                tenant_id,
            );
            q.push(" AND grade_id IN ");
            q.push_in(ids_of(&r.value).unwrap_or_default());
            q.push(")");
        }
        _ => {
            q = Sql::new("SELECT person_id AS id FROM person_tags WHERE tenant_id = ?")
                .bind(tenant_id);
            q.push(" AND tag_id IN ");
            q.push_in(ids_of(&r.value).unwrap_or_default());
        }
    }
    Ok(q)
}

async fn department_subtree(exec: &mut Exec<'_>, tenant_id: i64, id: i64) -> Result<Vec<i64>> {
    let rows = exec
        .fetch_all(
            &Sql::new("SELECT id, parent_id FROM departments WHERE tenant_id = ?").bind(tenant_id),
        )
        .await?;
    let mut out = vec![id];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for r in &rows {
            if r.opt_i64("parent_id")? == Some(cur) {
                out.push(r.i64("id")?);
            }
        }
        i += 1;
    }
    Ok(out)
}

/// `(pid, via)` rows for a list of rules, as one UNION ALL.
async fn parts(exec: &mut Exec<'_>, tenant_id: i64, rules: &[AudienceRule]) -> Result<Option<Sql>> {
    let mut out: Option<Sql> = None;
    for r in rules {
        let m = matched(exec, tenant_id, r).await?;
        let who = r.who.as_deref().unwrap_or("self");
        let mut selected = Vec::new();
        if who == "self" || who == "both" {
            let mut part = Sql::new("SELECT m.id AS pid, 0 AS via FROM (");
            part.append(&m).push(") m");
            selected.push(part);
        }
        if who == "parents" || who == "both" {
            let mut part = Sql::new(
                "SELECT g.parent_id AS pid, g.student_id AS via FROM guardianships g \
                 JOIN people pp ON pp.id = g.parent_id AND pp.active = 1 \
                 WHERE g.tenant_id = ? AND g.student_id IN (",
            )
            .bind(tenant_id);
            part.append(&m).push(")");
            selected.push(part);
        }
        for part in selected {
            match &mut out {
                None => out = Some(part),
                Some(acc) => {
                    acc.push(" UNION ALL ").append(&part);
                }
            }
        }
    }
    Ok(out)
}

/// Resolves an audience to active people, ordered by id, each once (a
/// parent reached through several students keeps one of them). The rules
/// run as one query each for inclusions and exclusions; merging happens
/// here, which is cheaper than GROUP BY over a join for 20,000 people.
pub async fn resolve(exec: &mut Exec<'_>, tenant_id: i64, a: &Audience) -> Result<Vec<Recipient>> {
    let Some(inc) = parts(exec, tenant_id, &a.include).await? else {
        return Ok(Vec::new());
    };
    let mut q = Sql::new(format!(
        "{}SELECT 0 AS k, u.pid, u.via FROM (",
        aggregate_head(exec)
    ));
    q.append(&inc).push(") u) t");
    let mut out = aggregated(exec, &q, 1).await?.pop().unwrap_or_default();
    tidy(&mut out);
    exclude(exec, tenant_id, a, &mut out).await?;
    Ok(out)
}

/// Resolves many audiences at once, as [`resolve`] does each. Audiences
/// made only of `person` rules (a check-in group's parent notices: dozens
/// of one-student audiences) take one query for all of them: the people
/// named, active, and the active parents of the active students named.
/// Any other audience is resolved on its own.
pub async fn resolve_many(
    exec: &mut Exec<'_>,
    tenant_id: i64,
    audiences: &[&Audience],
) -> Result<Vec<Vec<Recipient>>> {
    let mut out = vec![Vec::new(); audiences.len()];
    // Per person-only audience: (index, people themselves, people whose parents).
    let mut by_person: Vec<(usize, Vec<i64>, Vec<i64>)> = Vec::new();
    for (k, a) in audiences.iter().enumerate() {
        match person_rules(a) {
            Some((selves, students)) => by_person.push((k, selves, students)),
            None => out[k] = resolve(exec, tenant_id, a).await?,
        }
    }
    if by_person.is_empty() {
        return Ok(out);
    }
    let mut selves: Vec<i64> = by_person.iter().flat_map(|b| b.1.iter().copied()).collect();
    let mut students: Vec<i64> = by_person.iter().flat_map(|b| b.2.iter().copied()).collect();
    for ids in [&mut selves, &mut students] {
        ids.sort_unstable();
        ids.dedup();
    }
    let mut q = Sql::new(aggregate_head(exec));
    q.push_bind(
        "SELECT 0 AS k, id AS pid, 0 AS via FROM people WHERE tenant_id = ? AND active = 1 AND id IN ",
        tenant_id,
    );
    q.push_in(selves.iter().copied());
    q.push_bind(
        " UNION ALL SELECT 1 AS k, g.parent_id AS pid, g.student_id AS via FROM guardianships g \
         JOIN people pp ON pp.id = g.parent_id AND pp.active = 1 \
         JOIN people st ON st.id = g.student_id AND st.active = 1 AND st.tenant_id = g.tenant_id \
         WHERE g.tenant_id = ? AND g.student_id IN ",
        tenant_id,
    );
    q.push_in(students.iter().copied());
    q.push(") t");
    let [found_selves, found_parents]: [Vec<Recipient>; 2] = aggregated(exec, &q, 2)
        .await?
        .try_into()
        .map_err(|_| crate::error::Error::Other(anyhow::anyhow!("two lists expected")))?;
    let active: std::collections::HashSet<i64> = found_selves.iter().map(|r| r.person_id).collect();
    let mut parents_of: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    for r in found_parents {
        parents_of.entry(r.via).or_default().push(r.person_id);
    }
    for (k, selves, students) in by_person {
        let list = &mut out[k];
        list.extend(
            selves
                .iter()
                .filter(|id| active.contains(id))
                .map(|id| Recipient {
                    person_id: *id,
                    via: 0,
                }),
        );
        for st in &students {
            for parent in parents_of.get(st).into_iter().flatten() {
                list.push(Recipient {
                    person_id: *parent,
                    via: *st,
                });
            }
        }
        tidy(list);
    }
    Ok(out)
}

/// The start of a query aggregating `(k, pid, via)` rows of a subquery `t`
/// into one text value `k:pid:via,…`. One value instead of 20,000 rows:
/// decoding rows through the database-neutral driver costs far more than
/// the query itself.
fn aggregate_head(exec: &Exec<'_>) -> &'static str {
    match exec.backend() {
        Backend::Sqlite => "SELECT group_concat(CAST(t.k AS TEXT) || ':' || CAST(t.pid AS TEXT) || ':' || CAST(t.via AS TEXT), ',') AS ids FROM (",
        Backend::Postgres => "SELECT string_agg(CAST(t.k AS TEXT) || ':' || CAST(t.pid AS TEXT) || ':' || CAST(t.via AS TEXT), ',') AS ids FROM (",
        Backend::MySql => "SELECT GROUP_CONCAT(CONCAT(t.k, ':', t.pid, ':', t.via) SEPARATOR ',') AS ids FROM (",
    }
}

/// Runs an [`aggregate_head`] query and splits its value into `lists`
/// recipient lists, as found.
async fn aggregated(exec: &mut Exec<'_>, q: &Sql, lists: usize) -> Result<Vec<Vec<Recipient>>> {
    let ids = exec.fetch_one(q).await?.opt_str("ids")?.unwrap_or_default();
    let mut out: Vec<Vec<Recipient>> = vec![Vec::new(); lists];
    if lists == 1 {
        out[0].reserve(ids.len() / 14 + 1);
    }
    for triple in ids.split(',').filter(|p| !p.is_empty()) {
        let mut fields = triple.splitn(3, ':').map(str::parse::<i64>);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(k)), Some(Ok(person_id)), Some(Ok(via))) if (0..lists as i64).contains(&k) => {
                out[k as usize].push(Recipient { person_id, via })
            }
            _ => {
                return Err(crate::error::Error::Other(anyhow::anyhow!(
                    "unreadable audience row `{triple}`"
                )))
            }
        }
    }
    Ok(out)
}

/// Orders recipients by person, each person once (a parent reached
/// through several students keeps the largest student id).
fn tidy(list: &mut Vec<Recipient>) {
    list.sort_unstable_by(|x, y| x.person_id.cmp(&y.person_id).then(y.via.cmp(&x.via)));
    list.dedup_by_key(|r| r.person_id);
}

/// The people of an audience made only of `person` rules: those named for
/// themselves and those whose parents are meant. None for any other audience.
fn person_rules(a: &Audience) -> Option<(Vec<i64>, Vec<i64>)> {
    if !a.exclude.is_empty() || a.include.is_empty() {
        return None;
    }
    let (mut selves, mut students) = (Vec::new(), Vec::new());
    for r in &a.include {
        if r.rule_type != "person" {
            return None;
        }
        let ids = ids_of(&r.value).unwrap_or_default();
        match r.who.as_deref().unwrap_or("self") {
            "self" => selves.extend(ids),
            "parents" => students.extend(ids),
            "both" => {
                selves.extend(ids.iter().copied());
                students.extend(ids);
            }
            _ => return None,
        }
    }
    Some((selves, students))
}

/// Drops the people an audience's exclusion rules match.
async fn exclude(
    exec: &mut Exec<'_>,
    tenant_id: i64,
    a: &Audience,
    out: &mut Vec<Recipient>,
) -> Result<()> {
    if let Some(exc) = parts(exec, tenant_id, &a.exclude).await? {
        let excluded: std::collections::HashSet<i64> = exec
            .fetch_all(&exc)
            .await?
            .iter()
            .map(|r| r.i64("pid"))
            .collect::<Result<_>>()?;
        out.retain(|r| !excluded.contains(&r.person_id));
    }
    Ok(())
}

/// Packs ids compactly: each as the LEB128 varint of its difference to the
/// one before (ids are sorted, so 20,000 of them take about 40 KB, not
/// 160 KB; the frozen list is one row, not 20,000).
pub fn pack(ids: impl Iterator<Item = i64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0i64;
    for id in ids {
        // Zigzag keeps an unsorted list correct, if larger.
        let d = id.wrapping_sub(prev);
        let mut z = ((d << 1) ^ (d >> 63)) as u64;
        prev = id;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

pub fn unpack(bytes: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    let (mut prev, mut z, mut shift) = (0i64, 0u64, 0u32);
    for b in bytes {
        z |= ((b & 0x7f) as u64) << shift.min(63);
        shift += 7;
        if b & 0x80 == 0 {
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            prev = prev.wrapping_add(d);
            out.push(prev);
            z = 0;
            shift = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pack_round_trips() {
        let ids = vec![0, 1, 2, 1 << 40, 7, -3, i64::MAX, i64::MIN, 0];
        assert_eq!(super::unpack(&super::pack(ids.iter().copied())), ids);
        let sorted: Vec<i64> = (1000..21000).collect();
        let packed = super::pack(sorted.iter().copied());
        assert!(packed.len() < 21_000, "{}", packed.len());
        assert_eq!(super::unpack(&packed), sorted);
        proptest::proptest!(|(v in proptest::collection::vec(proptest::num::i64::ANY, 0..200))| {
            proptest::prop_assert_eq!(super::unpack(&super::pack(v.iter().copied())), v);
        });
    }
}
