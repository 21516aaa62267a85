"""Uncertainty sampling on the detector's boxes: entropy, least confidence, and PPAL's
difficulty-calibrated uncertainty (DCUS)."""
from __future__ import annotations

import math
from typing import Annotated, Any, Callable, List, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor, nn

from ...detection.uncertainty import box_class_probs
from ...influence.dist import all_reduce_tensor_
from ...registry import STRATEGIES
from ..arguments import Count, Interval, NonNegative, Score
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

    def __init__(self, score_thr: Score = 0.1, max_boxes: Count = 100):
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


def binary_entropy(p: Tensor) -> Tensor:
    """Entropy of a detection's score read as a Bernoulli probability (PPAL's uncertainty)."""
    p = p.double().clamp(1e-10, 1 - 1e-10)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def difficulty_weights(quality: Sequence[float], ub: float = 0.2,
                       alpha: float = 0.3) -> List[float]:
    """PPAL's class weights from class qualities q in [0, 1]: 1 for a class the model has
    mastered (q = 1), up to 1 + ub for one it has not (q = 0), concave in 1 − q."""
    b = math.exp(1.0 / alpha) - 1
    return [1 + alpha * math.log(b * (1 - q) + 1) * ub for q in quality]


def _predict_alone(model: nn.Module, batch: Any) -> List[Any]:
    """Each image's detections in the network's input scale, predicted alone (so they do not
    depend on what else is in the batch)."""
    out = []
    for x, ds in zip(batch['inputs'], batch['data_samples']):
        data = model.data_preprocessor({'inputs': [x], 'data_samples': [ds]}, False)
        out.append(model.predict(data['inputs'], data['data_samples'],
                                 rescale=False)[0].pred_instances)
    return out


def box_qualities(gt: Any, pred: Any, xi: float = 0.6,
                  iou_thr: float = 0.5) -> List[Tuple[int, float]]:
    """``(label, p^ξ·IoU^(1−ξ))`` of each real box in ``gt`` against its best-overlapping
    detection of the same class in ``pred`` (0 when none overlaps it by ``iou_thr``)."""
    boxes = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
    out = []
    for box, label in zip(boxes, gt.labels.tolist()):
        same = pred.labels == label
        q = 0.0
        if same.any():
            iou = bbox_overlaps(box[None].float(), pred.bboxes[same].float())[0]
            j = int(iou.argmax())
            if iou[j] >= iou_thr:
                q = float(pred.scores[same][j]) ** xi * float(iou[j]) ** (1 - xi)
        out.append((label, q))
    return out


@STRATEGIES.register_module(name='dcus')
@STRATEGIES.register_module()
class DCUS(Strategy):
    """Difficulty-calibrated uncertainty sampling (PPAL, Yang et al., arXiv 2211.11612; read
    from its public code): image score = Σ over its detections with score >= ``score_thr`` of
    the score's binary entropy × its class's difficulty weight (:func:`difficulty_weights`).

    PPAL keeps each class's quality as a moving average of p^ξ·IoU^(1−ξ) over the positive
    anchors seen in training. Here it is measured once, after training, on the labelled set:
    each real box's quality is p^ξ·IoU^(1−ξ) of its best-overlapping detection of its class
    (0 when none overlaps it by ``iou_thr``), averaged per class. PPAL's second stage (a
    diversity pick among 4 × budget candidates) is the ``class_medoids`` batch stage.
    """

    def __init__(self, score_thr: Score = 0.05, class_weight_ub: NonNegative = 0.2,
                 class_weight_alpha: Annotated[float, Interval(0, open=True)] = 0.3,
                 quality_xi: Score = 0.6, iou_thr: Score = 0.5):
        self.score_thr, self.ub, self.alpha = score_thr, class_weight_ub, class_weight_alpha
        self.xi, self.iou_thr = quality_xi, iou_thr
        self.weights: List[float] = []

    @torch.no_grad()
    def class_quality(self, ctx: Any) -> List[float]:
        k = len(ctx.pool.metainfo.get('classes', ()))
        local = [[0.0, 0] for _ in range(k)]
        ctx.model.eval()
        for batch in ctx.loader(ctx.labelled):
            for pred, ds in zip(_predict_alone(ctx.model, batch), batch['data_samples']):
                for label, q in box_qualities(ds.gt_instances, pred, self.xi, self.iou_thr):
                    local[label][0] += q
                    local[label][1] += 1
        total = all_reduce_tensor_(torch.tensor(local, dtype=torch.float64)).tolist()
        return [s / n if n else 0.0 for s, n in total]

    def score(self, ctx):
        quality = self.class_quality(ctx)
        self.weights = difficulty_weights(quality, self.ub, self.alpha)
        ctx.info['dcus'] = dict(class_quality=quality, class_weight=self.weights)
        return super().score(ctx)

    @torch.no_grad()
    def score_batch(self, ctx, batch):
        ctx.model.eval()
        out = []
        for pred in _predict_alone(ctx.model, batch):
            keep = pred.scores >= self.score_thr
            w = torch.tensor(self.weights, dtype=torch.float64)[pred.labels[keep].cpu()]
            out.append(float((binary_entropy(pred.scores[keep].cpu()) * w).sum()))
        return out
