//! The worker pool for CPU-heavy work (decoding, DSP, compression, inference).
//!
//! A fixed set of OS threads pull jobs from a crossbeam channel; async code awaits the
//! result through a oneshot, so the async runtime never blocks. Jobs never block on
//! channels themselves: operators keep long-lived state (a decoder, a writer) outside
//! the pool and move it into each job and back, so a slow consumer can never pin a
//! worker and starve another stage (no deadlock however the graph is shaped).
//! A panicking job is caught and reported as [`JobPanic`]; the worker survives.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, unbounded};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job panicked; the message is the panic payload when it was a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPanic(pub String);

impl std::fmt::Display for JobPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl std::error::Error for JobPanic {}

/// Fixed-size pool of worker threads.
pub struct WorkerPool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

const WORKER_PREFIX: &str = "sermo-worker-";

static QUIET_PANICS: Once = Once::new();

/// Panics inside pool jobs are expected (symphonia panics on some malformed inputs)
/// and are reported as data, so the default hook's stderr message is suppressed for
/// worker threads only.
fn install_quiet_panic_hook() {
    QUIET_PANICS.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_worker = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(WORKER_PREFIX));
            if !in_worker {
                previous(info);
            }
        }));
    });
}

impl WorkerPool {
    /// A pool of `threads` workers (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        install_quiet_panic_hook();
        let (tx, rx) = unbounded::<Job>();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let h = std::thread::Builder::new()
                .name(format!("{WORKER_PREFIX}{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
            handles.push(h);
        }
        Ok(WorkerPool {
            tx: Some(tx),
            threads: handles,
        })
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Run `f` on a worker and await its result. Panics in `f` become `Err(JobPanic)`.
    /// If the returned future is dropped, the job still completes and its result is
    /// discarded.
    pub async fn run<T, F>(&self, f: F) -> Result<T, JobPanic>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (otx, orx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let out = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_string());
                JobPanic(msg)
            });
            let _ = otx.send(out);
        });
        match &self.tx {
            Some(tx) if tx.send(job).is_ok() => {}
            _ => return Err(JobPanic("worker pool is shut down".into())),
        }
        match orx.await {
            Ok(r) => r,
            Err(_) => Err(JobPanic("worker dropped the job".into())),
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_worker_survives() {
        let pool = WorkerPool::new(1).unwrap();
        let r: Result<(), JobPanic> = pool.run(|| panic!("bad input")).await;
        assert_eq!(r, Err(JobPanic("bad input".into())));
        assert_eq!(pool.run(|| 41 + 1).await, Ok(42));
    }
}
