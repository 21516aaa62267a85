#!/usr/bin/env bash
# The CUDA checks that a CPU machine cannot make, in one run of under 8 minutes:
#   1. device: focal-loss double backward (Hessian-vector product) on the GPU against the CPU,
#      the tensors we create (per-sample gradients, s, scores) on the model's device, the
#      exact Fisher solve against CG there, and a whole ISAL selection on the GPU;
#   2. nccl: with two GPUs, the exact Fisher solve in 2 NCCL processes against 1 process;
#   3. pytest: the solver, feature-cache and per-image-loss tests (CPU tensors, CUDA builds);
#   4. speed: benchmarks/selection_speed.py --parts fisher --device cuda (CG 30 vs woodbury).
# Writes one JSON ({step: {rc, seconds, result or log tail}}) to $1, else $OUT/gpu_check.json,
# else ./gpu_check.json. Needs a Python with torch (CUDA), mmcv, mmdet and this repository
# (PYTHON=..., default python3), run from anywhere. Each step has its own timeout; a failing
# step is recorded and the next one runs.
set -u
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
DEST="${1:-${OUT:-.}/gpu_check.json}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$(dirname "$DEST")"

# run_step NAME TIMEOUT_S CMD...: log to $WORK/NAME.log, rc and milliseconds to $WORK/NAME.meta
run_step() {
    local name="$1" limit="$2"
    shift 2
    local start rc
    start=$(date +%s%N)
    echo "== $name (timeout ${limit}s)" >&2
    timeout -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    echo "$rc $(( ($(date +%s%N) - start) / 1000000 ))" >"$WORK/$name.meta"
    tail -n 5 "$WORK/$name.log" >&2
}

cat >"$WORK/device.py" <<'EOF'
"""GPU device checks on the tiny RetinaNet; prints one JSON line."""
import json
import sys
import tempfile

import torch

sys.path.insert(0, sys.argv[1] + '/tests')
from conftest import build_detector, voc_dataset  # noqa: E402
from isal_mmdet.datasets.synthetic import make_synthetic  # noqa: E402
from isal_mmdet.detection import DetectionObjective, detector_param_groups  # noqa: E402
from isal_mmdet.influence import (CG, Curvature, Woodbury, hvp, influence_mode,  # noqa: E402
                                  influence_scores, summed_gradient)

assert torch.cuda.is_available(), 'no CUDA device'
out = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__,
           cuda=torch.version.cuda, gpus=torch.cuda.device_count())
root = tempfile.mkdtemp() + '/voc'
make_synthetic(root, num_images=40, seed=0, fmt='voc')
train = voc_dataset(root, 'train')
labelled = [train[i] for i in range(8)]
obj = DetectionObjective(seed=0)


def rel(a, b):
    return float((a.flatten().double().cpu() - b.flatten().double().cpu()).norm()
                 / b.flatten().double().cpu().norm())


# focal-loss double backward: the Hessian-vector product on GPU equals the CPU one
hv = {}
for dev in ('cpu', 'cuda'):
    model = build_detector('retinanet').to(dev)
    groups = detector_param_groups(model)
    g = torch.Generator().manual_seed(0)
    vec = groups.wrap([torch.randn(p.shape, generator=g).to(dev) for p in groups.params()])
    with influence_mode(model, groups):
        hv[dev] = hvp(obj, model, groups, obj.collate(labelled[:2]), vec)
out['hvp_finite'] = bool(torch.isfinite(hv['cuda'].flatten()).all())
out['hvp_rel_diff_gpu_vs_cpu'] = rel(hv['cuda'], hv['cpu'])
out['hvp_device'] = str(hv['cuda'].tensors()[0].device)

# exact Fisher solve and CG on the GPU; every tensor we create lives on the model's device
model = build_detector('retinanet').cuda()
groups = detector_param_groups(model)
v = summed_gradient(obj, model, groups, [obj.collate([train[i] for i in range(8, 12)])])
curv = Curvature(obj, model, groups, labelled, kind='fisher')
with influence_mode(model, groups):
    rows = curv.gradient_rows(list(range(len(labelled))), 4)
s, info = Woodbury(batch_size=4).solve(v, curv)
s_cg, cg_info = CG(max_iter=50, tol=1e-7, batch_size=4).solve(v, curv)
scores = influence_scores(obj, model, groups, s, [obj.collate([train[i] for i in range(12, 16)])])
out.update(rows_device=str(rows.device), rows_dtype=str(rows.dtype),
           s_device=str(s.tensors()[0].device), v_device=str(v.tensors()[0].device),
           woodbury=info.as_dict(), cg_relative_residual=cg_info.extra['relative_residual'],
           woodbury_rel_diff_vs_cg=rel(s, s_cg),
           scores_finite=all(map(lambda x: x == x and abs(x) < float('inf'), scores.values())))

# a whole ISAL selection (default solver) on the GPU
from isal_mmdet.al.selection import select  # noqa: E402
from isal_mmdet.al.strategies import SelectionContext  # noqa: E402
from isal_mmdet.datasets.al_subset import ActiveSubset  # noqa: E402
ids = [train.get_data_info(i)['img_id'] for i in range(len(train))]
ctx = SelectionContext(model=model, pool=ActiveSubset(train, ids=ids[:8], invert=True),
                       labelled=ActiveSubset(train, ids=ids[:8]),
                       reference=voc_dataset(root, 'val'), batch_size=4, progress=False)
sel = select('isal', ctx, 3)
out['isal_selected'] = sel['selected']
out['isal_s_test'] = sel['info']['s_test']
out['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
out['ok'] = (out['hvp_finite'] and out['hvp_rel_diff_gpu_vs_cpu'] < 1e-3
             and out['rows_device'].startswith('cuda') and out['s_device'].startswith('cuda')
             and out['woodbury_rel_diff_vs_cg'] < 1e-3 and out['scores_finite']
             and len(sel['selected']) == 3)
print(json.dumps(out, default=str))
EOF

cat >"$WORK/nccl.py" <<'EOF'
"""torchrun --nproc_per_node=2: the exact Fisher solve with NCCL on the tiny RetinaNet equals
the one-process solve (saved by rank 0 beforehand in argv[2])."""
import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, sys.argv[1] + '/tests')
from conftest import build_detector, voc_dataset  # noqa: E402
from isal_mmdet.detection import DetectionObjective, detector_param_groups  # noqa: E402
from isal_mmdet.influence import Curvature, Woodbury, summed_gradient  # noqa: E402

root, ref_file = sys.argv[2], sys.argv[3]
distributed = 'RANK' in os.environ
if distributed:
    dist.init_process_group('nccl')
    torch.cuda.set_device(dist.get_rank())
rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
train = voc_dataset(root, 'train')
obj = DetectionObjective(seed=0)
model = build_detector('retinanet').cuda()
groups = detector_param_groups(model)
ref = [train[i] for i in range(8, 12)][rank::world]
v = summed_gradient(obj, model, groups, [obj.collate(ref)])
s, info = Woodbury(batch_size=2).solve(
    v, Curvature(obj, model, groups, [train[i] for i in range(8)], kind='fisher'))
flat = s.flatten().double().cpu()
if not distributed:
    torch.save(flat, ref_file)
else:
    one = torch.load(ref_file)
    diff = float((flat - one).norm() / one.norm())
    if rank == 0:
        print(json.dumps(dict(world=world, rel_diff_vs_one_process=diff, ok=diff < 1e-5,
                              info=info.as_dict())))
    dist.destroy_process_group()
EOF

GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
echo "GPUs: $GPUS" >&2

run_step device 110 "$PY" "$WORK/device.py" "$ROOT"

if [ "$GPUS" -ge 2 ]; then
    run_step nccl 80 bash -c '
        set -u
        "$1" -c "from isal_mmdet.datasets.synthetic import make_synthetic as m; m(\"$2/voc\", num_images=20, seed=0, fmt=\"voc\")" &&
        "$1" "$3" "$4" "$2/voc" "$2/one.pt" &&
        "$1" -m torch.distributed.run --nproc_per_node=2 --master_port=29533 "$3" "$4" "$2/voc" "$2/one.pt"
    ' _ "$PY" "$WORK" "$WORK/nccl.py" "$ROOT"
else
    echo "skipped: $GPUS GPU(s), the NCCL check needs 2" >"$WORK/nccl.log"
    echo "skipped 0" >"$WORK/nccl.meta"
fi

run_step pytest 110 bash -c '
    cd "$1" && "$2" -m pytest -q -p no:cacheprovider tests/test_fisher_exact.py \
        tests/test_feature_cache.py &&
    "$2" -m pytest -q -p no:cacheprovider tests/test_detection_uuic.py \
        -k "per_image_loss or batched_influence"
' _ "$ROOT" "$PY"

run_step speed 120 "$PY" "$ROOT/benchmarks/selection_speed.py" --parts fisher --device cuda \
    --train-iters 60 --data-root "$WORK/bench" --out "$WORK/speed.json"

"$PY" - "$WORK" "$DEST" <<'EOF'
import json
import os
import sys

work, dest = sys.argv[1], sys.argv[2]
report = {}
for name in ('device', 'nccl', 'pytest', 'speed'):
    rc, ms = open(os.path.join(work, name + '.meta')).read().split()
    log = open(os.path.join(work, name + '.log'), errors='replace').read()
    entry = dict(rc=rc if rc == 'skipped' else int(rc), seconds=int(ms) / 1000)
    lines = [ln for ln in log.splitlines() if ln.startswith('{')]
    if name == 'speed' and os.path.exists(os.path.join(work, 'speed.json')):
        entry['result'] = json.load(open(os.path.join(work, 'speed.json')))
    elif lines and name in ('device', 'nccl'):
        entry['result'] = json.loads(lines[-1])
    if entry['rc'] not in (0, 'skipped') or 'result' not in entry:
        entry['log_tail'] = log[-3000:]
    report[name] = entry
with open(dest, 'w') as f:
    json.dump(report, f, indent=1, default=str)
print(json.dumps({k: v['rc'] for k, v in report.items()}))
EOF
echo "wrote $DEST" >&2
