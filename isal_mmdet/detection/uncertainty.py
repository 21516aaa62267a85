"""Per-box class probabilities and pooled features, for the uncertainty and core-set baselines."""
from __future__ import annotations

from typing import Any, List

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.structures.bbox import bbox2roi
from torch import Tensor, nn

from .batching import same_shape_groups


@torch.no_grad()
def box_class_probs(model: nn.Module, batch: Any, score_thr: float = 0.1,
                    max_boxes: int = 100) -> List[Tensor]:
    """For each image, ``[n_i, K]`` class probabilities of its candidate boxes.

    Candidates are the dense head's locations (single-stage) or the RoI head's proposals
    (two-stage) whose best class probability is >= ``score_thr``, at most ``max_boxes`` of
    them, best first. Sigmoid heads give independent per-class probabilities.
    """
    out: List[Tensor] = [None] * len(batch['inputs'])
    for idx, inputs, samples in same_shape_groups(model, batch):
        for i, p in zip(idx, _group_probs(model, inputs, samples, score_thr, max_boxes)):
            out[i] = p
    return out


def _group_probs(model: nn.Module, inputs: Tensor, samples: list, score_thr: float,
                 max_boxes: int) -> List[Tensor]:
    x = model.extract_feat(inputs)
    metas = [ds.metainfo for ds in samples]
    if isinstance(model, TwoStageDetector):
        proposals = model.rpn_head.predict(x, samples, rescale=False)
        rois = bbox2roi([p.bboxes for p in proposals])
        logits = model.roi_head._bbox_forward(x, rois)['cls_score']
        probs = logits.softmax(-1)[:, :-1]
        per_img = probs.split([len(p) for p in proposals])
    else:
        head = model.bbox_head
        cls_scores = head(x)[0]
        k = head.cls_out_channels
        per_img = []
        for i in range(len(metas)):
            logits = torch.cat([lvl[i].permute(1, 2, 0).reshape(-1, k) for lvl in cls_scores])
            sigmoid = getattr(head, 'use_sigmoid_cls', True)
            per_img.append(logits.sigmoid() if sigmoid else logits.softmax(-1)[:, :-1])
    out = []
    for p in per_img:
        best = p.max(-1).values
        keep = torch.nonzero(best >= score_thr).flatten()
        keep = keep[best[keep].argsort(descending=True, stable=True)][:max_boxes]
        out.append(p[keep].float().cpu())
    return out


@torch.no_grad()
def pooled_features(model: nn.Module, batch: Any) -> Tensor:
    """``[B, D]``: every neck level average-pooled and concatenated."""
    out: List[Tensor] = [None] * len(batch['inputs'])
    for idx, inputs, _ in same_shape_groups(model, batch):
        x = model.extract_feat(inputs)
        feats = torch.cat([lvl.mean(dim=(2, 3)) for lvl in x], dim=1).float().cpu()
        for i, f in zip(idx, feats):
            out[i] = f
    return torch.stack(out)
