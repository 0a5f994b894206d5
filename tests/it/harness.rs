//! Shared test harness: an upstream that records what it receives, the gateway started
//! in-process or as a child process, a config builder, raw HTTP/1.1, and certificates.

pub mod gateway;
pub mod process;
pub mod raw;
pub mod upstream;

use std::time::Duration;

pub use gateway::{Config, TestGateway, client, dead_upstream, metric_value};
pub use process::ServeProcess;
pub use upstream::{Received, TestUpstream};

/// The bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for `localhost` and `127.0.0.1`: `(cert PEM, PKCS#8 key PEM)`.
pub fn self_signed() -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (cert.pem(), signing_key.serialize_pem())
}

/// The names an upstream must never receive from a client, normalised (lower case,
/// `_` read as `-`).
pub fn normalised_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}
