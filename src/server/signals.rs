//! `tollgate serve`: start, tell systemd when ready, reload on SIGHUP, drain on SIGTERM or
//! SIGINT.

use std::path::PathBuf;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};

use super::{Running, StartError};

/// Runs until SIGTERM or SIGINT, then drains and returns. Call it on a single-threaded
/// runtime: it serves on that thread and starts one more serving thread per further CPU.
pub async fn serve(config_path: PathBuf) -> Result<(), StartError> {
    // Handlers go in before binding so an early SIGHUP is not fatal.
    let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;

    let running = Running::start(config_path).await?;
    // This thread serves too; one more per CPU this process may run on.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    running.serve_on_more_threads(cpus.saturating_sub(1))?;
    tracing::info!(addr = %running.addr(), admin = %running.admin_addr(), "listening");
    println!(
        "tollgate listening on {}, admin on {}",
        running.addr(),
        running.admin_addr()
    );
    notify(&[NotifyState::Ready]);
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                notify(&[NotifyState::Reloading]);
                // A failed reload is logged and counted; serving goes on unchanged.
                let _ = running.reload();
                notify(&[NotifyState::Ready]);
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutting down: draining in-flight requests");
    notify(&[NotifyState::Stopping]);
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn notify(state: &[NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}
