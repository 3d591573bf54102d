#!/usr/bin/env python3
"""Reference classification metrics from scikit-learn for src/train/metrics.rs.

Writes tests/fixtures/metrics/sklearn.json: a few cases of random integer labels
(numpy default_rng, fixed seed) with scikit-learn's accuracy_score,
balanced_accuracy_score (= UAR), f1_score (macro and weighted, default label set:
the classes present in truth or prediction), precision_recall_fscore_support
(per label, zero_division=0) and confusion_matrix (rows = truth). The cases cover
balanced and imbalanced labels, a class that is never predicted, a class that
occurs only in the predictions and a label that occurs nowhere.

Run from the repository root: python3 scripts/make_metrics_fixture.py
"""
import json
import os
import warnings

import numpy as np
import sklearn
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

OUT = "tests/fixtures/metrics/sklearn.json"
SEED = 20240611


def noisy(rng, truth, n_classes, p_correct):
    """Predictions equal to the truth with probability p_correct, else random."""
    wrong = rng.integers(0, n_classes, size=truth.size)
    return np.where(rng.random(truth.size) < p_correct, truth, wrong)


def case(name, labels, truth, pred):
    n = len(labels)
    ids = list(range(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ill-defined metrics are the point
        p, r, f, s = precision_recall_fscore_support(
            truth, pred, labels=ids, zero_division=0
        )
        return {
            "name": name,
            "labels": labels,
            "truth": [int(x) for x in truth],
            "pred": [int(x) for x in pred],
            "accuracy": float(accuracy_score(truth, pred)),
            "uar": float(balanced_accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
            "weighted_f1": float(
                f1_score(truth, pred, average="weighted", zero_division=0)
            ),
            "precision": [float(x) for x in p],
            "recall": [float(x) for x in r],
            "f1": [float(x) for x in f],
            "support": [int(x) for x in s],
            "confusion": confusion_matrix(truth, pred, labels=ids).tolist(),
        }


def main():
    rng = np.random.default_rng(SEED)
    emotions = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
    cases = []

    # Balanced 7 classes, a mediocre classifier.
    t = rng.integers(0, 7, size=300)
    cases.append(case("balanced7", emotions, t, noisy(rng, t, 7, 0.55)))

    # Imbalanced 4 classes (70/15/10/5 %), a good classifier.
    four = ["neutral", "happy", "angry", "sad"]
    t = rng.choice(4, size=400, p=[0.7, 0.15, 0.1, 0.05])
    cases.append(case("imbalanced4", four, t, noisy(rng, t, 4, 0.8)))

    # Class 2 never predicted: its predictions are remapped to class 0.
    t = rng.integers(0, 3, size=120)
    p = noisy(rng, t, 3, 0.6)
    p[p == 2] = 0
    cases.append(case("never_predicted", ["a", "b", "c"], t, p))

    # Class 3 only predicted (not in the truth); label 4 occurs nowhere.
    t = rng.integers(0, 3, size=90)
    p = noisy(rng, t, 4, 0.5)
    cases.append(case("pred_only_and_unused", ["a", "b", "c", "d", "e"], t, p))

    # Tiny case, chance level, two classes.
    t = rng.integers(0, 2, size=7)
    cases.append(case("tiny2", ["neg", "pos"], t, rng.integers(0, 2, size=7)))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        json.dump(
            {
                "generator": "scripts/make_metrics_fixture.py",
                "sklearn_version": sklearn.__version__,
                "seed": SEED,
                "cases": cases,
            },
            fh,
            indent=1,
        )
        fh.write("\n")
    print(f"wrote {OUT} ({len(cases)} cases, scikit-learn {sklearn.__version__})")


if __name__ == "__main__":
    main()
