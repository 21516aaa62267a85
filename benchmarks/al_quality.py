"""Label savings: strategies × seeds through the real round loop, read as paired differences.

    python benchmarks/al_quality.py CONFIG --work-dir W [--strategies random entropy isal]
        [--seeds 0 1 2] [--rounds 3] [--initial 40] [--budget 40] [--cfg-options k=v ...]
    python benchmarks/al_quality.py --quick --work-dir W     # pretrained BCCD preset
    python benchmarks/al_quality.py --preset scratch --work-dir W   # the from-scratch study

A strategy is a registered name (random, entropy, coreset, ...), ``isal`` (the config's ISAL
settings), an ISAL variant: ``isal-`` + levers from ``LEVERS`` joined by ``-``
(``isal-cg-thr0.5``; the levers of docs/benchmarks.md), or ``esi`` / an ESI variant
(``esi-mean``, levers from ``ESI_LEVERS``) with the config's ISAL solver.
Rerunning with the same work dir skips finished rounds; a larger ``--rounds`` extends them.

For each seed every strategy starts from the same round 0 (same initial images, same trained
model: it is trained once, or taken from any finished run of that seed in the work dir), so
differences between strategies are paired.

Writes W/results.json, W/results.md and W/results.png (``--report`` renames them):
- per-round test mAP per strategy and seed, mean ± std over seeds;
- AUC: the area under mAP vs labelled images (trapezoid), divided by the x range;
- annotation-cost reduction against random (the paper's metric): with R the labelled count
  of random's last round and m its mAP there, x_S is the first labelled count at which S's
  curve (linear between rounds) reaches m; reduction = (R − x_S) / R. When S never reaches m
  it is reported as not reached.
- the same per box annotated (annotation effort grows with the boxes drawn): AUC over the
  box range every strategy of a seed covers, and the boxes needed to reach random's mAP.

``--merge PRIOR.json`` adds the seeds of an earlier report of the same setup (config, rounds,
initial, budget) whose work dir is gone, so a study can grow by seeds across machines.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import shutil
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# --quick: the pretrained regime (ImageNet EfficientNet-Lite0 RetinaNet on BCCD)
QUICK = dict(config=osp.join(ROOT, 'configs', 'isal_retinanet_efflite_bccd.py'),
             strategies=['random', 'entropy', 'isal', 'isal-fixed'], seeds=[0, 1, 2],
             rounds=4, initial=40, budget=40)
# --preset scratch: the from-scratch R18 study of docs/benchmarks.md, reproducible as it was
PRESETS = dict(quick=QUICK, scratch=dict(
    QUICK, config=osp.join(ROOT, 'configs', 'isal_retinanet_bccd.py'),
    strategies=['random', 'entropy', 'isal'], rounds=3))
# paired differences are reported against these; 'isal-fisher' is the default spelt out
BASELINES = ('random', 'entropy', 'isal-paper', 'isal', 'isal-fisher')
# ISAL variants are named 'isal-' + levers joined by '-', e.g. 'isal-cg-thr0.5', applied in
# order: lever -> (changes to the config's ISAL strategy, changes to active_learning)
LEVERS = {
    'paper': (dict(curvature='hessian', solver=dict(type='lissa', depth=200, power_iters=10,
                                                    power_samples=16)), {}),
    'cg': (dict(curvature='hessian', solver=dict(type='cg', max_iter=30, num_samples=16)), {}),
    'identity': (dict(solver=dict(type='identity')), {}),
    'fisher': (dict(curvature='fisher', solver=dict(type='cg', max_iter=30, num_samples=16)),
               {}),
    'damp0.1': (dict(curvature='hessian', solver=dict(type='lissa', depth=200, power_iters=10,
                                                      power_samples=16, damp=0.1)), {}),
    'thr0.3': (dict(score_thr=0.3), {}),
    'thr0.5': (dict(score_thr=0.5), {}),
    'cap10': (dict(max_per_class=10), {}),
    'sampled': (dict(pseudo='sampled', samples=4, score_thr=0.05), {}),
    'soft': (dict(pseudo='soft'), {}),
    'div': (dict(diversity=dict(pool_factor=3)), {}),
    'reflab': ({}, dict(reference='labelled')),
    'harmful': (dict(prefer='harmful'), {}),
    'fixed': (dict(normaliser='fixed'), {}),
    'fgref': (dict(reference_terms='foreground'), {}),
    'balanced': (dict(reference_terms='balanced'), {}),
    # the official protocol: v on the evaluation split itself (a leakage diagnostic)
    'evalref': ({}, dict(reference='test')),
}


# ESI variants: 'esi' (the config's ISAL solver, defaults otherwise) + levers joined by '-'
ESI_LEVERS = {
    'mean': dict(mean_term=True),
    'nobox': dict(box_term=False),
    'top100': dict(top_k=100),
    'top1000': dict(top_k=1000),
    'balanced': dict(reference_terms='balanced'),
}


def esi_cfg(config_strategy, name):
    """``esi`` / ``esi-mean-top100``: ESI with the s of the config's ISAL solver."""
    base = dict(type='ESI')
    if isinstance(config_strategy, dict) and 'solver' in config_strategy:
        base['solver'] = config_strategy['solver']
    for lever in [x for x in name.split('-')[1:] if x]:
        if lever not in ESI_LEVERS:
            raise ValueError(f'unknown ESI lever {lever!r} in {name!r}; known: '
                             f'{sorted(ESI_LEVERS)}')
        base.update(ESI_LEVERS[lever])
    return dict(strategy=base)


def strategy_cfg(config_strategy, name):
    """The ``active_learning`` changes that make ``name`` the experiment's strategy."""
    if name == 'isal' and isinstance(config_strategy, dict):
        return dict(strategy=config_strategy)
    if name == 'esi' or name.startswith('esi-'):
        return esi_cfg(config_strategy, name)
    if not name.startswith('isal-'):
        return dict(strategy=name)
    base = dict(config_strategy) if isinstance(config_strategy, dict) else dict(type='ISAL')
    al_change = {}
    for lever in name[len('isal-'):].split('-'):
        if lever not in LEVERS:
            raise ValueError(f'unknown ISAL lever {lever!r} in {name!r}; known: {sorted(LEVERS)}')
        change, al_more = LEVERS[lever]
        al_change.update(al_more)
        for key, value in change.items():
            solver = base.get('solver', {})
            if key == 'solver' and value.get('type', solver.get('type')) == solver.get('type'):
                base['solver'] = dict(solver, **value)
            else:
                base[key] = value
    return dict(al_change, strategy=base)


def run_one(config, work_dir, strategy, seed, args, shared_round0=None):
    from mmengine.config import Config
    from isal_mmdet.al.loop import ActiveLearningLoop
    from isal_mmdet.compat import trust_checkpoints
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(args.cfg_options)
    al = cfg.active_learning
    al.rounds, al.initial_size, al.budget, al.seed = args.rounds, args.initial, args.budget, seed
    for key, value in strategy_cfg(al.get('strategy'), strategy).items():
        al[key] = value  # assignment, not ConfigDict.update: that would merge solver dicts
    cfg.randomness = dict(seed=seed)
    if shared_round0 and not osp.exists(osp.join(work_dir, 'round_0', 'metrics.json')):
        os.makedirs(work_dir, exist_ok=True)
        shutil.copytree(shared_round0, osp.join(work_dir, 'round_0'), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns('selection.json', 'selected*',
                                                      'scores.csv', 'preannotations*'))
    trust_checkpoints(osp.dirname(osp.dirname(work_dir)))
    ActiveLearningLoop(cfg, work_dir).run()
    return json.load(open(osp.join(work_dir, 'summary.json')))


def auc(points):
    xs, ys = zip(*points)
    area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
    return area / (xs[-1] - xs[0]) if xs[-1] > xs[0] else ys[0]


def labels_to_reach(points, target):
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y0 >= target:
            return x0
        if y1 >= target:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return points[-1][0] if points[-1][1] >= target else None


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def interp(points, x):
    """mAP at ``x`` on the curve, linear between rounds (``x`` within its range)."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1] if x == points[-1][0] else None


def auc_on(points, lo, hi, steps=200):
    """Mean of the interpolated curve over ``[lo, hi]``: curves with different x ranges
    (boxes annotated) compared on the range they share."""
    xs = [lo + (hi - lo) * k / steps for k in range(steps + 1)]
    return statistics.mean(interp(points, x) for x in xs) if hi > lo else interp(points, lo)


def analyse_boxes(box_curves, strategies, seeds):
    """Per box annotated: AUC on the shared box range and the boxes to reach random."""
    out = dict(auc={}, cost_reduction={}, paired_auc_vs={})
    shared = {seed: (max(box_curves[s][seed][0][0] for s in strategies),
                     min(box_curves[s][seed][-1][0] for s in strategies)) for seed in seeds}
    aucs = {s: [auc_on(box_curves[s][seed], *shared[seed]) for seed in seeds]
            for s in strategies}
    for s in strategies:
        out['auc'][s] = dict(per_seed=aucs[s], mean_std=mean_std(aucs[s]))
        if 'random' in strategies:
            red = []
            for seed in seeds:
                rnd = box_curves['random'][seed]
                x = labels_to_reach(box_curves[s][seed], rnd[-1][1])
                red.append(None if x is None else (rnd[-1][0] - x) / rnd[-1][0])
            out['cost_reduction'][s] = dict(per_seed=red, mean_std=mean_std(red),
                                            not_reached=sum(r is None for r in red))
        for base in [b for b in BASELINES if b in strategies and b != s]:
            out['paired_auc_vs'].setdefault(s, {})[base] = paired(
                [a - b for a, b in zip(aucs[s], aucs[base])])
    out['shared_box_range'] = {str(k): v for k, v in shared.items()}
    return out


def paired(diffs):
    m, sd = mean_std(diffs)
    se = sd / math.sqrt(len(diffs)) if sd is not None else None
    return dict(per_seed=diffs, mean=m, std=sd, stderr=se,
                mean_exceeds_stderr=bool(se is not None and m > se))


def analyse(curves, strategies, seeds):
    out = dict(per_round={}, auc={}, cost_reduction={}, paired_auc_vs={}, paired_final_vs={})
    for s in strategies:
        rows = [curves[s][seed] for seed in seeds]
        out['per_round'][s] = [dict(num_labelled=rows[0][k][0],
                                    mAP=mean_std([r[k][1] for r in rows]))
                               for k in range(len(rows[0]))]
        out['auc'][s] = dict(per_seed=[auc(r) for r in rows], mean_std=mean_std(
            [auc(r) for r in rows]))
    if 'random' in strategies:
        for s in strategies:
            red = []
            for seed in seeds:
                rnd = curves['random'][seed]
                x = labels_to_reach(curves[s][seed], rnd[-1][1])
                red.append(None if x is None else (rnd[-1][0] - x) / rnd[-1][0])
            out['cost_reduction'][s] = dict(per_seed=red, mean_std=mean_std(red),
                                            not_reached=sum(r is None for r in red))
    for s in strategies:
        for base in [b for b in BASELINES if b in strategies and b != s]:
            for key, of in (('paired_auc_vs', auc), ('paired_final_vs', lambda c: c[-1][1])):
                out[key].setdefault(s, {})[base] = paired(
                    [of(curves[s][seed]) - of(curves[base][seed]) for seed in seeds])
    return out


def pool_boxes(config):
    """``{str(img_id): [class name per real box]}`` over the config's training set (the pool
    and the labelled images), VOC or COCO; no image is read."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from isal_mmdet.al.data import boxes_by_image, build_dataset, unwrap_subset
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    ds, _ = unwrap_subset(cfg.train_dataloader.dataset)
    ds = build_dataset(ds, 'train_dataloader.dataset')
    names = ds.metainfo['classes']
    return {i: [names[k] for k in labels] for i, labels in boxes_by_image(ds).items()}


def selections_of(work_dir, strategy, seeds, rounds):
    """``(seed, round, selection.json)`` for every selection a strategy wrote."""
    for seed in seeds:
        for k in range(rounds - 1):
            path = osp.join(work_dir, strategy, f'seed{seed}', f'round_{k}', 'selection.json')
            if osp.exists(path):
                with open(path) as f:
                    yield seed, k, json.load(f)


def composition(work_dir, strategies, seeds, rounds, boxes):
    """Mean ground-truth boxes per class in the images each strategy selected, and in the
    pools it chose from: shows which classes a strategy favours or avoids."""
    out = {}
    for s in strategies:
        chosen, pool = [], []
        for _, _, sel in selections_of(work_dir, s, seeds, rounds):
            chosen += [str(i) for i in sel['selected']]
            pool += list(sel['scores'])
        if chosen:
            names = sorted({n for i in pool for n in boxes[i]})
            out[s] = {n: dict(selected=sum(boxes[i].count(n) for i in chosen) / len(chosen),
                              pool=sum(boxes[i].count(n) for i in pool) / len(pool))
                      for n in names}
    return out


def busyness_correlation(work_dir, strategies, seeds, rounds, boxes):
    """Spearman rank correlation, over the pool a strategy scored, between its selection
    priority and each image's real box count (mean and per selection): how far a strategy
    ranks by how busy an image is. Priority is the score, negated when the picks are the
    low scores (ISAL's most negative influence)."""
    from scipy.stats import spearmanr
    out = {}
    for s in strategies:
        rhos = []
        for _, _, sel in selections_of(work_dir, s, seeds, rounds):
            ids = list(sel['scores'])
            scores = [float(sel['scores'][i]) for i in ids]
            picked = [float(sel['scores'][str(i)]) for i in sel['selected']]
            sign = 1.0 if statistics.mean(picked) >= statistics.mean(scores) else -1.0
            counts = [len(boxes[i]) for i in ids]
            if len(set(scores)) > 1 and len(set(counts)) > 1:
                rhos.append(float(spearmanr([sign * x for x in scores], counts)[0]))
        if rhos:
            out[s] = dict(mean=statistics.mean(rhos), values=rhos)
    return out


def solver_summary(work_dir, strategies, seeds, rounds):
    """What each ISAL selection recorded: pseudo boxes per image, its solver, and whether the
    solve converged (LiSSA's scales = 1.5 λ_max, NaN resets and diverged groups; CG's
    iterations and relative residual), over every seed and round."""
    out = {}
    for s in strategies:
        rows = []
        for seed, k, sel in selections_of(work_dir, s, seeds, rounds):
            info = sel.get('info') or {}
            solve = info.get('s_test')
            if solve is None:
                continue
            rows.append(dict(seed=seed, round=k, seconds=sel.get('seconds'),
                             pseudo_boxes=(info.get('pseudo_boxes_per_image') or {}).get(
                                 'mean'), method=solve['method'], scales=solve['scales'],
                             nan_resets=sum(solve['nan_resets'].values()),
                             diverged=solve['diverged'],
                             relative_residual=solve.get('relative_residual'),
                             iterations=solve.get('iterations')))
        if rows:
            out[s] = rows
    return out


def check_prior(prior, setup):
    """One line naming the field when an earlier report cannot be merged into this run."""
    old = prior['setup']
    for key in ('config', 'rounds', 'initial', 'budget', 'cfg_options'):
        if old.get(key) != setup[key]:
            raise ValueError(f"--merge: its setup.{key} is {old.get(key)!r}, this run's is "
                             f"{setup[key]!r}")
    both = sorted(set(old['seeds']) & set(setup['seeds']))
    if both:
        raise ValueError(f'--merge: seeds {both} are in both')
    missing = [s for s in setup['strategies'] if s not in prior['curves']]
    if missing:
        raise ValueError(f'--merge: strategies {missing} are not in its curves')


def merge_prior(prior, setup, curves, box_curves, composition_, selections):
    """Fold an earlier report's seeds into this run's: curves and per-seed rows are joined;
    the class mix is a seed-weighted mean (every seed selects the same number of images
    from pools of the same sizes). Returns the joined seed list; ``check_prior`` has passed."""
    seeds, old_seeds = setup['seeds'], prior['setup']['seeds']
    for s in curves:
        for mine, theirs in ((curves, prior['curves']), (box_curves, prior['box_curves'])):
            mine[s].update({int(k): [tuple(p) for p in v] for k, v in theirs[s].items()})
    w_new, w_old = len(seeds), len(old_seeds)
    for s, classes in (prior.get('selected_composition') or {}).items():
        if s not in curves:
            continue
        mine = composition_.setdefault(s, {})
        for name, c in classes.items():
            m = mine.get(name, dict(selected=0.0, pool=0.0))
            wn = w_new if name in mine else 0
            mine[name] = {k: (m[k] * wn + c[k] * w_old) / (wn + w_old) for k in c}
    for s, rows in (prior.get('selections') or {}).items():
        if s in curves:
            selections[s] = rows + selections.get(s, [])
    return sorted(old_seeds + list(seeds))


def summary_lines(summary):
    lines = ['', '| ISAL selections | solver | pseudo boxes/img | seconds | LiSSA scales '
             '(1.5 λ_max) | NaN resets | diverged | CG residual |', '|' + ' --- |' * 8]
    for s, rows in summary.items():
        def span(key, f='{:.3g}'):
            vals = [r[key] for r in rows if r[key] is not None]
            return '-' if not vals else (f.format(min(vals)) + '–' + f.format(max(vals)))
        groups = sorted({g for r in rows for g in r['scales']})
        scales = [f"{g} {min(r['scales'][g] for r in rows if g in r['scales']):.3g}–"
                  f"{max(r['scales'][g] for r in rows if g in r['scales']):.3g}"
                  for g in groups]
        lines.append(f"| {s} ({len(rows)}) | {rows[0]['method']} | {span('pseudo_boxes')} | "
                     f"{span('seconds', '{:.0f}')} | {', '.join(scales) or '-'} | "
                     f"{sum(r['nan_resets'] for r in rows)} | "
                     f"{sum(bool(r['diverged']) for r in rows)} of {len(rows)} | "
                     f"{span('relative_residual', '{:.1e}')} |")
    return lines


def fmt(ms, digits=3):
    m, s = ms
    return '-' if m is None else f'{m:.{digits}f} ± {s:.{digits}f}'


def report(res, strategies):
    lines = ['| strategy | ' + ' | '.join(
        f"{r['num_labelled']} imgs" for r in res['per_round'][strategies[0]]) +
        ' | AUC | cost reduction vs random |', '|' + ' --- |' * (
            len(res['per_round'][strategies[0]]) + 3)]
    for s in strategies:
        cells = [fmt(r['mAP']) for r in res['per_round'][s]]
        cr = res['cost_reduction'].get(s)
        crs = '-' if cr is None else (fmt(cr['mean_std'], 3) + (
            f" ({cr['not_reached']} seed(s) not reached)" if cr['not_reached'] else ''))
        lines.append(f'| {s} | ' + ' | '.join(cells) +
                     f" | {fmt(res['auc'][s]['mean_std'])} | {crs} |")
    for key, title in (('paired_auc_vs', 'AUC'), ('paired_final_vs', 'last-round mAP')):
        lines += ['', f'| paired {title} difference | mean | std | stderr | mean > stderr |',
                  '| --- | --- | --- | --- | --- |']
        for s, bases in res[key].items():
            for b, d in bases.items():
                lines.append(f"| {s} − {b} | {d['mean']:+.4f} | {d['std']:.4f} | "
                             f"{d['stderr']:.4f} | {d['mean_exceeds_stderr']} |")
    boxes = res.get('per_box')
    if boxes:
        lines += ['', '| per box annotated | AUC on the shared box range | boxes to reach '
                  'random (reduction) |', '| --- | --- | --- |']
        for s in strategies:
            cr = boxes['cost_reduction'].get(s)
            crs = '-' if cr is None else (fmt(cr['mean_std'], 3) + (
                f" ({cr['not_reached']} seed(s) not reached)" if cr['not_reached'] else ''))
            lines.append(f"| {s} | {fmt(boxes['auc'][s]['mean_std'])} | {crs} |")
        lines += ['', '| paired AUC difference per box | mean | std | stderr | mean > stderr |',
                  '| --- | --- | --- | --- | --- |']
        for s, bases in boxes['paired_auc_vs'].items():
            for b, d in bases.items():
                lines.append(f"| {s} − {b} | {d['mean']:+.4f} | {d['std']:.4f} | "
                             f"{d['stderr']:.4f} | {d['mean_exceeds_stderr']} |")
    comp = res.get('selected_composition') or {}
    if comp:
        names = sorted({n for c in comp.values() for n in c})
        lines += ['', '| boxes per selected image (pool) | ' + ' | '.join(names) + ' |',
                  '|' + ' --- |' * (len(names) + 1)]
        for s, c in comp.items():
            lines.append(f'| {s} | ' + ' | '.join(
                f"{c[n]['selected']:.2f} ({c[n]['pool']:.2f})" if n in c else '-'
                for n in names) + ' |')
    busy = res.get('busyness_correlation') or {}
    if busy:
        lines += ['', f"| rank correlation of selection priority with real boxes per pool "
                  f"image (seeds {res['busyness_seeds']}) | mean | per selection |",
                  '| --- | --- | --- |']
        for s, b in busy.items():
            lines.append(f"| {s} | {b['mean']:+.2f} | "
                         f"{', '.join(f'{r:+.2f}' for r in b['values'])} |")
    if res.get('selections'):
        lines += summary_lines(res['selections'])
    return '\n'.join(lines) + '\n'


def plot(path, res, strategies, box_curves):
    """mAP against labelled images (mean ± std over seeds) and against boxes annotated
    (every seed's curve)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for c, s in enumerate(strategies):
        xs = [r['num_labelled'] for r in res['per_round'][s]]
        m = [r['mAP'][0] for r in res['per_round'][s]]
        sd = [r['mAP'][1] for r in res['per_round'][s]]
        ax.plot(xs, m, marker='o', label=s, color=f'C{c}')
        ax.fill_between(xs, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)],
                        alpha=0.15, color=f'C{c}')
        for k, pts in enumerate(box_curves[s].values()):
            bx.plot(*zip(*pts), marker='.', color=f'C{c}', alpha=0.6,
                    label=s if k == 0 else None)
    ax.set_xlabel('labelled images')
    ax.set_ylabel('test mAP (mean ± std over seeds)')
    bx.set_xlabel('boxes annotated')
    bx.set_ylabel('test mAP (each seed)')
    for a in (ax, bx):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path + '.tmp', format='png')
    os.replace(path + '.tmp', path)


def main():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', nargs='?')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--quick', action='store_true',
                   help='the pretrained BCCD preset (same as --preset quick)')
    p.add_argument('--preset', choices=sorted(PRESETS),
                   help="'quick': pretrained BCCD; 'scratch': the from-scratch R18 study")
    p.add_argument('--strategies', nargs='+')
    p.add_argument('--seeds', nargs='+', type=int)
    p.add_argument('--rounds', type=int)
    p.add_argument('--initial', type=int)
    p.add_argument('--budget', type=int)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    p.add_argument('--report', default='results',
                   help='names W/<report>.json, W/<report>.md and W/<report>.png')
    p.add_argument('--analyse-only', action='store_true',
                   help='read the finished runs in --work-dir, train nothing')
    p.add_argument('--merge', metavar='PRIOR.json',
                   help='add the seeds of an earlier report of the same setup')
    args = p.parse_args()
    preset = PRESETS[args.preset or 'quick']
    base = dict(preset) if args.quick or args.preset or not args.config else dict(
        preset, config=args.config)
    for key in ('strategies', 'seeds', 'rounds', 'initial', 'budget'):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    config = args.config or base['config']
    setup = dict(config=osp.relpath(config, ROOT), strategies=args.strategies,
                 seeds=args.seeds, rounds=args.rounds, initial=args.initial,
                 budget=args.budget, cfg_options=dict(args.cfg_options))
    prior = None
    if args.merge:
        with open(args.merge) as f:
            prior = json.load(f)
        check_prior(prior, setup)
    import isal_mmdet  # noqa: F401
    curves = {s: {} for s in args.strategies}
    box_curves = {s: {} for s in args.strategies}
    for seed in args.seeds:
        done = sorted(glob.glob(osp.join(osp.abspath(args.work_dir), '*', f'seed{seed}',
                                         'round_0', 'metrics.json')))
        first = osp.dirname(done[0]) if done else None
        for s in args.strategies:
            wd = osp.join(osp.abspath(args.work_dir), s, f'seed{seed}')
            if args.analyse_only:
                with open(osp.join(wd, 'summary.json')) as f:
                    rows = json.load(f)[:args.rounds]
            else:
                rows = run_one(config, wd, s, seed, args, shared_round0=first)
            first = first or osp.join(wd, 'round_0')
            curves[s][seed] = [(r['num_labelled'], r['mAP']) for r in rows]
            box_curves[s][seed] = [(r['num_boxes'], r['mAP']) for r in rows]
    try:  # the class mix and busyness are extras: a pool they cannot read never ends a report
        boxes = pool_boxes(config)
        comp = composition(osp.abspath(args.work_dir), args.strategies, args.seeds,
                           args.rounds, boxes)
        busy = busyness_correlation(osp.abspath(args.work_dir), args.strategies, args.seeds,
                                    args.rounds, boxes)
    except (KeyError, ValueError, OSError) as e:
        print(f'composition and busyness skipped: {type(e).__name__}: {e}', file=sys.stderr)
        comp, busy = {}, {}
    selections = solver_summary(osp.abspath(args.work_dir), args.strategies, args.seeds,
                                args.rounds)
    if prior is not None:
        setup['seeds'] = merge_prior(prior, setup, curves, box_curves, comp, selections)
    seeds = setup['seeds']
    res = analyse(curves, args.strategies, seeds)
    res['per_box'] = analyse_boxes(box_curves, args.strategies, seeds)
    res['box_curves'] = {s: {str(k): v for k, v in c.items()} for s, c in box_curves.items()}
    res['curves'] = {s: {str(k): v for k, v in c.items()} for s, c in curves.items()}
    if comp:
        res['selected_composition'] = comp
    if busy:
        res['busyness_correlation'] = busy
        res['busyness_seeds'] = args.seeds
    res['selections'] = selections
    res['setup'] = setup
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, args.report)
    text = report(res, args.strategies)
    for ext, body in (('.json', json.dumps(res, indent=1)), ('.md', text)):
        with open(out + ext + '.tmp', 'w') as f:
            f.write(body)
        os.replace(out + ext + '.tmp', out + ext)
    plot(out + '.png', res, args.strategies, box_curves)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
