use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every permission the platform knows. Keys are stable: stored in roles and token scopes.
pub const PERMISSIONS: &[(&str, &str)] = &[
    ("people.read", "查看人员 / View people"),
    ("people.write", "编辑人员 / Edit people"),
    ("import.run", "批量导入 / Bulk import"),
    ("roles.read", "查看角色 / View roles"),
    ("roles.manage", "管理角色与授权 / Manage roles and grants"),
    ("audit.read", "查看审计日志 / View the audit trail"),
    ("tokens.manage", "管理 API 令牌 / Manage API tokens"),
    ("jobs.read", "查看任务队列 / View the job queue"),
    ("messages.send", "发送消息 / Send messages"),
    (
        "messages.read",
        "查看全部消息与送达情况 / View all messages and their delivery",
    ),
    (
        "messages.manage",
        "管理模板、渠道与消息设置 / Manage templates, channels and messaging settings",
    ),
    ("lessons.read", "查看课时 / View lesson hours"),
    (
        "lessons.manage",
        "管理课程与课时 / Manage courses and lesson hours",
    ),
    ("lessons.checkin", "上课点名 / Check in lessons"),
    ("lessons.reports", "课时报表 / Lesson-hour reports"),
    (
        "tenants.manage",
        "管理租户（平台） / Manage tenants (platform)",
    ),
];

pub fn is_permission(key: &str) -> bool {
    PERMISSIONS.iter().any(|(k, _)| *k == key)
}

/// Which rows a permission reaches.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every tenant (platform admins only).
    All,
    /// The whole tenant.
    Tenant,
    /// People of the holder's department and its sub-departments.
    OwnDepartment,
    /// Students of classes the holder teaches, and their parents.
    OwnClasses,
    /// The holder's own children.
    OwnChildren,
    /// Only the holder.
    #[serde(rename = "self")]
    SelfOnly,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Tenant => "tenant",
            Scope::OwnDepartment => "own_department",
            Scope::OwnClasses => "own_classes",
            Scope::OwnChildren => "own_children",
            Scope::SelfOnly => "self",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "all" => Scope::All,
            "tenant" => Scope::Tenant,
            "own_department" => Scope::OwnDepartment,
            "own_classes" => Scope::OwnClasses,
            "own_children" => Scope::OwnChildren,
            "self" => Scope::SelfOnly,
            _ => return None,
        })
    }

    /// Reaches the whole tenant.
    pub fn is_tenant_wide(self) -> bool {
        matches!(self, Scope::All | Scope::Tenant)
    }
}

pub struct BuiltinRole {
    pub key: &'static str,
    pub name: &'static str,
    pub permissions: &'static [&'static str],
    pub scope: Scope,
}

const ADMIN_PERMS: &[&str] = &[
    "people.read",
    "people.write",
    "import.run",
    "roles.read",
    "roles.manage",
    "audit.read",
    "tokens.manage",
    "jobs.read",
    "messages.send",
    "messages.read",
    "messages.manage",
    "lessons.read",
    "lessons.manage",
    "lessons.checkin",
    "lessons.reports",
];

/// The roles every tenant starts with.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        key: "institution_admin",
        name: "机构管理员 / Institution admin",
        permissions: ADMIN_PERMS,
        scope: Scope::Tenant,
    },
    BuiltinRole {
        key: "principal",
        name: "校长 / Principal",
        permissions: &[
            "people.read",
            "roles.read",
            "audit.read",
            "jobs.read",
            "messages.send",
            "messages.read",
            "lessons.read",
            "lessons.reports",
        ],
        scope: Scope::Tenant,
    },
    BuiltinRole {
        key: "academic_affairs",
        name: "教务 / Academic affairs",
        permissions: &[
            "people.read",
            "people.write",
            "import.run",
            "roles.read",
            "tokens.manage",
            "messages.send",
            "messages.read",
            "messages.manage",
            "lessons.read",
            "lessons.manage",
            "lessons.checkin",
            "lessons.reports",
        ],
        scope: Scope::Tenant,
    },
    BuiltinRole {
        key: "department_staff",
        name: "部门职员 / Department staff",
        permissions: &["people.read", "people.write", "messages.send"],
        scope: Scope::OwnDepartment,
    },
    BuiltinRole {
        key: "teacher",
        name: "教师 / Teacher",
        permissions: &[
            "people.read",
            "messages.send",
            "lessons.read",
            "lessons.checkin",
        ],
        scope: Scope::OwnClasses,
    },
    BuiltinRole {
        key: "parent",
        name: "家长 / Parent",
        permissions: &["lessons.read"],
        scope: Scope::OwnChildren,
    },
    BuiltinRole {
        key: "student",
        name: "学生 / Student",
        permissions: &["lessons.read"],
        scope: Scope::SelfOnly,
    },
    BuiltinRole {
        key: "third_party",
        name: "第三方人员 / Third-party staff",
        permissions: &[],
        scope: Scope::SelfOnly,
    },
];

/// Who is calling, resolved once per request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: i64,
    pub tenant_code: String,
    pub tenant_name: String,
    pub person_id: i64,
    pub name: String,
    pub kind: String,
    pub platform_admin: bool,
    pub must_change_password: bool,
    /// Permission → the scopes under which the caller holds it.
    pub grants: BTreeMap<String, Vec<Scope>>,
    pub via: AuthVia,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVia {
    Session { session_id: i64, csrf_token: String },
    Token { token_id: i64 },
}

/// Who did something, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub tenant_id: i64,
    pub person_id: Option<i64>,
    pub name: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    /// An action taken by the system itself (CLI, jobs).
    pub fn system(tenant_id: i64, what: &str) -> Actor {
        Actor {
            tenant_id,
            person_id: None,
            name: Some(what.to_string()),
            ip: None,
            request_id: None,
        }
    }
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            tenant_id: self.tenant_id,
            person_id: Some(self.person_id),
            name: Some(self.name.clone()),
            ip: self.ip.clone(),
            request_id: self.request_id.clone(),
        }
    }

    pub fn permissions(&self) -> Vec<String> {
        self.grants.keys().cloned().collect()
    }
}

// ---- API shapes ----

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Tenant code, e.g. `school`.
    pub tenant: String,
    /// Username, e-mail, phone number or student/staff number.
    pub login: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantRef {
    pub id: i64,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleRef {
    pub id: i64,
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildRef {
    pub id: i64,
    pub name: String,
    pub class_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub username: Option<String>,
    pub tenant: TenantRef,
    pub platform_admin: bool,
    pub roles: Vec<RoleRef>,
    pub permissions: Vec<String>,
    pub must_change_password: bool,
    pub children: Vec<ChildRef>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The secret: shown once, never again.
    pub token: String,
    pub item: TokenInfo,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Role {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub scope: Scope,
    pub member_count: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    pub key: String,
    pub name: String,
    pub permissions: Vec<String>,
    pub scope: Scope,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub scope: Option<Scope>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PermissionInfo {
    pub key: String,
    pub description: String,
}
