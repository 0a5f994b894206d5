//! Where the database is, and how that is shown in logs without its password.

use std::fmt;
use std::path::PathBuf;

/// Where the database is.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file; its folder is created if missing.
    Sqlite(PathBuf),
    /// A MySQL / MariaDB server, `mysql://user@host:port/db`.
    Mysql {
        /// The connection URL.
        url: String,
        /// Replaces the URL's password when set (read from a credentials file).
        password: Option<String>,
    },
}

impl fmt::Debug for DatabaseTarget {
    /// Shows everything but passwords, so a target can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseTarget::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            DatabaseTarget::Mysql { url, password } => f
                .debug_struct("Mysql")
                .field("url", &redact(url))
                .field("password", &password.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// `url` with the password in its user info replaced by `***`. It cuts at the last `@`,
/// so a password holding an unescaped `/` or `@` is still hidden whole.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a url>".into();
    };
    let Some((userinfo, place)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{place}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseTarget;

    #[test]
    fn debug_hides_passwords() {
        let target = DatabaseTarget::Mysql {
            url: "mysql://gate:s3cr/t@db:3306/tollgate?pool_max=5".into(),
            password: Some("other-secret".into()),
        };
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("s3cr") && !shown.contains("other-secret"),
            "{shown}"
        );
        assert!(
            shown.contains("mysql://gate:***@db:3306/tollgate?pool_max=5"),
            "{shown}"
        );
        let plain = DatabaseTarget::Mysql {
            url: "mysql://gate@db/t".into(),
            password: None,
        };
        assert!(format!("{plain:?}").contains("mysql://gate@db/t"));
    }
}
