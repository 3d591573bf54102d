//! Named counters shared by the engine and its operators. The engine knows nothing of
//! what they mean; the CLI turns them into progress and the end-of-run summary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A registry of named monotonic counters and max-gauges, and the first few
/// failures by name (so that a summary can say which files failed, not only how
/// many).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
    failures: Arc<Mutex<BTreeSet<Failure>>>,
}

/// One named failure: (path, stage, reason, message).
pub type Failure = (String, String, String, String);

/// Failures kept by name: the [`MAX_NAMED_FAILURES`] first in path order, so the
/// list depends on the inputs, not on which worker finished first.
pub const MAX_NAMED_FAILURES: usize = 10;

/// Handle to one counter; cheap to clone and to update from any thread.
#[derive(Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set_max(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Metrics {
    /// The counter called `name`, created at zero on first use.
    pub fn counter(&self, name: &str) -> Counter {
        let mut map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        Counter(map.entry(name.to_string()).or_default().clone())
    }

    /// Current value of `name` (0 if never touched).
    pub fn get(&self, name: &str) -> u64 {
        let map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(name)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Sum of every counter whose name starts with `prefix` and ends with `suffix`.
    pub fn sum_matching(&self, prefix: &str, suffix: &str) -> u64 {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.ends_with(suffix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Remember a failure by name (bounded: the first [`MAX_NAMED_FAILURES`]
    /// in path order are kept).
    pub fn note_failure(&self, path: &str, stage: &str, reason: &str, message: &str) {
        let mut set = match self.failures.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if set.len() >= MAX_NAMED_FAILURES && set.last().is_some_and(|l| path >= l.0.as_str()) {
            return;
        }
        set.insert((
            path.to_string(),
            stage.to_string(),
            reason.to_string(),
            message.to_string(),
        ));
        while set.len() > MAX_NAMED_FAILURES {
            set.pop_last();
        }
    }

    /// The failures kept by [`Metrics::note_failure`], in path order.
    pub fn failures(&self) -> Vec<Failure> {
        let set = match self.failures.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.iter().cloned().collect()
    }

    /// All counters and their values.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_failures_are_the_first_in_path_order_whatever_the_arrival() {
        let a = Metrics::default();
        let b = Metrics::default();
        let paths: Vec<String> = (0..40).map(|i| format!("f{i:02}.wav")).collect();
        for p in &paths {
            a.note_failure(p, "decode", "corrupt", "bad");
        }
        for p in paths.iter().rev() {
            b.note_failure(p, "decode", "corrupt", "bad");
        }
        let fa = a.failures();
        assert_eq!(fa, b.failures());
        assert_eq!(fa.len(), MAX_NAMED_FAILURES);
        assert_eq!(fa[0].0, "f00.wav");
        assert_eq!(fa[9].0, "f09.wav");
    }
}
