//! Running tollgate: bind the listeners, serve, reload on request, drain on shutdown.

pub mod admin;
mod direct;
pub mod listener;
pub mod metrics;
mod signals;
mod sniff;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::identity::Identity;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::gateway::handle::Gateway;
use crate::sessions::SessionStore;
use crate::store::Store;
use metrics::Metrics;
pub use signals::serve;

/// Why tollgate could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        /// `server.listen` or `admin.listen`.
        which: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Storage(crate::store::StoreError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// State shared by the listeners and every connection.
#[derive(Debug)]
pub struct Shared {
    settings: Arc<ArcSwap<Settings>>,
    gateway: Arc<Gateway>,
    metrics: Arc<Metrics>,
    open_connections: AtomicUsize,
    /// Fires when shutdown begins: listeners stop, connections drain, `/readyz` says no.
    draining: CancellationToken,
}

/// A started tollgate: both listeners bound and serving.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    config_path: PathBuf,
    shared: Arc<Shared>,
    connections: TaskTracker,
    listeners: TaskTracker,
    public_std: std::net::TcpListener,
}

impl Running {
    /// Loads the configuration at `config_path`, opens the database (applying migrations),
    /// binds both listeners and starts serving.
    pub async fn start(config_path: impl Into<PathBuf>) -> Result<Running, StartError> {
        Running::start_with_clock(config_path, Arc::new(SystemClock)).await
    }

    /// `start` with a chosen clock (tests pass a `ManualClock`).
    pub async fn start_with_clock(
        config_path: impl Into<PathBuf>,
        clock: SharedClock,
    ) -> Result<Running, StartError> {
        let config_path = config_path.into();
        let settings = Settings::load(&config_path)?;
        let store = Store::connect(&settings.database.target, settings.database.timeout)
            .await
            .map_err(StartError::Storage)?;
        let applied = store.migrate().await.map_err(StartError::Storage)?;
        if applied > 0 {
            tracing::info!(
                applied,
                backend = store.backend(),
                "database migrations applied"
            );
        }
        let sessions = SessionStore::memory(settings.sessions.max_sessions);
        let identity = Arc::new(Identity::new(store, sessions, clock));
        let bind = |which, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    which,
                    addr,
                    source,
                })
        };
        let public = bind("server.listen", settings.server.listen).await?;
        // A std handle on the same socket, from which serving threads take their own.
        let public_std = public
            .into_std()
            .and_then(|l| {
                let copy = l.try_clone()?;
                Ok((TcpListener::from_std(l)?, copy))
            })
            .map_err(|source| StartError::Bind {
                which: "server.listen",
                addr: settings.server.listen,
                source,
            });
        let (public, public_std) = public_std?;
        let admin = bind("admin.listen", settings.admin_listen).await?;
        let local = |l: &TcpListener, which, addr| {
            l.local_addr().map_err(|source| StartError::Bind {
                which,
                addr,
                source,
            })
        };
        let addr = local(&public, "server.listen", settings.server.listen)?;
        let admin_addr = local(&admin, "admin.listen", settings.admin_listen)?;

        let settings = Arc::new(ArcSwap::from_pointee(settings));
        let metrics = Arc::new(Metrics::new(identity.issued.signed()));
        let shared = Arc::new(Shared {
            gateway: Arc::new(Gateway::new(
                settings.clone(),
                identity.clone(),
                metrics.clone(),
            )),
            settings,
            metrics,
            open_connections: AtomicUsize::new(0),
            draining: CancellationToken::new(),
        });
        let connections = TaskTracker::new();
        let listeners = TaskTracker::new();
        let stop = shared.draining.clone();
        listeners.spawn(listener::accept_loop(
            public,
            shared.clone(),
            stop.clone(),
            connections.clone(),
        ));
        listeners.spawn(admin::accept_loop(admin, shared.clone(), stop.clone()));
        listeners.spawn(identity.clone().follow_user_changes(stop));
        listeners.close();
        Ok(Running {
            addr,
            admin_addr,
            config_path,
            shared,
            connections,
            listeners,
            public_std,
        })
    }

    /// Serves the public listener on `count` more threads, each with a single-threaded
    /// runtime of its own that accepts from the same socket and runs the connections it
    /// accepted start to finish, as nginx's worker processes do: no task ever moves
    /// between threads, so a request needs no cross-thread wake-ups or synchronised run
    /// queues. Shared state (settings, sessions, caches) is the same for all threads.
    pub fn serve_on_more_threads(&self, count: usize) -> Result<(), StartError> {
        let addr = self.addr;
        let failed = |source| StartError::Bind {
            which: "server.listen",
            addr,
            source,
        };
        for n in 1..=count {
            let listener = self.public_std.try_clone().map_err(failed)?;
            let shared = self.shared.clone();
            let connections = self.connections.clone();
            let stop = shared.draining.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(failed)?;
            let listener = {
                let _entered = runtime.enter();
                TcpListener::from_std(listener).map_err(failed)?
            };
            let accept = self.listeners.track_future(listener::accept_loop(
                listener,
                shared,
                stop,
                connections.clone(),
            ));
            let serve = async move {
                accept.await;
                // The connections this thread accepted live on its runtime: keep running
                // them until every connection has drained (or the process exits).
                connections.wait().await;
            };
            std::thread::Builder::new()
                .name(format!("tollgate-serve-{n}"))
                .spawn(move || runtime.block_on(serve))
                .map_err(failed)?;
        }
        Ok(())
    }

    /// The public listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Re-reads the configuration file and swaps it in if it is valid as a whole; otherwise
    /// the running configuration stays and the error is returned (and logged).
    pub fn reload(&self) -> Result<(), ConfigError> {
        match Settings::load(&self.config_path) {
            Ok(new) => {
                let old = self.shared.settings.load();
                if new.server.listen != old.server.listen || new.admin_listen != old.admin_listen {
                    tracing::warn!("listen addresses changed; they take effect after a restart");
                }
                if new.database.target != old.database.target
                    || new.sessions.max_sessions != old.sessions.max_sessions
                {
                    tracing::warn!(
                        "[database] and sessions.max_sessions changes take effect after a restart"
                    );
                }
                self.shared.settings.store(Arc::new(new));
                self.shared.metrics.reload(true);
                tracing::info!(file = %self.config_path.display(), "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.shared.metrics.reload(false);
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                Err(e)
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish within `server.shutdown_timeout`,
    /// then returns.
    pub async fn shutdown(self) {
        let deadline = self.shared.settings.load().server.shutdown_timeout;
        self.shared.draining.cancel();
        self.listeners.wait().await;
        // The last handle on the listening socket: once it is closed, new connections are
        // refused rather than left waiting in the backlog.
        drop(self.public_std);
        self.connections.close();
        if tokio::time::timeout(deadline, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.connections.len(),
                "shutdown timeout reached; closing remaining connections"
            );
        }
    }
}
