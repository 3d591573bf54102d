//! Classification metrics for emotion recognition: confusion matrix, accuracy,
//! UAR, F1, and their mean ± std over cross-validation folds.
//!
//! Contract:
//! - [`Confusion`] counts (truth, prediction) pairs of class indices into
//!   `labels`; rows are truth, columns are prediction.
//! - [`Report`] is computed from a confusion matrix. For class c with
//!   tp = matrix\[c\]\[c\], support = row sum and predicted = column sum:
//!   precision = tp / predicted, recall = tp / support,
//!   F1 = 2·tp / (support + predicted). Any ratio whose denominator is 0 is
//!   defined as 0 (scikit-learn's `zero_division=0`), so no metric is ever NaN.
//! - accuracy = trace / total. UAR (unweighted average recall, scikit-learn's
//!   `balanced_accuracy_score`) = mean recall over the classes that occur in the
//!   truth. macro-F1 = mean F1 over the classes that occur in the truth or the
//!   predictions (scikit-learn's default label set); classes in neither are left
//!   out. weighted-F1 = F1 weighted by support. With no rows at all, every metric
//!   is 0.
//! - [`CvReport`] holds one [`Report`] per fold plus the mean and population
//!   standard deviation (divide by K) of accuracy, UAR and macro-F1, and the
//!   same three metrics of the pooled confusion matrix (the sum of the folds'
//!   matrices: every test example weighs the same, whatever its fold's size).
//!
//! Cross-checked against scikit-learn by `tests/fixtures/metrics/sklearn.json`
//! (made by `scripts/make_metrics_fixture.py`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Invalid input to [`Confusion::from_pairs`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// A class index is not an index into the labels.
    #[error("{what} class index {index} is out of range ({labels} labels)")]
    ClassOutOfRange {
        what: &'static str,
        index: usize,
        labels: usize,
    },
}

/// A confusion matrix over `labels`: rows = truth, columns = prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    labels: Vec<String>,
    matrix: Vec<Vec<u64>>,
}

impl Confusion {
    /// An empty (all-zero) matrix over `labels`.
    pub fn new(labels: Vec<String>) -> Self {
        let n = labels.len();
        Confusion {
            labels,
            matrix: vec![vec![0; n]; n],
        }
    }

    /// Count one example of class `truth` predicted as `pred`.
    ///
    /// # Panics
    /// If either index is not below `labels.len()` (a caller bug: indices come from
    /// the label encoder). Use [`Confusion::from_pairs`] for unchecked data.
    pub fn add(&mut self, truth: usize, pred: usize) {
        let n = self.labels.len();
        assert!(
            truth < n && pred < n,
            "class index out of range: truth {truth}, prediction {pred}, {n} labels"
        );
        self.matrix[truth][pred] += 1;
    }

    /// A matrix counting every `(truth, prediction)` pair; an index out of range is
    /// an error.
    pub fn from_pairs(
        labels: Vec<String>,
        pairs: impl IntoIterator<Item = (usize, usize)>,
    ) -> Result<Self, MetricsError> {
        let mut c = Confusion::new(labels);
        let n = c.labels.len();
        for (truth, pred) in pairs {
            for (what, index) in [("truth", truth), ("prediction", pred)] {
                if index >= n {
                    return Err(MetricsError::ClassOutOfRange {
                        what,
                        index,
                        labels: n,
                    });
                }
            }
            c.matrix[truth][pred] += 1;
        }
        Ok(c)
    }

    /// The class labels, in index order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The counts: `matrix()[truth][prediction]`.
    pub fn matrix(&self) -> &[Vec<u64>] {
        &self.matrix
    }

    /// Number of examples counted.
    pub fn total(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    /// All metrics of this matrix.
    pub fn report(&self) -> Report {
        Report::from_confusion(self)
    }
}

/// `num / den`, or 0 when `den` is 0.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Mean of `values`, or 0 when empty.
fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    /// tp / predicted (0 if the class is never predicted).
    pub precision: f64,
    /// tp / support (0 if the class never occurs in the truth).
    pub recall: f64,
    /// 2·tp / (support + predicted) (0 if both are 0).
    pub f1: f64,
    /// Number of examples of this class in the truth.
    pub support: u64,
}

/// Metrics of one evaluation (see the module docs for definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Fraction of examples predicted correctly.
    pub accuracy: f64,
    /// Unweighted average recall over the classes occurring in the truth.
    pub uar: f64,
    /// Mean F1 over the classes occurring in the truth or the predictions.
    pub macro_f1: f64,
    /// F1 weighted by support.
    pub weighted_f1: f64,
    /// One entry per label, in label order (including absent classes).
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[truth][prediction]`.
    pub confusion: Vec<Vec<u64>>,
    /// Class labels, in index order.
    pub labels: Vec<String>,
}

impl Report {
    /// Compute every metric from a confusion matrix.
    pub fn from_confusion(c: &Confusion) -> Self {
        let m = &c.matrix;
        let n = c.labels.len();
        let support: Vec<u64> = m.iter().map(|row| row.iter().sum()).collect();
        let predicted: Vec<u64> = (0..n).map(|j| m.iter().map(|row| row[j]).sum()).collect();
        let total: u64 = support.iter().sum();
        let correct: u64 = (0..n).map(|i| m[i][i]).sum();

        let per_class: Vec<ClassMetrics> = (0..n)
            .map(|i| {
                let tp = m[i][i];
                ClassMetrics {
                    label: c.labels[i].clone(),
                    precision: ratio(tp, predicted[i]),
                    recall: ratio(tp, support[i]),
                    f1: ratio(2 * tp, support[i] + predicted[i]),
                    support: support[i],
                }
            })
            .collect();

        let uar = mean(per_class.iter().filter(|k| k.support > 0).map(|k| k.recall));
        let macro_f1 = mean(
            (0..n)
                .filter(|&i| support[i] > 0 || predicted[i] > 0)
                .map(|i| per_class[i].f1),
        );
        let weighted_f1 = if total == 0 {
            0.0
        } else {
            per_class
                .iter()
                .map(|k| k.f1 * k.support as f64)
                .sum::<f64>()
                / total as f64
        };

        Report {
            accuracy: ratio(correct, total),
            uar,
            macro_f1,
            weighted_f1,
            per_class,
            confusion: m.clone(),
            labels: c.labels.clone(),
        }
    }

    /// Number of examples evaluated.
    pub fn total(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }

    /// A readable text block: summary metrics, a per-class table and the confusion
    /// matrix with aligned row and column labels.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let correct: u64 = (0..self.confusion.len())
            .map(|i| self.confusion[i].get(i).copied().unwrap_or(0))
            .sum();
        let _ = writeln!(
            out,
            "accuracy     {:.4}  ({correct}/{})",
            self.accuracy,
            self.total()
        );
        let _ = writeln!(out, "UAR          {:.4}", self.uar);
        let _ = writeln!(out, "macro-F1     {:.4}", self.macro_f1);
        let _ = writeln!(out, "weighted-F1  {:.4}", self.weighted_f1);

        let lw = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        let _ = writeln!(
            out,
            "\n{:<lw$}  precision  recall      f1  support",
            "class"
        );
        for k in &self.per_class {
            let _ = writeln!(
                out,
                "{:<lw$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}",
                k.label, k.precision, k.recall, k.f1, k.support
            );
        }

        let _ = writeln!(out, "\nconfusion (rows: truth, columns: prediction)");
        let widths: Vec<usize> = (0..self.labels.len())
            .map(|j| {
                let digits = self
                    .confusion
                    .iter()
                    .map(|row| row.get(j).copied().unwrap_or(0).to_string().len())
                    .max()
                    .unwrap_or(1);
                digits.max(self.labels[j].chars().count())
            })
            .collect();
        let mut header = format!("{:<lw$}", "");
        for (label, w) in self.labels.iter().zip(&widths) {
            let _ = write!(header, "  {label:>w$}");
        }
        let _ = writeln!(out, "{}", header.trim_end());
        for (label, row) in self.labels.iter().zip(&self.confusion) {
            let mut line = format!("{label:<lw$}");
            for (count, w) in row.iter().zip(&widths) {
                let _ = write!(line, "  {count:>w$}");
            }
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// Accuracy, UAR and macro-F1 (a fold summary's mean or std).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub accuracy: f64,
    pub uar: f64,
    pub macro_f1: f64,
}

/// Per-fold reports of a cross-validation with their mean and population std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// One report per fold, in fold order.
    pub folds: Vec<Report>,
    /// Mean over folds.
    pub mean: Summary,
    /// Population standard deviation over folds (divide by K; 0 for one fold or
    /// none).
    pub std: Summary,
    /// Metrics of all folds' test predictions counted together (the sum of the
    /// fold confusion matrices); absent from files written before it existed.
    #[serde(default)]
    pub pooled: Summary,
}

impl CvReport {
    /// Summarise fold reports (no folds: mean and std are 0).
    pub fn from_folds(folds: Vec<Report>) -> Self {
        let stat = |get: fn(&Report) -> f64| -> (f64, f64) {
            let m = mean(folds.iter().map(get));
            let var = mean(folds.iter().map(|r| (get(r) - m).powi(2)));
            (m, var.sqrt())
        };
        let (acc_m, acc_s) = stat(|r| r.accuracy);
        let (uar_m, uar_s) = stat(|r| r.uar);
        let (f1_m, f1_s) = stat(|r| r.macro_f1);
        let pooled = pooled_confusion(&folds)
            .map(|c| {
                let r = c.report();
                Summary {
                    accuracy: r.accuracy,
                    uar: r.uar,
                    macro_f1: r.macro_f1,
                }
            })
            .unwrap_or_default();
        CvReport {
            folds,
            pooled,
            mean: Summary {
                accuracy: acc_m,
                uar: uar_m,
                macro_f1: f1_m,
            },
            std: Summary {
                accuracy: acc_s,
                uar: uar_s,
                macro_f1: f1_s,
            },
        }
    }

    /// The sum of the folds' confusion matrices over the first fold's labels (`None`
    /// without folds, or when a fold has other labels).
    pub fn pooled_confusion(&self) -> Option<Confusion> {
        pooled_confusion(&self.folds)
    }

    /// One line per fold (numbered from 0, as the `fold-K` folders), then mean ±
    /// std, then the pooled metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let fw = self.folds.len().saturating_sub(1).to_string().len();
        for (k, r) in self.folds.iter().enumerate() {
            let _ = writeln!(
                out,
                "fold {k:>fw$}    accuracy {:.4}  UAR {:.4}  macro-F1 {:.4}  (n = {})",
                r.accuracy,
                r.uar,
                r.macro_f1,
                r.total()
            );
        }
        let _ = writeln!(
            out,
            "mean ± std{:fw$}  accuracy {:.4} ± {:.4}  UAR {:.4} ± {:.4}  macro-F1 {:.4} ± {:.4}  ({} folds)",
            "",
            self.mean.accuracy,
            self.std.accuracy,
            self.mean.uar,
            self.std.uar,
            self.mean.macro_f1,
            self.std.macro_f1,
            self.folds.len()
        );
        let _ = writeln!(
            out,
            "pooled{:fw$}      accuracy {:.4}           UAR {:.4}           macro-F1 {:.4}           (n = {})",
            "",
            self.pooled.accuracy,
            self.pooled.uar,
            self.pooled.macro_f1,
            self.folds.iter().map(Report::total).sum::<u64>()
        );
        out
    }
}

/// The element-wise sum of the folds' confusion matrices.
fn pooled_confusion(folds: &[Report]) -> Option<Confusion> {
    let first = folds.first()?;
    let n = first.labels.len();
    let mut matrix = vec![vec![0u64; n]; n];
    for r in folds {
        if r.labels != first.labels || r.confusion.len() != n {
            return None;
        }
        for (acc, row) in matrix.iter_mut().zip(&r.confusion) {
            if row.len() != n {
                return None;
            }
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
    Some(Confusion {
        labels: first.labels.clone(),
        matrix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[track_caller]
    fn assert_close(a: f64, b: f64) {
        assert!(close(a, b, 1e-12), "{a} != {b}");
    }

    #[test]
    fn imbalanced_uar_differs_from_accuracy() {
        // 90 of A all predicted A, 10 of B all predicted A.
        let pairs = std::iter::repeat_n((0, 0), 90).chain(std::iter::repeat_n((1, 0), 10));
        let r = Confusion::from_pairs(labels(&["A", "B"]), pairs)
            .unwrap()
            .report();
        assert_close(r.accuracy, 0.9);
        assert_close(r.uar, 0.5);
        // A: precision 90/100, recall 1, F1 = 2·90/(90+100) = 18/19. B: all 0.
        assert_close(r.per_class[0].precision, 0.9);
        assert_close(r.per_class[0].recall, 1.0);
        assert_close(r.per_class[0].f1, 18.0 / 19.0);
        assert_eq!(r.per_class[0].support, 90);
        assert_eq!(r.per_class[1].precision, 0.0); // never predicted
        assert_eq!(r.per_class[1].recall, 0.0);
        assert_eq!(r.per_class[1].f1, 0.0);
        assert_eq!(r.per_class[1].support, 10);
        assert_close(r.macro_f1, 9.0 / 19.0);
        assert_close(r.weighted_f1, 0.9 * 18.0 / 19.0);
        assert_eq!(r.confusion, vec![vec![90, 0], vec![10, 0]]);
        assert_eq!(r.total(), 100);
    }

    #[test]
    fn three_classes_by_hand() {
        //        neu hap sad
        // neu     3   1   0
        // hap     1   2   1
        // sad     0   0   2
        let mut c = Confusion::new(labels(&["neu", "hap", "sad"]));
        for (t, p, n) in [
            (0, 0, 3),
            (0, 1, 1),
            (1, 0, 1),
            (1, 1, 2),
            (1, 2, 1),
            (2, 2, 2),
        ] {
            for _ in 0..n {
                c.add(t, p);
            }
        }
        assert_eq!(c.total(), 10);
        let r = c.report();
        assert_close(r.accuracy, 0.7);
        assert_close(r.uar, (0.75 + 0.5 + 1.0) / 3.0);
        let p: Vec<f64> = r.per_class.iter().map(|k| k.precision).collect();
        let f: Vec<f64> = r.per_class.iter().map(|k| k.f1).collect();
        for (a, b) in p.iter().zip([0.75, 2.0 / 3.0, 2.0 / 3.0]) {
            assert_close(*a, b);
        }
        for (a, b) in f.iter().zip([0.75, 4.0 / 7.0, 0.8]) {
            assert_close(*a, b);
        }
        assert_close(r.macro_f1, 99.0 / 140.0);
        assert_close(r.weighted_f1, 241.0 / 350.0);
    }

    #[test]
    fn perfect_classifier() {
        let pairs = (0..40).map(|i| (i % 4, i % 4));
        let r = Confusion::from_pairs(labels(&["ang", "hap", "neu", "sad"]), pairs)
            .unwrap()
            .report();
        assert_eq!(
            (r.accuracy, r.uar, r.macro_f1, r.weighted_f1),
            (1.0, 1.0, 1.0, 1.0)
        );
        for k in &r.per_class {
            assert_eq!(
                (k.precision, k.recall, k.f1, k.support),
                (1.0, 1.0, 1.0, 10)
            );
        }
    }

    #[test]
    fn absent_and_prediction_only_classes() {
        // C never occurs; D only occurs as a prediction.
        let pairs = [(0, 0), (0, 3), (1, 1), (1, 1)];
        let r = Confusion::from_pairs(labels(&["A", "B", "C", "D"]), pairs)
            .unwrap()
            .report();
        assert_close(r.accuracy, 0.75);
        // UAR over A (1/2) and B (1): D is not in the truth.
        assert_close(r.uar, 0.75);
        // macro-F1 over A (2/3), B (1), D (0); C is in neither.
        assert_close(r.macro_f1, (2.0 / 3.0 + 1.0 + 0.0) / 3.0);
        assert_close(r.weighted_f1, (2.0 * 2.0 / 3.0 + 2.0 * 1.0) / 4.0);
        let c = &r.per_class[2];
        assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 0));
        let d = &r.per_class[3];
        assert_eq!((d.precision, d.recall, d.f1, d.support), (0.0, 0.0, 0.0, 0));
    }

    #[test]
    fn empty_is_all_zero() {
        let r = Confusion::new(labels(&["A", "B"])).report();
        assert_eq!(
            (r.accuracy, r.uar, r.macro_f1, r.weighted_f1),
            (0.0, 0.0, 0.0, 0.0)
        );
        let none = Confusion::new(Vec::new()).report();
        assert_eq!(none.accuracy, 0.0);
        assert!(none.render().contains("accuracy     0.0000  (0/0)"));
    }

    #[test]
    fn from_pairs_rejects_bad_indices() {
        let err = Confusion::from_pairs(labels(&["A", "B"]), [(0, 1), (1, 2)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prediction class index 2 is out of range (2 labels)"
        );
        let err = Confusion::from_pairs(labels(&["A"]), [(5, 0)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truth class index 5 is out of range (1 labels)"
        );
    }

    #[test]
    #[should_panic(expected = "class index out of range")]
    fn add_panics_on_bad_index() {
        Confusion::new(labels(&["A"])).add(0, 1);
    }

    #[test]
    fn render_report() {
        let pairs = std::iter::repeat_n((0, 0), 90)
            .chain(std::iter::repeat_n((1, 0), 10))
            .chain([(1, 1)]);
        let r = Confusion::from_pairs(labels(&["angry", "neutral"]), pairs)
            .unwrap()
            .report();
        let text = r.render();
        let expected = "\
accuracy     0.9010  (91/101)
UAR          0.5455
macro-F1     0.5570
weighted-F1  0.8623

class    precision  recall      f1  support
angry       0.9000  1.0000  0.9474       90
neutral     1.0000  0.0909  0.1667       11

confusion (rows: truth, columns: prediction)
         angry  neutral
angry       90        0
neutral     10        1
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn cv_report_mean_std() {
        let fold = |correct: usize, n: usize| {
            let pairs = (0..n).map(|i| (i % 2, if i < correct { i % 2 } else { 1 - i % 2 }));
            Confusion::from_pairs(labels(&["A", "B"]), pairs)
                .unwrap()
                .report()
        };
        let cv = CvReport::from_folds(vec![fold(8, 10), fold(6, 10)]);
        assert_close(cv.mean.accuracy, 0.7);
        assert_close(cv.std.accuracy, 0.1);
        let uars: Vec<f64> = cv.folds.iter().map(|r| r.uar).collect();
        let m = (uars[0] + uars[1]) / 2.0;
        assert_close(cv.mean.uar, m);
        assert_close(cv.std.uar, (uars[0] - m).abs());
        let text = cv.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("fold 0    accuracy 0.8000"), "{text}");
        assert!(lines[1].starts_with("fold 1    accuracy 0.6000"), "{text}");
        assert!(
            lines[2].starts_with("mean ± std   accuracy 0.7000 ± 0.1000"),
            "{text}"
        );
        assert!(lines[2].ends_with("(2 folds)"));
        assert!(lines[3].starts_with("pooled"), "{text}");
        assert!(lines[3].ends_with("(n = 20)"), "{text}");
        // Pooled: 14 of 20 right; equal fold sizes, so pooled accuracy = mean.
        assert_close(cv.pooled.accuracy, 0.7);

        let one = CvReport::from_folds(vec![fold(8, 10)]);
        assert_eq!(one.std, Summary::default());
        let none = CvReport::from_folds(Vec::new());
        assert_eq!(
            (none.mean, none.std),
            (Summary::default(), Summary::default())
        );
    }

    #[test]
    fn pooled_weighs_every_example_not_every_fold() {
        // Fold 1: 10 examples, all right. Fold 2: 2 examples of B, both called A.
        let big = Confusion::from_pairs(labels(&["A", "B"]), (0..10).map(|i| (i % 2, i % 2)))
            .unwrap()
            .report();
        let small = Confusion::from_pairs(labels(&["A", "B"]), [(1, 0), (1, 0)])
            .unwrap()
            .report();
        let cv = CvReport::from_folds(vec![big, small]);
        // Mean over folds: accuracy (1 + 0) / 2, UAR (1 + 0) / 2 (fold 2 has only B).
        assert_close(cv.mean.accuracy, 0.5);
        assert_close(cv.mean.uar, 0.5);
        // Pooled: 10 of 12 right; recall A = 5/5, B = 5/7.
        assert_close(cv.pooled.accuracy, 10.0 / 12.0);
        assert_close(cv.pooled.uar, (1.0 + 5.0 / 7.0) / 2.0);
        let c = cv.pooled_confusion().unwrap();
        assert_eq!(c.matrix(), &[vec![5, 0], vec![2, 5]]);
        // Folds over different labels have no pooled matrix.
        let other = Confusion::from_pairs(labels(&["A", "C"]), [(0, 0)])
            .unwrap()
            .report();
        let mixed = CvReport::from_folds(vec![cv.folds[0].clone(), other]);
        assert!(mixed.pooled_confusion().is_none());
        assert_eq!(mixed.pooled, Summary::default());
    }

    #[test]
    fn serde_round_trip() {
        let r = Confusion::from_pairs(labels(&["A", "B"]), [(0, 0), (1, 0), (1, 1)])
            .unwrap()
            .report();
        let cv = CvReport::from_folds(vec![r.clone(), r]);
        let json = serde_json::to_string(&cv).unwrap();
        let back: CvReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cv);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["folds"][0]["uar"].is_f64());
        assert_eq!(v["folds"][0]["confusion"][1][0], 1);
        assert!(v["mean"]["macro_f1"].is_f64());
        assert!(v["pooled"]["uar"].is_f64());
        // Files written before `pooled` existed still load.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("pooled");
        let back: CvReport = serde_json::from_value(old).unwrap();
        assert_eq!(back.pooled, Summary::default());
    }

    /// Matches scikit-learn on random fixtures (see scripts/make_metrics_fixture.py).
    #[test]
    fn matches_sklearn() {
        #[derive(Deserialize)]
        struct Case {
            name: String,
            labels: Vec<String>,
            truth: Vec<usize>,
            pred: Vec<usize>,
            accuracy: f64,
            uar: f64,
            macro_f1: f64,
            weighted_f1: f64,
            precision: Vec<f64>,
            recall: Vec<f64>,
            f1: Vec<f64>,
            support: Vec<u64>,
            confusion: Vec<Vec<u64>>,
        }
        #[derive(Deserialize)]
        struct Fixture {
            cases: Vec<Case>,
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/metrics/sklearn.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let fixture: Fixture = serde_json::from_str(&text).unwrap();
        assert!(fixture.cases.len() >= 4);
        for case in &fixture.cases {
            let c = Confusion::from_pairs(
                case.labels.clone(),
                case.truth.iter().copied().zip(case.pred.iter().copied()),
            )
            .unwrap();
            let r = c.report();
            let name = &case.name;
            let check = |what: &str, a: f64, b: f64| {
                assert!(close(a, b, 1e-12), "{name}: {what} {a} != sklearn {b}");
            };
            check("accuracy", r.accuracy, case.accuracy);
            check("uar", r.uar, case.uar);
            check("macro_f1", r.macro_f1, case.macro_f1);
            check("weighted_f1", r.weighted_f1, case.weighted_f1);
            for (i, k) in r.per_class.iter().enumerate() {
                check("precision", k.precision, case.precision[i]);
                check("recall", k.recall, case.recall[i]);
                check("f1", k.f1, case.f1[i]);
                assert_eq!(k.support, case.support[i], "{name}: support");
            }
            assert_eq!(r.confusion, case.confusion, "{name}: confusion");
        }
    }
}
