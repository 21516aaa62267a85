#!/usr/bin/env bash
# The training noise of one model: the same labelled images (the seed that draws them, as
# al_quality.py's round 0 does), trained with other training seeds (randomness.seed). A
# difference between strategies smaller than this spread is not evidence for either.
#   [INITIAL=40] [CFG_OPTIONS="key=value ..."] benchmarks/training_noise.sh CONFIG WORK \
#       IMAGE_SEED TRAIN_SEED...
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
CFG=${1:?config}; W=${2:?work dir}; IMAGES=${3:?seed of the labelled images}; shift 3
PY=${PYTHON:-.venv/bin/python}
for t in "$@"; do
  # shellcheck disable=SC2086
  "$PY" tools/al_train.py "$CFG" --work-dir "$W/train_seed$t" --cfg-options \
    ${CFG_OPTIONS:-} active_learning.rounds=1 "active_learning.initial_size=${INITIAL:-40}" \
    "active_learning.seed=$IMAGES" "randomness.seed=$t"
done
"$PY" - "$W" "$@" <<'PY'
import json, statistics, sys
w, seeds = sys.argv[1], sys.argv[2:]
maps = [json.load(open(f'{w}/train_seed{t}/summary.json'))[0]['mAP'] for t in seeds]
print('test mAP per training seed:', ', '.join(f'{t}: {m:.4f}' for t, m in zip(seeds, maps)))
if len(maps) > 1:
    print(f'mean {statistics.mean(maps):.4f}, std {statistics.stdev(maps):.4f}')
PY
