//! The `tollgate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate::config::Settings;
use tollgate::server::StartError;

/// tollgate: an authentication gateway in front of your web apps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve requests until SIGTERM or SIGINT; SIGHUP reloads the configuration.
    Serve(ConfigArg),
    /// Validate the configuration file and exit (0 when valid, 2 when not).
    CheckConfig(ConfigArg),
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The TOML configuration file.
    #[arg(
        long,
        short,
        env = "TOLLGATE_CONFIG",
        default_value = "/etc/tollgate/tollgate.toml"
    )]
    config: PathBuf,
}

/// Exit code for usage and configuration errors.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(arg) => match Settings::load(&arg.config) {
            Ok(settings) => {
                let routes = settings.routes.iter().count();
                println!("{}: ok ({routes} routes)", arg.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve(arg) => serve(arg.config),
    }
}

fn serve(config: PathBuf) -> ExitCode {
    // Logging is configured from the file, so read it once up front; errors here are
    // reported plainly because no subscriber exists yet.
    let settings = match Settings::load(&config) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tollgate::telemetry::init(&settings.log);
    drop(settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tollgate::server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(e)) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
