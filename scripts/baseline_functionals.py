"""Stronger reference numbers for docs/results.md (not a sermo model): an RBF SVM
(sklearn, balanced class weights) on rich per-clip functionals of sermo feature
columns — mean, std, 10th/50th/90th percentile and range of the frames and of their
deltas, plus the linear slope over time — after per-speaker z-normalization of the
frames (the test speaker's own audio statistics, never its labels), the same
normalization as `normalize = "speaker"` in the train sink.

    python3 scripts/baseline_functionals.py out/emodb-features-10ms loso
    python3 scripts/baseline_functionals.py out/ravdess-features runs/ravdess-cnn2d-cv4

The second argument is `loso`, a number K of speaker folds (speakers sorted, every
K-th in a fold), or a sermo CV run directory whose `fold-*/config.json` name the
test speakers (the exact folds of that run). Prints, per feature set and C, the
mean over folds of accuracy and UAR, and the UAR of all folds' predictions pooled
(as `pooled` in a sermo CV run's metrics.json).
"""
import json
import pathlib
import re
import sys

import numpy as np
import pyarrow.dataset as ds
from sklearn.metrics import accuracy_score, recall_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

path, how = sys.argv[1], sys.argv[2]
t = ds.dataset(path, format="parquet").to_table(columns=["speaker", "label", "stacked", "log_mel"]).to_pydict()
spk, lab = np.array(t["speaker"]), np.array(t["label"])
speakers = sorted(set(spk))
if how == "loso":
    folds = [[s] for s in speakers]
elif how.isdigit():
    folds = [speakers[i :: int(how)] for i in range(int(how))]
else:
    folds = []
    for cfg in sorted(pathlib.Path(how).glob("fold-*/config.json")):
        split = json.load(open(cfg))["split"]
        m = re.search(r"test speakers? ([^;]+)", split)
        folds.append([s.strip() for s in m.group(1).split(",")])
    if not folds:
        sys.exit(f"no fold-*/config.json under {how}")


def frames(col):
    return [np.array(x, dtype=np.float32) for x in t[col]]


def speaker_norm(xs):
    out = [None] * len(xs)
    for s in speakers:
        idx = np.where(spk == s)[0]
        allf = np.concatenate([xs[i] for i in idx])
        mu, sd = allf.mean(0), allf.std(0) + 1e-6
        for i in idx:
            out[i] = (xs[i] - mu) / sd
    return out


def functionals(x):
    f = []
    for y in (x, np.gradient(x, axis=0) if len(x) > 1 else np.zeros_like(x)):
        f += [y.mean(0), y.std(0), *np.percentile(y, [10, 50, 90], axis=0), y.max(0) - y.min(0)]
    tt = np.arange(len(x), dtype=np.float64)
    tt = (tt - tt.mean()) / (tt.std() + 1e-9)
    f.append((x * tt[:, None]).mean(0))
    return np.concatenate(f)


S, L = frames("stacked"), frames("log_mel")
for name, xs in [("stacked", S), ("log_mel", L), ("both", [np.concatenate([a, b], 1) for a, b in zip(S, L)])]:
    F = np.stack([functionals(x) for x in speaker_norm(xs)])
    for C in [1, 10]:
        accs, uars, truth, pred = [], [], [], []
        for test in folds:
            te = np.isin(spk, test)
            sc = StandardScaler().fit(F[~te])
            clf = SVC(C=C, kernel="rbf", gamma="scale", class_weight="balanced").fit(sc.transform(F[~te]), lab[~te])
            p = clf.predict(sc.transform(F[te]))
            accs.append(accuracy_score(lab[te], p))
            uars.append(recall_score(lab[te], p, labels=np.unique(lab[te]), average="macro"))
            truth += list(lab[te])
            pred += list(p)
        pooled = recall_score(truth, pred, labels=np.unique(truth), average="macro")
        print(f"{name:8s} C={C:<3d} accuracy {np.mean(accs):.3f} ± {np.std(accs):.3f}  UAR {np.mean(uars):.3f} ± {np.std(uars):.3f}  pooled UAR {pooled:.3f}  ({len(folds)} folds)", flush=True)
