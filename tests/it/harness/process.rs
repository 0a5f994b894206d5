//! The `tollgate` binary as a child process: start it, find its ports from its first
//! stdout line, signal it, wait for its exit. The guard kills it when dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::WAIT;

/// The path cargo built the binary at.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// Runs `tollgate check-config --config PATH` to completion (bounded).
pub async fn check_config(path: &Path) -> Output {
    let mut cmd = Command::new(binary());
    cmd.arg("check-config").arg("--config").arg(path);
    run_bounded(cmd).await
}

/// Runs `cmd` to completion on a blocking thread, failing the test after `WAIT`.
pub async fn run_bounded(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    tokio::time::timeout(WAIT, run)
        .await
        .expect("command did not finish in time")
        .unwrap()
}

/// A running `tollgate serve`; killed on drop.
pub struct ServeProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Starts `tollgate serve --config PATH`.
    pub fn spawn(config: &Path) -> Self {
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--config").arg(config);
        Self::spawn_cmd(cmd)
    }

    /// Starts `tollgate serve` with the config named only by `TOLLGATE_CONFIG`.
    pub fn spawn_with_env(config: &Path) -> Self {
        let mut cmd = Command::new(binary());
        cmd.arg("serve").env("TOLLGATE_CONFIG", config);
        Self::spawn_cmd(cmd)
    }

    fn spawn_cmd(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err_pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) for `tollgate listening on A, admin on B`; returns `(A, B)`.
    pub async fn wait_listening(&mut self) -> (SocketAddr, SocketAddr) {
        let line = tokio::time::timeout(WAIT, self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no listening line in time; stderr:\n{}", self.stderr()))
            .unwrap_or_else(|| panic!("stdout closed early; stderr:\n{}", self.stderr()));
        parse_listening(&line).unwrap_or_else(|| panic!("unexpected first line {line:?}"))
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, `"INT"`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status if the process has exited already.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits (bounded by `limit`) for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "tollgate did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Parses `tollgate listening on 127.0.0.1:P, admin on 127.0.0.1:Q`.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("tollgate listening on ")?;
    let (main, admin) = rest.split_once(", admin on ")?;
    Some((main.trim().parse().ok()?, admin.trim().parse().ok()?))
}
