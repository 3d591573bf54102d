"""Read a sermo Parquet sink directory with pyarrow.dataset, polars and pandas.

Usage: python3 read_table.py DIR
Prints one JSON line with the row counts and clip ids seen by each reader.
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
# pyarrow.dataset and pandas ignore `_`/`.`-prefixed files (_SUCCESS, _quarantine.parquet).
t = ds.dataset(d, format="parquet").to_table()
pdf = pd.read_parquet(d)
# polars scans every file under a directory, so name the part files with a glob.
pol = pl.scan_parquet(f"{d}/part-*.parquet").select("clip_id", "sample_rate").collect()
q = pd.read_parquet(f"{d}/_quarantine.parquet")
print(json.dumps({
    "pyarrow": t.num_rows,
    "pandas": len(pdf),
    "polars": pol.height,
    "quarantine": len(q),
    "quarantine_columns": list(q.columns),
    "ids": sorted(pol["clip_id"].to_list()),
    "pyarrow_ids": sorted(t.column("clip_id").to_pylist()),
    "samples_type": str(t.schema.field("samples").type),
}))
