//! Integration tests for tollgate: one binary, every server on `127.0.0.1:0`.
//!
//! `it/harness` holds the shared pieces; each other module covers one area of the
//! contract (SPEC.md sections 1, 7, 9, 10).

mod it {
    pub mod harness;

    mod admin;
    mod auth;
    mod binary;
    mod client_conns;
    mod config;
    mod errors;
    mod lifecycle;
    mod limits;
    mod proxy;
    mod routing;
    pub mod store;
    mod tls;
    mod upstream_conns;
    mod upstream_framing;
}
