//! `TestGateway` (the library's `Running` on a temporary config file) and `Config`, a
//! builder for the TOML the tests start it with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use tollgate::clock::SharedClock;
use tollgate::config::ConfigError;
use tollgate::server::Running;

use super::WAIT;

/// A gateway started in-process from a config file in its own temporary folder.
pub struct TestGateway {
    running: Option<Running>,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    config_path: PathBuf,
    dir: TempDir,
}

impl TestGateway {
    /// Writes `config` to `tollgate.toml` in a new temporary folder and starts the gateway.
    pub async fn start(config: &str) -> Self {
        Self::start_with_files(config, &[]).await
    }

    /// Like `start`, first writing `(file name, contents)` pairs next to the config file
    /// (certificates, keys).
    pub async fn start_with_files(config: &str, files: &[(&str, &str)]) -> Self {
        Self::launch(config, files, None).await
    }

    /// Like `start`, reading time from `clock` (a `ManualClock` the test advances instead
    /// of sleeping).
    pub async fn start_with_clock(config: &str, clock: SharedClock) -> Self {
        Self::launch(config, &[], Some(clock)).await
    }

    async fn launch(config: &str, files: &[(&str, &str)], clock: Option<SharedClock>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, config).unwrap();
        let starting = async {
            match clock {
                Some(clock) => Running::start_with_clock(config_path.clone(), clock).await,
                None => Running::start(config_path.clone()).await,
            }
        };
        let running = tokio::time::timeout(WAIT, starting)
            .await
            .expect("gateway did not start in time")
            .unwrap_or_else(|e| panic!("gateway failed to start: {e}\nconfig:\n{config}"));
        Self {
            addr: running.addr(),
            admin_addr: running.admin_addr(),
            running: Some(running),
            config_path,
            dir,
        }
    }

    /// Serves the public listener on `count` more threads as well (as `tollgate serve`
    /// does with one per further CPU).
    pub fn serve_on_more_threads(&self, count: usize) {
        self.running
            .as_ref()
            .unwrap()
            .serve_on_more_threads(count)
            .unwrap();
    }

    /// `http://ADDR{path}` on the gateway listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN_ADDR{path}` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// Overwrites the config file (does not reload).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).unwrap();
    }

    /// Overwrites a file next to the config file (does not reload).
    pub fn write_file(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
    }

    /// What SIGHUP does: re-read the config file and swap it in.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.running.as_ref().unwrap().reload()
    }

    /// Graceful shutdown; bounded so a hang fails the test.
    pub async fn shutdown(mut self) {
        let running = self.running.take().unwrap();
        tokio::time::timeout(Duration::from_secs(40), running.shutdown())
            .await
            .expect("gateway shutdown did not finish in time");
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.unwrap()
    }

    /// Polls `/metrics` (bounded) until `series` has `value`; returns the last text.
    pub async fn wait_metric(&self, series: &str, value: f64) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.metrics().await;
            if metric_value(&text, series) == Some(value) {
                return text;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("metric {series} never became {value}; /metrics was:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of one series (`name{labels}` exactly as exposed) in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(series)?;
        if !rest.starts_with(' ') {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A plain-HTTP reqwest client (HTTP/1.1, bounded, no connection reuse surprises).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// Builds a gateway config; both listeners always on `127.0.0.1:0`.
#[derive(Default, Clone)]
pub struct Config {
    top: Vec<String>,
    server: Vec<String>,
    tls: Vec<String>,
    sections: Vec<String>,
    routes: Vec<String>,
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// A top-level line such as `auth_prefix = "/sso"`.
    pub fn top(mut self, line: &str) -> Self {
        self.top.push(line.to_owned());
        self
    }

    /// A line in `[server]`, such as `max_connections = 1`.
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_owned());
        self
    }

    /// `[server.tls]` with these (relative) file names.
    pub fn tls(mut self, cert: &str, key: &str) -> Self {
        self.tls = vec![format!("cert = {cert:?}"), format!("key = {key:?}")];
        self
    }

    /// A whole extra section, header included (e.g. `"[identity_headers]\nuser_id = ..."`).
    pub fn section(mut self, text: &str) -> Self {
        self.sections.push(text.to_owned());
        self
    }

    /// A public route with `path` to `upstream`.
    pub fn route(self, path: &str, upstream: &str) -> Self {
        self.route_with(path, upstream, "")
    }

    /// A route with extra lines (`name = "app"`, `host = ...`, `timeout = ...`); public
    /// unless `extra` sets `policy`.
    pub fn route_with(mut self, path: &str, upstream: &str, extra: &str) -> Self {
        let policy = if extra.contains("policy") {
            ""
        } else {
            "policy = \"public\"\n"
        };
        self.routes.push(format!(
            "[[routes]]\npath = {path:?}\nupstream = {upstream:?}\n{policy}{extra}\n"
        ));
        self
    }

    pub fn build(&self) -> String {
        let mut out = String::new();
        for line in &self.top {
            out.push_str(&format!("{line}\n"));
        }
        out.push_str("\n[server]\nlisten = \"127.0.0.1:0\"\n");
        for line in &self.server {
            out.push_str(&format!("{line}\n"));
        }
        if !self.tls.is_empty() {
            out.push_str(&format!("\n[server.tls]\n{}\n", self.tls.join("\n")));
        }
        out.push_str("\n[admin]\nlisten = \"127.0.0.1:0\"\n\n");
        if !self
            .sections
            .iter()
            .any(|s| s.trim_start().starts_with("[tokens]"))
        {
            out.push_str(&tokens_section());
        }
        if !self
            .sections
            .iter()
            .any(|s| s.trim_start().starts_with("[login"))
        {
            // Cheap hashing keeps tests fast; the cost parameters are tested on their own.
            out.push_str("[login.argon2]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\n");
        }
        for section in &self.sections {
            out.push_str(&format!("{section}\n\n"));
        }
        for route in &self.routes {
            out.push_str(&format!("{route}\n"));
        }
        out
    }
}

/// A `[tokens]` section using the test signing key (ES256, generated once per run).
pub fn tokens_section() -> String {
    format!(
        "[tokens]\nissuer = \"https://tollgate.test\"\naudience = \"tollgate\"\nalgorithm = \"ES256\"\nsigning_key_file = {:?}\n\n",
        signing_key_path()
    )
}

/// The test signing key's file: an ES256 PKCS#8 PEM shared by every test of this run.
pub fn signing_key_path() -> &'static std::path::Path {
    static KEY: std::sync::OnceLock<(TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        let pem =
            tollgate::auth::keys::generate_private_key_pem(tollgate::auth::keys::Algorithm::Es256)
                .unwrap();
        std::fs::write(&path, pem).unwrap();
        (dir, path)
    });
    path
}

/// A local `http://127.0.0.1:PORT` where nothing listens (bound, then released).
pub fn dead_upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
