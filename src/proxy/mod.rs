//! Forwarding to upstreams: the pooled client and the header rules applied on the way.

pub mod added;
pub mod client;
pub mod headers;
pub mod link;
pub mod passed;
pub(crate) mod upstream_body;
pub(crate) mod upstream_conn;
