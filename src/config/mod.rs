//! Configuration: the TOML file as written (`file`), validated into the typed `Settings`
//! the gateway runs on (`settings`), and the error that names the file, key and line.

mod duration;
mod error;
pub mod file;
pub mod settings;

pub use duration::parse_duration;
pub use error::ConfigError;
pub use settings::{Settings, TlsSettings};
