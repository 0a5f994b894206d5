//! The request path: canonicalise, route, authenticate, authorise, forward, respond.

pub mod authenticate;
pub mod error;
pub mod forward;
pub mod handle;
pub mod path;
pub mod route;
