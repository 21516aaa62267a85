#!/usr/bin/env bash
# The checks a CPU machine cannot make, in stages, for a bare CUDA machine (torch + nvcc, no
# mmcv/mmengine/mmdet, no downloads), in one run of at most BUDGET_S seconds (default 500):
#   benchmarks/gpu_check.sh [--cpu] [DEST]
#
#   core    torch only (benchmarks/gpu_core.py): every solver against the explicit solve, the
#           exact Fisher solve in float64 on the device, batched gradients and scores against
#           batch 1, the batched/batch-1 speed ratio (goal >= 5x), peak memory;
#   wheels  a venv over the machine's torch with the wheels of benchmarks/gpu_wheels.sh
#           (carried in benchmarks/wheels, installed --no-index); records which imports the
#           machine still lacks;
#   mmcv    mmcv 2.1.0 built there with its CUDA ops for this GPU's architecture only
#           (TORCH_CUDA_ARCH_LIST, MAX_JOBS=16); its error tail is recorded on failure;
#   device, nccl (2 GPUs), pytest, speed: the detector checks (benchmarks/gpu_detector.py,
#           gpu_nccl.py, three test files, selection_speed.py --parts fisher), skipped, not
#           failed, when mmcv or mmdet is missing.
#
# --cpu is the dry run on this machine: every stage on the CPU, the project's .venv for the
# detector stages, wheels and mmcv skipped. Each stage has its own time cap and a stage that
# would overrun the budget is skipped (--cpu: caps and budget x5). Writes one JSON
# ({target: cuda|cpu, stage: {rc, seconds, result or log_tail or skipped}}) to DEST, else
# $OUT/gpu_check.json, else ./gpu_check.json.
set -u
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE=cuda
if [ "${1:-}" = "--cpu" ]; then
    DEVICE=cpu
    shift
fi
DEST="${1:-${OUT:-.}/gpu_check.json}"
# the CPU dry run is slower than a GPU: its caps are SCALE times the GPU ones
SCALE=1
[ "$DEVICE" = cpu ] && SCALE=5
BUDGET_S="${BUDGET_S:-$(( 500 * SCALE ))}"
WHEELS="${WHEELS:-$ROOT/benchmarks/wheels}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$(dirname "$DEST")"
T0=$(date +%s)
if [ "$DEVICE" = cpu ]; then
    PY="${PYTHON:-$ROOT/.venv/bin/python}"
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
    PY="${PYTHON:-python3}"
fi
DPY="$PY"   # the Python of the detector stages (the wheels venv on a GPU machine)

skip() {  # skip NAME REASON
    echo "$2" >"$WORK/$1.log"
    echo "skipped 0" >"$WORK/$1.meta"
    echo "== $1 skipped: $2" >&2
}

# run_step NAME CAP_S CMD...: log to $WORK/NAME.log, rc and milliseconds to $WORK/NAME.meta;
# skipped when CAP_S would overrun BUDGET_S
run_step() {
    local name="$1" limit=$(( $2 * SCALE ))
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - T0) ))
    if [ "$left" -lt "$limit" ]; then
        skip "$name" "budget: ${left}s left of ${BUDGET_S}s, the stage may take ${limit}s"
        return 1
    fi
    local start rc
    start=$(date +%s%N)
    echo "== $name (cap ${limit}s)" >&2
    timeout -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    echo "$rc $(( ($(date +%s%N) - start) / 1000000 ))" >"$WORK/$name.meta"
    tail -n 3 "$WORK/$name.log" >&2
    return $rc
}

run_step core 90 "$PY" "$ROOT/benchmarks/gpu_core.py" --device "$DEVICE" \
    --out "$WORK/core.json"

detector=yes
if [ "$DEVICE" = cpu ]; then
    skip wheels "--cpu: the project's .venv is used"
    skip mmcv "--cpu: the project's .venv has mmcv"
elif [ ! -d "$WHEELS" ]; then
    skip wheels "no $WHEELS: run benchmarks/gpu_wheels.sh here and carry it"
    skip mmcv "no wheels"
    detector="no: no wheels"
else
    run_step wheels 90 bash -c '
        set -eu
        "$1" -m venv --system-site-packages "$2/venv"
        "$2/venv/bin/python" -m pip install -q --no-index --no-deps $(ls "$3"/*.whl)
        "$2/venv/bin/python" - <<PYEOF
import importlib, json
missing = []
for name in ("numpy", "yaml", "cv2", "matplotlib", "scipy", "pycocotools", "shapely",
             "mmengine", "mmdet"):
    try:
        importlib.import_module(name)
    except Exception as e:
        missing.append(f"{name}: {type(e).__name__}: {e}")
print(json.dumps(dict(missing=missing)))
PYEOF
    ' _ "$PY" "$WORK" "$WHEELS"
    DPY="$WORK/venv/bin/python"
    ARCH=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')
    if run_step mmcv 300 env MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" \
            MAX_JOBS=16 "$DPY" -m pip install -q --no-build-isolation --no-index --no-deps \
            "$WHEELS"/mmcv-2.1.0.tar.gz; then
        run_step mmcv_ops 60 "$DPY" -c '
import json, torch
from mmcv.ops import nms
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
_, keep = nms(boxes.cuda(), torch.tensor([0.9, 0.8, 0.7]).cuda(), 0.5)
print(json.dumps(dict(nms_keep=keep.tolist(), ok=keep.tolist() == [0, 2])))' || true
    else
        detector="no: mmcv did not build (see mmcv.log_tail)"
    fi
fi
if [ "$detector" = yes ] && ! "$DPY" -c 'import mmcv, mmdet, mmengine' >/dev/null 2>&1; then
    detector="no: $("$DPY" -c 'import mmcv, mmdet, mmengine' 2>&1 | tail -n 1)"
fi

if [ "$detector" = yes ]; then
    run_step device 120 "$DPY" "$ROOT/benchmarks/gpu_detector.py" "$ROOT" "$DEVICE"
    GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
    if [ "$DEVICE" = cuda ] && [ "$GPUS" -ge 2 ]; then
        run_step nccl 80 bash -c '
            set -u
            "$1" -c "from isal_mmdet.demo.synthetic import make_synthetic as m; m(\"$2/voc\", num_images=20, seed=0, fmt=\"voc\")" &&
            "$1" "$3" "$4" "$2/voc" "$2/one.pt" &&
            "$1" -m torch.distributed.run --nproc_per_node=2 --master_port=29533 "$3" "$4" "$2/voc" "$2/one.pt"
        ' _ "$DPY" "$WORK" "$ROOT/benchmarks/gpu_nccl.py" "$ROOT"
    else
        skip nccl "$GPUS GPU(s) on $DEVICE: the NCCL check needs 2"
    fi
    run_step pytest 120 bash -c '
        cd "$1" && "$2" -m pytest -q -p no:cacheprovider tests/test_fisher_exact.py \
            tests/test_feature_cache.py tests/test_esi.py &&
        "$2" -m pytest -q -p no:cacheprovider tests/test_detection_uuic.py \
            -k "per_image_loss or batched_influence"
    ' _ "$ROOT" "$DPY"
    run_step speed 120 "$DPY" "$ROOT/benchmarks/selection_speed.py" --parts fisher \
        --device "$DEVICE" --train-iters 60 --data-root "$WORK/bench" --out "$WORK/speed.json"
else
    for name in device nccl pytest speed; do skip "$name" "detector stages: $detector"; done
fi

"$PY" - "$WORK" "$DEST" "$DEVICE" <<'EOF'
import json
import os
import sys

work, dest, device = sys.argv[1:4]
report = dict(target=device)
for name in ('core', 'wheels', 'mmcv', 'mmcv_ops', 'device', 'nccl', 'pytest', 'speed'):
    meta = os.path.join(work, name + '.meta')
    if not os.path.exists(meta):
        continue
    rc, ms = open(meta).read().split()
    log = open(os.path.join(work, name + '.log'), errors='replace').read()
    if rc == 'skipped':
        report[name] = dict(rc='skipped', skipped=log.strip())
        continue
    entry = dict(rc=int(rc), seconds=int(ms) / 1000)
    lines = [ln for ln in log.splitlines() if ln.startswith('{')]
    result_file = os.path.join(work, {'speed': 'speed.json', 'core': 'core.json'}.get(name, '-'))
    if os.path.exists(result_file):
        entry['result'] = json.load(open(result_file))
    elif lines:
        entry['result'] = json.loads(lines[-1])
    if entry['rc'] != 0 or 'result' not in entry:
        entry['log_tail'] = log[-3000:]
    report[name] = entry
with open(dest, 'w') as f:  # the device's own python, without isal_mmdet
    json.dump(report, f, indent=1, default=str)
print(json.dumps({k: v['rc'] for k, v in report.items() if isinstance(v, dict)}))
EOF
echo "wrote $DEST" >&2
