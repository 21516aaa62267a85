"""The influence core's Objective for mmdet detectors (UUIC)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData
from mmdet.models.detectors import TwoStageDetector
from torch import Tensor, nn

from ..influence import Objective
from .batching import same_shape_groups
from .losses import head_outputs, per_image_losses
from .pseudo_labels import drop_degenerate, to_pseudo_gt

logger = logging.getLogger(__name__)


class DetectionObjective(Objective):
    """Per-image detection losses on real labels, or on pseudo labels (UUIC).

    Images are batched by padded shape (see :mod:`.batching`), so scores do not depend on
    batch size or rank. The studies' options (pseudo-box draws, soft labels, a fixed
    normaliser, class weights, per-box losses) extend it in :mod:`isal_mmdet.study`.

    Args:
        score_thr (float): pseudo boxes need at least this score (0.1 in the official
            run). Defaults to 0.1.
        max_per_img (int): at most this many pseudo boxes per image. Defaults to 100.
        seed (int): mixed with the image id to seed RoI sampling (two-stage detectors).
            Defaults to 0.
        cache_bytes (int): at most this many bytes of backbone/neck features kept per
            image within :meth:`cached` (a curvature solve). Defaults to 2 ** 30.
    """

    def __init__(self, score_thr: float = 0.1, max_per_img: int = 100, seed: int = 0,
                 cache_bytes: int = 2 ** 30):
        self.score_thr, self.max_per_img, self.seed = score_thr, max_per_img, seed
        self.cache_bytes = cache_bytes
        self.dropped_boxes = 0
        self.pseudo_boxes: List[int] = []
        self.features: Optional[Dict[Hashable, Tuple[Tensor, ...]]] = None
        self._feature_bytes = 0

    @contextmanager
    def cached(self) -> Iterator[None]:
        """Keeps each image's backbone/neck features for the solve: every curvature product
        (CG, LiSSA, power iteration) after the first then runs the head alone. Used only when
        no backbone/neck parameter requires grad (θ is head-only, as in every preset)."""
        outer = self.features is None
        if outer:
            self.features, self._feature_bytes = {}, 0
        try:
            yield
        finally:
            if outer:
                self.features = None

    def collate(self, samples: Sequence[Any]) -> Any:
        return pseudo_collate(list(samples))

    def sample_ids(self, batch: Any) -> List[Hashable]:
        return [ds.metainfo['img_id'] for ds in batch['data_samples']]

    def per_sample_loss(self, model: nn.Module, batch: Any, pseudo: bool = False) -> Tensor:
        out: List[Optional[Tensor]] = [None] * len(batch['inputs'])
        for idx, inputs, samples in same_shape_groups(model, batch):
            for i, loss in zip(idx, self._group_losses(model, inputs, samples, pseudo)):
                out[i] = loss
        return torch.stack(out)

    def _features(self, model: nn.Module, inputs: Tensor, samples: list) -> Tuple[Tensor, ...]:
        """``model.extract_feat(inputs)``, from :attr:`features` where every image is there;
        the batch is the concatenation of its images' cached slices, so it is the same
        tensor as the batch it was cut from."""
        feat_params = list(model.backbone.parameters())
        if getattr(model, 'with_neck', False):
            feat_params += list(model.neck.parameters())
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in feat_params)
        keys = [ds.metainfo.get('img_id') for ds in samples]
        cache = None if grad or None in keys else self.features
        if cache is not None and all(k in cache for k in keys):
            return tuple(torch.cat(level) for level in zip(*(cache[k] for k in keys)))
        with torch.set_grad_enabled(grad):
            x = model.extract_feat(inputs)
        if cache is not None:
            size = sum(level[0].numel() * level.element_size() for level in x)
            for i, key in enumerate(keys):
                if key not in cache and self._feature_bytes + size <= self.cache_bytes:
                    cache[key] = tuple(level[i:i + 1].clone() for level in x)
                    self._feature_bytes += size
        return x

    def _norm(self, pseudo: bool) -> Dict[str, Any]:
        """Keyword arguments of :func:`.losses.per_image_losses`: each image's own
        normaliser here."""
        return {}

    def _group_losses(self, model: nn.Module, inputs: Tensor, samples: list,
                      pseudo: bool) -> Tensor:
        x = self._features(model, inputs, samples)
        outs = head_outputs(model, x)
        self._set_targets(model, x, outs, samples, pseudo)
        return per_image_losses(model, x, outs, samples, self.seed, **self._norm(pseudo))

    def _pseudo_gt(self, model: nn.Module, x: tuple, outs: tuple,
                   samples: list) -> Tuple[List[InstanceData], List[int]]:
        """Each image's pseudo boxes (with scores, best first, network input scale) and how
        many degenerate ones were dropped."""
        gts, dropped = [], []
        for ds, pred in zip(samples, self.predict(model, x, outs, samples)):
            gt, n = to_pseudo_gt(pred, self.score_thr, self.max_per_img,
                                 **self._pseudo_options(pred, ds))
            gts.append(gt)
            dropped.append(n)
        return gts, dropped

    def _pseudo_options(self, pred: InstanceData, ds: Any) -> Dict[str, Any]:
        """Keyword arguments of :func:`.pseudo_labels.to_pseudo_gt` beyond the threshold and
        the count: none here."""
        return {}

    def _set_targets(self, model: nn.Module, x: tuple, outs: tuple, samples: list,
                     pseudo: bool) -> List[InstanceData]:
        """Sets each sample's ``gt_instances`` to its pseudo boxes or its own non-degenerate
        ones, and returns them (pseudo boxes with their scores)."""
        if not pseudo:
            for ds in samples:
                ds.gt_instances, dropped = drop_degenerate(ds.gt_instances)
                self._count_dropped(dropped, ds, 'ground-truth')
            return [ds.gt_instances for ds in samples]
        gts, dropped = self._pseudo_gt(model, x, outs, samples)
        for ds, gt, n in zip(samples, gts, dropped):
            self._count_dropped(n, ds, 'predicted')
            self.pseudo_boxes.append(len(gt))
            ds.gt_instances = InstanceData(bboxes=gt.bboxes, labels=gt.labels)
            ds.ignored_instances = InstanceData(bboxes=gt.bboxes.new_zeros((0, 4)),
                                                labels=gt.labels.new_zeros((0,)))
        return gts

    def _count_dropped(self, dropped: int, ds: Any, kind: str) -> None:
        if dropped:
            self.dropped_boxes += dropped
            logger.info('dropped %d zero-size %s box(es) of image %s', dropped, kind,
                        ds.metainfo.get('img_id'))

    @torch.no_grad()
    def predict(self, model: nn.Module, x: tuple, outs: tuple, samples: list) -> list:
        """Detections in the network's input scale (``rescale=False``), from shared features."""
        metas = [ds.metainfo for ds in samples]
        if isinstance(model, TwoStageDetector):
            proposals = model.rpn_head.predict_by_feat(*outs, batch_img_metas=metas,
                                                       cfg=model.test_cfg.rpn, rescale=False)
            cfg = model.roi_head.test_cfg.copy()
            cfg['score_thr'] = min(cfg.get('score_thr', 0.0), self.score_thr)
            return model.roi_head.predict_bbox(x, metas, proposals, cfg, rescale=False)
        cfg = model.bbox_head.test_cfg.copy()
        cfg['score_thr'] = min(cfg.get('score_thr', 0.0), self.score_thr)
        return model.bbox_head.predict_by_feat(*outs, batch_img_metas=metas, cfg=cfg,
                                               rescale=False)

