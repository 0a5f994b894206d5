//! Threads for CPU-heavy cryptography, apart from the serving threads and the blocking
//! pool: password hashing and access-token signing.
//!
//! Each serving thread runs many connections, so a password hash (tens of milliseconds) or
//! an RS256 signature (about 0.7 ms) computed on it would stall all of them for that long.
//! Hashing threads run [`HASHING_NICENESS`] below normal: when hashes and proxied requests
//! compete for a CPU, the requests win, and when the CPU is free the hashes get all of it.
//! Signing threads run at normal priority, since a proxied response waits for its token.
//! Database calls stay on the blocking pool.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// How far below the serving threads a hashing thread's priority is (a nice increment):
/// under contention a serving thread then gets about nine times the CPU of a hashing one.
pub const HASHING_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads for one kind of work, started on first use; they end when
/// the last handle is dropped (after a configuration reload, say).
#[derive(Debug)]
pub struct CryptoThreads {
    count: usize,
    name: &'static str,
    niceness: i32,
    jobs: OnceLock<Mutex<Sender<Job>>>,
}

impl CryptoThreads {
    /// `count` password-hashing threads at lowered priority, none started yet.
    pub fn hashing(count: usize) -> CryptoThreads {
        CryptoThreads::new(count, "tollgate-hash", HASHING_NICENESS)
    }

    /// `count` token-signing threads at normal priority, none started yet.
    pub fn signing(count: usize) -> CryptoThreads {
        CryptoThreads::new(count, "tollgate-sign", 0)
    }

    fn new(count: usize, name: &'static str, niceness: i32) -> CryptoThreads {
        CryptoThreads {
            count: count.max(1),
            name,
            niceness,
            jobs: OnceLock::new(),
        }
    }

    /// Runs `job` on one of the threads. Password hashing bounds how many jobs are
    /// outstanding (the hashing slots); a signature is short enough to queue.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<(), String> {
        let jobs = match self.jobs.get() {
            Some(jobs) => jobs,
            None => {
                let started = self.start()?;
                // Two first callers at once: one set of threads is kept, the other's
                // threads see their channel close and end.
                self.jobs.get_or_init(|| Mutex::new(started))
            }
        };
        let jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.send(Box::new(job))
            .map_err(|_| format!("the {} threads have ended", self.name))
    }

    fn start(&self) -> Result<Sender<Job>, String> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..self.count {
            let receiver = receiver.clone();
            let niceness = self.niceness;
            std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || work(&receiver, niceness))
                .map_err(|e| format!("cannot start a {} thread: {e}", self.name))?;
        }
        Ok(sender)
    }
}

fn work(receiver: &Mutex<Receiver<Job>>, niceness: i32) {
    if niceness != 0 {
        // Best effort: without it the work still runs, at normal priority.
        let _ = rustix::process::nice(niceness);
    }
    loop {
        let next = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_named_threads_at_their_kinds_priority() {
        let base = rustix::process::getpriority_process(None).unwrap();
        let kinds = [
            (CryptoThreads::hashing(2), "tollgate-hash", HASHING_NICENESS),
            (CryptoThreads::signing(1), "tollgate-sign", 0),
        ];
        for (threads, want_name, niceness) in kinds {
            let (tx, rx) = channel();
            for n in 0..4 {
                let tx = tx.clone();
                threads
                    .run(move || {
                        let name = std::thread::current().name().map(str::to_owned);
                        let nice = rustix::process::getpriority_process(None).unwrap();
                        tx.send((n, name, nice)).unwrap();
                    })
                    .unwrap();
            }
            let mut seen: Vec<_> = (0..4).map(|_| rx.recv().unwrap()).collect();
            seen.sort();
            for (n, (got, name, nice)) in seen.into_iter().enumerate() {
                assert_eq!(got, n);
                assert_eq!(name.as_deref(), Some(want_name));
                assert_eq!(nice, (base + niceness).min(19), "{want_name}");
            }
        }
    }
}
