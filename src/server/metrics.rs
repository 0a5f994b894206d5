//! Prometheus metrics: requests by route and status, upstream latency, open connections and
//! configuration reloads. They outlive reloads, so they hang off the server, not `Settings`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of requests that matched no route.
pub const NO_ROUTE: &str = "none";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<String>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The gateway's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_seconds: HistogramFamily,
    open_connections: Gauge,
    sessions: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    no_route: Arc<String>,
}

fn latency_histogram() -> Histogram {
    // 250 µs .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tollgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let upstream_seconds = HistogramFamily::new_with_constructor(latency_histogram);
        let open_connections = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let sessions = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from forwarding a request to the upstream's response headers",
            upstream_seconds.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        registry.register(
            "sessions",
            "Sessions held by this instance's memory store",
            sessions.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            reloads.clone(),
        );
        // Make both reload series visible from the start, so alerts can watch `failure`.
        for result in ["success", "failure"] {
            let _ = reloads.get_or_create(&ReloadLabels { result });
        }
        Metrics {
            registry,
            requests,
            upstream_seconds,
            open_connections,
            sessions,
            reloads,
            no_route: Arc::new(NO_ROUTE.to_string()),
        }
    }

    /// Counts one answered request; `route` is `None` when no route matched.
    pub fn request(&self, route: Option<&Arc<String>>, status: u16) {
        let labels = RequestLabels {
            route: route.unwrap_or(&self.no_route).clone(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Records how long an upstream took to answer.
    pub fn upstream_latency(&self, route: &Arc<String>, elapsed: Duration) {
        let labels = RouteLabels {
            route: route.clone(),
        };
        self.upstream_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A client connection opened.
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    /// A client connection closed.
    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// Records how many sessions the store holds (read when metrics are scraped).
    pub fn set_sessions(&self, count: usize) {
        self.sessions.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}
