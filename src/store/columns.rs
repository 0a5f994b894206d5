//! How a user's fields become column values and back, shared by both backends so that
//! they agree on keys, role encoding and timestamps.

use std::collections::BTreeSet;

use super::StoreError;
use crate::clock::{Clock, SystemClock};

/// The columns every user query selects, in the order [`UserRow`] expects.
pub const USER_COLUMNS: &str =
    "id, username, email, password_hash, roles, disabled, created_at, updated_at";

/// A user as read from a row, before the roles column is decoded.
pub type UserRow = (u64, String, String, String, String, bool, i64, i64);

/// The lookup key for a username or email: case-insensitive matching and uniqueness both
/// come from comparing these, computed here rather than with SQL `LOWER`, whose Unicode
/// handling differs between SQLite and MySQL.
pub fn key(value: &str) -> String {
    value.to_lowercase()
}

/// Which key column a login name is looked up by: an `@` means an email address.
pub fn login_column(login: &str) -> &'static str {
    if login.contains('@') {
        "email_key"
    } else {
        "username_key"
    }
}

/// Seconds since the Unix epoch by the system clock (the one sessions and tokens read, so
/// that stored timestamps and expiry agree); 0 if the clock is before 1970.
pub fn now() -> i64 {
    i64::try_from(SystemClock.now_secs()).unwrap_or(i64::MAX)
}

/// Encodes a role set as a JSON array. JSON rather than a separator-joined list so that a
/// role name may contain any character without corrupting its neighbours.
pub fn encode_roles(roles: &BTreeSet<String>) -> Result<String, StoreError> {
    serde_json::to_string(roles).map_err(|e| StoreError::Unavailable(format!("roles: {e}")))
}

/// Decodes the roles column; a corrupt value is an error, never an empty set, so that a
/// damaged row cannot silently change what its user may do.
pub fn decode_roles(column: &str) -> Result<BTreeSet<String>, StoreError> {
    serde_json::from_str(column)
        .map_err(|e| StoreError::Unavailable(format!("corrupt roles column: {e}")))
}

/// Applies a grant or revoke to a stored roles column; `Some(new column)` if it changed.
pub fn edit_roles(column: &str, role: &str, grant: bool) -> Result<Option<String>, StoreError> {
    let mut roles = decode_roles(column)?;
    let changed = if grant {
        roles.insert(role.to_owned())
    } else {
        roles.remove(role)
    };
    if changed {
        encode_roles(&roles).map(Some)
    } else {
        Ok(None)
    }
}

/// Turns a row into a [`super::User`].
pub fn user_from_row(row: UserRow) -> Result<super::User, StoreError> {
    let (id, username, email, password_hash, roles, disabled, created_at, updated_at) = row;
    Ok(super::User {
        id,
        username,
        email,
        password_hash,
        roles: decode_roles(&roles)?,
        disabled,
        created_at,
        updated_at,
    })
}

/// Names the field a unique-index violation is about, from the database's message, which
/// names the index (MySQL) or the column (SQLite); both contain the key column's name.
pub fn conflict_field(message: &str) -> Option<&'static str> {
    if message.contains("username_key") {
        Some("username")
    } else if message.contains("email_key") {
        Some("email")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_any_name() {
        let roles: BTreeSet<String> = ["b", "a,c", "ü \"q\""].map(String::from).into();
        let column = encode_roles(&roles).unwrap();
        assert_eq!(decode_roles(&column).unwrap(), roles);
        assert!(decode_roles("admin,ops").is_err());
    }

    #[test]
    fn edit_reports_changes_only() {
        let column = edit_roles("[]", "admin", true).unwrap().unwrap();
        assert_eq!(column, r#"["admin"]"#);
        assert_eq!(edit_roles(&column, "admin", true).unwrap(), None);
        assert_eq!(edit_roles(&column, "ops", false).unwrap(), None);
        assert_eq!(edit_roles(&column, "admin", false).unwrap().unwrap(), "[]");
    }

    #[test]
    fn conflicts_named_from_messages() {
        let sqlite = "UNIQUE constraint failed: users.email_key";
        let mysql = "Duplicate entry 'x' for key 'users_username_key'";
        assert_eq!(conflict_field(sqlite), Some("email"));
        assert_eq!(conflict_field(mysql), Some("username"));
        assert_eq!(conflict_field("schema_migrations.PRIMARY"), None);
    }
}
