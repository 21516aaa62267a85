"""What ISAL prefers, on one trained checkpoint: real boxes and classes of its top picks
against the pool's, per normaliser, and how ⟨s, g_z⟩ splits into background-classification,
foreground-classification and box-regression terms.

    python studies/isal_diagnostics.py CONFIG --work-dir W [--round 0] [--top 40]
        [--variants ...] [--no-terms] [--spectrum] [--out studies/results/isal_diagnostics.json]
        [--cfg-options k=v ...]

W is a finished ``tools/al_train.py`` work dir (or one strategy/seed of tools/al_study.py): the
round's checkpoint and labelled ids are read from it. Variants: the config's ISAL with each
normaliser by default (``isal``: each image's loss over its own positives; ``isal-fixed``:
one count for all) and ``grad_similarity`` (s = v); ``--variants`` names others, as in
``isal_mmdet.study.variants`` (``isal-thr0.5``). Every pair of variants is compared: Spearman correlation
of their scores and the overlap of their top picks. ``--spectrum``: λ_max and λ_min of each θ
group's Hessian and empirical Fisher on 16 labelled images (power iteration), which say
whether the paper's LiSSA and CG on the Hessian can converge on this checkpoint.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
from contextlib import contextmanager, nullcontext

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def ranks(xs):
    order = sorted(range(len(xs)), key=xs.__getitem__)
    out = [0.0] * len(xs)
    for r, i in enumerate(order):
        out[i] = float(r)
    return out


def agreement(a, b, top_a, top_b):
    """Spearman correlation of two score maps on their common ids, and their top overlap."""
    ids = [i for i in a if i in b]
    return dict(spearman=pearson(ranks([a[i] for i in ids]), ranks([b[i] for i in ids])),
                top_overlap=len(set(top_a) & set(top_b)) / max(len(top_a), 1))


def pearson(xs, ys):
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sx = sum((x - mx) ** 2 for x in xs) ** 0.5
    sy = sum((y - my) ** 2 for y in ys) ** 0.5
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy) if sx and sy else 0.0


@contextmanager
def focal_on(anchors: str):
    """The focal loss restricted to foreground (``'fg'``) or background (``'bg'``) anchors:
    a pseudo box's anchors are foreground, every other anchor is background."""
    import importlib
    module = importlib.import_module('mmdet.models.losses.focal_loss')
    original = module.py_sigmoid_focal_loss

    def masked(pred, target, weight=None, *args, **kwargs):
        fg = (target.sum(1) > 0).to(pred.dtype)
        keep = fg if anchors == 'fg' else 1 - fg
        weight = keep if weight is None else weight * (keep if weight.dim() == 1
                                                       else keep[:, None])
        return original(pred, target, weight, *args, **kwargs)

    module.py_sigmoid_focal_loss = masked
    try:
        yield
    finally:
        module.py_sigmoid_focal_loss = original


def spectrum(ctx, model, al):
    """Both ends of each θ group's curvature spectrum, Hessian and Fisher, on the same 16
    labelled images and the objective of the config's ISAL."""
    from isal_mmdet.al.strategies import build_strategy
    from isal_mmdet.detection import detector_param_groups
    from isal_mmdet.influence import Curvature, block_spectrum
    strategy = build_strategy(al['strategy'])
    groups = detector_param_groups(model, strategy.param_groups)
    out = {}
    for kind in ('hessian', 'fisher'):
        curv = Curvature(strategy.objective(ctx), model, groups, ctx.labelled, kind=kind)
        idx = curv.subset(16, 0)
        out[kind] = {g: block_spectrum(curv, g, idx, iters=20, seed=k)
                     for k, g in enumerate(groups.names())}
        print(kind, json.dumps(out[kind]), flush=True)
    return out


def main():
    from mmengine.config import Config, DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--round', type=int, default=0)
    p.add_argument('--top', type=int, default=40)
    p.add_argument('--variants', nargs='+', default=['isal', 'isal-fixed', 'grad_similarity'],
                   help="strategy names as in tools/al_study.py ('isal' is the config's ISAL, "
                        "'isal-' + levers a variant of it)")
    p.add_argument('--no-terms', action='store_true',
                   help='skip the split of ISAL scores into loss terms (3 scoring passes)')
    p.add_argument('--spectrum', action='store_true',
                   help="λ_max, λ_min of each θ group's Hessian and Fisher")
    p.add_argument('--out')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = p.parse_args()

    from mmengine.registry import init_default_scope
    import isal_mmdet  # noqa: F401
    from isal_mmdet.fileio import write_json
    from isal_mmdet.al.context import selection_context
    from isal_mmdet.fileio import read_json
    from isal_mmdet.al.settings import al_settings
    from isal_mmdet.al.strategies import build_strategy, rank_ids
    from isal_mmdet.detection import detector_param_groups
    from isal_mmdet.influence import influence_scores
    from isal_mmdet.tools_api import build_model

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope('mmdet')
    al = al_settings(cfg)
    rd = osp.join(args.work_dir, f'round_{args.round}')
    ckpt = open(osp.join(rd, 'train', 'last_checkpoint')).read().strip()
    model = build_model(cfg, ckpt)
    labelled = read_json(osp.join(rd, 'labeled.json'))
    classes = list(cfg.train_dataloader.dataset.metainfo['classes'])

    def context():
        return selection_context(cfg, model, labelled, al['reference'], seed=al['seed'],
                                 batch_size=al['batch_size'], progress=False)

    ctx = context()
    truth = {}
    for i in range(len(ctx.pool)):
        info = ctx.pool.get_data_info(i)
        labels = [inst['bbox_label'] for inst in info['instances']
                  if not inst.get('ignore_flag', 0)]
        truth[info['img_id']] = [labels.count(c) for c in range(len(classes))]

    def composition(ids):
        n = max(len(ids), 1)
        per_class = [sum(truth[i][c] for i in ids) / n for c in range(len(classes))]
        return dict(boxes_per_image=sum(per_class), per_class=dict(zip(classes, per_class)))

    from isal_mmdet.study.variants import strategy_cfg
    variants = {name: strategy_cfg(al['strategy'], name)['strategy'] for name in args.variants}
    picks, all_scores = {}, {}
    pool_ids = list(truth)
    out = dict(config=osp.relpath(osp.abspath(args.config), ROOT), round=args.round,
               checkpoint=osp.relpath(ckpt, osp.abspath(args.work_dir)), top=args.top,
               pool=dict(size=len(pool_ids), **composition(pool_ids)), variants={})
    for name, spec in variants.items():
        strategy = build_strategy(spec)
        ctx = context()
        scores = strategy.score(ctx)
        top = rank_ids(scores, strategy.higher_is_better)[:args.top]
        ids = list(scores)
        row = dict(top=composition(top),
                   pearson_score_real_boxes=pearson([scores[i] for i in ids],
                                                    [sum(truth[i]) for i in ids]),
                   pseudo_boxes=ctx.info.get('pseudo_boxes_per_image'),
                   s_test=ctx.info.get('s_test'), avg_factor=ctx.info.get('avg_factor'))
        picks[name], all_scores[name] = top, scores
        if isinstance(spec, dict) and spec.get('type') in ('ISAL', 'ISALResearch') and \
                not args.no_terms:
            # the terms of ⟨s, g_z⟩: θ's classification and regression groups are separate
            # layers, so restricting s to a group isolates that loss's term
            objective = strategy.objective(ctx)
            groups = detector_param_groups(model, strategy.param_groups)
            s = strategy.s_test(context(), objective, groups)
            terms = {}
            for group in groups.names():
                part = s.zeros_like()
                part.data[group] = s[group]
                kinds = [('', None)] if 'reg' in group else [('-bg', 'bg'), ('-fg', 'fg')]
                for suffix, anchors in kinds:
                    with focal_on(anchors) if anchors else nullcontext():
                        terms[group + suffix] = influence_scores(
                            strategy.objective(ctx), model, groups, part, context().loader(
                                context().pool))
            row['terms'] = {
                t: dict(mean_pool=statistics.mean(v.values()),
                        mean_top=statistics.mean(v[i] for i in top),
                        pearson_real_boxes=pearson([v[i] for i in ids],
                                                   [sum(truth[i]) for i in ids]))
                for t, v in terms.items()}
            total = {i: sum(v[i] for v in terms.values()) for i in ids}
            row['terms_sum_vs_score_max_abs'] = max(abs(total[i] - scores[i]) for i in ids)
        out['variants'][name] = row
        print(name, json.dumps(row['top']), f"r={row['pearson_score_real_boxes']:+.3f}",
              flush=True)
    out['agreement'] = {f'{a} vs {b}': agreement(all_scores[a], all_scores[b], picks[a],
                                                   picks[b])
                        for k, a in enumerate(args.variants) for b in args.variants[k + 1:]}
    if args.spectrum:
        out['spectrum'] = spectrum(context(), model, al)
    print(json.dumps(out, indent=1))
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
