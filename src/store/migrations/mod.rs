//! The schema history, embedded in the binary.
//!
//! Each migration is one SQL file per backend, `sqlite/<name>.sql` and `mysql/<name>.sql`,
//! listed once below with its version. To change the schema, add both files and one line
//! to the list; never edit a migration that has shipped, because databases that already
//! applied it will not run it again.

/// One step of the schema history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Position in the history; recorded in `schema_migrations` once applied.
    pub version: u32,
    /// The file name without `.sql`, recorded next to the version for operators.
    pub name: &'static str,
    /// The statements, run as one batch.
    pub sql: &'static str,
}

/// Builds the two lists from one table, so a migration cannot exist for one backend only.
macro_rules! history {
    ($(($version:literal, $name:literal)),* $(,)?) => {
        /// Every SQLite migration, oldest first.
        pub const SQLITE: &[Migration] = &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("sqlite/", $name, ".sql")),
        }),*];
        /// Every MySQL / MariaDB migration, oldest first.
        pub const MYSQL: &[Migration] = &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("mysql/", $name, ".sql")),
        }),*];
    };
}

history! {
    (1, "0001_users"),
    (2, "0002_users_updated_at"),
}

/// The migrations of `all` whose versions are not in `applied`, oldest first.
pub fn pending(all: &'static [Migration], applied: &[u32]) -> Vec<Migration> {
    all.iter()
        .filter(|m| !applied.contains(&m.version))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{MYSQL, Migration, SQLITE, pending};
    use std::collections::BTreeSet;
    use std::path::Path;

    #[test]
    fn versions_strictly_increase() {
        for list in [SQLITE, MYSQL] {
            assert!(list.windows(2).all(|w| w[0].version < w[1].version));
            assert!(
                list.iter()
                    .all(|m| m.version > 0 && !m.sql.trim().is_empty())
            );
        }
    }

    /// A file dropped into a folder but left out of the list would silently never run.
    #[test]
    fn every_file_is_listed() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations");
        for (folder, list) in [("sqlite", SQLITE), ("mysql", MYSQL)] {
            let files: BTreeSet<String> = std::fs::read_dir(here.join(folder))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            let listed: BTreeSet<String> = list.iter().map(|m| format!("{}.sql", m.name)).collect();
            assert_eq!(files, listed, "{folder}");
        }
    }

    #[test]
    fn pending_skips_applied() {
        let left: Vec<Migration> = pending(SQLITE, &[1]);
        assert!(left.iter().all(|m| m.version != 1));
        assert_eq!(pending(SQLITE, &[]).len(), SQLITE.len());
    }
}
