"""The influence core on one device, torch only: the first stage of benchmarks/gpu_check.sh.

    python benchmarks/gpu_core.py [--device cuda|cpu] [--speed-samples 1024] [--out F]

Runs without mmcv, mmengine or mmdet (``isal_mmdet.influence`` imports none of them; the
package's own ``__init__``, which registers mmdet components, is not run). Checks, on small
models with explicit references computed on the CPU in float64:

- every solver (exact, CG, LiSSA, Woodbury, identity) against ``torch.linalg.solve``;
- the exact Fisher solve's per-sample gradient rows are float64 on the device;
- batched per-sample gradients and influence scores (pseudo labels: the model's own
  predictions, as UUIC) against a batch-1 autograd loop;
- batched influence against the batch-1 loop in time (the P2 ratio; goal >= 5x);
- peak device memory.

Prints one JSON object (and writes it to ``--out``); ``ok`` is true when every check passed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os.path as osp
import sys
import time
import types

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_core():
    """``isal_mmdet.influence`` without running ``isal_mmdet/__init__`` (which needs mmdet)."""
    if 'isal_mmdet' not in sys.modules:
        pkg = types.ModuleType('isal_mmdet')
        pkg.__path__ = [osp.join(ROOT, 'isal_mmdet')]
        sys.modules['isal_mmdet'] = pkg
    sys.path.insert(0, osp.join(ROOT, 'tests'))
    return importlib.import_module('isal_mmdet.influence'), importlib.import_module('toy')


def _rel(a, b) -> float:
    a, b = a.flatten().double().cpu(), b.flatten().double().cpu()
    return float((a - b).norm() / b.norm())


def run(device: str = 'cuda', speed_samples: int = 1024) -> dict:
    import torch
    core, toy = load_core()
    dev = torch.device(device)
    out = dict(device=device, torch=torch.__version__, cuda=torch.version.cuda)
    if dev.type == 'cuda':
        out['gpu'] = torch.cuda.get_device_name(dev)
        torch.cuda.reset_peak_memory_stats(dev)

    def on_dev(samples):
        return [(i, x.to(dev), y.to(dev)) for i, x, y in samples]

    # -- solvers against the explicit damped inverse (MLP, float64) -------------------------
    obj = toy.TensorObjective()
    data = toy.make_data(60, seed=0)
    model = toy.fit(toy.mlp(seed=0), obj, data, weight_decay=1e-2)
    groups = core.ParamGroups.from_patterns(model, {'h': r'^0\.', 'o': r'^2\.'})
    # the references, on the CPU before the model moves (.to keeps the parameter objects)
    h_cpu = toy.explicit_hessian(model, obj, data, groups.params())
    g_rows = torch.stack([core.loss_grad(obj, model, groups, obj.collate([smp])).flatten()
                          for smp in data])
    model.to(dev)
    data_d = on_dev(data)
    v = core.summed_gradient(obj, model, groups, [obj.collate(on_dev(toy.make_data(10, seed=7)))])
    vf = v.flatten().double().cpu()
    damp = 0.05
    eye = torch.eye(len(vf), dtype=torch.float64)
    want_h = torch.linalg.solve(h_cpu + damp * eye, vf)
    want_f = torch.linalg.solve(g_rows.T @ g_rows / len(data) + damp * eye, vf)
    curv_h = core.Curvature(obj, model, groups, data_d)
    curv_f = core.Curvature(obj, model, groups, data_d, kind='fisher')
    solves = {}
    s, _ = core.Exact(damp=damp).solve(v, curv_h)
    solves['exact'] = _rel(s, want_h)
    s, info = core.CG(damp=damp, max_iter=200, tol=1e-12).solve(v, curv_h)
    solves['cg'] = _rel(s, want_h)
    lam = float(torch.linalg.eigvalsh(h_cpu)[-1])
    s, info = core.LiSSA(scales={'h': 1.5 * lam, 'o': 1.5 * lam}, damp=damp / (1.5 * lam),
                         depth=3000, batch_size=len(data), divide_by_scale=True).solve(v, curv_h)
    solves['lissa'] = _rel(s, want_h)
    s, info = core.Woodbury(damp=damp, num_samples=None, batch_size=16).solve(v, curv_f)
    solves['woodbury_fisher'] = _rel(s, want_f)
    s_cg, _ = core.CG(damp=damp, max_iter=300, tol=1e-13).solve(v, curv_f)
    solves['cg_fisher'] = _rel(s_cg, want_f)
    s, _ = core.build_solver('identity').solve(v, curv_h)
    solves['identity'] = _rel(s, vf)
    out['solver_rel_err'] = solves
    out['s_device'] = str(s.tensors()[0].device)
    with core.influence_mode(model, groups):
        rows = curv_f.gradient_rows(list(range(8)), 4)
    out['fisher_rows'] = dict(device=str(rows.device), dtype=str(rows.dtype))

    # -- batched per-sample gradients and scores against batch 1 ----------------------------
    probe = core.GroupVector({k: [torch.randn(t.shape, dtype=t.dtype, generator=torch.Generator(
        ).manual_seed(3)).to(dev) for t in ts] for k, ts in v.data.items()})
    batches = [obj.collate(data_d[k:k + 16]) for k in range(0, len(data_d), 16)]
    got = core.influence_scores(obj, model, groups, probe, batches)
    with core.influence_mode(model, groups):
        one = [core.loss_grad(obj, model, groups, obj.collate([smp]), pseudo=True)
               for smp in data_d]
        rows16 = core.per_sample_grads(obj, model, groups, obj.collate(data_d[:16]),
                                       pseudo=True)
    want = {smp[0]: -g.dot(probe) for smp, g in zip(data_d, one)}
    out['scores_vs_batch1_max_rel'] = max(abs(got[i] - w) / max(abs(w), 1e-12)
                                          for i, w in want.items())
    out['grads_vs_batch1_max_rel'] = max(_rel(r, g.flatten()) for r, g in zip(rows16, one))

    # -- the P2 ratio: batched influence against the batch-1 loop, side by side -------------
    torch.manual_seed(0)
    big = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(),
                              torch.nn.Linear(256, 10)).to(dev)
    big_groups = core.ParamGroups.from_patterns(big, {'o': r'^2\.'})
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(speed_samples, 64, generator=gen)
    ys = torch.randint(0, 10, (speed_samples,), generator=gen)
    samples = [(i, xs[i].to(dev), ys[i].to(dev)) for i in range(speed_samples)]
    s_big = big_groups.wrap([torch.randn_like(p) for p in big_groups.params()])

    def sync():
        if dev.type == 'cuda':
            torch.cuda.synchronize(dev)

    def batched():
        bs = [obj.collate(samples[k:k + 256]) for k in range(0, len(samples), 256)]
        return core.influence_scores(obj, big, big_groups, s_big, bs)

    def loop():
        with core.influence_mode(big, big_groups):
            return {smp[0]: -core.loss_grad(obj, big, big_groups, obj.collate([smp]),
                                           pseudo=True).dot(s_big) for smp in samples}
    timings, results = {}, {}
    for name, fn in (('batched', batched), ('batch1', loop), ('batched_again', batched)):
        sync()
        start = time.perf_counter()
        results[name] = fn()
        sync()
        timings[name] = time.perf_counter() - start
    fast = min(timings['batched'], timings['batched_again'])
    out['speed'] = dict(samples=speed_samples, batched_s=fast, batch1_s=timings['batch1'],
                        ratio=timings['batch1'] / fast, goal_5x=timings['batch1'] / fast >= 5,
                        max_rel_diff=max(abs(results['batched'][i] - w) / max(abs(w), 1e-12)
                                         for i, w in results['batch1'].items()))
    if dev.type == 'cuda':
        out['peak_memory_mb'] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    tol = 1e-6
    out['ok'] = bool(all(e < tol for k, e in solves.items() if k != 'lissa')
                     and solves['lissa'] < 1e-4
                     and out['fisher_rows']['dtype'] == 'torch.float64'
                     and out['fisher_rows']['device'].startswith(dev.type)
                     and out['s_device'].startswith(dev.type)
                     and out['scores_vs_batch1_max_rel'] < 1e-6
                     and out['grads_vs_batch1_max_rel'] < 1e-6
                     and out['speed']['max_rel_diff'] < 1e-3)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda')
    p.add_argument('--speed-samples', type=int, default=1024)
    p.add_argument('--out')
    args = p.parse_args(argv)
    out = run(args.device, args.speed_samples)
    text = json.dumps(out, default=str)
    if args.out:  # a plain write: this stage runs on torch alone, without isal_mmdet
        with open(args.out, 'w') as f:
            f.write(text)
    print(text)
    return 0 if out['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
