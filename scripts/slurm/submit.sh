#!/usr/bin/env bash
# Submit a sweep as a Slurm array (sweep.sbatch) and its merge (merge.sbatch), which starts
# once every task has ended (afterany: a failed run is recorded in its shard, not lost).
#   scripts/slurm/submit.sh PLAN RESULTS [sbatch options for the array, e.g. --array=1-8]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PLAN=${1:?usage: submit.sh PLAN RESULTS [sbatch options]}
RESULTS=${2:?usage: submit.sh PLAN RESULTS [sbatch options]}
shift 2
array=$(grep -o -- '--array=[0-9-]*' "$here/sweep.sbatch" | head -1)
for a in "$@"; do case $a in --array=*) array=$a ;; esac; done
first=${array#--array=}; first=${first%-*}; last=${array##*-}
[ "$first" = 1 ] || { echo "submit: the array must start at 1 (shards are 1..N), not $first" >&2; exit 2; }
jid=$(sbatch --parsable "$@" "$here/sweep.sbatch" "$PLAN" "$RESULTS")
sbatch --parsable --dependency="afterany:${jid%%;*}" "$here/merge.sbatch" "$RESULTS" "$last"
