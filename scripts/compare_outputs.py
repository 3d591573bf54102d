#!/usr/bin/env python3
"""Compare the outputs of two sermo builds run on the same inputs, row by row.

Part-file bytes are not comparable between runs: which part file a clip lands in
is decided by the parquet sink's writers at run time. So every table directory
(a folder with `part-*.parquet` files) is read whole, sorted by its row keys
(clip_id, variant, segment) and compared with its schema metadata; JSON files are
compared as JSON (and the differing keys printed); other Parquet files (history)
as tables; anything else by bytes. `_ledger.jsonl` is skipped (it names part
files).

    python3 scripts/compare_outputs.py OLD_ROOT NEW_ROOT [SUBDIR ...]

compares OLD_ROOT/out and OLD_ROOT/runs (or the SUBDIRs) with NEW_ROOT's. Exit
status 1 when anything differs. Needs pyarrow.

The architecture step of 2026-12-04 was checked so: each build ran, from the same
checkout (so the `path` column is equal), with its outputs moved aside in between:

    sermo run pipelines/quickstart.toml pipelines/quickstart_train.toml pipelines/long_recording.toml
    sermo run pipelines/emodb_features.toml
    sermo run pipelines/emodb_features_aug.toml
    sermo run pipelines/ravdess_features.toml
    sermo run pipelines/emodb_loso.toml --set sinks.model.epochs=2 --shard 0/5
    sermo run pipelines/emodb_loso_attention_fcn.toml --set sinks.model.epochs=1 --shard 0/5
    sermo run pipelines/ravdess_cv_cnn2d.toml --set sinks.model.epochs=1 --shard 0/4

Feature tables compare equal; trained models compare equal only when both builds
train on the same table files (before the canonical example order of the same
day, training depended on the table's part-file layout).
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

KEYS = ["clip_id", "variant", "segment"]


def table(root):
    parts = sorted(
        os.path.join(d, f)
        for d, _, fs in os.walk(root)
        for f in fs
        if f.startswith("part-") and f.endswith(".parquet")
    )
    tables = [pq.read_table(p) for p in parts]
    t = pa.concat_tables(tables)
    keys = [k for k in KEYS if k in t.column_names]
    return t.sort_by([(k, "ascending") for k in keys]), tables[0].schema.metadata


def main():
    a, b = sys.argv[1], sys.argv[2]
    subs = sys.argv[3:] or ["out", "runs"]
    bad = 0
    for sub in subs:
        for d, _, files in os.walk(os.path.join(a, sub)):
            rel = os.path.relpath(d, a)
            if any(f.startswith("part-") for f in files):
                ta, ma = table(d)
                tb, mb = table(os.path.join(b, rel))
                same = ta.equals(tb) and ma == mb
                print(("same " if same else "DIFF ") + rel, ta.num_rows, "rows")
                bad += not same
            for f in files:
                if f.startswith("part-") or f == "_ledger.jsonl":
                    continue
                pa_, pb = os.path.join(d, f), os.path.join(b, rel, f)
                if not os.path.exists(pb):
                    print("MISSING " + os.path.join(rel, f))
                    bad += 1
                elif f.endswith(".json"):
                    ja, jb = json.load(open(pa_)), json.load(open(pb))
                    if ja != jb:
                        bad += 1
                        print("DIFF " + os.path.join(rel, f))
                        if isinstance(ja, dict) and isinstance(jb, dict):
                            for k in sorted(set(ja) | set(jb)):
                                if ja.get(k) != jb.get(k):
                                    print("    ", k, ":", str(ja.get(k))[:200], "||", str(jb.get(k))[:200])
                elif f.endswith(".parquet") and f != "_quarantine.parquet":
                    same = pq.read_table(pa_).equals(pq.read_table(pb))
                    print(("same " if same else "DIFF ") + os.path.join(rel, f))
                    bad += not same
                elif open(pa_, "rb").read() != open(pb, "rb").read():
                    print("DIFF bytes " + os.path.join(rel, f))
                    bad += 1
    print("differences:", bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
