//! Authentication: signing keys and access tokens, password hashing, sessions.

pub mod account;
pub mod cookies;
mod crypto_threads;
pub mod identity;
pub mod issued;
pub mod keys;
pub mod password;
pub mod redirect;
pub mod session;
pub mod token;
pub mod verified;

pub use crypto_threads::CpuList;
