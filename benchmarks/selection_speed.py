"""Selection cost against plain inference, in one process: a tiny model on one pool, or (h)
a real-size one over several pools.

    python benchmarks/selection_speed.py [--pool 100] [--ref-subset 20] [--device cpu|cuda]
                                         [--out studies/results/selection_speed.json]
                                         [--parts all|memory|fisher]

Prints JSON with: (a) one plain inference pass over the pool; (b) ISAL end to end (v, s_test,
pseudo labels + per-image influence), and its scoring part alone; (c) the official-style
batch-1 reference (one backward per image) on a subset, extrapolated per image, and its
agreement with (b); (d) the ratios; (e) peak selection memory for N and 10N images, each in
its own process; (f) HVPs and relative error of lissa (paper settings), cg and exact on one
problem with a reduced θ (retina_cls of a narrow head) so that exact is affordable; (g) the
default s_test on the empirical Fisher, CG (30 iterations) against the exact Woodbury solve,
side by side: time, relative difference of s, peak memory of each solve.

    python benchmarks/selection_speed.py --parts realsize --model r50|efflite
        [--measure-pools 25 50] [--pools 100 500 1000] [--reference-size 20] [--labelled 40]
        [--checkpoint CKPT] [--labelled-file IDS.json] [--strategy default|config]
        [--out studies/results/selection_realsize_r50_cpu.json]

(h) realsize: the default ISAL (the config's active_learning.strategy with ISAL's own
curvature and solver: Fisher, woodbury) at real model size against plain inference. r50:
configs/isal_retinanet_voc.py on synthetic VOC2012-layout images (800x600 after resize),
random weights, classification bias at sigmoid 0.2 so that each image gets 100 pseudo boxes;
efflite: configs/isal_retinanet_efflite_bccd.py on BCCD. v and s_test once (they do not
depend on the pool); inference and scoring per --measure-pools; the other --pools from
those. Fields:
    input_hw, batch_size, theta_params: network input, the config's selection batch, |θ|
    labelled, reference (reference_full before --reference-size), pool_available
    pseudo_boxes_per_image: mean/min/max over the measured pools
    v_s, v_per_reference_image_s: the reference gradient (summed_gradient)
    s_test_s, s_test_rss_growth_mb, s_test_info: the solve, its peak RSS growth, its info
        (n, params, bytes, fell_back, ...)
    rates_per_image_s: inference and scoring per image, least squares through the origin
        over the measured pools
    linearity: the measured per-image rates at each measured pool
    rows: per pool (measured and --pools): inference_s, scoring_s, end_to_end_s (v + s_test
        + scoring), ratio_end_to_end_over_inference, s_test_share (of end to end),
        scoring_over_inference_per_image; extrapolated: true where not measured

    python benchmarks/selection_speed.py --parts strategies --model efflite --pool 80
        [--checkpoint CKPT] [--labelled-file IDS.json] [--reference-size 20]

(i) every strategy's whole scoring (its defaults: ISAL's Fisher and exact Woodbury solve)
against plain inference on the same pool, side by side and alternated --repeats times:
median, min and max of each ratio.

    python benchmarks/selection_speed.py --parts batch --model fruit --pool 2000 --batch 200
        [--checkpoint CKPT] [--labelled-file IDS.json] [--repeats 3]

(l) what each batch stage (topk, stochastic, clusters, class_medoids) adds to a selection of
--batch images, as a ratio to one plain inference pass over the pool: median, min and max
over --repeats alternated runs.

    python benchmarks/selection_speed.py --parts boxes [--pool 24] [--train-iters 60]
                                         [--ref-subset 8] [--repeats 2]

(k) per-box ISAL scoring (part_influence_scores: one loss per UUIC pseudo box) and per-box
ESI (part_esi_scores: K + 1 losses per box) against image-level ISAL scoring
(influence_scores) on the same pool and the same s, run alternately --repeats times on the
tiny model after a short training run; ratio_per_box_over_image is the fastest per-box run
over the fastest image-level run, ratio_esi_box_over_per_box the fastest per-box ESI run over
the fastest per-box ISAL run.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Sequence, Tuple

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


REALSIZE = {'r50': osp.join(ROOT, 'configs', 'isal_retinanet_voc.py'),
            'efflite': osp.join(ROOT, 'configs', 'isal_retinanet_efflite_bccd.py'),
            'fruit': osp.join(ROOT, 'configs', 'isal_retinanet_efflite_fruit.py')}
# random heads start at sigmoid 0.01, below ISAL's score threshold (0.1): no pseudo box. At
# 0.2 nearly every anchor passes it, so each image gets max_per_img (100) pseudo boxes.
CLS_PRIOR = 0.2


def realsize_data(args, cfg) -> None:
    """Points the config's train/val splits at the data: for r50 a synthetic VOC2012-layout
    set (500x375, resized to 800x600 by the VOC test pipeline), large enough for the labelled
    set, the largest measured pool and the reference; for efflite BCCD in place."""
    from isal_mmdet.demo.synthetic import make_synthetic
    if args.model in ('efflite', 'fruit'):
        root = args.data_root or osp.normpath(osp.join(ROOT, cfg.data_root))
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.data_root = root + '/'
        return
    root = args.data_root or osp.join(ROOT, 'data', 'bench_voc_realsize')
    n = int(max((args.labelled + max(args.measure_pools)) / 0.6, args.reference_size / 0.2)) + 10
    make_synthetic(root, num_images=n, seed=0, voc2012=True, img_size=(500, 375))
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'val')):
        cfg[key].dataset.update(data_root=osp.join(root, 'VOCdevkit') + '/',
                                ann_file=f'VOC2012/ImageSets/Main/{split}.txt',
                                data_prefix=dict(sub_data_root='VOC2012/'))


def realsize_model(args, cfg) -> torch.nn.Module:
    """``--checkpoint`` (a file, or a work dir with ``last_checkpoint``), else random weights
    with the classification bias at CLS_PRIOR (no pretrained R50 is reachable offline)."""
    from mmdet.registry import MODELS
    from isal_mmdet.tools_api import build_model
    ckpt = args.checkpoint
    if ckpt and osp.isdir(ckpt):
        ckpt = open(osp.join(ckpt, 'last_checkpoint')).read().strip()
    if ckpt:
        return build_model(cfg, ckpt).to(args.device)
    cfg.model.backbone.init_cfg = None  # the R50 config would download ImageNet weights
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.nn.init.constant_(model.bbox_head.retina_cls.bias,
                            float(torch.logit(torch.tensor(CLS_PRIOR))))
    return model.to(args.device).eval()


def default_isal(spec: Any) -> dict:
    """The config's ISAL with the strategy's own default curvature and solver (Fisher,
    woodbury on 64 images): the VOC config sets the paper's LiSSA, the BCCD ones woodbury
    on 16 images."""
    spec = dict(type='ISAL') if isinstance(spec, str) else dict(spec)
    return {k: v for k, v in spec.items() if k not in ('solver', 'curvature')}


def timed_s_test(strategy, ctx, objective, groups) -> Tuple[Any, Dict[str, float]]:
    """The strategy's own ``s_test``, with v (``summed_gradient``) and the solve timed apart,
    and the solve's peak RSS growth."""
    from unittest import mock
    import importlib
    stest = importlib.import_module('isal_mmdet.influence.stest')  # the module, not its function
    grad, build = stest.summed_gradient, stest.build_solver
    out = {}

    def gradient(*a, **k):
        v, out['v_s'] = timed(lambda: grad(*a, **k))
        return v

    def solver(cfg):
        inner = build(cfg)
        solve = inner.solve

        def measured(v, curv):
            with RssSampler() as rss:
                res, out['s_test_s'] = timed(lambda: solve(v, curv))
            out['s_test_rss_growth_mb'] = rss.growth_mb
            return res
        inner.solve = measured
        return inner

    with mock.patch.object(stest, 'summed_gradient', gradient), \
            mock.patch.object(stest, 'build_solver', solver):
        s = strategy.s_test(ctx, objective, groups)
    return s, out


def pool_rows(fixed: Dict[str, float], measured: Dict[int, Dict[str, float]],
              pools: Sequence[int]) -> dict:
    """Rows per pool: measured ones as run; the others from the fixed cost (v + s_test, which
    do not depend on the pool) plus per-image rates of inference and scoring, fitted by least
    squares through the origin over the measured pools, flagged ``extrapolated``."""
    keys = ('inference_s', 'scoring_s')
    norm = sum(n * n for n in measured)
    rates = {k: sum(n * m[k] for n, m in measured.items()) / norm for k in keys}
    rows = []
    for n in sorted(set(pools) | set(measured)):
        t = measured.get(n) or {k: rates[k] * n for k in keys}
        e2e = fixed['v_s'] + fixed['s_test_s'] + t['scoring_s']
        rows.append(dict(pool=n, extrapolated=n not in measured, **{k: t[k] for k in keys},
                         end_to_end_s=e2e, ratio_end_to_end_over_inference=e2e / t['inference_s'],
                         s_test_share=fixed['s_test_s'] / e2e,
                         scoring_over_inference_per_image=t['scoring_s'] / t['inference_s']))
    linearity = {n: dict(inference_per_image_s=m['inference_s'] / n,
                         scoring_per_image_s=m['scoring_s'] / n)
                 for n, m in sorted(measured.items())}
    return dict(rates_per_image_s=rates, linearity=linearity, rows=rows)


def realsize(args) -> dict:
    """The default ISAL at real model size: v and s_test once, inference and scoring per
    measured pool, other pools extrapolated (see the module docstring)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import isal_mmdet  # noqa: F401
    from isal_mmdet.al.context import selection_context
    from isal_mmdet.al.data import build_dataset, dataset_ids, scoring_dataset_cfg
    from isal_mmdet.al.data import test_pipeline_of
    from isal_mmdet.fileio import read_json
    from isal_mmdet.al.settings import al_settings
    from isal_mmdet.al.strategies import build_strategy
    from isal_mmdet.datasets.al_subset import ActiveSubset
    from isal_mmdet.detection import detector_param_groups
    from isal_mmdet.influence import influence_scores
    init_default_scope('mmdet')
    cfg = Config.fromfile(REALSIZE[args.model])
    realsize_data(args, cfg)
    al = al_settings(cfg)
    spec = al['strategy'] if args.strategy == 'config' else default_isal(al['strategy'])
    strategy = build_strategy(spec)
    if args.labelled_file:
        labelled = read_json(args.labelled_file)
    else:
        labelled = dataset_ids(build_dataset(scoring_dataset_cfg(
            cfg.train_dataloader.dataset, test_pipeline_of(cfg)), 'train'))[:args.labelled]
    model = realsize_model(args, cfg)
    ctx = selection_context(cfg, model, labelled, al['reference'], batch_size=al['batch_size'],
                            seed=al['seed'], progress=False)
    full_reference, pool = len(ctx.reference), ctx.pool
    ctx.reference = ActiveSubset(ctx.reference,
                                 ids=dataset_ids(ctx.reference)[:args.reference_size])
    if max(args.measure_pools) > len(pool):
        raise SystemExit(f'--measure-pools: the pool has {len(pool)} images')
    objective = strategy.objective(ctx)
    groups = detector_param_groups(model, strategy.param_groups)
    s, fixed = timed_s_test(strategy, ctx, objective, groups)
    measured, counts = {}, []
    for n in args.measure_pools:
        ctx.pool = ActiveSubset(pool.dataset, ids=pool.img_ids()[:n])
        _, t_inf = timed(lambda: plain_inference(ctx))
        scorer = strategy.objective(ctx)
        _, t_score = timed(lambda: influence_scores(scorer, model, groups, s,
                                                    ctx.loader(ctx.pool)))
        measured[n] = dict(inference_s=t_inf, scoring_s=t_score)
        counts += scorer.pseudo_boxes
    return dict(
        model=args.model, config=osp.relpath(REALSIZE[args.model], ROOT),
        checkpoint=args.checkpoint, device=args.device, torch_threads=torch.get_num_threads(),
        input_hw=list(pool[0]['inputs'].shape[-2:]), strategy=spec,
        batch_size=al['batch_size'], theta_params=groups.numel(), labelled=len(labelled),
        reference=len(ctx.reference), reference_full=full_reference, pool_available=len(pool),
        pseudo_boxes_per_image=dict(mean=sum(counts) / len(counts), min=min(counts),
                                    max=max(counts)),
        **fixed, v_per_reference_image_s=fixed['v_s'] / len(ctx.reference),
        s_test_info=ctx.info['s_test'], **pool_rows(fixed, measured, args.pools))


def strategy_costs(args) -> dict:
    """(i) Every strategy's whole scoring (``Strategy.score``: v and s_test included where it
    has them) against one plain inference pass over the same pool, side by side, on the
    realsize model and data (``--model``, ``--checkpoint``, ``--labelled-file``); and what a
    budget in boxes adds to it: counting each pool image's expected boxes from the detections
    the strategy made while scoring, with one inference pass only over the images it made
    none on (``isal_mmdet.al.budget.expected_boxes``)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import isal_mmdet  # noqa: F401
    from isal_mmdet.al.context import selection_context
    from isal_mmdet.al.data import build_dataset, dataset_ids, scoring_dataset_cfg
    from isal_mmdet.al.data import test_pipeline_of
    from isal_mmdet.fileio import read_json
    from isal_mmdet.al.settings import al_settings
    from isal_mmdet.al.budget import expected_boxes
    from isal_mmdet.al.strategies import build_strategy
    from isal_mmdet.datasets.al_subset import ActiveSubset
    from isal_mmdet.detection.recorder import recorded_detections
    init_default_scope('mmdet')
    cfg = Config.fromfile(REALSIZE[args.model])
    realsize_data(args, cfg)
    al = al_settings(cfg)
    labelled = read_json(args.labelled_file) if args.labelled_file else dataset_ids(
        build_dataset(scoring_dataset_cfg(cfg.train_dataloader.dataset, test_pipeline_of(cfg)),
                      'train'))[:args.labelled]
    model = realsize_model(args, cfg)
    ctx = selection_context(cfg, model, labelled, al['reference'], batch_size=al['batch_size'],
                            seed=al['seed'], progress=False)
    ctx.reference = ActiveSubset(ctx.reference,
                                 ids=dataset_ids(ctx.reference)[:args.reference_size])
    ctx.pool = ActiveSubset(ctx.pool.dataset, ids=ctx.pool.img_ids()[:args.pool])
    specs = dict(random='random', entropy='entropy', least_confidence='least_confidence',
                 dcus='dcus', coreset='coreset', badge='badge', isal='isal',
                 grad_similarity='grad_similarity', esi='esi')  # each with its defaults
    classes = tuple(ctx.pool.metainfo['classes'])
    fixed = dict(per_class={c: 0.1 for c in classes})  # counting's cost, not fitting's
    runs: Dict[str, list] = {name: [] for name in ['inference', *specs]}
    boxes: Dict[str, list] = {name: [] for name in specs}
    for _ in range(args.repeats):  # alternated, so a busy spell hits every row alike
        runs['inference'].append(timed(lambda: plain_inference(ctx))[1])
        for name, spec in specs.items():
            ctx.info = {}
            with recorded_detections(model) as seen:
                runs[name].append(timed(lambda: build_strategy(spec).score(ctx))[1])
            (_, how), t_box = timed(lambda: expected_boxes(ctx, seen, fixed, classes))
            boxes[name].append(dict(seconds=t_box, extra_inference=how['extra_inference']))
    rows = {name: dict(over_inference=spread([t / i for t, i in zip(runs[name],
                                                                     runs['inference'])]),
                       box_budget_over_inference=spread([b['seconds'] / i for b, i in zip(
                           boxes[name], runs['inference'])]),
                       extra_inference=boxes[name][0]['extra_inference'])
            for name in specs}
    return dict(model=args.model, checkpoint=args.checkpoint, device=args.device,
                torch_threads=torch.get_num_threads(), pool=len(ctx.pool),
                reference=len(ctx.reference), labelled=len(labelled), repeats=args.repeats,
                seconds=runs, strategies=rows)


def spread(values: Sequence[float]) -> Dict[str, float]:
    """Median, min and max of repeated ratios."""
    ordered = sorted(values)
    return dict(median=ordered[len(ordered) // 2], min=ordered[0], max=ordered[-1])


def batch_costs(args) -> dict:
    """(l) What each batch stage adds to a selection, against one plain inference pass over
    the same pool, side by side and alternated ``--repeats`` times: the stage's whole pick of
    ``--batch`` images (its feature pass included) from fixed scores (a seeded hash: a stage's
    cost does not depend on what the scores say)."""
    import zlib
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import isal_mmdet  # noqa: F401
    from isal_mmdet.al.context import selection_context
    from isal_mmdet.al.data import build_dataset, dataset_ids, scoring_dataset_cfg
    from isal_mmdet.al.data import test_pipeline_of
    from isal_mmdet.al.settings import al_settings
    from isal_mmdet.al.strategies import build_strategy
    from isal_mmdet.datasets.al_subset import ActiveSubset
    from isal_mmdet.fileio import read_json
    init_default_scope('mmdet')
    cfg = Config.fromfile(REALSIZE[args.model])
    realsize_data(args, cfg)
    al = al_settings(cfg)
    model = realsize_model(args, cfg)
    ids = read_json(args.labelled_file) if args.labelled_file else dataset_ids(
        build_dataset(scoring_dataset_cfg(cfg.train_dataloader.dataset, test_pipeline_of(cfg)),
                      'train'))[:args.labelled]
    ctx = selection_context(cfg, model, ids, al['reference'], batch_size=al['batch_size'],
                            seed=al['seed'], progress=False)
    ctx.pool = ActiveSubset(ctx.pool.dataset, ids=ctx.pool.img_ids()[:args.pool])
    scores = {i: zlib.crc32(f'bench:{i}'.encode()) / 2 ** 32 for i in ctx.pool.img_ids()}
    stages = ['topk', 'stochastic', 'clusters', 'class_medoids']
    runs: Dict[str, list] = {name: [] for name in ['inference'] + stages}
    for _ in range(args.repeats):
        runs['inference'].append(timed(lambda: plain_inference(ctx))[1])
        for name in stages:
            strategy = build_strategy(dict(type='dcus', batch=name))
            runs[name].append(timed(lambda: strategy.select(scores, args.batch, ctx))[1])
    ratios = {name: spread([t / i for t, i in zip(runs[name], runs['inference'])])
              for name in stages}
    return dict(model=args.model, checkpoint=args.checkpoint, device=args.device,
                torch_threads=torch.get_num_threads(), pool=len(ctx.pool),
                labelled=len(ctx.labelled), batch=args.batch, repeats=args.repeats,
                seconds=runs, stage_over_inference=ratios)


def box_scoring(args, ctx) -> dict:
    """(k): per-box ISAL and per-box ESI against image-level ISAL scoring, same pool, same
    s. s is v, the reference gradient of --ref-subset images (no solve: scoring's cost does
    not depend on s); the three run alternately so that a busy machine slows them alike."""
    from isal_mmdet.datasets.al_subset import ActiveSubset
    from isal_mmdet.al.data import dataset_ids
    from isal_mmdet.detection import DetectionObjective, detector_param_groups
    from isal_mmdet.influence import influence_scores, summed_gradient
    from isal_mmdet.study.box.part_scores import part_esi_scores, part_influence_scores
    from isal_mmdet.study.objective import ResearchObjective  # per-box losses
    groups = detector_param_groups(ctx.model)
    ctx.reference = ActiveSubset(ctx.reference,
                                 ids=dataset_ids(ctx.reference)[:args.ref_subset])
    s = summed_gradient(DetectionObjective(seed=0), ctx.model, groups,
                        ctx.loader(ctx.reference))
    _, t_plain = timed(lambda: plain_inference(ctx))
    times = dict(image=[], box=[], esi_box=[])
    for _ in range(args.repeats):
        image_obj, box_obj = DetectionObjective(seed=0), ResearchObjective(seed=0)
        images, t = timed(lambda: influence_scores(image_obj, ctx.model, groups, s,
                                                   ctx.loader(ctx.pool)))
        times['image'].append(t)
        boxes, t = timed(lambda: part_influence_scores(box_obj, ctx.model, groups, s,
                                                       ctx.loader(ctx.pool)))
        times['box'].append(t)
        _, t = timed(lambda: part_esi_scores(ResearchObjective(seed=0), ctx.model, groups, s,
                                             ctx.loader(ctx.pool)))
        times['esi_box'].append(t)
    counts = box_obj.pseudo_boxes
    return dict(pool=len(ctx.pool), batch_size=ctx.batch_size, theta_params=groups.numel(),
                images_scored=len(images), boxes_scored=len(boxes),
                pseudo_boxes_per_image=dict(mean=sum(counts) / len(counts), max=max(counts)),
                plain_inference_s=t_plain, image_level_s=times['image'],
                per_box_s=times['box'], per_box_esi_s=times['esi_box'],
                ratio_per_box_over_image=min(times['box']) / min(times['image']),
                ratio_esi_box_over_per_box=min(times['esi_box']) / min(times['box']))


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
    p.add_argument('--data-root', help='default: data/bench_synthetic; realsize: '
                   'data/bench_voc_realsize (r50), the config\'s BCCD (efflite)')
    p.add_argument('--out')
    p.add_argument('--parts', choices=['all', 'memory', 'fisher', 'realsize', 'strategies',
                                       'boxes', 'batch'],
                   default='all',
                   help="'memory': only (e), the N vs 10N peak-memory runs; 'fisher': only "
                        "(g), CG against the exact Fisher solve; 'realsize': only (h); "
                        "'strategies': only (i), every strategy against inference; 'boxes': "
                        "only (k), per-box ISAL and ESI against image-level ISAL scoring")
    p.add_argument('--repeats', type=int, default=2,
                   help='boxes, strategies, batch: alternated runs of each')
    p.add_argument('--batch', type=int, default=200, help='batch: images selected')
    p.add_argument('--model', choices=sorted(REALSIZE), default='r50', help='realsize model')
    p.add_argument('--pools', type=int, nargs='+', default=[100, 500, 1000],
                   help='realsize: pools to report (extrapolated unless measured)')
    p.add_argument('--measure-pools', type=int, nargs='+', default=[25, 50],
                   help='realsize: pools actually run')
    p.add_argument('--reference-size', type=int, default=20,
                   help='realsize: the reference set capped at this many images')
    p.add_argument('--checkpoint', help='realsize: weights (file, or a work dir with '
                                        'last_checkpoint); default: random, cls bias set')
    p.add_argument('--strategy', choices=['default', 'config'], default='default',
                   help="realsize: the config's ISAL with ISAL's default curvature and "
                        "solver, or the config's ISAL as it is")
    p.add_argument('--memory-child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--weights', help=argparse.SUPPRESS)
    p.add_argument('--labelled-file', help='realsize: JSON list of labelled ids (default: '
                                           'the first --labelled train ids)')
    args = p.parse_args()
    if args.memory_child:
        return memory_child(args)
    if args.parts == 'realsize':
        return emit(args, realsize(args))
    if args.parts == 'strategies':
        return emit(args, strategy_costs(args))
    if args.parts == 'batch':
        return emit(args, batch_costs(args))
    args.data_root = args.data_root or osp.join(ROOT, 'data', 'bench_synthetic')

    from isal_mmdet.demo.synthetic import make_synthetic
    pools = 1 if args.parts in ('fisher', 'boxes') else 10  # (e) needs a pool of 10N
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
    if args.parts == 'boxes':
        return emit(args, dict(device=args.device, torch_threads=torch.get_num_threads(),
                               labelled=len(labelled), train_iters=args.train_iters,
                               k_boxes=box_scoring(args, ctx)))
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
