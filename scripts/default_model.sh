#!/usr/bin/env bash
# Rebuild models/default from the corpora in ../shared/corpora: the feature table
# (pipelines/default_features.toml), the 5-fold speaker-independent
# cross-validation and the final model on every speaker
# (pipelines/default_model.toml), the predictions recorded on the demo recording
# (models/default/demo_predictions.csv, which tests/default_model.rs reproduces)
# and models/default/recipe.json (the pipelines' SHA-256 and the sermo version).
# Then rebuild sermo: the binary carries models/default (src/train/default_model.rs).
#   bash scripts/default_model.sh [path/to/sermo]
# The folds can run as array tasks instead (docs/cluster.md):
#   sermo run pipelines/default_model.toml --shard I/2 --threads 1   (I = 0, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
SERMO=${1:-target/release/sermo}
"$SERMO" run pipelines/default_features.toml
"$SERMO" run pipelines/default_model.toml
"$SERMO" infer --model models/default examples/audio/long/demo_long.wav \
  --out models/default/demo_predictions.csv > /dev/null
python3 - <<'PY'
import datetime, hashlib, json
cfg = json.load(open("models/default/config.json"))
pipes = ["pipelines/default_features.toml", "pipelines/default_model.toml"]
recipe = {
    "version": "1",
    "made": datetime.date.today().isoformat(),
    "sermo_version": cfg["sermo_version"],
    "pipelines": [
        {"path": p, "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest()} for p in pipes
    ],
    "labels": cfg["labels"],
    "corpora": {
        "emodb": "Berlin Database of Emotional Speech (Burkhardt et al. 2005), free for research use",
        "ravdess": "RAVDESS speech (Livingstone & Russo 2018), CC BY-NC-SA 4.0",
    },
}
json.dump(recipe, open("models/default/recipe.json", "w"), indent=2)
open("models/default/recipe.json", "a").write("\n")
PY
echo "models/default rebuilt; now rebuild sermo (cargo build --release) so the binary carries it"
