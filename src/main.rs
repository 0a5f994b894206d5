//! The `tollgate` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate::commands::{self, CommandError};
use tollgate::config::Settings;
use tollgate::server::StartError;

// mimalloc: fewer cycles per request than the system allocator under the gateway's many
// short-lived allocations, and less fragmentation with a million sessions held.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tollgate: an authentication gateway in front of your web apps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The TOML configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "TOLLGATE_CONFIG",
        default_value = "/etc/tollgate/tollgate.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve requests until SIGTERM or SIGINT; SIGHUP reloads the configuration.
    Serve,
    /// Validate the configuration file and exit (0 when valid, 2 when not).
    CheckConfig,
    /// Apply pending database migrations.
    Migrate,
    /// Write a new signing key (PKCS#8 PEM, mode 0600).
    Keygen {
        /// RS256, ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        algorithm: String,
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user; the password is prompted for, or read from stdin.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Grant this role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user (by id, username or email); their sessions end.
    Disable { user: String },
    /// Enable a user again.
    Enable { user: String },
    /// Set a new password.
    Passwd {
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Grant a role.
    Grant { user: String, role: String },
    /// Revoke a role.
    Revoke { user: String, role: String },
}

/// Exit code for usage and configuration errors.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    match cli.command {
        Command::CheckConfig => match load(&config) {
            Ok(settings) => {
                let routes = settings.routes.iter().count();
                println!("{}: ok ({routes} routes)", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve => serve(config),
        Command::Keygen {
            algorithm,
            out,
            force,
        } => finish(commands::keygen(&algorithm, &out, force)),
        Command::Migrate => with_settings(&config, |settings| async move {
            commands::migrate(&settings).await
        }),
        Command::User { action } => with_settings(&config, |settings| async move {
            let store = commands::open_store(&settings).await?;
            match action {
                UserAction::Add {
                    username,
                    email,
                    roles,
                    password_stdin,
                } => {
                    let password = read_password(password_stdin)?;
                    commands::user_add(&settings, &store, &username, &email, &password, &roles)
                        .await
                }
                UserAction::List => commands::user_list(&store).await,
                UserAction::Disable { user } => {
                    commands::user_set_disabled(&store, &user, true).await
                }
                UserAction::Enable { user } => {
                    commands::user_set_disabled(&store, &user, false).await
                }
                UserAction::Passwd {
                    user,
                    password_stdin,
                } => {
                    let password = read_password(password_stdin)?;
                    commands::user_passwd(&settings, &store, &user, &password).await
                }
                UserAction::Grant { user, role } => {
                    commands::user_role(&store, &user, &role, true).await
                }
                UserAction::Revoke { user, role } => {
                    commands::user_role(&store, &user, &role, false).await
                }
            }
        }),
    }
}

/// Loads the configuration and runs an async command on a small runtime.
fn with_settings<F, Fut>(config: &std::path::Path, command: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = Result<String, CommandError>>,
{
    let (settings, runtime) = match load(config).and_then(|s| Ok((s, runtime()?))) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    finish(runtime.block_on(command(settings)))
}

fn finish(result: Result<String, CommandError>) -> ExitCode {
    match result {
        Ok(output) => {
            println!("{}", output.trim_end());
            ExitCode::SUCCESS
        }
        Err(e @ CommandError::Usage(_)) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The password from stdin's first line (`--password-stdin` or no terminal), else a prompt.
fn read_password(from_stdin: bool) -> Result<String, CommandError> {
    let read = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map(|_| line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        rpassword::prompt_password("Password: ")
    };
    read.map_err(|e| CommandError::Failed(format!("cannot read the password: {e}")))
}

fn serve(config: PathBuf) -> ExitCode {
    // Logging is configured from the file, so read it once up front; errors here are
    // reported plainly because no subscriber exists yet.
    let settings = match load(&config) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    tollgate::telemetry::init(&settings.log);
    drop(settings);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(tollgate::server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(e)) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The validated settings, or the exit code after printing why not.
fn load(config: &std::path::Path) -> Result<Settings, ExitCode> {
    Settings::load(config).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// A single-threaded tokio runtime: commands need no more, and `serve` adds one serving
/// thread (with a runtime of its own) per further CPU.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().build().map_err(|e| {
        eprintln!("cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}
