"""Selection cost against plain inference, on one model and one pool, in one process.

    python benchmarks/selection_speed.py [--pool 100] [--ref-subset 20] [--device cpu|cuda]
                                         [--out docs/selection_speed.json]
                                         [--parts all|memory|fisher]

Prints JSON with: (a) one plain inference pass over the pool; (b) ISAL end to end (v, s_test,
pseudo labels + per-image influence), and its scoring part alone; (c) the official-style
batch-1 reference (one backward per image) on a subset, extrapolated per image, and its
agreement with (b); (d) the ratios; (e) peak selection memory for N and 10N images, each in
its own process; (f) HVPs and relative error of lissa (paper settings), cg and exact on one
problem with a reduced θ (retina_cls of a narrow head) so that exact is affordable; (g) the
default s_test on the empirical Fisher, CG (30 iterations) against the exact Woodbury solve,
side by side: time, relative difference of s, peak memory of each solve.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'isal_retinanet_demo.py')


def build(args, feat_channels=32):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    import isal_mmdet  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(DEMO)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = args.data_root + '/'
    cfg.model.bbox_head.feat_channels = feat_channels
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.to(args.device)


def train(cfg, model, labelled, iters):
    """A short real training run, so that predictions (and pseudo labels) are meaningful."""
    from mmengine.dataset import pseudo_collate
    from isal_mmdet.datasets.al_subset import ActiveSubset
    from mmdet.registry import DATASETS
    ds = ActiveSubset(DATASETS.build(cfg.train_dataloader.dataset), ids=labelled)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    model.train()
    for it in range(iters):
        for group in opt.param_groups:
            group['lr'] = 0.02 * min(1.0, (it + 1) / 30) * (0.1 if it > 0.8 * iters else 1.0)
        idx = torch.randint(len(ds), (8,), generator=g).tolist()
        data = model.data_preprocessor(pseudo_collate([ds[i] for i in idx]), True)
        losses = model.loss(data['inputs'], data['data_samples'])
        loss = sum(v if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items()
                   if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
        opt.step()
    return model.eval()


def context(cfg, model, labelled, pool_size, batch_size):
    from isal_mmdet.al.context import selection_context
    ctx = selection_context(cfg, model, labelled, 'val', batch_size=batch_size,
                            progress=False)
    ids = ctx.pool.img_ids()[:pool_size]
    from isal_mmdet.datasets.al_subset import ActiveSubset
    ctx.pool = ActiveSubset(ctx.pool.dataset, ids=ids)
    return ctx


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def plain_inference(ctx):
    with torch.no_grad():
        for batch in ctx.loader(ctx.pool, shard=False):
            ctx.model.test_step(batch)


def isal_parts(ctx, solver_cfg, score_thr=0.1):
    from isal_mmdet.detection import DetectionObjective, detector_param_groups
    from isal_mmdet.influence import Curvature, build_solver, influence_scores, summed_gradient
    obj = DetectionObjective(score_thr=score_thr, seed=0)
    groups = detector_param_groups(ctx.model)
    v, t_v = timed(lambda: summed_gradient(obj, ctx.model, groups, ctx.loader(ctx.reference)))
    (s, info), t_s = timed(lambda: build_solver(solver_cfg).solve(
        v, Curvature(obj, ctx.model, groups, ctx.labelled)))
    scores, t_score = timed(lambda: influence_scores(obj, ctx.model, groups, s,
                                                     ctx.loader(ctx.pool)))
    return dict(obj=obj, groups=groups, s=s, scores=scores, info=info.as_dict(),
                seconds=dict(v=t_v, s_test=t_s, scoring=t_score))


def batch1_reference(ctx, parts, n):
    from mmengine.dataset import pseudo_collate
    from isal_mmdet.influence import influence_mode, loss_grad
    obj, groups, s = parts['obj'], parts['groups'], parts['s']
    out = {}
    start = time.perf_counter()
    with influence_mode(ctx.model, groups):
        for i in range(n):
            item = ctx.pool[i]
            g = loss_grad(obj, ctx.model, groups, pseudo_collate([item]), pseudo=True)
            out[item['data_samples'].metainfo['img_id']] = -g.dot(s)
    per_image = (time.perf_counter() - start) / n
    err = max(abs(out[k] - parts['scores'][k]) / max(abs(out[k]), 1e-12) for k in out)
    return per_image, err


class RssSampler:
    """Peak resident memory above the level at entry, sampled every 5 ms (ru_maxrss cannot
    tell: the process peaks earlier, while building the model and datasets)."""

    def __enter__(self):
        self.page = os.sysconf('SC_PAGE_SIZE') / 2 ** 20
        self.start_mb = self.peak_mb = self.current()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def current(self):
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * self.page

    def run(self):
        while not self.stop.wait(0.005):
            self.peak_mb = max(self.peak_mb, self.current())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak_mb = max(self.peak_mb, self.current())
        self.growth_mb = self.peak_mb - self.start_mb


def memory_child(args):
    cfg, model = build(args)
    model.load_state_dict(torch.load(args.weights, weights_only=True))
    model.eval()
    labelled = json.load(open(args.labelled_file))
    ctx = context(cfg, model, labelled, args.pool, args.batch_size)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    with RssSampler() as rss:
        isal_parts(ctx, dict(type='lissa', depth=50, power_iters=5, power_samples=8))
    peak = dict(pool=len(ctx.pool), rss_peak_mb=rss.peak_mb, rss_growth_mb=rss.growth_mb,
                rss_start_mb=rss.start_mb)
    if args.device == 'cuda':
        peak['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(peak))


def solver_comparison(args, cfg, labelled):
    """(f): lissa (paper), cg and exact on one problem, θ = retina_cls of a 4-channel head
    (972 weights), so that the explicit Hessian is affordable; it is built once."""
    from isal_mmdet.al.context import selection_context
    from isal_mmdet.detection import DetectionObjective
    from isal_mmdet.influence import (Curvature, Exact, ParamGroups, build_solver,
                                      influence_mode, summed_gradient)
    _, model = build(args, feat_channels=4)
    model = train(cfg, model, labelled, args.train_iters)
    ctx = selection_context(cfg, model, labelled[:args.hessian_images], 'val', batch_size=8,
                            progress=False)
    obj = DetectionObjective(seed=0)
    groups = ParamGroups.from_patterns(model, {'retina_cls': r'retina_cls'})
    v = summed_gradient(obj, model, groups, ctx.loader(ctx.reference))
    curv = Curvature(obj, model, groups, ctx.labelled)
    damp = 0.01
    exact = Exact(damp=damp, batch_size=8)
    with influence_mode(model, groups):
        hessian, t_exact = timed(lambda: exact.hessian(curv))
    eye = torch.eye(hessian.shape[0], dtype=torch.float64)

    def solve_exact(lam):
        return torch.linalg.solve(hessian + lam * eye, v.flatten().double())

    s_exact = solve_exact(damp)
    rows = dict(exact=dict(num_hvps=curv.num_hvps, operator_applications=groups.numel(),
                           seconds=t_exact, rel_error=0.0,
                           lambda_max=float(torch.linalg.eigvalsh(hessian)[-1])))
    lam = None
    for name, cfg_ in [('cg', dict(type='cg', damp=damp, max_iter=100, tol=1e-8)),
                       ('lissa_paper', dict(type='lissa', damp=damp, depth=1000, batch_size=1,
                                            divide_by_scale=True))]:
        (s, info), t = timed(lambda: build_solver(cfg_).solve(v, curv))
        if name.startswith('lissa'):
            # LiSSA solves (H + damp·scale)⁻¹v: compare with exact at that damping
            scale = info.scales['retina_cls']
            lam = damp * scale
            ref = solve_exact(lam)
        else:
            ref = s_exact
        rows[name] = dict(num_hvps=info.num_hvps, seconds=t,
                          rel_error=float((s.flatten().double() - ref).norm() / ref.norm()),
                          **{k: v_ for k, v_ in info.as_dict().items()
                             if k in ('iterations', 'scales', 'diverged')})
    return dict(theta_params=groups.numel(), hessian_images=len(ctx.labelled),
                lissa_effective_damping=lam, solvers=rows)


def fisher_solves(args, ctx):
    """(g): CG, 30 iterations (the former default; with and without the feature cache) and
    the exact Woodbury solve on the same Fisher system (64 labelled images at most, damp
    0.01), each timed with its peak memory; then the default ISAL end to end (v, woodbury,
    scoring) against plain inference."""
    from isal_mmdet.detection import DetectionObjective, detector_param_groups
    from isal_mmdet.influence import (Curvature, build_solver, influence_scores,
                                      summed_gradient)
    obj = DetectionObjective(seed=0)
    groups = detector_param_groups(ctx.model)
    v, t_v = timed(lambda: summed_gradient(obj, ctx.model, groups, ctx.loader(ctx.reference)))
    rows, sols = {}, {}
    cg = dict(type='cg', max_iter=30, num_samples=64)
    for name, cfg, cache in [('cg_30_no_cache', cg, 0), ('cg_30', cg, obj.cache_bytes),
                             ('woodbury', dict(type='woodbury', num_samples=64), 0),
                             ('woodbury_batch8', dict(type='woodbury', num_samples=64,
                                                      batch_size=8), 0)]:
        curv = Curvature(DetectionObjective(seed=0, cache_bytes=cache), ctx.model, groups,
                         ctx.labelled, kind='fisher')
        if args.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

        def solve():
            out = build_solver(cfg).solve(v, curv)
            if args.device == 'cuda':
                torch.cuda.synchronize()
            return out

        with RssSampler() as rss:
            (s, info), t = timed(solve)
        sols[name] = s
        rows[name] = dict(info.as_dict(), seconds=t, rss_growth_mb=rss.growth_mb,
                          gradients=curv.num_grads, fisher_products=curv.num_hvps)
        if args.device == 'cuda':
            rows[name]['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
    cg, exact = (sols[k].flatten().double() for k in ('cg_30', 'woodbury'))
    diff = (cg - exact).norm() / exact.norm()
    _, t_plain = timed(lambda: plain_inference(ctx))
    _, t_score = timed(lambda: influence_scores(obj, ctx.model, groups, sols['woodbury'],
                                                ctx.loader(ctx.pool)))
    t_default = t_v + rows['woodbury']['seconds'] + t_score
    return dict(theta_params=groups.numel(), pool=len(ctx.pool), labelled=len(ctx.labelled),
                reference=len(ctx.reference), v_seconds=t_v, solves=rows,
                speedup_cg_over_woodbury=rows['cg_30']['seconds'] / rows['woodbury']['seconds'],
                rel_diff_s_cg_vs_woodbury=float(diff), plain_inference_s=t_plain,
                scoring_s=t_score, default_end_to_end_s=t_default,
                ratio_default_over_inference=t_default / t_plain)


def measure_memory(args, model, labelled):
    """(e): selection for N and 10N images, each in a fresh process."""
    tmp = osp.join(args.data_root, '_bench')
    os.makedirs(tmp, exist_ok=True)
    torch.save(model.state_dict(), osp.join(tmp, 'weights.pth'))
    json.dump(labelled, open(osp.join(tmp, 'labelled.json'), 'w'))
    memory = []
    for n in (args.pool, 10 * args.pool):
        out = subprocess.run(
            [sys.executable, __file__, '--memory-child', '--pool', str(n), '--device',
             args.device, '--data-root', args.data_root, '--weights',
             osp.join(tmp, 'weights.pth'), '--batch-size', str(args.batch_size),
             '--labelled-file', osp.join(tmp, 'labelled.json')],
            capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f'memory run for pool {n} failed: {out.stderr[-2000:]}')
        memory.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return memory


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--pool', type=int, default=100)
    p.add_argument('--ref-subset', type=int, default=20)
    p.add_argument('--labelled', type=int, default=40)
    p.add_argument('--train-iters', type=int, default=150)
    p.add_argument('--hessian-images', type=int, default=8)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--data-root', default=osp.join(ROOT, 'data', 'bench_synthetic'))
    p.add_argument('--out')
    p.add_argument('--parts', choices=['all', 'memory', 'fisher'], default='all',
                   help="'memory': only (e), the N vs 10N peak-memory runs; 'fisher': only "
                        "(g), CG against the exact Fisher solve")
    p.add_argument('--memory-child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--weights', help=argparse.SUPPRESS)
    p.add_argument('--labelled-file', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        return memory_child(args)

    from isal_mmdet.datasets.synthetic import make_synthetic
    pools = 1 if args.parts == 'fisher' else 10  # (e) needs a pool of 10N
    n_images = int((args.pool * pools + args.labelled) / 0.6) + 10
    make_synthetic(args.data_root, num_images=n_images, seed=0, fmt='voc')
    cfg, model = build(args)
    from isal_mmdet.al.data import build_dataset, dataset_ids, scoring_dataset_cfg
    from isal_mmdet.al.data import test_pipeline_of
    source = build_dataset(scoring_dataset_cfg(cfg.train_dataloader.dataset,
                                               test_pipeline_of(cfg)), 'train')
    labelled = dataset_ids(source)[:args.labelled]
    model = train(cfg, model, labelled, args.train_iters)
    ctx = context(cfg, model, labelled, args.pool, args.batch_size)
    if args.parts == 'fisher':
        return emit(args, dict(device=args.device, torch_threads=torch.get_num_threads(),
                               labelled=len(labelled), g_fisher=fisher_solves(args, ctx)))

    memory = measure_memory(args, model, labelled)
    mem_result = dict(
        e_memory=memory,
        e_rss_peak_ratio_10n_over_n=memory[1]['rss_peak_mb'] / memory[0]['rss_peak_mb'],
        e_rss_growth_ratio_10n_over_n=memory[1]['rss_growth_mb'] / max(
            memory[0]['rss_growth_mb'], 1e-9))
    if args.parts == 'memory':
        return emit(args, dict(device=args.device, torch_threads=torch.get_num_threads(),
                               **mem_result))
    _, t_plain = timed(lambda: plain_inference(ctx))
    solver = dict(type='lissa', depth=1000, batch_size=1)
    parts = isal_parts(ctx, solver)
    t_isal = sum(parts['seconds'].values())
    per_image_b1, err = batch1_reference(ctx, parts, args.ref_subset)
    scoring_per_image = parts['seconds']['scoring'] / len(ctx.pool)

    result = dict(
        device=args.device, torch_threads=torch.get_num_threads(), pool=len(ctx.pool),
        labelled=len(labelled), solver=solver,
        a_plain_inference_s=t_plain,
        b_isal_end_to_end_s=t_isal, b_parts_s=parts['seconds'],
        c_batch1_per_image_s=per_image_b1, c_batch1_extrapolated_pool_s=per_image_b1 * len(
            ctx.pool), c_max_rel_diff_vs_batched=err,
        d_ratio_isal_over_inference=t_isal / t_plain,
        d_ratio_scoring_over_inference=parts['seconds']['scoring'] / t_plain,
        d_ratio_batch1_over_batched_scoring=per_image_b1 / scoring_per_image,
        **mem_result,
        s_test_info=parts['info'])
    print(json.dumps(result, indent=1, default=float), flush=True)
    result['g_fisher'] = fisher_solves(args, ctx)
    result['f_solvers'] = solver_comparison(args, cfg, labelled)
    return emit(args, result)


def emit(args, result):
    text = json.dumps(result, indent=1, default=float)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    main()
