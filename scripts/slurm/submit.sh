#!/bin/bash
# Submit a sermo pipeline as a Slurm array of N shards plus a dependent commit job.
#
#   scripts/slurm/submit.sh PIPELINE OUT N [--gpu] [--array=LIST] [-- SBATCH_ARGS...]
#
# PIPELINE  the pipeline file; OUT  its parquet sink directory, or a train sink's
#           `out` for CV folds as shards (for `sermo commit`);
# N         the number of shards (always explicit);
# --gpu     request one GPU per task (--gres=gpu:1) for GPU stages (train, infer);
# --array=  resubmit only some shards, e.g. the list `sermo status OUT --shards N`
#           prints; the commit job then waits for these.
# Environment: SERMO (the sermo binary, default `sermo` on PATH), SERMO_ARGS
# (extra `sermo run` arguments, e.g. "--set sinks.t.mode=\"overwrite\"").
# Prints the two job ids.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 3 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
pipeline="$(realpath "$1")"; out="$2"; n="$3"; shift 3
array="0-$((n - 1))"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) extra+=(--gres=gpu:1) ;;
    --array=*) array="${1#--array=}" ;;
    --) shift; extra+=("$@"); break ;;
    *) echo "submit.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
export PIPELINE="$pipeline" SHARDS="$n" OUT="$out"
array_job=$(sbatch --parsable --array="$array" "${extra[@]}" --export=ALL "$here/sermo-array.sbatch")
array_job="${array_job%%;*}"
commit_job=$(sbatch --parsable --dependency="afterok:$array_job" --export=ALL "$here/sermo-commit.sbatch")
commit_job="${commit_job%%;*}"
echo "array job $array_job (shards $array of $n), commit job $commit_job"
