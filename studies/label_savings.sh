#!/usr/bin/env bash
# The label-savings studies of docs/studies.md, one set at a time, through tools/al_study.py.
# Resumable: rerun the same command; finished runs are kept. Each seed writes its own report
# (<report>_seed<N>.md), then the whole study (<report>.md).
#   bccd, aquarium, spread: the screen (40 -> 80 images; ROUNDS=3: -> 120, the full study)
#   fruit: 200 -> 800 images in 4 rounds (the config's own schedule)
#   [ROUNDS=N] [STRATEGIES="..."] studies/label_savings.sh bccd|aquarium|spread|fruit [WORK] [SEEDS...]
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
SET=${1:?bccd, aquarium, spread or fruit}
W=${2:-work_dirs/label_savings/$SET}
shift $(( $# >= 2 ? 2 : 1 ))
if [ $# -gt 0 ]; then SEEDS=("$@"); else SEEDS=(0 1 2 3 4 5); fi
PY=${PYTHON:-.venv/bin/python}
SIZE=(--initial 40 --budget 40)
STRATEGIES=${STRATEGIES:-random entropy dcus isal}
ROUNDS=${ROUNDS:-2}
case "$SET" in
  bccd) CFG=configs/isal_retinanet_efflite_bccd.py ;;
  aquarium) CFG=configs/isal_retinanet_efflite_aquarium.py ;;
  spread) CFG=configs/isal_retinanet_efflite_spread.py
          "$PY" tools/make_synthetic.py data/synthetic_spread --num-images 360 --seed 0 \
            --objects 0 20 --obj-size 16 64 --class-weights 1 1 0.1 ;;
  fruit) CFG=configs/isal_retinanet_efflite_fruit.py; SIZE=(--initial 200 --budget 200)
         ROUNDS=${ROUNDS_FRUIT:-4}; STRATEGIES=${STRATEGIES_FRUIT:-random entropy dcus isal isal-paper} ;;
  *) echo "unknown set $SET" >&2; exit 2 ;;
esac
name() { if [ "$1" = 2 ]; then echo screen; else echo study; fi; }  # a report per round count
for seed in "${SEEDS[@]}"; do
  # shellcheck disable=SC2086
  "$PY" tools/al_study.py "$CFG" --work-dir "$W" --rounds "$ROUNDS" "${SIZE[@]}" \
    --strategies $STRATEGIES --seeds "$seed" --report "$(name "$ROUNDS")_seed$seed"
done
# shellcheck disable=SC2086
"$PY" tools/al_study.py "$CFG" --work-dir "$W" --rounds "$ROUNDS" "${SIZE[@]}" \
  --strategies $STRATEGIES --seeds "${SEEDS[@]}" --analyse-only --report "$(name "$ROUNDS")"
