//! tollgate: an authentication gateway that sits in front of web apps as a reverse proxy.
//!
//! The binary in `main.rs` is a thin command line over this library; the integration tests
//! drive the same public surface.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
pub(crate) mod deadline;
pub mod endpoints;
pub mod gateway;
pub(crate) mod http1;
pub mod proxy;
pub mod server;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub(crate) mod write_buffer;

/// The body type of every response tollgate produces, proxied or its own.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;

/// A boxed error that can cross task and body boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
