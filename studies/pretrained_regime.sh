#!/usr/bin/env bash
# The pretrained-regime study of docs/studies.md, in the order it was run; every step is
# resumable (rerun the script: finished rounds and diagnostics are kept).
#   studies/pretrained_regime.sh [WORK=work_dirs/pretrained]
set -euo pipefail
# one thread: two-thread OpenMP on a busy 2-core machine runs 10x slower, not 2x faster
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
W=${1:-work_dirs/pretrained}
PY=${PYTHON:-.venv/bin/python}
CFG=configs/isal_retinanet_efflite_bccd.py
# 1. training noise: the same 40 labelled images, three training seeds
for t in 0 1 2; do
  [ -f "$W/noise/train_seed$t/round_0/metrics.json" ] || "$PY" tools/al_train.py "$CFG" \
    --work-dir "$W/noise/train_seed$t" --cfg-options active_learning.rounds=1 randomness.seed=$t
done
# 2. what ISAL prefers on each round-0 checkpoint, and the terms of its score
for t in 0 1 2; do
  out="$W/diagnostics_round0_seed$t.json"
  [ -f "$out" ] || "$PY" studies/isal_diagnostics.py "$CFG" \
    --work-dir "$W/noise/train_seed$t" --out "$out"
done
# 2b. the pseudo-label threshold, on the same checkpoints
for t in 0 1; do
  out="$W/diagnostics_round0_seed${t}_thr.json"
  [ -f "$out" ] || "$PY" studies/isal_diagnostics.py "$CFG" --variants isal-thr0.3 \
    isal-thr0.5 isal-fixed-thr0.5 --work-dir "$W/noise/train_seed$t" --out "$out"
done
# 3. the paired study, seed by seed (partial results: --analyse-only --seeds ...); the fixed
#    normaliser ran on seed 0 only, the paper mode (Hessian + LiSSA) after the others
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" --report partial_seed0 \
  --strategies isal random isal-fixed entropy --seeds 0 --rounds 4
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" \
  --strategies isal random entropy isal-paper --seeds 1 2 0 --rounds 4
# 4. Fisher against Hessian on one round-0 checkpoint: picks of the default, the paper's LiSSA
#    and CG on the Hessian, their agreement, and both ends of each θ group's spectrum
out="$W/diagnostics_round0_seed0_curvature.json"
[ -f "$out" ] || "$PY" studies/isal_diagnostics.py "$CFG" --work-dir "$W/noise/train_seed0" \
  --variants isal isal-paper isal-cg --no-terms --spectrum --out "$out"
# 5. a synthetic set with 0-20 objects per image and a rare class: round 0, then what each
#    strategy prefers there
"$PY" tools/make_synthetic.py data/synthetic_spread --num-images 360 --seed 0 --objects 0 20 \
  --obj-size 16 64 --class-weights 1 1 0.1
SPREAD=configs/isal_retinanet_efflite_spread.py
[ -f "$W/spread/round_0/metrics.json" ] || "$PY" tools/al_train.py "$SPREAD" \
  --work-dir "$W/spread" --cfg-options active_learning.rounds=1
out="$W/spread_diagnostics_round0.json"
[ -f "$out" ] || "$PY" studies/isal_diagnostics.py "$SPREAD" --work-dir "$W/spread" \
  --variants isal isal-fixed grad_similarity entropy isal-thr0.5 --spectrum --out "$out"
# 6. the spread set's paired study: three seeds, two selection rounds (seed 0's first round
#    ran first, as a one-seed look)
"$PY" tools/al_study.py "$SPREAD" --work-dir "$W/spread_study" --report study_3seeds \
  --strategies isal isal-fixed random entropy --seeds 0 1 2 --rounds 3
# 7. the default exact Fisher solve against the former default (CG, 30 iterations)
out="$W/diagnostics_round0_seed0_woodbury_vs_cg.json"
[ -f "$out" ] || "$PY" studies/isal_diagnostics.py "$CFG" --work-dir "$W/noise/train_seed0" \
  --variants isal isal-fisher --no-terms --out "$out"
# 8. BCCD again: the fixed normaliser on seeds 1-2, then a fourth seed of the paired study
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" --report fixed_seeds012 \
  --strategies isal random entropy isal-fixed --seeds 0 1 2 --rounds 4
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" --report study_4seeds \
  --strategies isal random entropy isal-fixed isal-paper --seeds 3 0 1 2 --rounds 4
# 9. BCCD, a fifth seed of the main four; least_confidence, coreset and grad_similarity on seeds
#    0-2 (random is resumed, not rerun)
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" --report seed4 \
  --strategies isal random entropy isal-paper --seeds 4 --rounds 4
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" --analyse-only --report study_5seeds \
  --strategies isal random entropy isal-paper --seeds 0 1 2 3 4 --rounds 4
"$PY" tools/al_study.py "$CFG" --work-dir "$W/study" --report others_seeds012 \
  --strategies random least_confidence coreset grad_similarity --seeds 0 1 2 --rounds 4
# 10. the foreground-only reference (reference_terms='foreground') on the spread set: what it
#     prefers on the round-0 checkpoint, then the paired study (the other strategies resume)
out="$W/spread_diagnostics_round0_fgref.json"
[ -f "$out" ] || "$PY" studies/isal_diagnostics.py "$SPREAD" --work-dir "$W/spread" \
  --variants isal isal-fgref isal-fixed-fgref --out "$out"
"$PY" tools/al_study.py "$SPREAD" --work-dir "$W/spread_study" --report study_3seeds_fgref \
  --strategies isal isal-fgref isal-fixed random entropy --seeds 0 1 2 --rounds 3
