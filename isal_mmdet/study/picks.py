"""What a study's strategies picked: the class mix of their selections, how far they rank by
how busy an image is, what each ISAL selection's solve recorded, and what box queries found.
Read from the work dir's ``selection.json`` and ``box_labels.json`` files and the pool's
annotations; no image is read."""
from __future__ import annotations

import json
import os.path as osp
import statistics
from typing import Any, Dict, Iterator, List, Sequence, Tuple


def pool_boxes(config: str) -> Dict[str, List[str]]:
    """``{str(img_id): [class name per real box]}`` over the config's training set (the pool
    and the labelled images), VOC or COCO; no image is read."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from ..al.data import boxes_by_image, build_dataset, unwrap_subset
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    ds, _ = unwrap_subset(cfg.train_dataloader.dataset)
    ds = build_dataset(ds, 'train_dataloader.dataset')
    names = ds.metainfo['classes']
    return {i: [names[k] for k in labels] for i, labels in boxes_by_image(ds).items()}


def selections_of(work_dir: str, strategy: str, seeds: Sequence[int],
                  rounds: int) -> Iterator[Tuple[int, int, Dict[str, Any]]]:
    """``(seed, round, selection.json)`` for every selection a strategy wrote."""
    for seed in seeds:
        for k in range(rounds - 1):
            path = osp.join(work_dir, strategy, f'seed{seed}', f'round_{k}', 'selection.json')
            if osp.exists(path):
                with open(path) as f:
                    yield seed, k, json.load(f)


def composition(work_dir: str, strategies: Sequence[str], seeds: Sequence[int], rounds: int,
                boxes: Dict[str, List[str]]) -> Dict[str, Any]:
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


def busyness_correlation(work_dir: str, strategies: Sequence[str], seeds: Sequence[int],
                         rounds: int, boxes: Dict[str, List[str]]) -> Dict[str, Any]:
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


def solver_summary(work_dir: str, strategies: Sequence[str], seeds: Sequence[int],
                   rounds: int) -> Dict[str, List[Dict[str, Any]]]:
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


def box_answers(work_dir: str, strategies: Sequence[str], seeds: Sequence[int],
                rounds: int) -> Dict[str, List[Dict[str, Any]]]:
    """Per box-query run (seed), over all its rounds: the queries asked, the boxes they were
    charged, the images opened, how many answers were objects and how many "no object", and
    what the last round trained on
    besides them (pseudo boxes, ignore regions): how far partial labels stand in for images."""
    out = {}
    for s in strategies:
        rows = []
        for seed in seeds:
            path = osp.join(work_dir, s, f'seed{seed}', f'round_{rounds - 1}', 'box_labels.json')
            if not osp.exists(path):
                continue
            with open(path) as f:
                images = json.load(f)['images']
            sources = [i['source'] for e in images for i in e['instances']]
            rows.append(dict(seed=seed, queries=sum(e['queries'] for e in images),
                             charged=sum(e.get('charged', e['queries']) for e in images),
                             images=len(images), objects=sources.count('human'),
                             no_object=sum(len(e['background']) for e in images),
                             pseudo=sources.count('pseudo'), ignore=sources.count('ignore')))
        if rows:
            out[s] = rows
    return out
