"""The studies' loss levers outside the product's UUIC losses: soft pseudo labels (the
expected focal loss over the model's own class probabilities) and the head check a fixed
normaliser or restricted reference terms need on a model config, before anything is built."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..detection.losses import check_heads, focal_loss_module


def check_model_cfg(model_cfg: Dict, fixed: bool, reference_terms: str = 'all') -> None:
    """:func:`~isal_mmdet.detection.losses.check_heads` on a model config's head types,
    before anything is built."""
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
