//! The operator commands of the `tollgate` binary: `keygen`, `migrate` and `user ...`,
//! checked by what a running gateway then does with the same key file or database.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tollgate::auth::identity::{USER_FEED_INTERVAL, USER_REFRESH};

use super::super::harness::process::binary;
use super::super::harness::{Config, TestUpstream, WAIT, dead_upstream};
use super::super::store::backends::each_empty_backend;
use super::{
    Gate, each_backend, expect_error, expect_passed, get_bearer, http, login_as, login_with, on_db,
    protected,
};

/// Runs `tollgate ARGS` (bounded), feeding `stdin` when given.
async fn tollgate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.map(str::to_owned);
    let run = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    });
    tokio::time::timeout(WAIT, run)
        .await
        .expect("tollgate command did not finish in time")
        .unwrap()
}

/// Asserts the exit code; returns stdout.
fn exit(output: &Output, code: i32, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {:?} stderr {:?}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `config` to `tollgate.toml` in `dir`; returns its path as text.
fn write_config(dir: &Path, config: &Config) -> String {
    let path = dir.join("tollgate.toml");
    std::fs::write(&path, config.build()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn keygen_writes_a_private_key_file_and_will_not_overwrite_it_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys").join("signing.pem");
    let out_arg = out.to_str().unwrap();
    let args = ["keygen", "--algorithm", "ES256", "--out", out_arg];
    exit(&tollgate(&args, None).await, 0, "keygen");
    let first = std::fs::read_to_string(&out).unwrap();
    assert!(first.starts_with("-----BEGIN PRIVATE KEY-----"), "{first}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");

    exit(
        &tollgate(&args, None).await,
        2,
        "keygen over an existing file",
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        first,
        "file was changed"
    );
    let forced = [&args[..], &["--force"]].concat();
    exit(&tollgate(&forced, None).await, 0, "keygen --force");
    assert_ne!(
        std::fs::read_to_string(&out).unwrap(),
        first,
        "not replaced"
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode after --force {mode:o}");
    let bad = ["keygen", "--algorithm", "HS256", "--out", "unused.pem"];
    exit(
        &tollgate(&bad, None).await,
        2,
        "keygen with an HMAC algorithm",
    );

    // A gateway signs with the new key and publishes it.
    let tokens = format!(
        "[tokens]\nissuer = \"https://tollgate.test\"\nalgorithm = \"ES256\"\nsigning_key_file = {out:?}"
    );
    let gate = Gate::start(&Config::new().section(&tokens).route("/", &dead_upstream())).await;
    let jwks: Value = http()
        .get(gate.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    assert_eq!(jwks["keys"][0]["crv"], "P-256", "{jwks}");
}

#[tokio::test]
async fn migrate_creates_the_schema() {
    for b in each_empty_backend().await {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &on_db(&b, "").route("/", &dead_upstream()));
        exit(
            &tollgate(&["migrate", "--config", &config], None).await,
            0,
            b.name,
        );
        assert_eq!(
            b.query_i64("SELECT COUNT(*) FROM users").await,
            0,
            "{}",
            b.name
        );
        exit(
            &tollgate(&["migrate", "--config", &config], None).await,
            0,
            "again",
        );
    }
}

#[tokio::test]
async fn user_commands_manage_accounts_a_running_gateway_honours() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &protected(&b, &up));
        let c = config.as_str();
        let run = |args: Vec<&'static str>, stdin: Option<&'static str>| {
            let mut all = args;
            all.extend(["--config", "CONFIG"]);
            async move {
                let all: Vec<&str> = all
                    .iter()
                    .map(|a| if *a == "CONFIG" { c } else { a })
                    .collect();
                tollgate(&all, stdin).await
            }
        };
        let add = vec![
            "user",
            "add",
            "--username",
            "ursula",
            "--email",
            "Ursula@Example.test",
            "--role",
            "admin",
        ];
        exit(
            &run(add.clone(), Some("first password\n")).await,
            0,
            "user add",
        );
        exit(
            &run(add, Some("first password\n")).await,
            2,
            "user add again",
        );

        let gate = Gate::start(&protected(&b, &up)).await;
        let token = login_with(&gate, "ursula@example.test", "first password").await;
        let me: Value = get_bearer(&gate, "/auth/me", &token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["user"]["roles"], json!(["admin"]), "{}: {me}", b.name);
        expect_passed(
            &get_bearer(&gate, "/admin/x", &token).await,
            "admin role from the CLI",
        );

        let list = exit(&run(vec!["user", "list"], None).await, 0, "user list");
        let row = list
            .lines()
            .find(|l| l.contains("ursula"))
            .unwrap_or_else(|| panic!("{list}"));
        for shown in ["Ursula@Example.test", "admin", "active"] {
            assert!(row.contains(shown), "{}: {shown} not in {row:?}", b.name);
        }

        exit(
            &run(vec!["user", "passwd", "ursula"], Some("second password\n")).await,
            0,
            "passwd",
        );
        let old = login_as(
            &gate,
            &json!({"username": "ursula", "password": "first password"}),
        )
        .await;
        expect_error(old, 401, "invalidCredentials", "old password").await;
        let token = login_with(&gate, "ursula", "second password").await;

        exit(
            &run(vec!["user", "grant", "ursula", "ops"], None).await,
            0,
            "grant",
        );
        exit(
            &run(vec!["user", "revoke", "ursula", "admin"], None).await,
            0,
            "revoke",
        );
        let roles = b
            .store
            .user_by_login("ursula")
            .await
            .unwrap()
            .unwrap()
            .roles;
        assert_eq!(roles.into_iter().collect::<Vec<_>>(), ["ops"], "{}", b.name);
        gate.advance(USER_REFRESH + Duration::from_secs(1));
        let resp = get_bearer(&gate, "/admin/x", &token).await;
        expect_error(resp, 403, "forbidden", "admin revoked by the CLI").await;

        exit(
            &run(vec!["user", "disable", "ursula"], None).await,
            0,
            "disable",
        );
        let list = exit(&run(vec!["user", "list"], None).await, 0, "user list");
        assert!(
            list.lines()
                .any(|l| l.contains("ursula") && l.contains("disabled")),
            "{list}"
        );
        gate.advance(USER_REFRESH + Duration::from_secs(1));
        let resp = get_bearer(&gate, "/app/x", &token).await;
        expect_error(resp, 403, "userDisabled", "disabled by the CLI").await;
        let resp = login_as(
            &gate,
            &json!({"username": "ursula", "password": "second password"}),
        )
        .await;
        expect_error(resp, 401, "invalidCredentials", "disabled login").await;

        exit(
            &run(vec!["user", "enable", "ursula"], None).await,
            0,
            "enable",
        );
        gate.advance(USER_REFRESH + Duration::from_secs(1));
        let token = login_with(&gate, "ursula", "second password").await;
        expect_passed(&get_bearer(&gate, "/app/x", &token).await, "enabled again");

        for args in [
            vec!["user", "disable", "nobody"],
            vec!["user", "enable", "nobody"],
            vec!["user", "grant", "nobody", "ops"],
            vec!["user", "revoke", "nobody", "ops"],
        ] {
            exit(
                &run(args.clone(), None).await,
                2,
                &format!("{}: {args:?}", b.name),
            );
        }
        let out = run(vec!["user", "passwd", "nobody"], Some("third password\n")).await;
        exit(&out, 2, "passwd for nobody");
    }
}

/// Runs `tollgate check-config` on `config` with extra environment variables.
fn check_config_with_env(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(["check-config", "--config"]).arg(config);
    cmd.env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("TOLLGATE_SIGNING_KEY");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn the_signing_key_can_come_from_a_systemd_credential_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pem =
        tollgate::auth::keys::generate_private_key_pem(tollgate::auth::keys::Algorithm::EdDsa)
            .unwrap();
    let config = dir.path().join("tollgate.toml");
    let text = Config::new().route("/", "http://127.0.0.1:1").build();
    // The same configuration without `signing_key_file`.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("signing_key_file"))
        .map(|l| {
            if l.starts_with("algorithm") {
                "algorithm = \"EdDSA\"\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&config, text).unwrap();

    let missing = check_config_with_env(&config, &[]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("tokens.signing_key_file") && stderr.contains("no signing key"),
        "{stderr}"
    );

    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("signing-key"), &pem).unwrap();
    let from_credential = check_config_with_env(
        &config,
        &[("CREDENTIALS_DIRECTORY", credentials.as_os_str())],
    );
    assert_eq!(
        from_credential.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from_credential.stderr)
    );

    let from_env = check_config_with_env(
        &config,
        &[("TOLLGATE_SIGNING_KEY", std::ffi::OsStr::new(&pem))],
    );
    assert_eq!(
        from_env.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );

    let wrong = check_config_with_env(
        &config,
        &[("TOLLGATE_SIGNING_KEY", std::ffi::OsStr::new("not a key"))],
    );
    assert_eq!(wrong.status.code(), Some(2));
}

/// With the gateway's clock standing still, cached user records never age out; only the
/// change feed can tell the gateway that another process disabled a user or revoked a
/// role. It must, within a few feed intervals, on every backend.
#[tokio::test]
async fn changes_from_another_process_reach_a_running_gateway_through_the_feed() {
    for b in each_backend().await {
        let up = TestUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &protected(&b, &up));
        let gate = Gate::start(&protected(&b, &up)).await;
        let add = [
            "user",
            "add",
            "--username",
            "vera",
            "--email",
            "vera@example.test",
            "--role",
            "admin",
            "--config",
            &config,
        ];
        exit(&tollgate(&add, Some("vera's password\n")).await, 0, "add");
        let token = login_with(&gate, "vera", "vera's password").await;
        expect_passed(&get_bearer(&gate, "/admin/x", &token).await, "admin");

        let revoke = ["user", "revoke", "vera", "admin", "--config", &config];
        exit(&tollgate(&revoke, None).await, 0, "revoke");
        let status = wait_for_status(&gate, "/admin/x", &token, 403).await;
        assert_eq!(
            status, 403,
            "{}: role revoke never reached the gateway",
            b.name
        );
        expect_passed(
            &get_bearer(&gate, "/app/x", &token).await,
            "still signed in",
        );

        let disable = ["user", "disable", "vera", "--config", &config];
        exit(&tollgate(&disable, None).await, 0, "disable");
        let status = wait_for_status(&gate, "/app/x", &token, 403).await;
        assert_eq!(status, 403, "{}: disable never reached the gateway", b.name);
    }
}

/// Polls `path` until it answers `want` or five feed intervals pass; the last status.
async fn wait_for_status(gate: &Gate, path: &str, token: &str, want: u16) -> u16 {
    let deadline = tokio::time::Instant::now() + 5 * USER_FEED_INTERVAL;
    loop {
        let status = get_bearer(gate, path, token).await.status().as_u16();
        if status == want || tokio::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
