#!/usr/bin/env bash
# The label-savings screen of docs/benchmarks.md: every candidate through one selection step
# (the same round-0 model per seed, one selection, one training round), paired over seeds,
# on one set. Resumable: rerun the same command; finished runs are kept, and each seed writes
# its own partial report (screen_seed<N>.md), then the whole screen (screen.md).
# ROUNDS=3 turns the screen into the full study in the same work dir: round 0 and the first
# selection are the screen's, so each strategy x seed adds one round (study_seed<N>.md,
# study.md), and screen.md is still written from the first two rounds.
#   [ROUNDS=2|3] [STRATEGIES="..."] benchmarks/label_savings.sh bccd|aquarium|spread [WORK] [SEEDS...]
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
SET=${1:?bccd, aquarium or spread}
W=${2:-work_dirs/label_savings/$SET}
shift $(( $# >= 2 ? 2 : 1 ))
if [ $# -gt 0 ]; then SEEDS=("$@"); else SEEDS=(0 1 2 3 4 5); fi
PY=${PYTHON:-.venv/bin/python}
case "$SET" in
  bccd) CFG=configs/isal_retinanet_efflite_bccd.py ;;
  aquarium) CFG=configs/isal_retinanet_efflite_aquarium.py ;;
  spread) CFG=configs/isal_retinanet_efflite_spread.py
          "$PY" tools/make_synthetic.py data/synthetic_spread --num-images 360 --seed 0 \
            --objects 0 20 --obj-size 16 64 --class-weights 1 1 0.1 ;;
  *) echo "unknown set $SET" >&2; exit 2 ;;
esac
STRATEGIES=${STRATEGIES:-random entropy esi}
ROUNDS=${ROUNDS:-2}
report() { if [ "$1" = 2 ]; then echo screen; else echo study; fi; }  # a report per round count
for seed in "${SEEDS[@]}"; do
  # shellcheck disable=SC2086
  "$PY" benchmarks/al_quality.py "$CFG" --work-dir "$W" --rounds "$ROUNDS" --initial 40 \
    --budget 40 --strategies $STRATEGIES --seeds "$seed" --report "$(report "$ROUNDS")_seed$seed"
done
for r in $(printf '%s\n' 2 "$ROUNDS" | sort -u); do  # the screen, then the study (ROUNDS>2)
  # shellcheck disable=SC2086
  "$PY" benchmarks/al_quality.py "$CFG" --work-dir "$W" --rounds "$r" --initial 40 \
    --budget 40 --strategies $STRATEGIES --seeds "${SEEDS[@]}" --analyse-only \
    --report "$(report "$r")"
done
