//! The operator commands behind `tollgate migrate`, `keygen` and `user ...`: each returns
//! what to print, so the binary stays a thin layer and tests can call them directly.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::auth::account::{valid_email, valid_password, valid_username};
use crate::auth::keys::{Algorithm, generate_private_key_pem};
use crate::config::Settings;
use crate::store::{NewUser, Store, StoreError, User};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Anything else (exit 1).
    #[error("{0}")]
    Failed(String),
}

/// Opens the configured database and applies pending migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, CommandError> {
    let store = Store::connect(&settings.database.target, settings.database.timeout).await?;
    store.migrate().await?;
    Ok(store)
}

/// `tollgate migrate`.
pub async fn migrate(settings: &Settings) -> Result<String, CommandError> {
    let store = Store::connect(&settings.database.target, settings.database.timeout).await?;
    let applied = store.migrate().await?;
    Ok(format!(
        "{applied} migration(s) applied to the {} database",
        store.backend()
    ))
}

/// `tollgate keygen`: writes a new PKCS#8 PEM private key readable by its owner only.
pub fn keygen(algorithm: &str, out: &Path, force: bool) -> Result<String, CommandError> {
    let algorithm = Algorithm::parse(algorithm).ok_or_else(|| {
        CommandError::Usage(format!("`{algorithm}` is not RS256, ES256 or EdDSA"))
    })?;
    let pem =
        generate_private_key_pem(algorithm).map_err(|e| CommandError::Failed(e.to_string()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CommandError::Failed(format!("{}: {e}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CommandError::Usage(format!(
            "{} exists; pass --force to replace it",
            out.display()
        )),
        _ => CommandError::Failed(format!("{}: {e}", out.display())),
    })?;
    file.write_all(pem.as_bytes())
        .map_err(|e| CommandError::Failed(format!("{}: {e}", out.display())))?;
    Ok(format!(
        "wrote a new {} signing key to {}",
        algorithm.as_str(),
        out.display()
    ))
}

/// Finds a user by id, username or email.
pub async fn find_user(store: &Store, who: &str) -> Result<User, CommandError> {
    let found = match who.parse::<u64>() {
        Ok(id) => store.user_by_id(id).await?,
        Err(_) => store.user_by_login(who).await?,
    };
    found.ok_or_else(|| CommandError::Usage(format!("no user `{who}`")))
}

/// `tollgate user add`.
pub async fn user_add(
    settings: &Settings,
    store: &Store,
    username: &str,
    email: &str,
    password: &str,
    roles: &[String],
) -> Result<String, CommandError> {
    valid_username(username).map_err(|e| CommandError::Usage(e.to_string()))?;
    valid_email(email).map_err(|e| CommandError::Usage(e.to_string()))?;
    valid_password(password, settings.login.min_password_length)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    for role in roles {
        crate::gateway::route::Policy::parse(&format!("role:{role}"))
            .map_err(CommandError::Usage)?;
    }
    let password_hash = settings
        .login
        .hasher
        .hash(password)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let new = NewUser {
        username: username.to_string(),
        email: email.to_string(),
        password_hash,
        roles: roles.iter().cloned().collect(),
    };
    let user = store.create_user(new).await.map_err(|e| match e {
        StoreError::Conflict(field) => CommandError::Usage(format!("that {field} is taken")),
        other => CommandError::Store(other),
    })?;
    Ok(format!("created user {} ({})", user.id, user.username))
}

/// `tollgate user list`.
pub async fn user_list(store: &Store) -> Result<String, CommandError> {
    let mut out = format!(
        "{:>6}  {:<24} {:<32} {:<9} roles\n",
        "id", "username", "email", "state"
    );
    for user in store.list_users().await? {
        let state = if user.disabled { "disabled" } else { "active" };
        let roles = user.roles.iter().cloned().collect::<Vec<_>>().join(",");
        let _ = writeln!(
            out,
            "{:>6}  {:<24} {:<32} {:<9} {roles}",
            user.id, user.username, user.email, state
        );
    }
    Ok(out)
}

/// `tollgate user disable|enable`. A running gateway sees the change through its user
/// change feed within about `auth::identity::USER_FEED_INTERVAL` and then ends a disabled
/// user's sessions.
pub async fn user_set_disabled(
    store: &Store,
    who: &str,
    disabled: bool,
) -> Result<String, CommandError> {
    let user = find_user(store, who).await?;
    store.set_disabled(user.id, disabled).await?;
    let state = if disabled { "disabled" } else { "enabled" };
    Ok(format!("{state} user {} ({})", user.id, user.username))
}

/// `tollgate user passwd`.
pub async fn user_passwd(
    settings: &Settings,
    store: &Store,
    who: &str,
    password: &str,
) -> Result<String, CommandError> {
    let user = find_user(store, who).await?;
    valid_password(password, settings.login.min_password_length)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let hash = settings
        .login
        .hasher
        .hash(password)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    store.set_password_hash(user.id, &hash).await?;
    Ok(format!(
        "password changed for user {} ({})",
        user.id, user.username
    ))
}

/// `tollgate user grant|revoke`.
pub async fn user_role(
    store: &Store,
    who: &str,
    role: &str,
    grant: bool,
) -> Result<String, CommandError> {
    crate::gateway::route::Policy::parse(&format!("role:{role}")).map_err(CommandError::Usage)?;
    let user = find_user(store, who).await?;
    if grant {
        store.grant_role(user.id, role).await?;
        Ok(format!("granted `{role}` to {}", user.username))
    } else {
        store.revoke_role(user.id, role).await?;
        Ok(format!("revoked `{role}` from {}", user.username))
    }
}
