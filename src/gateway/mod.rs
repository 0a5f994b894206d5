//! The request path: canonicalise, route, authenticate, authorise, forward, respond.

pub mod error;
pub mod handle;
pub mod path;
pub mod route;
