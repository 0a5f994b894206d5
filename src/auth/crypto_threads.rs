//! Threads for CPU-heavy cryptography, apart from the serving threads and the blocking
//! pool: password hashing and access-token signing.
//!
//! Each serving thread runs many connections, so a password hash (tens of milliseconds) or
//! an RS256 signature (0.2–1 ms by host) computed on it would stall all of them for that
//! long. Hashing threads run under Linux's `SCHED_IDLE` policy: a serving thread that wakes
//! up takes the CPU from a hash at once, so proxied requests never wait on hashing, and
//! when a CPU has nothing else to do the hashes get all of it. Where that policy is
//! refused, they run [`HASHING_NICENESS`] below normal instead. Signing threads run at
//! normal priority, since a proxied response waits for its token. Database calls stay on
//! the blocking pool.
//!
//! Hashing threads can also be kept to some of the CPUs ([`CpuList`], `login.hash_cpus`).
//! On some virtual machines a busy thread, whatever its priority, delays other threads'
//! wake-ups onto its CPU until the next scheduler tick; keeping hashes off the CPUs where
//! latency-sensitive processes run (an upstream on the same host, say) spares them that.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// How far below the serving threads a hashing thread's priority is (a nice increment) where
/// `SCHED_IDLE` is refused: under contention a serving thread then gets about seventy times
/// the CPU of a hashing one.
pub const HASHING_NICENESS: i32 = 19;

/// A set of CPUs that threads are kept to, each one the process may run on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CpuList(CpuSet);

impl CpuList {
    /// The CPUs `cpus` names (Linux CPU numbers), if it names at least one and the process
    /// may run on each; else a message naming what is wrong.
    pub fn allowed(cpus: &[usize]) -> Result<CpuList, String> {
        if cpus.is_empty() {
            return Err("must name at least one CPU".into());
        }
        let process = CpuList::of_process()
            .map_err(|e| format!("cannot read the CPUs tollgate may run on: {e}"))?;
        let mut set = CpuSet::new();
        for &cpu in cpus {
            if cpu >= CpuSet::MAX_CPU || !process.0.is_set(cpu) {
                return Err(format!(
                    "CPU {cpu} is not one tollgate may run on (it may run on {})",
                    process.describe()
                ));
            }
            set.set(cpu);
        }
        Ok(CpuList(set))
    }

    /// The CPUs the calling thread may run on (the process's, unless narrowed for it).
    pub fn of_process() -> std::io::Result<CpuList> {
        sched_getaffinity(None)
            .map(CpuList)
            .map_err(std::io::Error::from)
    }

    /// The CPUs, in order.
    pub fn cpus(&self) -> Vec<usize> {
        (0..CpuSet::MAX_CPU).filter(|&c| self.0.is_set(c)).collect()
    }

    fn describe(&self) -> String {
        let cpus: Vec<String> = self.cpus().iter().map(usize::to_string).collect();
        cpus.join(", ")
    }

    /// Keeps the calling thread to these CPUs.
    fn apply(&self) -> std::io::Result<()> {
        sched_setaffinity(None, &self.0).map_err(std::io::Error::from)
    }
}

impl std::fmt::Debug for CpuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuList[{}]", self.describe())
    }
}

/// How a kind of crypto thread is scheduled against the serving threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// Like the serving threads.
    Normal,
    /// Only when nothing else wants the CPU (`SCHED_IDLE`, else [`HASHING_NICENESS`]).
    Background,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads for one kind of work, started on first use; they end when
/// the last handle is dropped (after a configuration reload, say).
#[derive(Debug)]
pub struct CryptoThreads {
    count: usize,
    name: &'static str,
    priority: Priority,
    cpus: Option<CpuList>,
    jobs: OnceLock<Mutex<Sender<Job>>>,
}

impl CryptoThreads {
    /// `count` password-hashing threads that run only when a CPU is otherwise idle, and only
    /// on `cpus` when given; none started yet.
    pub fn hashing(count: usize, cpus: Option<CpuList>) -> CryptoThreads {
        CryptoThreads::new(count, "tollgate-hash", Priority::Background, cpus)
    }

    /// `count` token-signing threads at normal priority, none started yet.
    pub fn signing(count: usize) -> CryptoThreads {
        CryptoThreads::new(count, "tollgate-sign", Priority::Normal, None)
    }

    fn new(
        count: usize,
        name: &'static str,
        priority: Priority,
        cpus: Option<CpuList>,
    ) -> CryptoThreads {
        CryptoThreads {
            count: count.max(1),
            name,
            priority,
            cpus,
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
            let (priority, cpus) = (self.priority, self.cpus);
            std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || work(&receiver, priority, cpus))
                .map_err(|e| format!("cannot start a {} thread: {e}", self.name))?;
        }
        Ok(sender)
    }
}

fn work(receiver: &Mutex<Receiver<Job>>, priority: Priority, cpus: Option<CpuList>) {
    if priority == Priority::Background {
        lower_this_thread();
    }
    if let Some(cpus) = cpus
        && let Err(e) = cpus.apply()
    {
        // Checked against the process's CPUs when the settings were built; an operator may
        // have narrowed them since (`taskset`). The work still runs, wherever it may.
        tracing::warn!(error = %e, cpus = ?cpus, "could not keep a thread to its CPUs");
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

/// Puts the calling thread under `SCHED_IDLE`, or failing that at [`HASHING_NICENESS`].
/// Best effort: without either the work still runs, at normal priority.
fn lower_this_thread() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_err() {
        let _ = rustix::process::nice(HASHING_NICENESS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};

    #[test]
    fn jobs_run_on_named_threads_at_their_kinds_priority() {
        let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let kinds = [
            (CryptoThreads::hashing(2, None), "tollgate-hash", idle),
            (CryptoThreads::signing(1), "tollgate-sign", normal),
        ];
        for (threads, want_name, want_policy) in kinds {
            let (tx, rx) = channel();
            for n in 0..4 {
                let tx = tx.clone();
                threads
                    .run(move || {
                        let name = std::thread::current().name().map(str::to_owned);
                        let policy = thread_priority::thread_schedule_policy().unwrap();
                        tx.send((n, name, policy)).unwrap();
                    })
                    .unwrap();
            }
            let mut seen: Vec<_> = (0..4).map(|_| rx.recv().unwrap()).collect();
            seen.sort_by_key(|(n, _, _)| *n);
            for (n, (got, name, policy)) in seen.into_iter().enumerate() {
                assert_eq!(got, n);
                assert_eq!(name.as_deref(), Some(want_name));
                assert_eq!(policy, want_policy, "{want_name}");
            }
        }
    }

    #[test]
    fn hashing_threads_stay_on_the_cpus_given() {
        let process = CpuList::of_process().unwrap();
        let last = *process.cpus().last().unwrap();
        let one = CpuList::allowed(&[last]).unwrap();
        assert_eq!(one.cpus(), [last]);
        let threads = CryptoThreads::hashing(2, Some(one));
        let (tx, rx) = channel();
        for _ in 0..4 {
            let tx = tx.clone();
            threads
                .run(move || tx.send(CpuList::of_process().unwrap()).unwrap())
                .unwrap();
        }
        for _ in 0..4 {
            assert_eq!(rx.recv().unwrap().cpus(), [last]);
        }
        // The caller keeps every CPU.
        assert_eq!(CpuList::of_process().unwrap(), process);
    }

    #[test]
    fn cpu_lists_name_only_cpus_the_process_may_use() {
        assert_eq!(
            CpuList::allowed(&[]).unwrap_err(),
            "must name at least one CPU"
        );
        let err = CpuList::allowed(&[CpuSet::MAX_CPU + 1]).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "CPU {} is not one tollgate may run on (it may run on ",
                CpuSet::MAX_CPU + 1
            )),
            "{err}"
        );
        let all = CpuList::of_process().unwrap().cpus();
        let listed = CpuList::allowed(&all).unwrap();
        assert_eq!(listed.cpus(), all);
        assert_eq!(format!("{listed:?}").matches(", ").count(), all.len() - 1);
    }
}
