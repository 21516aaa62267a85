"""Spending a selection budget in the unit labelling is paid in: images, boxes or seconds.

A pool image's expected cost comes from the model: its detections at the pre-annotation
thresholds fitted on the reference set, scaled by the reference set's real boxes per
predicted box (recorded as ``calibration``). The detections are the ones the strategy made
while scoring (:mod:`..detection.recorder`); only images it never ran inference on (``random``,
``coreset``, ``entropy``'s raw class scores) get one inference pass. A model that finds no box
in the whole pool would price every image at 0 and spend the budget on all of them: then each
image is priced at the reference set's real boxes per image, recorded as ``fallback``.

The strategy's own order is spent until the budget is used, so the last image may cross it: a
budget is never overspent by more than one image. Plain order, not value per cost: most
strategies' scores are not on a ratio scale (ISAL's are signed influences; BADGE and core-set
give an order, not values), so score / cost has no meaning for them, and one rule for all
keeps a strategy's picks comparable across units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Sequence, Tuple

import torch

from ..detection.recorder import Detections, count_above, recorded_detections
from ..influence.dist import merge_over_ranks
from .cost import AnnotationCost
from ..dataset_index import id_index
from .strategies import SelectionContext, Strategy, rank_ids

UNITS = ('images', 'boxes', 'seconds')


@dataclass(frozen=True)
class Budget:
    """``amount`` of ``unit`` per selection; ``cost`` prices seconds."""
    amount: float
    unit: str = 'images'
    cost: AnnotationCost = field(default_factory=AnnotationCost)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f'active_learning.budget_unit must be one of {list(UNITS)}, got '
                             f'{self.unit!r}')
        whole = self.unit != 'seconds'
        if isinstance(self.amount, bool) or not isinstance(
                self.amount, int if whole else (int, float)) or not 0 < self.amount < 1e18:
            raise ValueError(f'active_learning.budget must be a positive '
                             f'{"integer" if whole else "number"} of {self.unit}, got '
                             f'{self.amount!r}')
        if self.unit == 'seconds' and not (self.cost.per_image or self.cost.per_box):
            raise ValueError('active_learning.cost: per_image and per_box are both 0, so a '
                             'budget in seconds would buy the whole pool')

    def price(self, boxes: float) -> float:
        """What one image with ``boxes`` boxes costs in this budget's unit."""
        if self.unit == 'images':
            return 1.0
        return boxes if self.unit == 'boxes' else self.cost.seconds(1, boxes)


def spend(order: Sequence[Hashable], costs: Dict[Hashable, float],
          amount: float) -> List[Hashable]:
    """The head of ``order`` that uses ``amount``: images are added while less than
    ``amount`` is spent, so only the last one can cross it."""
    chosen, spent = [], 0.0
    for i in order:
        if spent >= amount:
            break
        chosen.append(i)
        spent += costs[i]
    return chosen


@torch.no_grad()
def infer_missing(ctx: SelectionContext, seen: Detections, index: Dict[Hashable, int]) -> int:
    """One inference pass over the pool images (``index``: id -> position) the strategy made
    no detections on; returns how many."""
    missing = [index[i] for i in index if i not in seen]
    if missing:
        with recorded_detections(ctx.model) as more:
            for batch in ctx.loader(torch.utils.data.Subset(ctx.pool, missing)):
                ctx.model.test_step(batch)
        seen.update(more)
    return len(missing)


def expected_boxes(ctx: SelectionContext, seen: Detections, thresholds: Dict[str, Any],
                   classes: Sequence[str]) -> Tuple[Dict[Hashable, float], Dict[str, Any]]:
    """Each pool image's expected box count (0 for an image no pass could read), and how it
    was estimated."""
    index = id_index(ctx.pool)
    extra = infer_missing(ctx, seen, index)
    merged: Detections = merge_over_ranks(seen)
    by_label = {k: thresholds['per_class'][name] for k, name in enumerate(classes)}
    predicted = thresholds.get('boxes_per_image')
    real = thresholds.get('real_boxes_per_image')
    scale = real / predicted if predicted and real is not None else 1.0
    counts = {i: scale * count_above(merged[i], by_label) if i in merged else 0.0
              for i in index}
    seen_pool = sum(i in merged for i in index)
    info = dict(calibration=dict(scale=scale, reference_predicted_per_image=predicted,
                                 reference_real_per_image=real),
                inferred_while_scoring=seen_pool - extra, extra_inference=extra,
                mean_per_image=sum(counts.values()) / max(seen_pool, 1))
    if counts and not any(counts.values()):
        # a model that finds nothing prices every image at 0: the budget would buy the pool
        if not real:
            raise ValueError('every pool image is expected to cost 0 boxes (the model finds '
                             'none, and the reference set has no box to estimate from): a '
                             'budget in boxes or seconds cannot be spent; budget in images')
        counts = dict.fromkeys(counts, float(real))
        info['fallback'] = (f'the model finds no box in the pool: every image priced at the '
                            f"reference set's {real:g} real boxes per image")
    return counts, info


def plan(strategy: Strategy, scores: Dict[Hashable, float], ctx: SelectionContext,
         budget: Budget, boxes: Dict[Hashable, float]) -> Tuple[List[Hashable], Dict[str, Any]]:
    """``boxes``: every pool image's expected count. The strategy's picks, in its order, until the budget is used, with what they are
    expected to cost. Set-based strategies (BADGE, core-set) are asked for more picks until
    the budget is used or the pool is exhausted."""
    costs = {i: budget.price(b) for i, b in boxes.items()}
    ranked = rank_ids(scores, strategy.higher_is_better)
    n = max(len(spend(ranked, costs, budget.amount)), 1)
    while True:
        order = strategy.select(scores, min(n, len(scores)), ctx)
        chosen = spend(order, costs, budget.amount)
        if sum(costs[i] for i in chosen) >= budget.amount or n >= len(scores):
            break
        n *= 2
    planned_boxes = sum(boxes[i] for i in chosen)
    return chosen, dict(unit=budget.unit, amount=budget.amount,
                        cost=dict(per_image=budget.cost.per_image,
                                  per_box=budget.cost.per_box),
                        planned=dict(images=len(chosen), boxes=planned_boxes,
                                     seconds=budget.cost.seconds(len(chosen), planned_boxes)))
