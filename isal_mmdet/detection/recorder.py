"""The detections a model makes while a strategy scores the pool, kept by image id, so that
the cost model counts each image's expected boxes from inference already run rather than
from a second pass over the pool."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict, Hashable, Iterator, List, Tuple

from mmdet.models.detectors import TwoStageDetector
from torch import Tensor, nn

Detections = Dict[Hashable, Tuple[List[float], List[int]]]


def _recording(fn: Callable, seen: Detections, metas_at: int) -> Callable:
    def wrapper(*args, **kwargs):
        results = fn(*args, **kwargs)
        metas = kwargs.get('batch_img_metas', args[metas_at] if len(args) > metas_at else None)
        for meta, res in zip(metas or [], results):
            if 'img_id' in meta:
                inst = getattr(res, 'pred_instances', res)
                scores: Tensor = inst.scores
                seen[meta['img_id']] = (scores.detach().cpu().tolist(),
                                        inst.labels.detach().cpu().tolist())
        return results
    return wrapper


@contextmanager
def recorded_detections(model: nn.Module) -> Iterator[Detections]:
    """Inside, every final detection of ``model`` (after NMS) is kept as ``{img_id: (scores,
    labels)}``; a later prediction of the same image replaces an earlier one."""
    seen: Detections = {}
    model = getattr(model, 'module', model)  # a distributed wrapper's own model
    if isinstance(model, TwoStageDetector):
        owner, name, metas_at = model.roi_head, 'predict_bbox', 1
    else:
        owner, name, metas_at = model.bbox_head, 'predict_by_feat', 3
    original = owner.__dict__.get(name)
    setattr(owner, name, _recording(getattr(owner, name), seen, metas_at))
    try:
        yield seen
    finally:
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


def count_above(detections: Tuple[List[float], List[int]], thresholds: Dict[int, float]) -> int:
    """Detections at or above their class's threshold."""
    scores, labels = detections
    return sum(s >= thresholds[k] for s, k in zip(scores, labels))
