//! Train/valid/test splits that keep every group (speaker, session, any column
//! value) in one part only.
//!
//! Contract:
//! - Input is one group key per example row (`&[String]`); output is an
//!   [`Assignment`] giving each row a [`Part`].
//! - [`Split`] with a group column (`by = "speaker"`, `"session"`, ...): the groups
//!   listed in `test` and `valid` go there, every other group is train. Unknown
//!   group values, a group in both lists, an empty test list and an empty train set
//!   are errors.
//! - [`Cv`]: the distinct groups (sorted) are dealt into `folds` folds of near-equal
//!   group counts by a seeded permutation (`cv.seed`, else the sink's training
//!   seed; stable across `rand` versions: the
//!   shuffle uses ChaCha8's fixed output stream directly). Each fold tests its own
//!   groups, validates on `valid` groups taken from the following folds and trains
//!   on the rest; every group is tested exactly once. `folds` = number of groups is
//!   leave-one-group-out, whose folds are in sorted group order whatever the seed.
//! - Every group-split constructor calls [`Assignment::check_disjoint`] and fails
//!   if a group value lands in two parts.
//! - `by = "random"` splits rows (not groups) by `fraction`, seeded. It is allowed,
//!   but the assignment reports [`Assignment::leakage`] = true: the same speaker
//!   can be in train and test, which inflates scores.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The `by` value that selects a row-level random split.
pub const RANDOM: &str = "random";

/// Seed used by [`Split::assign`] (only random splits use a seed).
pub const DEFAULT_SEED: u64 = 0;

/// Groups listed in error messages before the list is cut short.
const MAX_LISTED: usize = 20;

/// Which part of a split a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Train,
    Valid,
    Test,
}

impl Part {
    /// All parts, in the order train, valid, test.
    pub const ALL: [Part; 3] = [Part::Train, Part::Valid, Part::Test];

    /// `"train"`, `"valid"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Valid => "valid",
            Part::Test => "test",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a split could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// The table has no rows.
    #[error("cannot split an empty table (no rows)")]
    NoRows,

    /// Values listed in `test` or `valid` do not occur in the `by` column.
    #[error(
        "{part} {} {} {} not in the table ({}: {})",
        if .values.len() == 1 { .by.clone() } else { plural(.by) },
        quoted_list(.values),
        if .values.len() == 1 { "is" } else { "are" },
        plural(.by),
        .available
    )]
    UnknownGroup {
        part: Part,
        by: String,
        values: Vec<String>,
        /// The group values that do occur (cut short when long).
        available: String,
    },

    /// A group value is listed in both `test` and `valid`.
    #[error("{by} `{value}` is listed in both test and valid")]
    Overlap { by: String, value: String },

    /// A group value ended up in two parts (found by [`Assignment::check_disjoint`]).
    #[error("{by} `{value}` appears in both {first} and {second}: the split leaks {}", plural(.by))]
    Leak {
        by: String,
        value: String,
        first: Part,
        second: Part,
    },

    /// A part that must not be empty is.
    #[error("the {part} set is empty: {reason}")]
    Empty { part: Part, reason: String },

    /// Cross-validation with fewer than 2 folds.
    #[error("cv needs at least 2 folds (got {folds})")]
    TooFewFolds { folds: usize },

    /// Cross-validation with more folds than groups.
    #[error("cv folds = {folds} but there are only {groups} {}", plural(.by))]
    TooManyFolds {
        by: String,
        folds: usize,
        groups: usize,
    },

    /// Cross-validation's `valid` leaves no group to train on.
    #[error(
        "cv valid = {valid} leaves no train {by} in some fold: {groups} {} in all, up to {largest_fold} per test fold; use valid <= {}",
        plural(.by),
        max_valid(*.groups, *.largest_fold)
    )]
    ValidTooLarge {
        by: String,
        valid: usize,
        groups: usize,
        largest_fold: usize,
    },

    /// Cross-validation over random rows is not supported.
    #[error("cv needs a group column in `by` (e.g. \"speaker\"), not \"random\"")]
    CvRandom,

    /// `by = "random"` without `fraction`.
    #[error("by = \"random\" needs `fraction = {{ test = ..., valid = ... }}`")]
    MissingFraction,

    /// `fraction` given for a group split.
    #[error(
        "`fraction` only applies to by = \"random\"; by = \"{by}\" uses the `test` and `valid` lists"
    )]
    FractionWithGroups { by: String },

    /// `test`/`valid` lists given for a random split.
    #[error("by = \"random\" splits rows by `fraction`; remove the `test`/`valid` lists")]
    ListsWithRandom,

    /// A fraction is out of range.
    #[error("bad fraction: {0}")]
    BadFraction(String),
}

/// The largest `valid` that leaves a train group in every fold.
fn max_valid(groups: usize, largest_fold: usize) -> usize {
    groups.saturating_sub(largest_fold + 1)
}

/// `speaker` → `speakers`, `class` → `classes`.
fn plural(word: &str) -> String {
    if word.ends_with('s') || word.ends_with('x') || word.ends_with("sh") || word.ends_with("ch") {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}

fn quoted_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a, b, c` or `a, b, ... (N in all)` when longer than [`MAX_LISTED`].
fn short_list<S: AsRef<str>>(values: &[S]) -> String {
    let shown: Vec<&str> = values.iter().take(MAX_LISTED).map(|s| s.as_ref()).collect();
    let mut out = shown.join(", ");
    if values.len() > MAX_LISTED {
        out.push_str(&format!(", ... ({} in all)", values.len()));
    }
    out
}

/// Test and valid fractions of a random split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fraction {
    /// Share of rows in test, in (0, 1).
    pub test: f64,
    /// Share of rows in valid, in [0, 1); default 0.
    #[serde(default)]
    pub valid: f64,
}

/// A fixed split: named groups go to test and valid, the rest to train.
///
/// ```toml
/// [sinks.model.split]
/// by = "speaker"
/// test = ["03", "08"]
/// valid = ["09"]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Group column (`"speaker"`, `"session"`, any column), or `"random"`.
    pub by: String,
    /// Group values held out for test.
    #[serde(default)]
    pub test: Vec<String>,
    /// Group values held out for validation (may be empty).
    #[serde(default)]
    pub valid: Vec<String>,
    /// Row fractions; only for `by = "random"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

impl Split {
    /// A group split on column `by`.
    pub fn by_groups(by: &str, test: &[&str], valid: &[&str]) -> Self {
        Split {
            by: by.to_string(),
            test: test.iter().map(|s| s.to_string()).collect(),
            valid: valid.iter().map(|s| s.to_string()).collect(),
            fraction: None,
        }
    }

    /// A row-level random split (speaker leakage; see [`Assignment::leakage`]).
    pub fn random(test: f64, valid: f64) -> Self {
        Split {
            by: RANDOM.to_string(),
            test: Vec::new(),
            valid: Vec::new(),
            fraction: Some(Fraction { test, valid }),
        }
    }

    /// The split with its `test` / `valid` names matched to `groups` where the
    /// rows come from several corpora and the groups are `corpus/id`
    /// ([`crate::train::data::qualify_groups`]): a name that is a group stays;
    /// a bare `id` found in exactly one corpus becomes `corpus/id`; one found in
    /// several is an error asking for the corpus. Other names are left for
    /// [`Split::assign`] to report.
    pub fn qualified(&self, groups: &[String]) -> Result<Split, String> {
        let known: std::collections::BTreeSet<&str> = groups.iter().map(String::as_str).collect();
        let part_name = |part: &str, names: &[String]| -> Result<Vec<String>, String> {
            names
                .iter()
                .map(|n| {
                    if known.contains(n.as_str()) {
                        return Ok(n.clone());
                    }
                    let suffix = format!("/{n}");
                    let matches: Vec<&str> = known
                        .iter()
                        .copied()
                        .filter(|g| {
                            g.ends_with(&suffix) && !g[..g.len() - suffix.len()].contains('/')
                        })
                        .collect();
                    match matches.as_slice() {
                        [one] => Ok(one.to_string()),
                        [] => Ok(n.clone()),
                        many => Err(format!(
                            "{part} {} `{n}` is in more than one corpus ({}): name it as corpus/{}",
                            self.by,
                            many.join(", "),
                            self.by
                        )),
                    }
                })
                .collect()
        };
        Ok(Split {
            test: part_name("test", &self.test)?,
            valid: part_name("valid", &self.valid)?,
            ..self.clone()
        })
    }

    /// Assign each row (given by its group key) to a part; random splits use
    /// [`DEFAULT_SEED`].
    pub fn assign(&self, groups: &[String]) -> Result<Assignment, SplitError> {
        self.assign_seeded(groups, DEFAULT_SEED)
    }

    /// [`Split::assign`] with an explicit seed (only random splits use it; pass the
    /// pipeline seed).
    pub fn assign_seeded(&self, groups: &[String], seed: u64) -> Result<Assignment, SplitError> {
        if groups.is_empty() {
            return Err(SplitError::NoRows);
        }
        if self.by == RANDOM {
            if !self.test.is_empty() || !self.valid.is_empty() {
                return Err(SplitError::ListsWithRandom);
            }
            let fraction = self.fraction.ok_or(SplitError::MissingFraction)?;
            return random_assignment(groups, fraction, seed);
        }
        if self.fraction.is_some() {
            return Err(SplitError::FractionWithGroups {
                by: self.by.clone(),
            });
        }
        let index = GroupIndex::new(groups);
        let test = index.lookup(&self.by, Part::Test, &self.test)?;
        let valid = index.lookup(&self.by, Part::Valid, &self.valid)?;
        if let Some(&g) = test.intersection(&valid).next() {
            return Err(SplitError::Overlap {
                by: self.by.clone(),
                value: index.names[g].clone(),
            });
        }
        if test.is_empty() {
            return Err(SplitError::Empty {
                part: Part::Test,
                reason: format!("list at least one {} in `test`", self.by),
            });
        }
        let mut group_part = vec![Part::Train; index.names.len()];
        for &g in &test {
            group_part[g] = Part::Test;
        }
        for &g in &valid {
            group_part[g] = Part::Valid;
        }
        if !group_part.contains(&Part::Train) {
            return Err(SplitError::Empty {
                part: Part::Train,
                reason: format!("every {} is in test or valid", self.by),
            });
        }
        Assignment::from_groups(&self.by, &index, &group_part)
    }
}

/// Group-wise cross-validation.
///
/// ```toml
/// [sinks.model.cv]
/// by = "speaker"
/// folds = 10      # = number of speakers: leave-one-speaker-out
/// valid = 1       # speakers held out of each fold's train set (default 1)
/// seed = 7        # deals the speakers into folds (default: the sink's `seed`)
/// final = true    # then one model on every speaker, at the run's top level
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cv {
    /// Group column (`"speaker"`, `"session"`, any column).
    pub by: String,
    /// Number of folds K, 2 <= K <= number of groups.
    pub folds: usize,
    /// Groups held out of each fold's train set for validation (default 1; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<usize>,
    /// Seed that deals the groups into folds; unset, the caller's seed (the
    /// sink's training `seed`). Setting it lets runs of different training seeds
    /// share one partition (and `reuse` each other's members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `final = true`: after the folds, one more model with the same recipe on
    /// every group, saved at the run's top level (the folds estimate its
    /// quality; it is the model to use).
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub final_model: bool,
}

impl Cv {
    /// Number of validation groups per fold (`valid`, default 1).
    pub fn valid_groups(&self) -> usize {
        self.valid.unwrap_or(1)
    }

    /// The K fold assignments of rows given by their group keys.
    ///
    /// Groups are permuted with the `seed` field, else with `seed`, and dealt into
    /// K folds of near-equal group counts (the first `n % K` folds get one more);
    /// each fold's groups are sorted and the folds are ordered by their first
    /// group. Fold k tests its groups, validates on the first `valid` groups of
    /// folds k+1, k+2, ... (wrapping) and trains on the rest.
    pub fn folds(&self, groups: &[String], seed: u64) -> Result<Vec<Assignment>, SplitError> {
        let seed = self.seed.unwrap_or(seed);
        if self.by == RANDOM {
            return Err(SplitError::CvRandom);
        }
        if groups.is_empty() {
            return Err(SplitError::NoRows);
        }
        let k = self.folds;
        if k < 2 {
            return Err(SplitError::TooFewFolds { folds: k });
        }
        let index = GroupIndex::new(groups);
        let n = index.names.len();
        if k > n {
            return Err(SplitError::TooManyFolds {
                by: self.by.clone(),
                folds: k,
                groups: n,
            });
        }
        let valid = self.valid_groups();
        let largest_fold = n.div_ceil(k);
        if valid + largest_fold >= n {
            return Err(SplitError::ValidTooLarge {
                by: self.by.clone(),
                valid,
                groups: n,
                largest_fold,
            });
        }

        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, seed);
        let (base, extra) = (n / k, n % k);
        let mut chunks: Vec<Vec<usize>> = Vec::with_capacity(k);
        let mut start = 0;
        for f in 0..k {
            let len = base + usize::from(f < extra);
            let mut chunk = order[start..start + len].to_vec();
            chunk.sort_unstable();
            chunks.push(chunk);
            start += len;
        }
        chunks.sort_unstable_by_key(|c| c[0]);

        let mut out = Vec::with_capacity(k);
        for f in 0..k {
            let mut group_part = vec![Part::Train; n];
            for &g in &chunks[f] {
                group_part[g] = Part::Test;
            }
            let held = (1..k)
                .flat_map(|step| chunks[(f + step) % k].iter().copied())
                .take(valid);
            for g in held {
                group_part[g] = Part::Valid;
            }
            out.push(Assignment::from_groups(&self.by, &index, &group_part)?);
        }
        Ok(out)
    }
}

/// Fisher–Yates shuffle driven by ChaCha8's raw `next_u64` stream (multiply-shift
/// range reduction), so the permutation for a seed never changes with `rand`.
fn shuffle(items: &mut [usize], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..items.len()).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        items.swap(i, j);
    }
}

fn random_assignment(
    groups: &[String],
    fraction: Fraction,
    seed: u64,
) -> Result<Assignment, SplitError> {
    let Fraction { test, valid } = fraction;
    if !(test.is_finite() && test > 0.0 && test < 1.0) {
        return Err(SplitError::BadFraction(format!(
            "test = {test} must be in (0, 1)"
        )));
    }
    if !(valid.is_finite() && (0.0..1.0).contains(&valid)) {
        return Err(SplitError::BadFraction(format!(
            "valid = {valid} must be in [0, 1)"
        )));
    }
    if test + valid >= 1.0 {
        return Err(SplitError::BadFraction(format!(
            "test + valid = {} leaves nothing to train on; it must be < 1",
            test + valid
        )));
    }
    let n = groups.len();
    let n_test = (test * n as f64).round() as usize;
    let n_valid = (valid * n as f64).round() as usize;
    if n_test == 0 {
        return Err(SplitError::Empty {
            part: Part::Test,
            reason: format!("test = {test} of {n} rows rounds to 0 rows"),
        });
    }
    if n_test + n_valid >= n {
        return Err(SplitError::Empty {
            part: Part::Train,
            reason: format!("test = {test} and valid = {valid} of {n} rows leave no train rows"),
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed);
    let mut parts = vec![Part::Train; n];
    for &row in &order[..n_test] {
        parts[row] = Part::Test;
    }
    for &row in &order[n_test..n_test + n_valid] {
        parts[row] = Part::Valid;
    }
    let index = GroupIndex::new(groups);
    Ok(Assignment {
        by: RANDOM.to_string(),
        names: index.names,
        row_group: index.row_group,
        parts,
        random: true,
    })
}

/// Distinct group values (sorted) and each row's index into them.
struct GroupIndex {
    names: Arc<[String]>,
    row_group: Arc<[usize]>,
}

impl GroupIndex {
    fn new(groups: &[String]) -> Self {
        let distinct: BTreeSet<&str> = groups.iter().map(String::as_str).collect();
        let position: HashMap<&str, usize> =
            distinct.iter().enumerate().map(|(i, &g)| (g, i)).collect();
        let row_group = groups.iter().map(|g| position[g.as_str()]).collect();
        let names = distinct.into_iter().map(str::to_string).collect();
        GroupIndex { names, row_group }
    }

    /// Indices of the listed values (duplicates collapse); all unknown values in
    /// one error.
    fn lookup(
        &self,
        by: &str,
        part: Part,
        values: &[String],
    ) -> Result<BTreeSet<usize>, SplitError> {
        let mut found = BTreeSet::new();
        let mut unknown = Vec::new();
        for v in values {
            match self.names.binary_search(v) {
                Ok(i) => {
                    found.insert(i);
                }
                Err(_) => {
                    if !unknown.contains(v) {
                        unknown.push(v.clone());
                    }
                }
            }
        }
        if unknown.is_empty() {
            Ok(found)
        } else {
            Err(SplitError::UnknownGroup {
                part,
                by: by.to_string(),
                values: unknown,
                available: short_list(&self.names),
            })
        }
    }
}

/// Each row's part, with the group keys it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    by: String,
    /// Distinct group values, sorted.
    names: Arc<[String]>,
    /// Per row: index into `names`.
    row_group: Arc<[usize]>,
    /// Per row: its part.
    parts: Vec<Part>,
    random: bool,
}

impl Assignment {
    /// Build from a part per group and check it.
    fn from_groups(by: &str, index: &GroupIndex, group_part: &[Part]) -> Result<Self, SplitError> {
        let parts = index.row_group.iter().map(|&g| group_part[g]).collect();
        let a = Assignment {
            by: by.to_string(),
            names: Arc::clone(&index.names),
            row_group: Arc::clone(&index.row_group),
            parts,
            random: false,
        };
        a.check_disjoint()?;
        Ok(a)
    }

    /// Every row trains, none validates or tests: the final model trained
    /// after cross-validation (`cv = { ..., final = true }`).
    pub fn everything_trains(by: &str, groups: &[String]) -> Assignment {
        let index = GroupIndex::new(groups);
        Assignment {
            by: by.to_string(),
            names: index.names,
            row_group: index.row_group,
            parts: vec![Part::Train; groups.len()],
            random: false,
        }
    }

    /// The group column (`"random"` for a random split).
    pub fn by(&self) -> &str {
        &self.by
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// True when there are no rows (never, for a constructed assignment).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Each row's part, in row order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Row indices in `part`, ascending.
    pub fn indices(&self, part: Part) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&i| self.parts[i] == part)
            .collect()
    }

    /// Number of rows in `part`.
    pub fn count(&self, part: Part) -> usize {
        self.parts.iter().filter(|&&p| p == part).count()
    }

    /// Distinct group values of the rows in `part`, sorted.
    pub fn groups(&self, part: Part) -> Vec<String> {
        let mut present = vec![false; self.names.len()];
        for (&g, &p) in self.row_group.iter().zip(&self.parts) {
            if p == part {
                present[g] = true;
            }
        }
        self.names
            .iter()
            .zip(present)
            .filter(|&(_, keep)| keep)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Fails if some group value has rows in two parts, naming the first such
    /// group (in sorted order). Group splits always pass (it is checked when they
    /// are made); a random split usually fails.
    pub fn check_disjoint(&self) -> Result<(), SplitError> {
        let mut seen: Vec<Option<Part>> = vec![None; self.names.len()];
        let mut leak: Option<(usize, Part, Part)> = None;
        for (&g, &p) in self.row_group.iter().zip(&self.parts) {
            match seen[g] {
                None => seen[g] = Some(p),
                Some(q) if q != p => {
                    let (first, second) = if q < p { (q, p) } else { (p, q) };
                    if leak.is_none_or(|(lg, _, _)| g < lg) {
                        leak = Some((g, first, second));
                    }
                }
                Some(_) => {}
            }
        }
        match leak {
            None => Ok(()),
            Some((g, first, second)) => Err(SplitError::Leak {
                by: self.by.clone(),
                value: self.names[g].clone(),
                first,
                second,
            }),
        }
    }

    /// True for a random (row-level) split: groups can be in several parts.
    pub fn leakage(&self) -> bool {
        self.random
    }

    /// One line for logs and reports, e.g. `speaker-independent: test speakers 03,
    /// 08; valid 09` or `random split (speaker leakage): 80 train, 10 valid, 10 test
    /// rows`.
    pub fn describe(&self) -> String {
        if self.random {
            return format!(
                "random split (speaker leakage): {} train, {} valid, {} test rows",
                self.count(Part::Train),
                self.count(Part::Valid),
                self.count(Part::Test)
            );
        }
        let test = self.groups(Part::Test);
        let valid = self.groups(Part::Valid);
        let noun = if test.len() == 1 {
            self.by.clone()
        } else {
            plural(&self.by)
        };
        let valid = if valid.is_empty() {
            "no valid".to_string()
        } else {
            format!("valid {}", short_list(&valid))
        };
        format!(
            "{}-independent: test {noun} {}; {valid}",
            self.by,
            short_list(&test)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMODB: [&str; 10] = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"];

    /// EmoDB-like rows: 10 speakers with uneven utterance counts, interleaved.
    fn emodb_rows() -> Vec<String> {
        let counts = [49, 58, 43, 38, 55, 35, 61, 69, 56, 71];
        let mut rows = Vec::new();
        let mut left = counts;
        while left.iter().any(|&c| c > 0) {
            for (s, c) in left.iter_mut().enumerate() {
                if *c > 0 {
                    rows.push(EMODB[s].to_string());
                    *c -= 1;
                }
            }
        }
        assert_eq!(rows.len(), 535);
        rows
    }

    /// RAVDESS-like rows: 24 actors, 60 clips each.
    fn ravdess_rows() -> Vec<String> {
        (0..24 * 60)
            .map(|i| format!("Actor_{:02}", i % 24 + 1))
            .collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Every row is in exactly one part and no group is in two parts.
    fn assert_sound(a: &Assignment, rows: &[String]) {
        assert_eq!(a.len(), rows.len());
        let mut all: Vec<usize> = Part::ALL.iter().flat_map(|&p| a.indices(p)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..rows.len()).collect::<Vec<_>>());
        a.check_disjoint().expect("disjoint");
        for p in Part::ALL {
            for q in Part::ALL {
                if p < q {
                    let gp = a.groups(p);
                    assert!(a.groups(q).iter().all(|g| !gp.contains(g)), "{p} vs {q}");
                }
            }
            for i in a.indices(p) {
                assert!(a.groups(p).contains(&rows[i]));
            }
        }
    }

    #[test]
    fn loso_emodb() {
        let rows = emodb_rows();
        let cv = Cv {
            by: "speaker".into(),
            folds: 10,
            valid: None,
            seed: None,
            final_model: false,
        };
        let folds = cv.folds(&rows, 42).unwrap();
        assert_eq!(folds.len(), 10);
        let mut tested = Vec::new();
        for (k, a) in folds.iter().enumerate() {
            assert_sound(a, &rows);
            let test = a.groups(Part::Test);
            assert_eq!(test.len(), 1, "fold {k}");
            // Leave-one-speaker-out folds come in sorted speaker order.
            assert_eq!(test[0], EMODB[k]);
            assert_eq!(a.groups(Part::Valid), vec![EMODB[(k + 1) % 10].to_string()]);
            assert_eq!(a.groups(Part::Train).len(), 8);
            assert!(!a.leakage());
            tested.extend(test);
        }
        tested.sort();
        assert_eq!(tested, strings(&EMODB));
        // The seed does not change leave-one-group-out.
        assert_eq!(cv.folds(&rows, 7).unwrap(), folds);
        assert_eq!(
            folds[0].describe(),
            "speaker-independent: test speaker 03; valid 08"
        );
    }

    #[test]
    fn ravdess_four_folds() {
        let rows = ravdess_rows();
        let cv = Cv {
            by: "actor".into(),
            folds: 4,
            valid: Some(2),
            seed: None,
            final_model: false,
        };
        let folds = cv.folds(&rows, 1).unwrap();
        assert_eq!(folds.len(), 4);
        let mut tested = Vec::new();
        for a in &folds {
            assert_sound(a, &rows);
            assert_eq!(a.groups(Part::Test).len(), 6);
            assert_eq!(a.groups(Part::Valid).len(), 2);
            assert_eq!(a.groups(Part::Train).len(), 16);
            assert_eq!(a.count(Part::Test), 6 * 60);
            tested.extend(a.groups(Part::Test));
        }
        tested.sort();
        let mut all: Vec<String> = (1..=24).map(|i| format!("Actor_{i:02}")).collect();
        all.sort();
        assert_eq!(tested, all);
    }

    #[test]
    fn uneven_folds_differ_by_at_most_one() {
        let rows = emodb_rows();
        let cv = Cv {
            by: "speaker".into(),
            folds: 3,
            valid: Some(0),
            seed: None,
            final_model: false,
        };
        let folds = cv.folds(&rows, 5).unwrap();
        let mut sizes: Vec<usize> = folds.iter().map(|a| a.groups(Part::Test).len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![3, 3, 4]);
        for a in &folds {
            assert_sound(a, &rows);
            assert!(a.groups(Part::Valid).is_empty());
            assert!(a.describe().ends_with("; no valid"), "{}", a.describe());
        }
    }

    #[test]
    fn cv_is_deterministic_for_a_seed() {
        let rows = ravdess_rows();
        let cv = Cv {
            by: "actor".into(),
            folds: 4,
            valid: None,
            seed: None,
            final_model: false,
        };
        let a = cv.folds(&rows, 123).unwrap();
        let b = cv.folds(&rows, 123).unwrap();
        assert_eq!(a, b);
        // Different seeds deal the actors differently.
        let tests = |folds: &[Assignment]| -> Vec<Vec<String>> {
            folds.iter().map(|f| f.groups(Part::Test)).collect()
        };
        let differs = (0..5).any(|s| tests(&cv.folds(&rows, s).unwrap()) != tests(&a));
        assert!(differs);
        // Pinned: the folds for a seed must never change (stored results refer to
        // folds by index).
        let pinned = [
            [1, 3, 13, 14, 17, 23],
            [2, 5, 12, 19, 20, 24],
            [4, 7, 8, 10, 16, 21],
            [6, 9, 11, 15, 18, 22],
        ];
        for (fold, actors) in a.iter().zip(pinned) {
            let expected: Vec<String> = actors.iter().map(|i| format!("Actor_{i:02}")).collect();
            assert_eq!(fold.groups(Part::Test), expected);
        }
        // `cv.seed` deals the folds whatever the training seed passed in.
        let fixed = Cv {
            seed: Some(123),
            ..cv.clone()
        };
        for s in [0, 7, 8, 123] {
            assert_eq!(fixed.folds(&rows, s).unwrap(), a, "training seed {s}");
        }
    }

    #[test]
    fn shuffle_is_pinned() {
        // ChaCha8's stream is fixed by rand_chacha; this pins the reduction too.
        let mut v: Vec<usize> = (0..10).collect();
        shuffle(&mut v, 0);
        let mut again: Vec<usize> = (0..10).collect();
        shuffle(&mut again, 0);
        assert_eq!(v, again);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(v, vec![6, 1, 8, 3, 2, 9, 0, 5, 4, 7]);
    }

    #[test]
    fn bare_ids_are_matched_to_their_corpus_when_groups_are_qualified() {
        let groups: Vec<String> = ["emodb/03", "emodb/08", "ravdess/01", "ravdess/03"]
            .map(String::from)
            .to_vec();
        let q = Split::by_groups("speaker", &["01", "emodb/03"], &["08"])
            .qualified(&groups)
            .unwrap();
        assert_eq!(q.test, ["ravdess/01", "emodb/03"]);
        assert_eq!(q.valid, ["emodb/08"]);
        let err = Split::by_groups("speaker", &["03"], &[])
            .qualified(&groups)
            .unwrap_err();
        assert_eq!(
            err,
            "test speaker `03` is in more than one corpus (emodb/03, ravdess/03): name it as corpus/speaker"
        );
        // Unknown names are left for `assign` to report.
        let q = Split::by_groups("speaker", &["99"], &[])
            .qualified(&groups)
            .unwrap();
        assert_eq!(q.test, ["99"]);
        // Unqualified groups (one corpus) are untouched.
        let plain: Vec<String> = ["03", "08"].map(String::from).to_vec();
        let q = Split::by_groups("speaker", &["03"], &[])
            .qualified(&plain)
            .unwrap();
        assert_eq!(q.test, ["03"]);
    }

    #[test]
    fn fixed_split() {
        let rows = emodb_rows();
        let split = Split::by_groups("speaker", &["03", "08"], &["09"]);
        let a = split.assign(&rows).unwrap();
        assert_sound(&a, &rows);
        assert_eq!(a.groups(Part::Test), strings(&["03", "08"]));
        assert_eq!(a.groups(Part::Valid), strings(&["09"]));
        assert_eq!(
            a.groups(Part::Train),
            strings(&["10", "11", "12", "13", "14", "15", "16"])
        );
        assert_eq!(a.count(Part::Test), 49 + 58);
        assert_eq!(a.count(Part::Valid), 43);
        assert!(!a.leakage());
        assert_eq!(
            a.describe(),
            "speaker-independent: test speakers 03, 08; valid 09"
        );
        for i in a.indices(Part::Test) {
            assert!(rows[i] == "03" || rows[i] == "08");
        }
        // Duplicated list entries collapse.
        let dup = Split::by_groups("speaker", &["03", "08", "03"], &["09"]);
        assert_eq!(dup.assign(&rows).unwrap(), a);
    }

    #[test]
    fn fixed_split_errors() {
        let rows = emodb_rows();
        let err = |s: Split| s.assign(&rows).unwrap_err().to_string();
        assert_eq!(
            err(Split::by_groups("speaker", &["99"], &[])),
            "test speaker `99` is not in the table (speakers: 03, 08, 09, 10, 11, 12, 13, 14, 15, 16)"
        );
        assert_eq!(
            err(Split::by_groups("speaker", &["03"], &["98", "99"])),
            "valid speakers `98`, `99` are not in the table (speakers: 03, 08, 09, 10, 11, 12, 13, 14, 15, 16)"
        );
        assert_eq!(
            err(Split::by_groups("speaker", &["03", "08"], &["08"])),
            "speaker `08` is listed in both test and valid"
        );
        assert_eq!(
            err(Split::by_groups("speaker", &[], &["08"])),
            "the test set is empty: list at least one speaker in `test`"
        );
        assert_eq!(
            err(Split::by_groups("speaker", &EMODB[..9], &EMODB[9..])),
            "the train set is empty: every speaker is in test or valid"
        );
        assert_eq!(
            Split::by_groups("speaker", &["03"], &[])
                .assign(&[])
                .unwrap_err(),
            SplitError::NoRows
        );
        let mut with_fraction = Split::by_groups("speaker", &["03"], &[]);
        with_fraction.fraction = Some(Fraction {
            test: 0.2,
            valid: 0.0,
        });
        assert!(err(with_fraction).contains("only applies to by = \"random\""));
        // Long group lists are cut short.
        let many: Vec<String> = (0..30).map(|i| format!("{i:02}")).collect();
        let msg = Split::by_groups("session", &["x"], &[])
            .assign(&many)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("test session `x` is not in the table (sessions: 00, 01,"));
        assert!(msg.ends_with("19, ... (30 in all))"), "{msg}");
    }

    #[test]
    fn cv_errors() {
        let rows = emodb_rows();
        let cv = |folds, valid| Cv {
            by: "speaker".into(),
            folds,
            valid,
            seed: None,
            final_model: false,
        };
        let err = |c: Cv| c.folds(&rows, 0).unwrap_err().to_string();
        assert_eq!(err(cv(1, None)), "cv needs at least 2 folds (got 1)");
        assert_eq!(err(cv(0, None)), "cv needs at least 2 folds (got 0)");
        assert_eq!(
            err(cv(11, None)),
            "cv folds = 11 but there are only 10 speakers"
        );
        assert_eq!(
            err(cv(10, Some(9))),
            "cv valid = 9 leaves no train speaker in some fold: 10 speakers in all, up to 1 per test fold; use valid <= 8"
        );
        assert!(cv(10, Some(8)).folds(&rows, 0).is_ok());
        // 3 folds of 4, 3, 3 speakers: at most 5 valid speakers.
        assert!(err(cv(3, Some(6))).contains("use valid <= 5"));
        assert!(cv(3, Some(5)).folds(&rows, 0).is_ok());
        assert_eq!(cv(2, None).folds(&[], 0).unwrap_err(), SplitError::NoRows);
        let random = Cv {
            by: "random".into(),
            folds: 5,
            valid: None,
            seed: None,
            final_model: false,
        };
        assert_eq!(random.folds(&rows, 0).unwrap_err(), SplitError::CvRandom);
    }

    #[test]
    fn random_split_is_leakage() {
        let rows = emodb_rows();
        let split = Split::random(0.2, 0.1);
        let a = split.assign_seeded(&rows, 9).unwrap();
        assert!(a.leakage());
        assert_eq!(a.count(Part::Test), 107);
        assert_eq!(a.count(Part::Valid), 54);
        assert_eq!(a.count(Part::Train), 535 - 107 - 54);
        assert!(a.describe().starts_with("random split (speaker leakage)"));
        assert_eq!(
            a.describe(),
            "random split (speaker leakage): 374 train, 54 valid, 107 test rows"
        );
        // With 535 rows over 10 speakers, speakers land in several parts.
        assert!(matches!(a.check_disjoint(), Err(SplitError::Leak { .. })));
        // Deterministic for a seed, different for another.
        assert_eq!(split.assign_seeded(&rows, 9).unwrap(), a);
        assert_ne!(split.assign_seeded(&rows, 10).unwrap(), a);
        assert_eq!(
            split.assign(&rows).unwrap(),
            split.assign_seeded(&rows, DEFAULT_SEED).unwrap()
        );
    }

    #[test]
    fn random_split_errors() {
        let rows = emodb_rows();
        let err = |s: Split| s.assign(&rows).unwrap_err().to_string();
        let mut no_fraction = Split::random(0.2, 0.0);
        no_fraction.fraction = None;
        assert!(err(no_fraction).contains("needs `fraction"));
        let mut lists = Split::random(0.2, 0.0);
        lists.test = strings(&["03"]);
        assert!(err(lists).contains("remove the `test`/`valid` lists"));
        assert_eq!(
            err(Split::random(0.0, 0.1)),
            "bad fraction: test = 0 must be in (0, 1)"
        );
        assert_eq!(
            err(Split::random(0.5, 1.0)),
            "bad fraction: valid = 1 must be in [0, 1)"
        );
        assert!(err(Split::random(f64::NAN, 0.1)).contains("test = NaN"));
        assert!(err(Split::random(0.6, 0.4)).contains("leaves nothing to train on"));
        let two = strings(&["a", "b"]);
        assert_eq!(
            Split::random(0.1, 0.0)
                .assign(&two)
                .unwrap_err()
                .to_string(),
            "the test set is empty: test = 0.1 of 2 rows rounds to 0 rows"
        );
        assert!(matches!(
            Split::random(0.5, 0.4).assign(&two).unwrap_err(),
            SplitError::Empty {
                part: Part::Train,
                ..
            }
        ));
    }

    #[test]
    fn check_disjoint_names_the_group() {
        let rows = strings(&["a", "b", "a", "c"]);
        let a = Assignment {
            by: "speaker".into(),
            names: Arc::from(strings(&["a", "b", "c"])),
            row_group: Arc::from(vec![0, 1, 0, 2]),
            parts: vec![Part::Train, Part::Test, Part::Test, Part::Valid],
            random: false,
        };
        assert_eq!(a.len(), rows.len());
        assert_eq!(
            a.check_disjoint().unwrap_err().to_string(),
            "speaker `a` appears in both train and test: the split leaks speakers"
        );
    }

    #[test]
    fn config_from_toml() {
        let split: Split = toml::from_str(
            r#"
            by = "speaker"
            test = ["03", "08"]
            valid = ["09"]
            "#,
        )
        .unwrap();
        assert_eq!(split, Split::by_groups("speaker", &["03", "08"], &["09"]));
        let random: Split = toml::from_str(
            r#"
            by = "random"
            fraction = { test = 0.2, valid = 0.1 }
            "#,
        )
        .unwrap();
        assert_eq!(random, Split::random(0.2, 0.1));
        let cv: Cv = toml::from_str("by = \"session\"\nfolds = 5\n").unwrap();
        assert_eq!(cv.valid_groups(), 1);
        assert!(toml::from_str::<Split>("by = \"speaker\"\ntset = [\"03\"]\n").is_err());
        assert!(toml::from_str::<Cv>("by = \"speaker\"\nfolds = 5\nsed = 1\n").is_err());
        let seeded: Cv = toml::from_str("by = \"speaker\"\nfolds = 5\nseed = 1\n").unwrap();
        assert_eq!(seeded.seed, Some(1));
        // Unset, the field stays out of config.json (older runs' settings match).
        assert!(!serde_json::to_string(&cv).unwrap().contains("seed"));
        assert!(
            toml::from_str::<Split>("by = \"random\"\nfraction = { test = 0.2, vaild = 0.1 }\n")
                .is_err()
        );
    }
}
