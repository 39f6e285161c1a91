use serde::Serialize;

/// One write to record.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl Change {
    pub fn new(action: &str, entity: &str, entity_id: impl ToString) -> Change {
        Change {
            action: action.to_string(),
            entity: entity.to_string(),
            entity_id: Some(entity_id.to_string()),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, v: impl Serialize) -> Change {
        self.before = serde_json::to_value(v).ok();
        self
    }

    pub fn after(mut self, v: impl Serialize) -> Change {
        self.after = serde_json::to_value(v).ok();
        self
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    pub after: Option<serde_json::Value>,
    pub hash: String,
    pub prev_hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub checked: u64,
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
}
