//! Cross-validation folds as shards (Slurm array tasks): `sermo run TRAIN --shard
//! I/N` trains the folds k with k mod N = I of a `cv` train sink on the whole
//! table; `sermo commit OUT --shards N` joins the folds into the run's
//! `metrics.json` and `confusion.png`, as a single-machine run writes them.
//!
//! Contract:
//! - Every CV run writes `OUT/cv.json` ([`CvPlan`]): the fold count, the test
//!   groups of each fold, the labels and the hash of the sink's settings and
//!   inputs. A sharded run refuses an `OUT` whose `cv.json` has another hash (folds
//!   of different settings never mix); identical plans from parallel tasks are
//!   written atomically and agree.
//! - A fold is complete when `OUT/fold-K/metrics.json` exists: the train sink
//!   writes it last, after the model, config, history and plots. A rerun keeps a
//!   complete fold of the same rows, settings and seed (`train/reuse.rs`,
//!   `completed`) and removes the metrics of one it trains again first.
//! - [`commit`] needs every fold `0..K`; it fails naming the missing folds and the
//!   shard indices to resubmit (`--array=`), and checks that every fold tested the
//!   groups and labels of the plan.
//! - Pure file logic: no training here (the train sink in `ops/train.rs` trains).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Shard;
use crate::shards::ranges;
use crate::train::metrics::{Confusion, CvReport, Report};
use crate::train::plots;

/// File name of the CV plan in a train sink's `out`.
pub const CV_FILE: &str = "cv.json";
/// File name of a fold's (and the joined run's) metrics.
pub const METRICS_FILE: &str = "metrics.json";
/// Written last by the final model of a CV run (`cv.final`): its epochs and
/// groups; the model itself is `OUT/config.json` + `OUT/model.mpk`.
pub const FINAL_FILE: &str = "final.json";

/// `cv.json`: what every fold of one CV run shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvPlan {
    /// Model kind (`attention_fcn`, ...), for titles.
    pub model: String,
    /// Group column the folds split by.
    pub by: String,
    /// Test groups of each fold, in fold order (K = its length).
    pub tests: Vec<Vec<String>>,
    /// Class labels, in index order.
    pub labels: Vec<String>,
    /// Hash of the train sink's settings, seed and inputs (the pipeline lineage).
    pub config_hash: String,
    /// `cv.final`: one more model on every group, at the run's top level, as
    /// job K (trained by shard K mod N); complete when `OUT/final.json` exists.
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub final_model: bool,
}

impl CvPlan {
    /// Number of folds K.
    pub fn folds(&self) -> usize {
        self.tests.len()
    }
}

/// Whether shard `shard` trains fold `k` (every fold without a shard).
pub fn owns_fold(shard: Option<Shard>, k: usize) -> bool {
    shard.is_none_or(|s| k % s.count as usize == s.index as usize)
}

/// The shard index that trains fold `k` among `count` shards.
pub fn shard_of_fold(k: usize, count: u32) -> u32 {
    (k % count.max(1) as usize) as u32
}

/// `OUT/fold-K`: where fold k's model and metrics go.
pub fn fold_dir(out: &Path, k: usize) -> PathBuf {
    out.join(format!("fold-{k}"))
}

/// Read `OUT/cv.json` (`Ok(None)` when absent).
pub fn read_plan(out: &Path) -> Result<Option<CvPlan>, String> {
    let path = out.join(CV_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: damaged CV plan ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Write `OUT/cv.json` before any fold trains. A sharded run (`sharded`) refuses a
/// plan of other settings already in `out`, and removes the joined
/// `metrics.json`/`confusion.png` of an earlier run (the commit rewrites them).
pub fn start(out: &Path, plan: &CvPlan, sharded: bool) -> Result<(), String> {
    if sharded {
        if let Some(old) = read_plan(out)?
            && (old.config_hash != plan.config_hash || old.tests != plan.tests)
        {
            return Err(format!(
                "{} holds CV folds of other settings (plan hash {}, this run {}): remove the folder or set another `out`, so that folds of different runs never mix",
                out.display(),
                old.config_hash,
                plan.config_hash
            ));
        }
        for f in [METRICS_FILE, plots::CONFUSION_PNG] {
            match std::fs::remove_file(out.join(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", out.join(f).display())),
            }
        }
    }
    let body = serde_json::to_string_pretty(plan).map_err(|e| e.to_string())? + "\n";
    write_atomic(&out.join(CV_FILE), body.as_bytes())
}

/// [`crate::shards::write_file_atomic`], its error naming the file.
fn write_atomic(path: &Path, body: &[u8]) -> Result<(), String> {
    crate::shards::write_file_atomic(path, body)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Join fold reports: `OUT/metrics.json` (every fold, mean ± std, pooled) and
/// `OUT/confusion.png` of the pooled confusion matrix.
pub fn finish(out: &Path, plan: &CvPlan, folds: Vec<Report>) -> Result<CvReport, String> {
    let cvr = CvReport::from_folds(folds);
    let path = out.join(METRICS_FILE);
    let body = serde_json::to_string_pretty(&cvr).map_err(|e| e.to_string())? + "\n";
    write_atomic(&path, body.as_bytes())?;
    let pooled = cvr
        .pooled_confusion()
        .unwrap_or_else(|| Confusion::new(plan.labels.clone()));
    plots::confusion(
        &pooled.report(),
        &format!("{} {}-fold CV (pooled)", plan.model, plan.folds()),
        &out.join(plots::CONFUSION_PNG),
    )?;
    Ok(cvr)
}

/// Which folds of a CV run are complete.
#[derive(Debug, Clone, PartialEq)]
pub struct CvStatus {
    pub folds: usize,
    pub shards: u32,
    pub complete: Vec<usize>,
    pub missing: Vec<usize>,
    /// Whether the joined `metrics.json` is there.
    pub committed: bool,
    /// `cv.final`: whether the final model is still to train (`None`: the run
    /// has none).
    pub final_missing: Option<bool>,
}

impl CvStatus {
    /// Shard indices that train the missing folds (the `--array=` list).
    pub fn resubmit(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .missing
            .iter()
            .map(|&k| shard_of_fold(k, self.shards))
            .collect();
        if self.final_missing == Some(true) {
            v.push(shard_of_fold(self.folds, self.shards));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn render(&self) -> String {
        let list = |v: &[usize]| ranges(&v.iter().map(|&k| k as u32).collect::<Vec<_>>());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} of {} CV folds complete{}",
            self.complete.len(),
            self.folds,
            if self.committed { " (committed)" } else { "" }
        );
        if !self.complete.is_empty() {
            let _ = writeln!(s, "complete folds: {}", list(&self.complete));
        }
        match self.final_missing {
            Some(true) => {
                let _ = writeln!(
                    s,
                    "final model: missing (job {}, shard {})",
                    self.folds,
                    shard_of_fold(self.folds, self.shards)
                );
            }
            Some(false) => {
                let _ = writeln!(s, "final model: done");
            }
            None => {}
        }
        if self.missing.is_empty() && self.final_missing != Some(true) {
            if !self.committed {
                let _ = writeln!(
                    s,
                    "all folds done: run `sermo commit OUT --shards {}`",
                    self.shards
                );
            }
        } else {
            if !self.missing.is_empty() {
                let _ = writeln!(s, "missing folds: {}", list(&self.missing));
            }
            let _ = writeln!(s, "resubmit: --array={}", ranges(&self.resubmit()));
        }
        s
    }
}

/// Whether `out` holds a CV training run (a `cv.json`).
pub fn is_cv_run(out: &Path) -> bool {
    out.join(CV_FILE).is_file()
}

fn plan_of(out: &Path) -> Result<CvPlan, String> {
    read_plan(out)?
        .ok_or_else(|| format!("{} has no {CV_FILE}: not a CV training run", out.display()))
}

/// Status of the folds of the CV run in `out`, trained as `shards` shards.
pub fn status(out: &Path, shards: u32) -> Result<CvStatus, String> {
    let plan = plan_of(out)?;
    let (complete, missing) =
        (0..plan.folds()).partition(|&k| fold_dir(out, k).join(METRICS_FILE).is_file());
    Ok(CvStatus {
        folds: plan.folds(),
        shards: shards.max(1),
        complete,
        missing,
        committed: out.join(METRICS_FILE).is_file(),
        final_missing: plan.final_model.then(|| !out.join(FINAL_FILE).is_file()),
    })
}

/// Check that every fold of the CV run in `out` is complete and consistent, then
/// write the joined metrics and chart ([`finish`]).
pub fn commit(out: &Path, shards: u32) -> Result<CvReport, String> {
    let plan = plan_of(out)?;
    let st = status(out, shards)?;
    if !st.missing.is_empty() {
        let list: Vec<u32> = st.missing.iter().map(|&k| k as u32).collect();
        return Err(format!(
            "missing CV folds {} of {} (no fold-K/{METRICS_FILE}); resubmit them with --array={}",
            ranges(&list),
            plan.folds(),
            ranges(&st.resubmit())
        ));
    }
    if st.final_missing == Some(true) {
        return Err(format!(
            "the final model (cv.final, job {}) is missing (no {FINAL_FILE}); resubmit it with --array={}",
            plan.folds(),
            shard_of_fold(plan.folds(), shards)
        ));
    }
    let mut folds = Vec::with_capacity(plan.folds());
    for k in 0..plan.folds() {
        folds.push(read_fold_report(
            &fold_dir(out, k),
            &format!("fold {k}"),
            &plan.labels,
        )?);
    }
    finish(out, &plan, folds)
}

/// A fold's test metrics (`dir/metrics.json`; `what` names the fold in errors),
/// refused when they were scored on other `labels` than the run's (a fold of
/// another run).
pub fn read_fold_report(dir: &Path, what: &str, labels: &[String]) -> Result<Report, String> {
    let path = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let r: Report = serde_json::from_str(&text)
        .map_err(|e| format!("{}: damaged fold metrics ({e})", path.display()))?;
    if r.labels != labels {
        return Err(format!(
            "{}: {what} has labels {:?} but the plan has {:?} (a fold of another run?)",
            path.display(),
            r.labels,
            labels
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(hash: &str) -> CvPlan {
        CvPlan {
            model: "mlp".into(),
            by: "speaker".into(),
            tests: vec![vec!["a".into()], vec!["b".into()], vec!["c".into()]],
            labels: vec!["x".into(), "y".into()],
            config_hash: hash.into(),
            final_model: false,
        }
    }

    fn fold_metrics(out: &Path, k: usize, labels: &[&str]) {
        let mut c = Confusion::new(labels.iter().map(|s| s.to_string()).collect());
        c.add(0, 0);
        c.add(1, k % 2);
        let dir = fold_dir(out, k);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(METRICS_FILE),
            serde_json::to_string(&c.report()).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn folds_are_dealt_round_robin() {
        let s = Shard::new(1, 3).unwrap();
        let mine: Vec<usize> = (0..10).filter(|&k| owns_fold(Some(s), k)).collect();
        assert_eq!(mine, vec![1, 4, 7]);
        assert!((0..10).all(|k| owns_fold(None, k)));
        // Every fold has exactly one shard.
        for k in 0..10 {
            let owners = (0..3)
                .filter(|&i| owns_fold(Some(Shard::new(i, 3).unwrap()), k))
                .count();
            assert_eq!(owners, 1);
            assert!(owns_fold(
                Some(Shard::new(shard_of_fold(k, 3), 3).unwrap()),
                k
            ));
        }
    }

    #[test]
    fn a_sharded_run_refuses_folds_of_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        start(dir.path(), &plan("h1"), true).unwrap();
        // The same plan again (another array task): fine.
        start(dir.path(), &plan("h1"), true).unwrap();
        let e = start(dir.path(), &plan("h2"), true).unwrap_err();
        assert!(
            e.contains("other settings") && e.contains("h1") && e.contains("h2"),
            "{e}"
        );
        // A whole (unsharded) run rewrites everything, so it may replace the plan.
        start(dir.path(), &plan("h2"), false).unwrap();
        assert_eq!(read_plan(dir.path()).unwrap(), Some(plan("h2")));
    }

    #[test]
    fn commit_names_missing_folds_and_their_shards_then_joins() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        start(out, &plan("h"), true).unwrap();
        fold_metrics(out, 0, &["x", "y"]);
        let st = status(out, 2).unwrap();
        assert_eq!(
            (st.complete.clone(), st.missing.clone()),
            (vec![0], vec![1, 2])
        );
        assert_eq!(st.resubmit(), vec![0, 1]);
        assert!(
            st.render().contains("resubmit: --array=0-1"),
            "{}",
            st.render()
        );
        let e = commit(out, 2).unwrap_err();
        assert!(
            e.contains("missing CV folds 1-2 of 3") && e.contains("--array=0-1"),
            "{e}"
        );
        assert!(!out.join(METRICS_FILE).exists());

        fold_metrics(out, 1, &["x", "y"]);
        fold_metrics(out, 2, &["x", "z"]);
        let e = commit(out, 2).unwrap_err();
        assert!(e.contains("fold 2 has labels"), "{e}");

        fold_metrics(out, 2, &["x", "y"]);
        let cvr = commit(out, 2).unwrap();
        assert_eq!(cvr.folds.len(), 3);
        // Fold 1 right on both rows, folds 0 and 2 on one of two.
        assert!((cvr.mean.accuracy - (0.5 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((cvr.pooled.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let back: CvReport =
            serde_json::from_str(&std::fs::read_to_string(out.join(METRICS_FILE)).unwrap())
                .unwrap();
        assert_eq!(back, cvr);
        assert!(out.join(plots::CONFUSION_PNG).is_file());
        assert!(status(out, 2).unwrap().committed);
        // A later sharded run of the same plan removes the joined files again.
        start(out, &plan("h"), true).unwrap();
        assert!(!out.join(METRICS_FILE).exists());
    }

    #[test]
    fn not_a_cv_run() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_cv_run(dir.path()));
        assert!(
            commit(dir.path(), 2)
                .unwrap_err()
                .contains("not a CV training run")
        );
    }
}
