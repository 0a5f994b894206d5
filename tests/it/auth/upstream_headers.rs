//! What comes back from the upstream: an upstream can never set the gateway's token header
//! or cookies, and a response that carries a token is private to the browser.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::super::store::backends::Backend;
use super::{BROWSER, Gate, each_backend, expect_passed, header, header_all, http, login, on_db};

/// An upstream that tries to set tollgate's token header and cookies on every response.
struct ForgingUpstream {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ForgingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ForgingUpstream {
    async fn start() -> ForgingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(forged_response())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ForgingUpstream { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn forged_response() -> Response<Full<Bytes>> {
    Response::builder()
        .header("GN-Access-Token", "forged.by.upstream")
        .header("Set-Cookie", "tollgate-access=forged; Path=/")
        .header(
            "Set-Cookie",
            "__Host-tollgate-access=forged; Path=/; Secure",
        )
        .header("Set-Cookie", "tollgate-refresh=forged; Path=/")
        .header(
            "Set-Cookie",
            "__Host-tollgate-refresh=forged; Path=/; Secure",
        )
        .header("Set-Cookie", "app-session=kept; Path=/")
        .header("Cache-Control", "public, max-age=600, s-maxage=600")
        .body(Full::new(Bytes::from_static(b"from the app")))
        .unwrap()
}

fn gateway_config(b: &Backend, up: &ForgingUpstream, secure: bool) -> super::Config {
    on_db(b, "")
        .section(&format!("[cookies]\nsecure = {secure}"))
        .route_with("/app", &up.url(), "policy = \"authenticated\"")
        .route("/public", &up.url())
}

/// The gateway's cookie names under `[cookies] secure`.
fn gateway_cookies(secure: bool) -> [&'static str; 2] {
    if secure {
        ["__Host-tollgate-access=", "__Host-tollgate-refresh="]
    } else {
        ["tollgate-access=", "tollgate-refresh="]
    }
}

/// Asserts that none of the gateway's cookies the upstream forged reached the client, and
/// the app's own cookie did.
fn assert_no_forged_cookies(resp: &reqwest::Response, secure: bool, what: &str) {
    let cookies = header_all(resp, "set-cookie");
    let forged = cookies
        .iter()
        .filter(|c| c.contains("forged"))
        .filter(|c| gateway_cookies(secure).iter().any(|n| c.starts_with(n)));
    assert_eq!(forged.count(), 0, "{what}: {cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("app-session=kept")),
        "{what}: the app's own cookie was dropped: {cookies:?}"
    );
}

#[tokio::test]
async fn upstream_cannot_set_the_token_header_or_gateway_cookies() {
    for b in each_backend().await {
        for secure in [false, true] {
            let up = ForgingUpstream::start().await;
            let gate = Gate::start(&gateway_config(&b, &up, secure)).await;
            let user = format!("user{secure}");
            super::register(&gate, &user).await;
            let token = login(&gate, &user).await;
            let what = format!("{} secure={secure}", b.name);

            // Authenticated, bearer: the gateway's own token, nothing forged.
            let resp = http()
                .get(gate.url("/app/x"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let gn = expect_passed(&resp, &what);
            assert_eq!(gn, token, "{what}: GN-Access-Token is the gateway's");
            assert_eq!(header_all(&resp, "gn-access-token").len(), 1, "{what}");
            assert_no_forged_cookies(&resp, secure, &what);
            let cache = header(&resp, "cache-control").unwrap_or_default();
            assert!(cache.contains("private"), "{what}: Cache-Control {cache}");
            assert!(!cache.contains("public"), "{what}: Cache-Control {cache}");
            assert!(!cache.contains("s-maxage"), "{what}: Cache-Control {cache}");
            assert_eq!(resp.text().await.unwrap(), "from the app");

            // Authenticated, browser cookie: still nothing forged.
            let name = if secure {
                "__Host-tollgate-access"
            } else {
                "tollgate-access"
            };
            let resp = http()
                .get(gate.url("/app/y"))
                .header("accept", BROWSER)
                .header("cookie", format!("{name}={token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(expect_passed(&resp, &what), token, "{what}");
            assert_no_forged_cookies(&resp, secure, &what);

            // Public: no token at all, and still nothing forged.
            let resp = http().get(gate.url("/public/z")).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{what}");
            assert_eq!(
                header(&resp, "gn-access-token"),
                None,
                "{what}: public route"
            );
            assert_no_forged_cookies(&resp, secure, &what);
        }
    }
}
