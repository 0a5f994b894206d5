//! Password hashing with argon2id, on hashing threads of lower priority than the serving
//! threads and behind a bounded number of hashing slots: a login waits a bounded time for
//! a slot, then is told the server is busy; proxied traffic never waits on hashing. Unknown users are verified against a dummy hash
//! so they take as long as known ones.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use tokio::sync::Semaphore;

use super::crypto_threads::{CpuList, CryptoThreads};

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
    /// A hasher with `max_concurrent` slots whose threads run on `cpus` (default: wherever
    /// the process may run); computes the dummy hash now (one hash's time).
    pub fn new(
        cost: Argon2Cost,
        max_concurrent: usize,
        cpus: Option<CpuList>,
        slot_wait: Duration,
    ) -> Result<PasswordHasher, String> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let dummy_hash = hash_with(&params, b"tollgate dummy password for unknown users", false)
            .map_err(|e| format!("argon2 failed: {e}"))?;
        Ok(PasswordHasher {
            params,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            slot_wait,
            dummy_hash: dummy_hash.into(),
            threads: Arc::new(CryptoThreads::hashing(max_concurrent, cpus)),
        })
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_length(password)?;
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move || {
            hash_with(&params, password.as_bytes(), true).map_err(PasswordError::Internal)
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
                let matches = output_matches(&parsed, password.as_bytes(), &params);
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

thread_local! {
    /// A hashing thread's argon2 memory (19 MiB at the default cost), kept from one hash to
    /// the next. Fresh memory for every hash would be zeroed first each time: one more pass
    /// over it, through the caches the serving threads use. argon2 writes every block before
    /// it reads it, so what a previous hash left there does not matter.
    static KEPT_BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `argon2` with `count` memory blocks. With `kept` (a hashing thread at the
/// configured cost: the callers decide) the thread's kept memory, replaced when `count`
/// differs from what it holds; without, memory for this run alone (the dummy hash at
/// start-up, or a stored hash of another cost).
fn with_blocks<T>(count: usize, kept: bool, run: impl FnOnce(&mut [Block]) -> T) -> T {
    if !kept {
        return run(&mut vec![Block::new(); count]);
    }
    KEPT_BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() != count {
            *blocks = Vec::new(); // the old memory goes before the new is taken
            *blocks = vec![Block::new(); count];
        }
        run(blocks)
    })
}

/// A PHC string for `password` with a fresh random salt, at the cost `params`; `kept`: see
/// [`with_blocks`].
fn hash_with(params: &Params, password: &[u8], kept: bool) -> Result<String, String> {
    let salt = argon2::password_hash::try_generate_salt().map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_blocks(params.block_count(), kept, |blocks| {
        argon2.hash_password_into_with_memory(password, &salt, &mut out, blocks)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` gives the output stored in `stored`, at the stored hash's own
/// algorithm, version and cost. The kept memory serves it when the stored cost is the
/// configured one (`configured`). Anything unreadable in the stored hash is no match.
fn output_matches(stored: &PasswordHash, password: &[u8], configured: &Params) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let kept = params.block_count() == configured.block_count();
    let computed = with_blocks(params.block_count(), kept, |blocks| {
        argon2.hash_password_into_with_memory(password, salt, &mut *out, blocks)
    });
    // `Output`'s comparison takes the same time wherever the bytes differ.
    computed.is_ok() && Output::new(out).is_ok_and(|computed| computed == *expected)
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
        let hasher = PasswordHasher::new(cheap(), 2, None, Duration::from_secs(5)).unwrap();
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
        let hasher = PasswordHasher::new(cheap(), 1, None, Duration::from_secs(5)).unwrap();
        let none = hasher.verify("anything", None).await.unwrap();
        assert!(!none.matches && !none.needs_rehash);
        let stronger = PasswordHasher::new(
            Argon2Cost {
                memory_kib: 2048,
                ..cheap()
            },
            1,
            None,
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

    /// Hashes stored earlier by the argon2 crate's own hasher keep verifying, and the argon2
    /// crate verifies the hashes made here: the PHC strings are the same.
    #[test]
    fn phc_strings_agree_with_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(1024, 1, 1, None).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let theirs = argon2.hash_password(b"password-1").unwrap();
        assert!(output_matches(&theirs, b"password-1", &params));
        assert!(!output_matches(&theirs, b"password-2", &params));

        let ours = hash_with(&params, b"password-1", true).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert_eq!(parsed.params, theirs.params);
        assert_eq!(parsed.salt.unwrap().len(), theirs.salt.unwrap().len());
        assert!(argon2.verify_password(b"password-1", &parsed).is_ok());
        assert!(argon2.verify_password(b"password-2", &parsed).is_err());
    }

    /// A hashing thread's kept memory holds what its last hash left there; the next hash
    /// must come out as it would in fresh memory.
    #[test]
    fn kept_memory_gives_what_fresh_memory_gives() {
        let params = Params::new(1024, 2, 1, None).unwrap();
        let first = hash_with(&params, b"password-1", true).unwrap();
        hash_with(&params, b"password-2", true).unwrap();
        let first = PasswordHash::new(&first).unwrap();
        // Same cost as configured: the kept memory, now holding the second hash's state.
        assert!(output_matches(&first, b"password-1", &params));
        // Another configured cost: memory for this check alone.
        let other = Params::new(2048, 2, 1, None).unwrap();
        assert!(output_matches(&first, b"password-1", &other));
        assert!(!output_matches(&first, b"password-2", &other));
        // The kept memory follows the configured cost.
        hash_with(&other, b"password-3", true).unwrap();
        KEPT_BLOCKS.with_borrow(|kept| assert_eq!(kept.len(), other.block_count()));
    }

    /// Stored hashes are checked at their own algorithm and version.
    #[test]
    fn stored_algorithm_and_version_are_used() {
        use argon2::PasswordHasher as _;
        let params = Params::new(1024, 1, 1, None).unwrap();
        for (algorithm, version) in [
            (Algorithm::Argon2i, Version::V0x13),
            (Algorithm::Argon2id, Version::V0x10),
        ] {
            let stored = Argon2::new(algorithm, version, params.clone())
                .hash_password(b"password-1")
                .unwrap();
            assert!(output_matches(&stored, b"password-1", &params), "{stored}");
            assert!(!output_matches(&stored, b"password-2", &params), "{stored}");
        }
    }

    #[tokio::test]
    async fn over_long_passwords_are_refused_before_hashing() {
        let hasher = PasswordHasher::new(cheap(), 1, None, Duration::from_secs(5)).unwrap();
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
        let hasher = PasswordHasher::new(cheap(), 1, None, Duration::from_millis(50)).unwrap();
        let held = hasher.slots.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            hasher.hash("password-1").await,
            Err(PasswordError::Busy)
        ));
        drop(held);
        assert!(hasher.hash("password-1").await.is_ok());
    }
}
