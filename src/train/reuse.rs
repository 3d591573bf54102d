//! `reuse` of the `train` sink: ensemble members of finished runs stand in for
//! training. Training on the CPU is deterministic for a seed (same rows, same
//! settings → the same weights to the bit), so a member that a finished run
//! already trained need not be trained again; an ensemble of 4 seeds can grow
//! from two runs of 2.
//!
//! A fold of a finished run (`RUN/fold-K`, or `RUN` for a `split`) offers its
//! members when its `config.json` says it was trained on the same rows (data hash
//! of every part), labels, feature columns and settings, standardizer and model
//! config, with the same training settings apart from `seed` and `ensemble`.
//! Member j of such a fold has seed `seed + j`. Pure file logic: the train sink
//! (`ops/train.rs`) loads the weights and scores the test rows.
//!
//! The same check resumes a run: a fold of the run's own `out` that is complete
//! (its `metrics.json` exists) and was trained on the same rows and settings *with
//! the same seed and ensemble* is kept as it is ([`completed`]), so a CV run that
//! was stopped or crashed retrains only its missing folds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cv_shards::{METRICS_FILE, read_fold_report};
use super::history::{self, HISTORY_FILE};
use super::inference::{CONFIG_FILE, ModelArtifact, member_file, read_artifact};
use super::metrics::Report;
use super::training::Epoch;

/// A finished member that can stand in for training.
#[derive(Debug, Clone)]
pub struct Member {
    pub seed: u64,
    /// Its weights file (`.../model-1.mpk`).
    pub weights: PathBuf,
    pub history: Vec<Epoch>,
    pub best_epoch: usize,
}

/// Why the finished fold `src` cannot stand in for `mine` (`None`: it can).
/// `mine` is this fold's artifact as it will be written (its `training.seed` is
/// the first member's seed; `ensemble`, kept epochs and sources do not count).
pub fn mismatch(src: &ModelArtifact, mine: &ModelArtifact) -> Option<String> {
    let neutral = |a: &ModelArtifact| {
        let mut t = a.training.clone();
        t.seed = 0;
        t.ensemble = 1;
        serde_json::to_value(t).unwrap_or_default()
    };
    let (a, b) = (neutral(src), neutral(mine));
    if a != b {
        let keys: Vec<String> = match (a.as_object(), b.as_object()) {
            (Some(x), Some(y)) => x
                .keys()
                .chain(y.keys())
                .filter(|k| x.get(*k) != y.get(*k))
                .map(|k| format!("`{k}` {} vs {}", show(x.get(k)), show(y.get(k))))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            _ => vec![],
        };
        return Some(format!("training settings differ: {}", keys.join(", ")));
    }
    let checks: [(&str, bool); 8] = [
        ("model", src.model == mine.model),
        ("labels", src.labels == mine.labels),
        ("feature columns", src.features == mine.features),
        ("rows (data hash)", src.data_hash == mine.data_hash),
        ("standardizer", src.standardizer == mine.standardizer),
        ("normalize", src.normalize == mine.normalize),
        ("max_frames", src.max_frames == mine.max_frames),
        (
            "feature settings",
            src.feature_settings.is_none()
                || mine.feature_settings.is_none()
                || src.feature_settings == mine.feature_settings,
        ),
    ];
    checks
        .iter()
        .find(|(_, same)| !same)
        .map(|(what, _)| format!("{what} differ"))
}

/// A complete fold of this run's own `out`, kept instead of trained again.
#[derive(Debug, Clone)]
pub struct Completed {
    /// Its test metrics (`metrics.json`).
    pub report: Report,
    /// The kept epoch of each member.
    pub kept_epochs: Vec<usize>,
}

/// Whether `dir` (a fold of this run's `out`) already holds this fold, complete:
/// `None` when it has no `metrics.json` (never finished: train it);
/// `Some(Err(why))` when it finished under other rows or settings, another seed or
/// ensemble size, another sermo version, or a file is missing or damaged (train
/// it again, overwriting); `Some(Ok(..))` when it can be kept as it is. Training
/// on the CPU is deterministic, so keeping it gives what training again would.
pub fn completed(dir: &Path, mine: &ModelArtifact) -> Option<Result<Completed, String>> {
    let metrics = dir.join(METRICS_FILE);
    if !metrics.is_file() {
        return None;
    }
    Some(completed_fold(dir, mine).map_err(|why| format!("{}: {why}", dir.display())))
}

fn completed_fold(dir: &Path, mine: &ModelArtifact) -> Result<Completed, String> {
    let src = read_artifact(dir)?;
    if let Some(why) = mismatch(&src, mine) {
        return Err(why);
    }
    let members = mine.training.ensemble.max(1);
    if src.training.seed != mine.training.seed || src.training.ensemble.max(1) != members {
        return Err(format!(
            "trained with seed {} and {} member(s), this run has seed {} and {members}",
            src.training.seed,
            src.training.ensemble.max(1),
            mine.training.seed
        ));
    }
    if src.sermo_version != mine.sermo_version {
        return Err(format!(
            "trained by sermo {}, this is {}",
            src.sermo_version, mine.sermo_version
        ));
    }
    if src.split != mine.split {
        return Err(format!(
            "split `{}` differs from this fold's `{}`",
            src.split, mine.split
        ));
    }
    for j in 0..members {
        let w = dir.join(format!("{}.mpk", member_file(j)));
        if !w.is_file() {
            return Err(format!("member {j} has no weights ({})", w.display()));
        }
    }
    let kept_epochs = if members > 1 {
        src.member_best_epochs.clone()
    } else {
        vec![src.best_epoch]
    };
    if kept_epochs.len() != members {
        return Err(format!(
            "{CONFIG_FILE} lists {} kept epochs for {members} members",
            kept_epochs.len()
        ));
    }
    let report = read_fold_report(dir, "the fold", &mine.labels)?;
    Ok(Completed {
        report,
        kept_epochs,
    })
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "absent".into(), |v| v.to_string())
}

/// The members of the finished fold `dir` with the seeds in `seeds`, when it can
/// stand in for `mine`; otherwise the reason, naming `dir`.
pub fn offered(dir: &Path, mine: &ModelArtifact, seeds: &[u64]) -> Result<Vec<Member>, String> {
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        return Err(format!("{}: no finished fold", dir.display()));
    }
    let src = read_artifact(dir)?;
    if let Some(why) = mismatch(&src, mine) {
        return Err(format!("{}: {why}", dir.display()));
    }
    let members = src.training.ensemble.max(1);
    let wanted: Vec<usize> = (0..members)
        .filter(|&j| seeds.contains(&src.training.seed.wrapping_add(j as u64)))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let hist = history::read(&dir.join(HISTORY_FILE))?;
    let mut out = Vec::new();
    for j in wanted {
        let weights = dir.join(format!("{}.mpk", member_file(j)));
        if !weights.is_file() {
            return Err(format!("{}: member {j} has no weights", weights.display()));
        }
        let best_epoch = if members > 1 {
            src.member_best_epochs.get(j).copied()
        } else {
            Some(src.best_epoch)
        }
        .ok_or_else(|| format!("{}: no kept epoch for member {j}", cfg_path.display()))?;
        out.push(Member {
            seed: src.training.seed.wrapping_add(j as u64),
            weights,
            history: hist
                .iter()
                .filter(|(m, _)| *m == j)
                .map(|(_, e)| e.clone())
                .collect(),
            best_epoch,
        });
    }
    Ok(out)
}

/// Members with `seeds` offered by the folds `dirs` (the first offer of a seed
/// wins), and one line per fold that offers none, saying why.
pub fn find(
    dirs: &[PathBuf],
    mine: &ModelArtifact,
    seeds: &[u64],
) -> (BTreeMap<u64, Member>, Vec<String>) {
    let mut found = BTreeMap::new();
    let mut notes = Vec::new();
    for d in dirs {
        match offered(d, mine, seeds) {
            Ok(ms) if ms.is_empty() => notes.push(format!(
                "{}: matches, but holds none of the seeds {seeds:?}",
                d.display()
            )),
            Ok(ms) => {
                for m in ms {
                    found.entry(m.seed).or_insert(m);
                }
            }
            Err(why) => notes.push(why),
        }
    }
    (found, notes)
}
