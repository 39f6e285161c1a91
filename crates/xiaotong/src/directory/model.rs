use crate::auth::model::{ChildRef, RoleRef};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NameRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ParentRef {
    pub id: i64,
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Person {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub name_pinyin: String,
    pub number: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub active: bool,
    pub department: Option<NameRef>,
    pub class: Option<NameRef>,
    pub tags: Vec<String>,
    pub roles: Vec<RoleRef>,
    pub parents: Vec<ParentRef>,
    pub children: Vec<ChildRef>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// The page and page size a list asks for: page from 1 (default 1), page
/// size from 1 to `max_per_page`; a 422 naming the field otherwise.
pub fn page_args(
    page: Option<i64>,
    per_page: Option<i64>,
    default_per_page: i64,
    max_per_page: i64,
) -> crate::error::Result<(i64, i64)> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(default_per_page);
    if page < 1 {
        return Err(crate::error::Error::validation("page", "must be 1 or more"));
    }
    if !(1..=max_per_page).contains(&per_page) {
        return Err(crate::error::Error::validation(
            "per_page",
            format!("must be between 1 and {max_per_page}"),
        ));
    }
    Ok((page, per_page))
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeopleQuery {
    /// Name, pinyin, pinyin initials, phone, number, username or e-mail.
    pub q: Option<String>,
    pub kind: Option<String>,
    pub department_id: Option<i64>,
    pub class_id: Option<i64>,
    /// `true` (default), `false` or `all`.
    pub active: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// A person to create. Unknown fields are rejected.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    pub kind: String,
    pub name: String,
    pub number: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub id_number: Option<String>,
    pub username: Option<String>,
    pub department_id: Option<i64>,
    pub class_id: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// For parents: the students they are guardian of.
    #[serde(default)]
    pub children_ids: Vec<i64>,
}

/// Fields to change; absent fields stay as they are, `""` clears a text field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonPatch {
    pub name: Option<String>,
    pub number: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub id_number: Option<String>,
    pub username: Option<String>,
    pub department_id: Option<i64>,
    pub class_id: Option<i64>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    pub role_ids: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Department {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Class {
    pub id: i64,
    pub name: String,
    pub grade_name: Option<String>,
    pub department_id: Option<i64>,
    pub student_count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Grade {
    pub id: i64,
    pub name: String,
    pub entry_year: Option<i64>,
    pub class_count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Campus {
    pub id: i64,
    pub name: String,
    pub address: Option<String>,
    pub class_count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: i64,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub code: String,
    pub name: String,
}
