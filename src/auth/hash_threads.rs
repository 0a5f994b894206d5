//! The threads that compute password hashes, apart from the serving threads and the
//! blocking pool, at a lower priority.
//!
//! Each serving thread runs many connections, so a hash that took a serving thread's CPU
//! for a time slice would stall all of them. Hashing threads run [`HASHING_NICENESS`]
//! below normal: when hashes and proxied requests compete for a CPU, the requests win,
//! and when the CPU is free the hashes get all of it. Database calls stay on the blocking
//! pool at normal priority.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// How far below the serving threads a hashing thread's priority is (a nice increment):
/// under contention a serving thread then gets about nine times the CPU of a hashing one.
pub const HASHING_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of hashing threads, started on first use; they end when the last
/// handle is dropped (after a configuration reload, say).
#[derive(Debug)]
pub struct HashThreads {
    count: usize,
    jobs: OnceLock<Mutex<Sender<Job>>>,
}

impl HashThreads {
    /// `count` threads, none started yet.
    pub fn new(count: usize) -> HashThreads {
        HashThreads {
            count: count.max(1),
            jobs: OnceLock::new(),
        }
    }

    /// Runs `job` on a hashing thread. Callers bound how many jobs are outstanding (the
    /// hashing slots), so a job never waits behind more than `count - 1` others.
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
            .map_err(|_| "the hashing threads have ended".to_string())
    }

    fn start(&self) -> Result<Sender<Job>, String> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..self.count {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name("tollgate-hash".into())
                .spawn(move || work(&receiver))
                .map_err(|e| format!("cannot start a hashing thread: {e}"))?;
        }
        Ok(sender)
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    // Best effort: without it hashes still run, at normal priority.
    let _ = rustix::process::nice(HASHING_NICENESS);
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
    fn jobs_run_on_lowered_priority_threads_that_end_with_the_handle() {
        let threads = HashThreads::new(2);
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
        let base = rustix::process::getpriority_process(None).unwrap();
        for (n, (got, name, nice)) in seen.into_iter().enumerate() {
            assert_eq!(got, n);
            assert_eq!(name.as_deref(), Some("tollgate-hash"));
            assert_eq!(nice, (base + HASHING_NICENESS).min(19));
        }
    }
}
