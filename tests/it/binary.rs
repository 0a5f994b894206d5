//! The `tollgate` binary: `serve` with SIGTERM (drain, exit 0) and SIGHUP (reload), and
//! `check-config` (exit 0 / exit 2 naming file, line and key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::harness::process::check_config;
use super::harness::{Config, ServeProcess, TestUpstream, WAIT, client, metric_value};

/// Writes `config` to `tollgate.toml` in a new temporary folder.
fn config_file(config: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in config"))
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let up = TestUpstream::start().await;
    let config = Config::new()
        .server("shutdown_timeout = \"10s\"")
        .route("/", &up.url())
        .build();
    let (_dir, path) = config_file(&config);
    let mut proc = ServeProcess::spawn(&path);
    let (addr, admin) = proc.wait_listening().await;

    let resp = client()
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let in_flight = tokio::spawn(async move {
        let resp = client()
            .get(format!("http://{addr}/slow?ms=1500"))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    });
    up.wait_received(1).await;
    proc.signal("TERM");

    let (status, body) = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("in-flight request did not finish")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "slow done");

    let exit = proc.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", proc.stderr());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn sigint_exits_0_when_idle() {
    let up = TestUpstream::start().await;
    let (_dir, path) = config_file(&Config::new().route("/", &up.url()).build());
    let mut proc = ServeProcess::spawn_with_env(&path);
    let (addr, _) = proc.wait_listening().await;
    let resp = client()
        .get(format!("http://{addr}/hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    proc.signal("INT");
    let exit = proc.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", proc.stderr());
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    let a = TestUpstream::start().await;
    let b = TestUpstream::start().await;
    let (_dir, path) = config_file(&Config::new().route("/", &a.url()).build());
    let mut proc = ServeProcess::spawn(&path);
    let (addr, admin) = proc.wait_listening().await;
    let url = format!("http://{addr}/x");

    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    assert_eq!(a.received().len(), 1);

    // A bad file first: nothing changes, the failure is counted.
    let bad = Config::new()
        .server("nope = true")
        .route("/", &b.url())
        .build();
    std::fs::write(&path, bad).unwrap();
    proc.signal("HUP");
    let metrics_url = format!("http://{admin}/metrics");
    let failure = r#"tollgate_config_reloads_total{result="failure"}"#;
    wait_for_metric(&metrics_url, failure, 1.0).await;
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    assert_eq!(a.received().len(), 2);

    // Then a good one: traffic moves to b.
    std::fs::write(&path, Config::new().route("/", &b.url()).build()).unwrap();
    proc.signal("HUP");
    let success = r#"tollgate_config_reloads_total{result="success"}"#;
    wait_for_metric(&metrics_url, success, 1.0).await;
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    assert_eq!(b.received().len(), 1);
    assert_eq!(a.received().len(), 2);

    // Still running after the signals.
    assert!(proc.exited().is_none(), "exited after SIGHUP");
}

async fn wait_for_metric(url: &str, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = client()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric_value(&text, series) == Some(value) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{series} never became {value}:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn check_config_accepts_a_good_file() {
    let (_dir, path) = config_file(&Config::new().route("/", "http://127.0.0.1:3000").build());
    let out = check_config(&path).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.to_ascii_lowercase().contains("ok"),
        "stdout: {stdout}"
    );
}

async fn assert_check_config_rejects(config: &str, needle: &str, key: &str) {
    let (_dir, path) = config_file(config);
    let line = line_of(config, needle);
    let out = check_config(&path).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_location(&stderr, &path, line, key);
}

/// The message names the file, the line and the key.
pub fn assert_location(message: &str, path: &Path, line: usize, key: &str) {
    let location = format!("{}:{line}", path.display());
    assert!(
        message.contains(&location),
        "{location:?} not in: {message}"
    );
    assert!(message.contains(key), "{key:?} not in: {message}");
}

#[tokio::test]
async fn check_config_rejects_an_unknown_key() {
    let config = Config::new()
        .server("shutdown_timeout = \"5s\"")
        .server("listen_backlog = 5")
        .route("/", "http://127.0.0.1:3000")
        .build();
    assert_check_config_rejects(&config, "listen_backlog", "listen_backlog").await;
}

#[tokio::test]
async fn check_config_rejects_a_bad_duration() {
    let config = Config::new()
        .route("/", "http://127.0.0.1:3000")
        .route_with("/api", "http://127.0.0.1:3001", "timeout = \"soon\"")
        .build();
    assert_check_config_rejects(&config, "\"soon\"", "timeout").await;
}

#[tokio::test]
async fn check_config_reads_tollgate_config_env() {
    let (_dir, path) = config_file("[server]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n");
    let mut cmd = std::process::Command::new(super::harness::process::binary());
    cmd.arg("check-config").env("TOLLGATE_CONFIG", &path);
    let out = super::harness::process::run_bounded(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_location(&stderr, &path, 3, "bogus");
}
