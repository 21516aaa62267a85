"""The detector checks of benchmarks/gpu_check.sh on the tiny RetinaNet; prints one JSON line.

    python benchmarks/gpu_detector.py REPO_ROOT [cuda|cpu]

On ``cuda``: focal-loss double backward (an HVP) there against the CPU, every tensor we
create on the model's device, the exact Fisher solve against CG, and whole ISAL and ESI
selections. ``cpu`` runs the same code on the CPU (the dry run: the comparisons are then
CPU against CPU)."""
import json
import sys
import tempfile

import torch

sys.path.insert(0, sys.argv[1] + '/tests')
from conftest import build_detector, voc_dataset  # noqa: E402
from isal_mmdet.demo.synthetic import make_synthetic  # noqa: E402
from isal_mmdet.detection import DetectionObjective, detector_param_groups  # noqa: E402
from isal_mmdet.influence import (CG, Curvature, Woodbury, hvp, influence_mode,  # noqa: E402
                                  influence_scores, summed_gradient)

DEV = sys.argv[2] if len(sys.argv) > 2 else 'cuda'
assert DEV == 'cpu' or torch.cuda.is_available(), 'no CUDA device'
out = dict(device=DEV, torch=torch.__version__, cuda=torch.version.cuda,
           gpu=torch.cuda.get_device_name(0) if DEV == 'cuda' else None,
           gpus=torch.cuda.device_count())
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
for dev in ('cpu', DEV):
    model = build_detector('retinanet').to(dev)
    groups = detector_param_groups(model)
    g = torch.Generator().manual_seed(0)
    vec = groups.wrap([torch.randn(p.shape, generator=g).to(dev) for p in groups.params()])
    with influence_mode(model, groups):
        hv[dev] = hvp(obj, model, groups, obj.collate(labelled[:2]), vec)
out['hvp_finite'] = bool(torch.isfinite(hv[DEV].flatten()).all())
out['hvp_rel_diff_gpu_vs_cpu'] = rel(hv[DEV], hv['cpu'])
out['hvp_device'] = str(hv[DEV].tensors()[0].device)

# exact Fisher solve and CG on the GPU; every tensor we create lives on the model's device
model = build_detector('retinanet').to(DEV)
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
out['isal_selected'] = sel.selected
out['isal_s_test'] = sel.info['s_test']
esi = select('esi', ctx, 3)
out['esi_selected'] = esi.selected
out['esi_scores_finite'] = all(x == x and abs(x) < float('inf') for x in esi.scores.values())
if DEV == 'cuda':
    out['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
out['ok'] = (out['hvp_finite'] and out['hvp_rel_diff_gpu_vs_cpu'] < 1e-3
             and out['rows_device'].startswith(DEV) and out['s_device'].startswith(DEV)
             and out['woodbury_rel_diff_vs_cg'] < 1e-3 and out['scores_finite']
             and len(sel.selected) == 3 and out['esi_scores_finite'])
print(json.dumps(out, default=str))
