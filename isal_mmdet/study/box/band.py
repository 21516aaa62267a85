"""The box queries' uncertainty band: each class's detections below its pre-annotation
threshold, down to the floor where the reference set's detections are still right
``band_precision`` of the time. The floors are fitted from the same matches as the
thresholds (:class:`~isal_mmdet.labelling.thresholds.ReferenceMatches`), through the threshold
fit that :func:`~isal_mmdet.al.selection.preannotation_thresholds` takes."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import torch

from ...labelling.thresholds import ThresholdFit, fit_thresholds, reference_matches


def band_floor(scores: Sequence[float], tp: Sequence[bool], ceiling: float,
               precision: float) -> float:
    """The lowest score ``lo`` such that the predictions scored in ``[lo, ceiling)`` are right
    at least ``precision`` of the time (``ceiling`` when none are): the floor of the band of
    detections worth asking a person about. Below it most detections are duplicates or
    background, and a query there mostly comes back "no object"."""
    below = sorted(((sc, hit) for sc, hit in zip(scores, tp) if sc < ceiling),
                   key=lambda p: -p[0])
    floor, hits = ceiling, 0
    for n, (sc, hit) in enumerate(below, 1):
        hits += bool(hit)
        if n < len(below) and below[n][0] == sc:
            continue  # a floor keeps every prediction of equal score
        if hits >= precision * n:
            floor = sc
    return floor


def band_fit(precision: float) -> ThresholdFit:
    """A threshold fit that adds ``band_low={name: floor}`` to
    :func:`~isal_mmdet.labelling.thresholds.fit_thresholds`' result: :func:`band_floor` below
    each class's threshold, from the class's own detections where its threshold was fitted on
    them, else from every class's.

    Args:
        precision (float): how often, at least, the band's reference detections are right.
    """
    def fit(model: torch.nn.Module, reference: Any, classes: Sequence[str]) -> Dict[str, Any]:
        matches = reference_matches(model, reference, len(classes))
        out = fit_thresholds(matches, classes)
        every = matches.overall()[:2]
        out['band_low'] = {
            classes[k]: band_floor(*((s, t) if classes[k] in out['fitted'] else every),
                                   out['per_class'][classes[k]], precision)
            for k, (s, t, _) in matches.per_class.items()}
        return out
    return fit
