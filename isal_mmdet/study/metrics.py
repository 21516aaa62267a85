"""Curve arithmetic for label savings. A curve is ``[(x, mAP), ...]`` over rounds, x the
labelled images, boxes or seconds spent so far."""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

Curve = Sequence[Tuple[float, float]]


def auc(points: Curve) -> float:
    """Area under the curve (trapezoid) divided by its x range: a mean mAP."""
    xs, ys = zip(*points)
    area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
    return area / (xs[-1] - xs[0]) if xs[-1] > xs[0] else ys[0]


def labels_to_reach(points: Curve, target: float) -> Optional[float]:
    """The first x at which the curve (linear between rounds) reaches ``target``."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y0 >= target:
            return x0
        if y1 >= target:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return points[-1][0] if points[-1][1] >= target else None


def interp(points: Curve, x: float) -> Optional[float]:
    """mAP at ``x`` on the curve, linear between rounds (``x`` within its range)."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1] if x == points[-1][0] else None


def auc_on(points: Curve, lo: float, hi: float, steps: int = 200) -> float:
    """Mean of the interpolated curve over ``[lo, hi]``: curves with different x ranges
    (boxes, seconds) compared on the range they share."""
    xs = [lo + (hi - lo) * k / steps for k in range(steps + 1)]
    return statistics.mean(interp(points, x) for x in xs) if hi > lo else interp(points, lo)


def mean_std(values: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired(diffs: List[float]) -> Dict[str, Any]:
    """Mean, std and standard error of per-seed differences."""
    m, sd = mean_std(diffs)
    se = sd / math.sqrt(len(diffs)) if sd is not None else None
    return dict(per_seed=diffs, mean=m, std=sd, stderr=se,
                mean_exceeds_stderr=bool(se is not None and m > se))


def reduction(curve: Curve, random: Curve) -> Optional[float]:
    """The paper's annotation-cost reduction against random: with R random's last x and m its
    mAP there, (R − x_S) / R for the first x_S at which ``curve`` reaches m (None: never)."""
    x = labels_to_reach(curve, random[-1][1])
    return None if x is None else (random[-1][0] - x) / random[-1][0]
