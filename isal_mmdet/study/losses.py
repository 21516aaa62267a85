"""The studies' loss levers outside the product's UUIC losses: a fixed normaliser and
reweighted reference terms (:class:`ResearchTargets`, with the head check they need, on
built heads or a model config), and soft pseudo labels (the expected focal loss over the
model's own class probabilities)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import AnchorFreeHead, AnchorHead
from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..detection.losses import AnchorTargets, focal_loss_module


def check_heads(heads: Sequence[type], fixed: bool, reference_terms: str = 'all') -> None:
    """Refuses normaliser='fixed' / reference terms that reweight targets ('foreground',
    'balanced') for head classes that cannot take them: anchor-free heads normalise inside
    their own loss, and other heads order their targets differently from mmdet's
    ``AnchorHead``."""
    free = [h.__name__ for h in heads if issubclass(h, AnchorFreeHead)]
    if fixed and free:
        raise ValueError(f"ISAL normaliser='fixed' needs anchor heads (RetinaNet, RPN); "
                         f"{free[0]} normalises inside its own loss")
    if reference_terms != 'all' and (
            len(heads) > 1 or getattr(heads[0], 'get_targets', None) is not
            AnchorHead.get_targets):
        raise ValueError(f"ISAL reference_terms='{reference_terms}' needs a single-stage head "
                         f"with mmdet's AnchorHead targets (RetinaNet), not "
                         f"{' + '.join(h.__name__ for h in heads)}")


def class_weighted_targets(targets: tuple, weights: Tensor, num_classes: int) -> tuple:
    """mmdet ``AnchorHead.get_targets`` output with column k of the classification loss
    (every anchor's class-k logit) and the box terms of class-k positives weighted by
    ``weights[k]``. mAP averages over classes, and each class's AP depends only on its own
    scores and boxes, so this loss weighs the classes as mAP does when ``weights[k]`` is
    inversely proportional to class k's box count. The per-class label weights reach
    mmdet's focal loss as ``[A, K]`` (it reshapes a weight of the loss's size)."""
    labels, label_weights, bbox_targets, bbox_weights = targets[:4]
    w = weights.to(label_weights[0].dtype)
    if len(w) != num_classes:
        raise ValueError(f'class weights for {len(w)} classes, the head has {num_classes}')
    per_label = torch.cat([w, w.new_ones(1)])  # the background label: its box weight is 0
    label_weights = [lw.unsqueeze(-1) * w.to(lw.device) for lw in label_weights]
    bbox_weights = [bw * per_label.to(bw.device)[lab].unsqueeze(-1).to(bw.dtype)
                    for lab, bw in zip(labels, bbox_weights)]
    return (labels, label_weights, bbox_targets, bbox_weights) + tuple(targets[4:])


class ResearchTargets(AnchorTargets):
    """The studies' anchor targets: a fixed count and reweighted reference terms.

    Args:
        avg_factor (float, optional): one fixed count for every image (anchor heads only).
            Defaults to None (the image's own count, clamped to >= 1).
        positives (list, optional): collects each anchor head call's own count. Defaults to
            None.
        foreground_only (bool): the background anchors get classification weight 0, so the
            loss keeps only the terms of anchors assigned to a box. Defaults to False.
        class_weights (Tensor, optional): ``[K]``, see :func:`class_weighted_targets`.
            Defaults to None.
    """

    def __init__(self, avg_factor: Optional[float] = None,
                 positives: Optional[List[float]] = None, foreground_only: bool = False,
                 class_weights: Optional[Tensor] = None):
        self.avg_factor, self.positives = avg_factor, positives
        self.foreground_only, self.class_weights = foreground_only, class_weights

    def check(self, heads: Sequence[type]) -> None:
        check_heads(heads, self.avg_factor is not None,
                    'foreground' if self.foreground_only else
                    'balanced' if self.class_weights is not None else 'all')

    def __call__(self, out: tuple, head: nn.Module) -> tuple:
        if self.positives is not None:
            self.positives.append(float(out[4]))
        if self.foreground_only:  # background label: num_classes (mmdet's AnchorHead)
            weights = [w * (lab != head.num_classes).to(w.dtype)
                       for lab, w in zip(out[0], out[1])]
            out = (out[0], weights) + tuple(out[2:])
        if self.class_weights is not None:
            out = class_weighted_targets(out, self.class_weights, head.num_classes)
        return out[:4] + (self.avg_factor or max(out[4], 1),) + tuple(out[5:])


def check_model_cfg(model_cfg: Dict, fixed: bool, reference_terms: str = 'all') -> None:
    """:func:`check_heads` on a model config's head types, before anything is built."""
    names = [model_cfg.get(k, {}).get('type') for k in ('bbox_head', 'rpn_head')]
    names.append((model_cfg.get('roi_head') or {}).get('bbox_head', {}).get('type'))
    heads = [MODELS.get(n) if isinstance(n, str) else n for n in names if n is not None]
    if heads and all(isinstance(h, type) for h in heads):
        check_heads(heads, fixed, reference_terms)


def focal_head(model: nn.Module) -> Tuple[nn.Module, nn.Module]:
    """The dense head and its sigmoid focal loss, which soft pseudo labels need."""
    head = getattr(model, 'bbox_head', None)
    loss_cls = getattr(head, 'loss_cls', None)
    if not isinstance(model, SingleStageDetector) or not (
            getattr(loss_cls, 'use_sigmoid', False) and hasattr(loss_cls, 'gamma')):
        raise ValueError(f"pseudo='soft' needs a single-stage detector with a sigmoid focal "
                         f"loss, not {type(model).__name__}; its expected likelihood "
                         f"gradient would be zero")
    return head, loss_cls


def soft_label_losses(model: nn.Module, outs: tuple, data_samples: list) -> Tensor:
    """Each image's focal loss in expectation over its own predicted class probabilities q.

    Soft pseudo labels, for single-stage heads with a sigmoid focal loss. The expected box is
    the predicted one, so box losses add no gradient. Normalised by the expected number of
    positives, Σq, clamped to >= 1 like ``avg_factor``. For likelihood losses (BCE, softmax
    cross-entropy) this expectation has zero gradient (studies/soft_labels.py), so other
    heads are refused.
    """
    head, loss_cls = focal_head(model)
    cls_scores = outs[0]
    sizes = [lvl.shape[-2:] for lvl in cls_scores]
    losses = []
    for i, ds in enumerate(data_samples):
        valid = torch.cat(head.prior_generator.valid_flags(sizes, ds.metainfo['pad_shape'],
                                                           cls_scores[0].device))
        logits = torch.cat([lvl[i].permute(1, 2, 0).reshape(-1, head.cls_out_channels)
                            for lvl in cls_scores])[valid]
        q = logits.detach().sigmoid()
        per_target = [focal_loss_module.py_sigmoid_focal_loss(
            logits, torch.full_like(q, t), gamma=loss_cls.gamma, alpha=loss_cls.alpha,
            reduction='none') for t in (1.0, 0.0)]
        expected = (q * per_target[0] + (1 - q) * per_target[1]).sum()
        losses.append(loss_cls.loss_weight * expected / q.sum().clamp(min=1))
    return torch.stack(losses)
