//! `Settings::load`: good files load; bad ones fail with `FILE:LINE: KEY: message`.

use std::path::PathBuf;

use tempfile::TempDir;
use tollgate::config::Settings;

use super::binary::assert_location;
use super::harness::Config;

fn write(config: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

/// The 1-based number of the first line of `config` that starts with `prefix`.
fn line_of(config: &str, prefix: &str) -> usize {
    config.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

fn load_err(config: &str) -> (String, PathBuf, TempDir) {
    let (dir, path) = write(config);
    let err = Settings::load(&path).expect_err("a bad config loaded");
    (err.to_string(), path, dir)
}

#[test]
fn a_full_config_loads() {
    let config = r#"
auth_prefix = "/auth"

[server]
listen = "127.0.0.1:0"
trusted_proxies = ["10.0.0.0/8", "fd00::/8"]
shutdown_timeout = "30s"
header_read_timeout = "10s"
tls_handshake_timeout = "500ms"
max_header_bytes = 32768
max_connections = 10000

[admin]
listen = "127.0.0.1:0"

[log]
format = "json"
level = "info"

[database]
url = "sqlite://var/tollgate.db"
timeout = "5s"

[sessions]
store = "memory"
idle_timeout = "5m"
absolute_timeout = "24h"

[cookies]
secure = true

[login]
registration = true
min_password_length = 8
allowed_redirect_hosts = ["app.example.com"]
[login.argon2]
memory_kib = 1024
iterations = 1
parallelism = 1

[identity_headers]
user_id = "X-User-Id"
username = "X-User-Name"
roles = "X-User-Roles"

[[routes]]
name = "app"
host = "app.example.com"
path = "/"
upstream = "http://127.0.0.1:3000"
policy = "public"
timeout = "5m"

[[routes]]
path = "/api"
upstream = "http://localhost:3001"
policy = "public"
"#;
    let config = format!("{config}\n{}", super::harness::gateway::tokens_section());
    let (_dir, path) = write(&config);
    Settings::load(&path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let config = Config::new()
        .route_with("/", "http://127.0.0.1:3000", "upstream_timeout = \"5s\"")
        .build();
    let line = line_of(&config, "upstream_timeout");
    let (msg, path, _dir) = load_err(&config);
    assert_location(&msg, &path, line, "upstream_timeout");
}

#[test]
fn bad_duration_names_file_line_and_key() {
    let config = Config::new()
        .server("shutdown_timeout = \"30 parsecs\"")
        .route("/", "http://127.0.0.1:3000")
        .build();
    let line = line_of(&config, "shutdown_timeout");
    let (msg, path, _dir) = load_err(&config);
    assert_location(&msg, &path, line, "shutdown_timeout");
}

#[test]
fn bad_values_are_refused() {
    let cases = [
        (
            Config::new()
                .route("/", "http://127.0.0.1:3000/base")
                .build(),
            "upstream",
        ),
        (
            Config::new().route("/", "ftp://127.0.0.1:21").build(),
            "upstream",
        ),
        (
            Config::new()
                .server("trusted_proxies = [\"not-a-cidr\"]")
                .route("/", "http://127.0.0.1:3000")
                .build(),
            "trusted_proxies",
        ),
        (
            Config::new()
                .route_with("/", "http://127.0.0.1:3000", "policy = \"everyone\"")
                .build(),
            "policy",
        ),
    ];
    for (config, key) in cases {
        let (msg, path, _dir) = load_err(&config);
        assert!(msg.contains(key), "{key:?} not in: {msg}");
        assert!(
            msg.contains(&path.display().to_string()),
            "file not in: {msg}"
        );
    }
}

#[test]
fn hash_cpus_must_name_cpus_tollgate_may_run_on() {
    for (list, want) in [
        ("[]", "must name at least one CPU"),
        ("[65536]", "CPU 65536 is not one tollgate may run on"),
    ] {
        let config = Config::new()
            .section(&format!("[login]\nhash_cpus = {list}"))
            .route("/", "http://127.0.0.1:3000")
            .build();
        let line = line_of(&config, "hash_cpus");
        let (msg, path, _dir) = load_err(&config);
        assert_location(&msg, &path, line, "login.hash_cpus");
        assert!(msg.contains(want), "{want:?} not in: {msg}");
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let err = Settings::load(&path).expect_err("a missing file loaded");
    assert!(err.to_string().contains("absent.toml"), "{err}");
}
