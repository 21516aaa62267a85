"""A study's curves read as paired differences against the baselines, per labelled image,
per box and per second of annotation."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

from ..al.cost import AnnotationCost
from .metrics import auc, auc_on, mean_std, paired, reduction

# paired differences are reported against these; 'isal-fisher' is the default spelt out
BASELINES = ('random', 'entropy', 'isal-paper', 'isal', 'isal-fisher')
Curves = Dict[str, Dict[int, List[tuple]]]


def _reductions(curves: Curves, s: str, seeds: Sequence[int]) -> Dict[str, Any]:
    red = [reduction(curves[s][seed], curves['random'][seed]) for seed in seeds]
    return dict(per_seed=red, mean_std=mean_std(red), not_reached=sum(r is None for r in red))


def _paired_vs(strategies: Sequence[str], seeds: Sequence[int],
               value: Callable[[str, int], float]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for s in strategies:
        for base in [b for b in BASELINES if b in strategies and b != s]:
            out.setdefault(s, {})[base] = paired(
                [value(s, seed) - value(base, seed) for seed in seeds])
    return out


def analyse(curves: Curves, strategies: Sequence[str], seeds: Sequence[int]) -> Dict[str, Any]:
    """Per labelled image: every strategy of a seed covers the same image counts."""
    out: Dict[str, Any] = dict(per_round={}, auc={}, cost_reduction={})
    for s in strategies:
        rows = [curves[s][seed] for seed in seeds]
        out['per_round'][s] = [dict(num_labelled=rows[0][k][0],
                                    mAP=mean_std([r[k][1] for r in rows]))
                               for k in range(len(rows[0]))]
        out['auc'][s] = dict(per_seed=[auc(r) for r in rows],
                             mean_std=mean_std([auc(r) for r in rows]))
        if 'random' in strategies:
            out['cost_reduction'][s] = _reductions(curves, s, seeds)
    out['paired_auc_vs'] = _paired_vs(strategies, seeds, lambda s, seed: auc(curves[s][seed]))
    out['paired_final_vs'] = _paired_vs(strategies, seeds, lambda s, seed: curves[s][seed][-1][1])
    return out


def analyse_shared(curves: Curves, strategies: Sequence[str],
                   seeds: Sequence[int]) -> Dict[str, Any]:
    """Per box or per second, whose ranges differ between strategies: AUC on the range every
    strategy of a seed covers, and the cost to reach random's final mAP."""
    shared = {seed: (max(curves[s][seed][0][0] for s in strategies),
                     min(curves[s][seed][-1][0] for s in strategies)) for seed in seeds}
    aucs = {s: {seed: auc_on(curves[s][seed], *shared[seed]) for seed in seeds}
            for s in strategies}
    out: Dict[str, Any] = dict(auc={}, cost_reduction={})
    for s in strategies:
        out['auc'][s] = dict(per_seed=list(aucs[s].values()),
                             mean_std=mean_std(list(aucs[s].values())))
        if 'random' in strategies:
            out['cost_reduction'][s] = _reductions(curves, s, seeds)
    out['paired_auc_vs'] = _paired_vs(strategies, seeds, lambda s, seed: aucs[s][seed])
    out['shared_range'] = {str(k): v for k, v in shared.items()}
    return out


def seconds_curves(curves: Curves, box_curves: Curves, cost: AnnotationCost) -> Curves:
    """mAP against annotation seconds, from the images and boxes each round labelled."""
    return {s: {seed: [(cost.seconds(i, b), m) for (i, m), (b, _) in
                       zip(curves[s][seed], box_curves[s][seed])] for seed in curves[s]}
            for s in curves}


def analyse_study(curves: Curves, box_curves: Curves, strategies: Sequence[str],
                  seeds: Sequence[int], cost: AnnotationCost) -> Dict[str, Any]:
    """Everything the report shows, in all three cost units. Under a budget in boxes or
    seconds the strategies of a seed label different numbers of images: per image, too, the
    AUC is then taken on the range they share."""
    res = analyse(curves, strategies, seeds)
    if any(len({tuple(x for x, _ in curves[s][seed]) for s in strategies}) > 1
           for seed in seeds):
        shared = analyse_shared(curves, strategies, seeds)
        res['auc'], res['paired_auc_vs'] = shared['auc'], shared['paired_auc_vs']
        res['shared_image_range'] = shared['shared_range']
    res['per_box'] = analyse_shared(box_curves, strategies, seeds)
    res['per_box']['shared_box_range'] = res['per_box'].pop('shared_range')
    res['per_second'] = analyse_shared(seconds_curves(curves, box_curves, cost), strategies,
                                       seeds)
    res['cost'] = dict(per_image=cost.per_image, per_box=cost.per_box)
    return res
