"""Per-detection features for class-conditioned batch diversity: each detection's feature is
the head's classification features averaged over its box with RoIAlign (the classification
tower of a single-stage head, the RoI head's extractor of a two-stage one)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.structures.bbox import bbox2roi
from torch import Tensor, nn


@dataclass
class BoxFeatures:
    """An image's detections at or above the score threshold: ``features [n, C]`` (L2
    normalised), ``labels [n]``, ``scores [n]``; n may be 0."""
    features: Tensor
    labels: Tensor
    scores: Tensor


def _tower(head: nn.Module, x: List[Tensor]) -> List[Tensor]:
    """The classification tower's output per level (the neck's when the head has none)."""
    convs = getattr(head, 'cls_convs', None)
    if convs is None:
        return list(x)
    out = []
    for level in x:
        for conv in convs:
            level = conv(level)
        out.append(level)
    return out


def _extractor(model: nn.Module, channels: int) -> nn.Module:
    """mmdet's RoIAlign extractor over the head's strides (FPN level by box size)."""
    strides = [s[0] if isinstance(s, (tuple, list)) else s
               for s in model.bbox_head.prior_generator.strides]
    return SingleRoIExtractor(roi_layer=dict(type='RoIAlign', output_size=3, sampling_ratio=2),
                              out_channels=channels, featmap_strides=strides)


@torch.no_grad()
def box_features(model: nn.Module, batch: Any, score_thr: float = 0.1,
                 max_boxes: int = 20) -> List[BoxFeatures]:
    """Each image of ``batch`` predicted alone (so nothing depends on the batch), its best
    ``max_boxes`` detections with score >= ``score_thr`` and their pooled head features."""
    model.eval()
    out = []
    for x_in, ds in zip(batch['inputs'], batch['data_samples']):
        data = model.data_preprocessor({'inputs': [x_in], 'data_samples': [ds]}, False)
        feats = model.extract_feat(data['inputs'])
        if isinstance(model, TwoStageDetector):
            proposals = model.rpn_head.predict(feats, data['data_samples'], rescale=False)
            pred = model.roi_head.predict(feats, proposals, data['data_samples'],
                                          rescale=False)[0]
            levels, extractor = feats, model.roi_head.bbox_roi_extractor
        else:
            pred = model.bbox_head.predict(feats, data['data_samples'], rescale=False)[0]
            levels = _tower(model.bbox_head, feats)
            extractor = _extractor(model, levels[0].shape[1])
        keep = torch.nonzero(pred.scores >= score_thr).flatten()
        keep = keep[pred.scores[keep].argsort(descending=True, stable=True)][:max_boxes]
        boxes = pred.bboxes[keep].float()
        if len(keep):
            pooled = extractor(levels[:extractor.num_inputs], bbox2roi([boxes])).mean((2, 3))
            pooled = nn.functional.normalize(pooled.double(), dim=1).cpu()
        else:
            pooled = torch.zeros(0, levels[0].shape[1], dtype=torch.float64)
        out.append(BoxFeatures(pooled, pred.labels[keep].cpu(), pred.scores[keep].double().cpu()))
    return out
