//! The pooled HTTP/1.1 client that carries requests to upstreams, keeping connections alive
//! between requests.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::Body;

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long establishing an upstream TCP connection may take (here and on the links).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection-pooling client shared by every request.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    inner: Client<HttpConnector, Body>,
}

impl Default for UpstreamClient {
    fn default() -> Self {
        UpstreamClient::new()
    }
}

impl UpstreamClient {
    /// A client with keep-alive pooling and `TCP_NODELAY`.
    pub fn new() -> UpstreamClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        UpstreamClient { inner }
    }

    /// Sends `request` (absolute URI) and returns the upstream's response head with a
    /// streaming body.
    pub async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.inner.request(request).await
    }
}
