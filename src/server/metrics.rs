//! Prometheus metrics: requests by route and status, upstream latency, open connections and
//! configuration reloads. They outlive reloads, so they hang off the server, not `Settings`.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Series handles a thread keeps per kind of metric.
const MEMO_SIZE: usize = 8;

/// Tells the `Metrics` instances of a process apart in the per-thread memos.
static NEXT_METRICS_ID: AtomicU64 = AtomicU64::new(1);

/// A series handle a thread used recently: which metrics, route (by identity) and status.
struct Memo<M> {
    metrics: u64,
    route: Arc<String>,
    status: u16,
    series: M,
}

thread_local! {
    // Looking a series up in its family hashes the labels under a lock; a request finds its
    // handle here instead, by comparing a pointer and two integers.
    static REQUEST_SERIES: RefCell<Vec<Memo<Counter>>> = const { RefCell::new(Vec::new()) };
    static UPSTREAM_SERIES: RefCell<Vec<Memo<Histogram>>> = const { RefCell::new(Vec::new()) };
}

/// Applies `apply` to the series for (`metrics`, `route`, `status`): the memoised handle,
/// or `make`'s, which is then memoised in place of the oldest.
fn with_series<M>(
    memo: &RefCell<Vec<Memo<M>>>,
    (metrics, route, status): (u64, &Arc<String>, u16),
    make: impl FnOnce() -> M,
    apply: impl FnOnce(&M),
) {
    let Ok(mut memo) = memo.try_borrow_mut() else {
        return apply(&make());
    };
    let found = memo
        .iter()
        .find(|m| m.metrics == metrics && m.status == status && Arc::ptr_eq(&m.route, route));
    if let Some(hit) = found {
        return apply(&hit.series);
    }
    let series = make();
    apply(&series);
    if memo.len() >= MEMO_SIZE {
        memo.remove(0);
    }
    memo.push(Memo {
        metrics,
        route: route.clone(),
        status,
        series,
    });
}

/// The gateway's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_seconds: HistogramFamily,
    open_connections: Gauge,
    sessions: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    no_route: Arc<String>,
    id: u64,
}

fn latency_histogram() -> Histogram {
    // 250 µs .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Counter::default())
    }
}

impl Metrics {
    /// Registers every metric; `tokens_signed` is the count the sign-in state keeps.
    pub fn new(tokens_signed: Counter) -> Metrics {
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
            "tokens_signed",
            "Access tokens signed, at sign-in and when a session's token is re-issued",
            tokens_signed,
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
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Counts one answered request; `route` is `None` when no route matched.
    pub fn request(&self, route: Option<&Arc<String>>, status: u16) {
        let route = route.unwrap_or(&self.no_route);
        let make = || {
            let labels = RequestLabels {
                route: route.clone(),
                status,
            };
            self.requests.get_or_create(&labels).clone()
        };
        REQUEST_SERIES.with(|memo| {
            with_series(memo, (self.id, route, status), make, |c| {
                c.inc();
            });
        });
    }

    /// Records how long an upstream took to answer.
    pub fn upstream_latency(&self, route: &Arc<String>, elapsed: Duration) {
        let make = || {
            let labels = RouteLabels {
                route: route.clone(),
            };
            self.upstream_seconds.get_or_create(&labels).clone()
        };
        UPSTREAM_SERIES.with(|memo| {
            with_series(memo, (self.id, route, 0), make, |h| {
                h.observe(elapsed.as_secs_f64());
            });
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn memoised_series_count_per_instance_and_by_route_name() {
        let a = Metrics::default();
        let b = Metrics::default();
        let app = Arc::new("app".to_string());
        // More routes than a thread memoises, so handles are also dropped and looked up again.
        let many: Vec<Arc<String>> = (0..MEMO_SIZE + 3)
            .map(|i| Arc::new(format!("r{i}")))
            .collect();
        for _ in 0..3 {
            a.request(Some(&app), 200);
            for route in &many {
                a.request(Some(route), 200);
                a.upstream_latency(route, Duration::from_millis(1));
            }
        }
        b.request(Some(&app), 200);
        // A reload compiles routes anew: same name, another allocation, same series.
        let reloaded = Arc::new("app".to_string());
        a.request(Some(&reloaded), 200);
        a.request(Some(&reloaded), 502);
        a.request(None, 404);

        let text = a.render();
        let mut app_series = series(&text, "tollgate_requests_total{route=\"app\"");
        app_series.sort();
        assert_eq!(
            app_series,
            [
                "tollgate_requests_total{route=\"app\",status=\"200\"} 4",
                "tollgate_requests_total{route=\"app\",status=\"502\"} 1",
            ],
            "{text}"
        );
        for route in &many {
            let line = format!("tollgate_requests_total{{route=\"{route}\",status=\"200\"}} 3");
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
            let count = format!("tollgate_upstream_duration_seconds_count{{route=\"{route}\"}} 3");
            assert!(text.lines().any(|l| l == count), "{count}\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l == "tollgate_requests_total{route=\"none\",status=\"404\"} 1"),
            "{text}"
        );
        assert_eq!(
            series(&b.render(), "tollgate_requests_total{"),
            ["tollgate_requests_total{route=\"app\",status=\"200\"} 1"]
        );
    }
}
