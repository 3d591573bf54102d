"""Reference numbers for docs/results.md: an RBF SVM (sklearn, C=10, balanced)
on per-clip mean+std of a sermo feature column, speaker-independent, with and
without per-speaker z-normalization.

    python3 scripts/baseline_svm.py out/emodb-features loso
    python3 scripts/baseline_svm.py out/ravdess-features 4
"""
import sys

import numpy as np
import pyarrow.dataset as ds
from sklearn.metrics import accuracy_score, recall_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

path, folds = sys.argv[1], sys.argv[2]
t = ds.dataset(path).to_table(columns=["speaker", "label", "stacked", "log_mel"]).to_pandas()
y, g = t.label.values, t.speaker.values
speakers = sorted(set(g))
if folds == "loso":
    groups = [[s] for s in speakers]
else:
    perm = np.random.default_rng(0).permutation(speakers)
    groups = [list(perm[i :: int(folds)]) for i in range(int(folds))]
for col in ["stacked", "log_mel"]:
    X = np.array([np.concatenate([np.stack(v).mean(0), np.stack(v).std(0)]) for v in t[col]])
    for norm in ["global", "speaker"]:
        Xn = X.copy()
        if norm == "speaker":
            for s in speakers:
                m = g == s
                Xn[m] = (Xn[m] - Xn[m].mean(0)) / (Xn[m].std(0) + 1e-6)
        pred = np.empty(len(y), dtype=object)
        for test in groups:
            te = np.isin(g, test)
            sc = StandardScaler().fit(Xn[~te])
            clf = SVC(C=10, class_weight="balanced").fit(sc.transform(Xn[~te]), y[~te])
            pred[te] = clf.predict(sc.transform(Xn[te]))
        pred = pred.astype(str)
        print(f"{col:8s} {norm:8s} accuracy {accuracy_score(y, pred):.3f}  UAR {recall_score(y, pred, average='macro'):.3f}")
