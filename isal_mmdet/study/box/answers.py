"""What the model expects a person checking one of its detections to answer.

A RetinaNet detection is one anchor's decoded box with one class's sigmoid score. That
anchor's K sigmoids are independent Bernoulli variables ("an object of class c is here"), but
a person answers exactly one of K + 1 things: class c, or "no object". The head's joint
distribution conditioned on at most one class being present is

    q_c ∝ σ(x_c) Π_{k≠c} (1 − σ(x_k)),   q_bg ∝ Π_k (1 − σ(x_k)),

so q_c ∝ σ(x_c) / (1 − σ(x_c)) = e^{x_c} and q_bg ∝ 1: the softmax of the anchor's K logits
and a zero logit for "no object". With one class it is (score, 1 − score); with more it needs
no ad hoc rule for mixing the detection's score with its other classes.
"""
from __future__ import annotations

from typing import List

import torch
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .losses import answer_head

# A detection's box is its anchor's decoded box, recomputed here by the same operations:
# any gap beyond rounding (pixels at network input scale) means it is not.
MATCH_TOL = 1e-2


def _source_logits(head: nn.Module, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                   dets: InstanceData, img_shape: tuple) -> Tensor:
    """``[m, K]``: the class logits of the anchor each detection was decoded from, found as
    the anchor whose decoded box (as ``predict_by_feat`` decodes it) and score are the
    detection's."""
    priors = cat_boxes(head.prior_generator.grid_priors(
        [c.shape[-2:] for c in cls_scores], dtype=cls_scores[0].dtype,
        device=cls_scores[0].device))

    def flat(levels: List[Tensor], width: int) -> Tensor:
        return torch.cat([lvl.permute(1, 2, 0).reshape(-1, width) for lvl in levels])

    logits = flat(cls_scores, head.cls_out_channels)
    decoded = get_box_tensor(head.bbox_coder.decode(
        priors, flat(bbox_preds, head.bbox_coder.encode_size), max_shape=img_shape))
    boxes = get_box_tensor(dets.bboxes).to(decoded)
    gap = torch.cdist(decoded, boxes, p=float('inf'))
    gap += (logits.sigmoid()[:, dets.labels] - dets.scores.to(gap)).abs()
    miss, anchor = gap.min(0)
    if len(miss) and float(miss.max()) > MATCH_TOL:
        raise ValueError(f'a detection is no anchor\'s decoded box (gap {float(miss.max()):.3g}'
                         f'): {type(head).__name__} does not predict as AnchorHead does')
    return logits[anchor]


@torch.no_grad()
def answer_distribution(model: nn.Module, outs: tuple, dets: List[InstanceData],
                        data_samples: list) -> List[Tensor]:
    """Per image, ``[m_i, K + 1]`` float64: each detection's answer distribution (module doc),
    columns K classes then "no object", as :func:`.losses.box_losses` orders its
    answers. ``dets``: each image's detections (``bboxes``, ``labels``, ``scores``) from the
    head outputs ``outs``, at network input scale."""
    head = answer_head(model)
    cls_scores, bbox_preds = outs
    out = []
    for i, (ds, det) in enumerate(zip(data_samples, dets)):
        x = _source_logits(head, [c[i] for c in cls_scores], [b[i] for b in bbox_preds], det,
                           ds.metainfo['img_shape']).double()
        out.append(torch.cat([x, x.new_zeros(len(x), 1)], 1).softmax(1))
    return out
