"""An assigner whose ignore regions hold in an image without a box.

mmdet's ``MaxIoUAssigner`` marks anchors inside ignore regions only through the IoU matrix,
which is empty when the image has no (non-ignored) box; every anchor then becomes a negative,
ignore regions included. An unlabelled image whose teacher is confident of nothing but unsure
of something (semi-supervised rounds), or a partly labelled one whose queries were all
answered "no object" (the box-query study), is exactly such an image: its uncertain detections
must stay ignored.
"""
from __future__ import annotations

from typing import Any, Optional

from mmdet.models.task_modules.assigners import AssignResult, MaxIoUAssigner
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData


@TASK_UTILS.register_module()
class IgnoringMaxIoUAssigner(MaxIoUAssigner):
    """``MaxIoUAssigner``, with anchors mostly inside an ignore region (IoF above
    ``ignore_iof_thr``) ignored also when the image has no box."""

    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               gt_instances_ignore: Optional[InstanceData] = None,
               **kwargs: Any) -> AssignResult:
        result = super().assign(pred_instances, gt_instances, gt_instances_ignore, **kwargs)
        if (self.ignore_iof_thr <= 0 or gt_instances_ignore is None or len(gt_instances) > 0
                or len(gt_instances_ignore) == 0 or len(pred_instances) == 0):
            return result
        priors = pred_instances.priors
        ignore = gt_instances_ignore.bboxes.to(priors.device)
        if self.ignore_wrt_candidates:
            iof = self.iou_calculator(priors, ignore, mode='iof').max(dim=1).values
        else:
            iof = self.iou_calculator(ignore, priors, mode='iof').max(dim=0).values
        inside = iof > self.ignore_iof_thr
        result.gt_inds[inside] = -1
        result.labels[inside] = -1
        return result


def with_ignore_regions(train_cfg: Any, iof_thr: float = 0.5) -> int:
    """Every ``MaxIoUAssigner`` in a detector's ``train_cfg`` made an
    :class:`IgnoringMaxIoUAssigner` that ignores anchors mostly (IoF > ``iof_thr``) inside an
    ignore region, unless it sets its own threshold; returns how many it changed."""
    if isinstance(train_cfg, dict):
        if str(train_cfg.get('type', '')).split('.')[-1] in ('MaxIoUAssigner',
                                                              IgnoringMaxIoUAssigner.__name__):
            train_cfg['type'] = IgnoringMaxIoUAssigner.__name__
            if (train_cfg.get('ignore_iof_thr') or -1) <= 0:
                train_cfg['ignore_iof_thr'] = iof_thr
            return 1
        return sum(with_ignore_regions(v, iof_thr) for v in train_cfg.values())
    if isinstance(train_cfg, (list, tuple)):
        return sum(with_ignore_regions(v, iof_thr) for v in train_cfg)
    return 0
