"""Read a partitioned (and optionally sharded) sermo table with pyarrow.dataset,
polars and pandas, hive partitions included.

Usage: python3 read_partitioned.py DIR
Prints one JSON object: per reader, the sorted (clip_id, corpus, label) triples.
Exits 77 when a reader library is missing (the Rust test then skips).
"""
import json
import sys

try:
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds
except ImportError as e:  # pragma: no cover
    print(f"missing python module: {e.name}", file=sys.stderr)
    sys.exit(77)

d = sys.argv[1]


def triples(ids, corpora, labels):
    return sorted([list(x) for x in zip(ids, corpora, labels)])


# pyarrow.dataset skips `_`/`.`-prefixed files (_SUCCESS, _ledger.jsonl, temp files).
t = ds.dataset(d, format="parquet", partitioning="hive").to_table(
    columns=["clip_id", "corpus", "label"]
)
pdf = pd.read_parquet(d, columns=["clip_id", "corpus", "label"])
pol = (
    pl.scan_parquet(f"{d}/**/part-*.parquet", hive_partitioning=True)
    .select("clip_id", "corpus", "label")
    .collect()
)
print(json.dumps({
    "pyarrow": triples(*(t.column(c).to_pylist() for c in ["clip_id", "corpus", "label"])),
    "pandas": triples(*(pdf[c].astype(str).tolist() for c in ["clip_id", "corpus", "label"])),
    "polars": triples(*(pol[c].to_list() for c in ["clip_id", "corpus", "label"])),
}))
