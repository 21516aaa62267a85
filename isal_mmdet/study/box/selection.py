"""One box-level selection step: which detections a person is asked to check.

Candidates are the detections in the uncertainty band, fitted per class on the labelled
reference set (:mod:`..labelling.thresholds`): below the class's pre-annotation threshold
(the score that maximises F1; above it a box is as likely right as the model gets, and is
kept as a pseudo box with ``pseudo='confident'``, or ignored, never asked about), and down
to the floor where the reference detections are still right ``band_precision`` of the time
(never below the strategy's ``score_thr``): below it nearly every query would come back "no
object". The default, 0.1, is loose on purpose: the band must hold many more candidates than
a round's budget, or every strategy asks the same boxes. On BCCD at 40 labelled images,
``band_precision=0.3`` left 498 candidates in the pool for a 526-box round; 0.1 keeps about
14,000, right about 1 time in 10 (the reference set: 6–11 % at scores 0.1–0.3, 28–47 % at
0.35–0.47). Every box strategy is spent on the same candidates, in
its own order (``ask='image'``: image by image, see :func:`image_order`), until the budget is
used; only the last query can cross it. A query costs one box, or a check where the cost
model prices checks apart (then the simulated annotator answers each query as it is asked:
see :mod:`.oracle`); in seconds, the first query in an image also costs the image
(opening it).

Writes ``box_queries.json`` (every detection of the pool, its band, score and whether it was
asked) and ``selection.json`` (the images opened, as an image-level selection lists its
picks), rank 0 only.
"""
from __future__ import annotations

import logging
import os.path as osp
import time
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from ...al.budget import Budget
from ...al.strategies import SelectionContext, rank_ids
from ...fileio import read_json, write_json
from ...influence.dist import barrier, rank_and_world
from .oracle import Annotator
from .strategies import BoxKey, BoxStrategy

QUERIES_FILE = 'box_queries.json'
logger = logging.getLogger('isal_mmdet')


def band_bounds(name: str, thresholds: Dict[str, Any], floor: float) -> Tuple[float, float]:
    """Class ``name``'s band ``[low, high)``: its fitted floor (or ``floor``, never less) up
    to its pre-annotation threshold."""
    low = max(floor, (thresholds.get('band_low') or {}).get(name, floor))
    return low, thresholds['per_class'][name]


def band_of(det: Dict[str, Any], thresholds: Dict[str, Any], classes: Tuple[str, ...],
            floor: float) -> str:
    """``'confident'`` (at or above the class's threshold), ``'uncertain'`` (a candidate) or
    ``'below'`` (under the band's floor, or ``floor`` where no floor was fitted)."""
    low, high = band_bounds(classes[det['label']], thresholds, floor)
    if det['score'] >= high:
        return 'confident'
    return 'uncertain' if det['score'] >= low else 'below'


def check_band(thresholds: Dict[str, Any], classes: Tuple[str, ...], floor: float,
               precision: float) -> None:
    """Fails in one line when no class has a band, before the pool is scored: nothing could
    be asked, and the next round would retrain on the same images."""
    if not classes or any(lo < hi for lo, hi in (band_bounds(c, thresholds, floor)
                                                 for c in classes)):
        return
    if thresholds.get('band_low') is not None:
        why = (f'below its pre-annotation threshold no class\'s reference detections are '
               f'right {precision:g} of the time')
    else:
        why = f'every class\'s pre-annotation threshold is at or below score_thr {floor:g}'
    raise ValueError(f'active_learning.strategy.band_precision={precision:g}: the uncertainty '
                     f'band is empty ({why}), so no box can be asked; lower band_precision '
                     f'(0 asks about every detection below the threshold) in a new work dir, '
                     f'or label whole images with an image-level strategy until the model '
                     f'finds more')


def image_order(order: List[BoxKey]) -> List[BoxKey]:
    """``order`` regrouped image by image: images in the order of their best candidate, each
    image's candidates together, in ``order``'s order within the image."""
    groups: Dict[Hashable, List[BoxKey]] = {}
    for key in order:
        groups.setdefault(key[0], []).append(key)
    return [key for keys in groups.values() for key in keys]


def spend_queries(order: List[BoxKey], budget: Budget,
                  is_object: Optional[Callable[[BoxKey], bool]] = None
                  ) -> Tuple[List[BoxKey], Dict[str, float]]:
    """The head of ``order`` that uses the budget (boxes or seconds), and what it costs. With
    checks priced apart from boxes, ``is_object`` answers each query in turn (a person working
    down the order) and a query that adds no human box costs a check."""
    if budget.unit == 'images':
        raise ValueError('box-level strategies spend boxes or seconds: set '
                         'active_learning.budget_unit to boxes or seconds')
    priced = budget.cost.per_check is not None
    if priced and is_object is None:
        raise ValueError('active_learning.cost.per_check: a check priced apart is charged as '
                         'it is answered, and only the simulated oracle answers box queries')
    chosen: List[BoxKey] = []
    opened: set = set()
    spent, charged, objects = 0.0, 0.0, 0
    for key in order:
        if spent >= budget.amount:
            break
        found = is_object(key) if priced else True
        objects += found
        boxes = 1.0 if found else budget.cost.check_boxes
        charged += boxes
        spent += boxes if budget.unit == 'boxes' else \
            budget.cost.seconds(int(key[0] not in opened), boxes)
        opened.add(key[0])
        chosen.append(key)
    cost = dict(images=len(opened), boxes=charged,
                seconds=budget.cost.seconds(len(opened), charged))
    if priced:
        cost.update(queries=len(chosen), objects=objects)
    return chosen, cost


def select_boxes(strategy: BoxStrategy, ctx: SelectionContext, budget: Budget,
                 thresholds: Dict[str, Any], out_dir: str,
                 person: Optional[Annotator] = None) -> Dict[str, Any]:
    """Scores every detection of the pool, asks the best candidates within ``budget``.
    ``thresholds``: the fitted pre-annotation thresholds (``per_class`` by class name) and,
    where fitted, the band's floors (``band_low``). ``person`` answers the queries as they
    are asked when checks are priced apart from boxes."""
    classes = tuple(ctx.pool.metainfo.get('classes', ()))
    check_band(thresholds, classes, strategy.score_thr, strategy.band_precision)
    start = time.perf_counter()
    dets, scores = strategy.score_boxes(ctx)
    bands = {k: band_of(dets[k[0]][k[1]], thresholds, classes, strategy.score_thr)
             for k in scores}
    candidates = {k: v for k, v in scores.items() if bands[k] == 'uncertain'}
    if not candidates and budget.amount > 0:
        raise ValueError(f'active_learning.strategy.band_precision={strategy.band_precision:g}'
                         f': none of the pool\'s {len(scores)} detections lies in the '
                         f'uncertainty band, so no box can be asked; lower band_precision in '
                         f'a new work dir, or label whole images with an image-level strategy')
    order = rank_ids(candidates, strategy.higher_is_better)
    if strategy.ask == 'image':
        order = image_order(order)
    chosen, cost = spend_queries(
        order, budget, None if person is None else
        (lambda key: person.is_object(key[0], dets[key[0]][key[1]])))
    seconds = time.perf_counter() - start
    if len(chosen) == len(order) and cost[budget.unit] < budget.amount:
        logger.warning('box queries: the uncertainty band held %d candidates, so %g of the '
                       'budget of %g %s were spent (band_precision=%g)', len(order),
                       cost[budget.unit], budget.amount, budget.unit, strategy.band_precision)
    asked = set(chosen)
    opened = list(dict.fromkeys(k[0] for k in chosen))
    info = dict(ctx.info, budget=dict(
        unit=budget.unit, amount=budget.amount, planned=cost,
        cost=dict(per_image=budget.cost.per_image, per_box=budget.cost.per_box,
                  per_check=budget.cost.per_check)),
        band=dict(low=thresholds.get('band_low'), high=thresholds['per_class'],
                  precision=strategy.band_precision, source=thresholds.get('source')),
        ask=strategy.ask,
        detections=sum(len(v) for v in dets.values()), candidates=len(candidates))
    if rank_and_world()[0] == 0:
        rows = [dict(img_id=i, j=j, bbox=d['bbox'], label=d['label'], score=d['score'],
                     band=bands.get((i, j)), query_score=scores.get((i, j)),
                     queried=(i, j) in asked)
                for i in opened for j, d in enumerate(dets[i])]
        write_json(osp.join(out_dir, QUERIES_FILE), dict(
            strategy=type(strategy).__name__, queries=len(chosen), detections=rows))
        write_json(osp.join(out_dir, 'selection.json'), dict(
            strategy=type(strategy).__name__, query='boxes', selected=opened,
            scores=image_priority(candidates, strategy.higher_is_better), seconds=seconds,
            info=info))
    barrier()
    return dict(strategy=type(strategy).__name__, selected=opened, queries=chosen,
                seconds=seconds, info=info)


def image_priority(candidates: Dict[BoxKey, float], higher_is_better: bool) -> Dict[str, float]:
    """Each pool image's best candidate score: how early the strategy opens it, so that a
    study reads box selections as it reads image selections (keys as selection files name
    images)."""
    best: Dict[str, float] = {}
    pick = max if higher_is_better else min
    for (img_id, _), value in candidates.items():
        key = str(img_id)
        best[key] = value if key not in best else pick(best[key], value)
    return best


def queried_images(path: str) -> Dict[Hashable, List[Dict[str, Any]]]:
    """``box_queries.json`` → each opened image's detections (with ``queried`` flags)."""
    out: Dict[Hashable, List[Dict[str, Any]]] = {}
    for row in read_json(path)['detections']:
        out.setdefault(row['img_id'], []).append(row)
    return out

