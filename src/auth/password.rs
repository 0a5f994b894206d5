//! Password hashing with argon2id, on hashing threads of lower priority than the serving
//! threads and behind a bounded number of hashing slots: a login waits a bounded time for
//! a slot, then is told the server is busy; proxied traffic never waits on hashing. Unknown users are verified against a dummy hash
//! so they take as long as known ones.

use std::sync::Arc;
use std::time::Duration;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
};
use tokio::sync::Semaphore;

use super::crypto_threads::CryptoThreads;

/// Longest password accepted, in bytes; checked before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Argon2Cost {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Why hashing or verification did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Longer than `MAX_PASSWORD_BYTES`.
    #[error("password longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// Every hashing slot stayed busy for the whole wait.
    #[error("all hashing slots are busy")]
    Busy,
    /// The hashing task failed.
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches the stored hash.
    pub matches: bool,
    /// The stored hash uses other parameters than the configured ones.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with the configured cost.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    slot_wait: Duration,
    dummy_hash: Arc<str>,
    threads: Arc<CryptoThreads>,
}

impl PasswordHasher {
    /// A hasher with `max_concurrent` slots; computes the dummy hash now (one hash's time).
    pub fn new(
        cost: Argon2Cost,
        max_concurrent: usize,
        slot_wait: Duration,
    ) -> Result<PasswordHasher, String> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let dummy_hash = hash_blocking(&params, b"tollgate dummy password for unknown users")
            .map_err(|e| format!("argon2 failed: {e}"))?;
        Ok(PasswordHasher {
            params,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            slot_wait,
            dummy_hash: dummy_hash.into(),
            threads: Arc::new(CryptoThreads::hashing(max_concurrent)),
        })
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_length(password)?;
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move || {
            hash_blocking(&params, password.as_bytes()).map_err(PasswordError::Internal)
        })
        .await
    }

    /// Checks `password` against `stored`; with `None` (no such user) it spends the same
    /// time on the dummy hash and reports no match.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, PasswordError> {
        check_length(password)?;
        let known = stored.is_some();
        let stored = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let params = self.params.clone();
        let password = password.to_owned();
        let verified = self
            .run(move || {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    // A corrupt stored hash never matches; it must not fail open.
                    return Ok(Verified {
                        matches: false,
                        needs_rehash: true,
                    });
                };
                let matches = argon2_for(&params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                Ok(Verified {
                    matches,
                    needs_rehash: needs_rehash(&parsed, &params),
                })
            })
            .await?;
        Ok(Verified {
            matches: known && verified.matches,
            needs_rehash: known && verified.needs_rehash,
        })
    }

    /// Runs `work` on a hashing thread (`crypto_threads.rs`) once a slot is free; the permit
    /// moves into the job so the slot stays taken until the hash is done, even if the
    /// request went away.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PasswordError> + Send + 'static,
    {
        let permit = tokio::time::timeout(self.slot_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.threads
            .run(move || {
                let _permit = permit;
                let _ = done.send(work());
            })
            .map_err(PasswordError::Internal)?;
        result
            .await
            .map_err(|_| PasswordError::Internal("hashing thread ended early".into()))?
    }
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

fn argon2_for(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, String> {
    argon2_for(params)
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

fn needs_rehash(stored: &PasswordHash, params: &Params) -> bool {
    let same_params = Params::try_from(stored).is_ok_and(|p| {
        p.m_cost() == params.m_cost()
            && p.t_cost() == params.t_cost()
            && p.p_cost() == params.p_cost()
    });
    stored.algorithm.as_str() != "argon2id" || !same_params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Cost {
        Argon2Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(cheap(), 2, Duration::from_secs(5)).unwrap();
        let hash = hasher.hash("correct horse battery staple ✓").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        let ok = hasher
            .verify("correct horse battery staple ✓", Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            ok,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = hasher
            .verify("correct horse battery stapler", Some(&hash))
            .await
            .unwrap();
        assert!(!bad.matches);
    }

    #[tokio::test]
    async fn unknown_user_never_matches_and_changed_cost_asks_for_rehash() {
        let hasher = PasswordHasher::new(cheap(), 1, Duration::from_secs(5)).unwrap();
        let none = hasher.verify("anything", None).await.unwrap();
        assert!(!none.matches && !none.needs_rehash);
        let stronger = PasswordHasher::new(
            Argon2Cost {
                memory_kib: 2048,
                ..cheap()
            },
            1,
            Duration::from_secs(5),
        )
        .unwrap();
        let old = hasher.hash("password-1").await.unwrap();
        let v = stronger.verify("password-1", Some(&old)).await.unwrap();
        assert_eq!(
            v,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
        let corrupt = hasher
            .verify("password-1", Some("$argon2id$garbage"))
            .await
            .unwrap();
        assert!(!corrupt.matches);
    }

    #[tokio::test]
    async fn over_long_passwords_are_refused_before_hashing() {
        let hasher = PasswordHasher::new(cheap(), 1, Duration::from_secs(5)).unwrap();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hasher.hash(&long).await,
            Err(PasswordError::TooLong)
        ));
        assert!(matches!(
            hasher.verify(&long, None).await,
            Err(PasswordError::TooLong)
        ));
    }

    #[tokio::test]
    async fn busy_slots_give_up_after_the_wait() {
        let hasher = PasswordHasher::new(cheap(), 1, Duration::from_millis(50)).unwrap();
        let held = hasher.slots.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            hasher.hash("password-1").await,
            Err(PasswordError::Busy)
        ));
        drop(held);
        assert!(hasher.hash("password-1").await.is_ok());
    }
}
