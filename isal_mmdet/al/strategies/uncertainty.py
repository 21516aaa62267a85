"""Uncertainty sampling on the detector's boxes: entropy and least confidence."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from ...detection.uncertainty import box_class_probs
from ...registry import STRATEGIES
from .base import Strategy


def entropy_of_boxes(probs: Tensor) -> float:
    """Image entropy: the highest class entropy among its boxes (0 with no box).

    Each box's class probabilities are normalised to sum to 1 first (sigmoid heads score
    classes independently).
    """
    if len(probs) == 0:
        return 0.0
    q = probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
    ent = -(q * q.clamp_min(1e-12).log()).sum(-1)
    return float(ent.max())


def least_confidence_of_boxes(probs: Tensor) -> float:
    """1 − the image's best box confidence (1 when no box passes the threshold)."""
    if len(probs) == 0:
        return 1.0
    return float(1.0 - probs.max())


@STRATEGIES.register_module(name='entropy')
@STRATEGIES.register_module()
class Entropy(Strategy):
    """Most uncertain first: see :func:`entropy_of_boxes`."""
    aggregate: Callable[[Tensor], float] = staticmethod(entropy_of_boxes)

    def __init__(self, score_thr: float = 0.1, max_boxes: int = 100):
        self.score_thr, self.max_boxes = score_thr, max_boxes

    def score_batch(self, ctx, batch):
        ctx.model.eval()
        probs = box_class_probs(ctx.model, batch, self.score_thr, self.max_boxes)
        return [self.aggregate(p) for p in probs]


@STRATEGIES.register_module(name='least_confidence')
@STRATEGIES.register_module()
class LeastConfidence(Entropy):
    """Least confident first: see :func:`least_confidence_of_boxes`."""
    aggregate = staticmethod(least_confidence_of_boxes)
