//! The one configuration error type: it names the file, the key and the line.

use std::fmt;
use std::path::PathBuf;

/// A configuration problem, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// 1-based line of the offending value or key, when known.
    pub line: Option<usize>,
    /// Dotted key path such as `server.listen` or `routes[1].upstream`, when known.
    pub key: Option<String>,
    /// What is wrong, for an operator.
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, missing section).
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error about one key, with the line found from the key's byte offset in `text`.
    pub fn at(
        file: impl Into<PathBuf>,
        text: &str,
        offset: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            line: offset.map(|o| line_of(text, o)),
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// 1-based line number of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
