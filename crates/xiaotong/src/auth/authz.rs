//! The one authorization function every handler calls.

use super::model::{Principal, Scope};
use crate::error::{Error, Result};

/// Check that the caller holds `permission`; return the scopes under which
/// they hold it, for the store to filter rows by.
pub fn authorize(p: &Principal, permission: &str) -> Result<Vec<Scope>> {
    debug_assert!(
        super::model::is_permission(permission),
        "unknown permission {permission}"
    );
    if p.must_change_password {
        return Err(Error::Forbidden(
            "password change required: set a new password first".into(),
        ));
    }
    match p.grants.get(permission) {
        Some(scopes) if !scopes.is_empty() => Ok(scopes.clone()),
        _ => Err(Error::Forbidden(format!(
            "requires permission {permission}"
        ))),
    }
}
