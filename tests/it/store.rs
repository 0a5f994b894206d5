//! Storage (SPEC.md sections 2 and 10): every test runs on SQLite and on MySQL / MariaDB.
//!
//! Other test modules that need a database use `super::store::backends::each_backend()`:
//! it hands out one migrated store per backend, each on a database of its own that is
//! deleted when the test ends, with the `[database] url` to give a gateway for it.

pub mod backends;

mod migrate;
mod timeout;
mod users;
