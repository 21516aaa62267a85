"""UUIC pseudo ground truth: the detector's own confident boxes, kept as hard labels."""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import torch
from mmengine.structures import InstanceData

logger = logging.getLogger(__name__)


def drop_degenerate(instances: InstanceData) -> Tuple[InstanceData, int]:
    """Boxes of zero width or height give a -inf regression target (log of 0): drop them."""
    boxes = instances.bboxes
    boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
    if len(instances) == 0:
        return instances, 0
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    dropped = int((~keep).sum())
    return (instances[keep] if dropped else instances), dropped


def to_pseudo_gt(pred: InstanceData, score_thr: float = 0.1, max_per_img: int = 100,
                 max_per_class: Optional[int] = None,
                 keep_mask: Optional[torch.Tensor] = None) -> Tuple[InstanceData, int]:
    """Predictions → ``InstanceData(bboxes, labels)`` to stand in for ground truth.

    Keeps boxes with ``score >= score_thr`` (and in ``keep_mask`` when given), at most
    ``max_per_class`` per class and ``max_per_img`` in all, best first, without degenerate
    ones. An image may end with no box: its loss is then the background-only loss, which is
    still defined, so it is scored like any other (the official code skips it).
    Returns the instances and how many degenerate boxes were dropped.
    """
    scores = pred.scores.detach()
    ok = scores >= score_thr
    if keep_mask is not None:
        ok &= keep_mask.to(ok.device)
    keep = torch.nonzero(ok).flatten()
    keep = keep[scores[keep].argsort(descending=True, stable=True)]
    if max_per_class is not None:
        labels = pred.labels[keep]
        rank = torch.zeros_like(labels)
        for c in labels.unique():
            members = labels == c
            rank[members] = torch.arange(int(members.sum()), device=labels.device)
        keep = keep[rank < max_per_class]
    keep = keep[:max_per_img]
    boxes = pred.bboxes.detach()
    boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
    gt = InstanceData(bboxes=boxes[keep].clone(), labels=pred.labels[keep].clone(),
                      scores=scores[keep].clone())
    return drop_degenerate(gt)
