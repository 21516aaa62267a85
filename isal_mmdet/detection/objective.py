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
from .box_answers import answer_distribution
from .box_losses import box_loss_head, box_losses
from .losses import head_outputs, per_image_losses, soft_label_losses
from .pseudo_labels import box_records, drop_degenerate, presence_draw, to_pseudo_gt

logger = logging.getLogger(__name__)


class DetectionObjective(Objective):
    """Per-image detection losses on real labels, or on pseudo labels (UUIC).

    Images are batched by padded shape (see :mod:`.batching`), so scores do not depend on
    batch size or rank.

    Args:
        score_thr: pseudo boxes need at least this score (0.1 in the official run).
        max_per_img: at most this many pseudo boxes per image.
        seed: mixed with the image id to seed RoI sampling (two-stage detectors).
        max_per_class: at most this many pseudo boxes per class and image.
        draw: ``None`` keeps every box above the threshold (hard labels, the paper); an
            integer keeps each with probability equal to its score (:func:`presence_draw`).
        soft: pseudo loss = the expected loss over the predicted class probabilities
            (:func:`.losses.soft_label_losses`) instead of boxes.
        avg_factor: ``None``: each image's loss is divided by its own positive count;
            a number: by this fixed count (anchor heads), the same for every image.
        cache_bytes: at most this many bytes of backbone/neck features kept per image
            within :meth:`cached` (a curvature solve).
        foreground_only: real-label losses keep only the terms of anchors assigned to a box
            (no background classification); pseudo-label losses are never restricted.
        class_weights: ``None``, or ``[K]``: real-label losses weigh class k's terms by it
            (:func:`.losses.class_weighted_targets`); pseudo-label losses are never weighted.

    ``positives`` collects every image's own positive count (anchor heads), from which a
    fixed ``avg_factor`` is taken; ``parts`` every box :meth:`per_part_loss` or
    :meth:`per_answer_loss` scored.
    """

    def __init__(self, score_thr: float = 0.1, max_per_img: int = 100, seed: int = 0,
                 max_per_class: Optional[int] = None, draw: Optional[int] = None,
                 soft: bool = False, avg_factor: Optional[float] = None,
                 cache_bytes: int = 2 ** 30, foreground_only: bool = False,
                 class_weights: Optional[Tensor] = None):
        self.score_thr, self.max_per_img, self.seed = score_thr, max_per_img, seed
        self.foreground_only, self.class_weights = foreground_only, class_weights
        self.max_per_class, self.draw, self.soft = max_per_class, draw, soft
        self.avg_factor, self.cache_bytes = avg_factor, cache_bytes
        self.dropped_boxes = 0
        self.pseudo_boxes: List[int] = []
        self.positives: List[float] = []
        self.parts: Dict[Hashable, Dict[str, Any]] = {}
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

    def per_part_loss(self, model: nn.Module, batch: Any,
                      pseudo: bool = True) -> Tuple[Tensor, List[Hashable]]:
        """Each box's loss (:mod:`.box_losses`), flat over the batch's images in order, keyed
        ``(img_id, j)``, j the box's rank in its image (pseudo boxes: best score first).
        Records each box in :attr:`parts` as :func:`detection_candidates` gives it."""
        parts = self._box_parts(model, batch, pseudo, every_answer=False)
        return (torch.cat([loss for loss, _, _ in parts]),
                [k for _, _, keys in parts for k in keys])

    def per_answer_loss(self, model: nn.Module,
                        batch: Any) -> Tuple[Tensor, Tensor, List[Hashable]]:
        """Each pseudo box's loss under every answer a person checking it could give
        (``[P, K + 1]``: class 0..K−1, then "no object"; :func:`.box_losses.box_losses`),
        the model's probability of each answer (:func:`.box_answers.answer_distribution`)
        and the keys of :meth:`per_part_loss`, whose :attr:`parts` records it keeps too."""
        parts = self._box_parts(model, batch, True, every_answer=True)
        return (torch.cat([loss for loss, _, _ in parts]), torch.cat([q for _, q, _ in parts]),
                [k for _, _, keys in parts for k in keys])

    def _box_parts(self, model: nn.Module, batch: Any, pseudo: bool,
                   every_answer: bool) -> List[Tuple[Tensor, Optional[Tensor], List[Hashable]]]:
        """Per image of ``batch``, in order: its box losses, its answer distributions (with
        ``every_answer``, else None) and its boxes' keys."""
        box_loss_head(model)
        if pseudo and self.soft:
            raise ValueError('per-box losses need hard pseudo boxes (soft=False)')
        out: List[Any] = [None] * len(batch['inputs'])
        for idx, inputs, samples in same_shape_groups(model, batch):
            x = self._features(model, inputs, samples)
            outs = head_outputs(model, x)
            boxes = self._set_targets(model, x, outs, samples, pseudo)
            losses = box_losses(model, outs, samples, self.seed, every_answer,
                                **self._norm(pseudo))
            answers = (answer_distribution(model, outs, boxes, samples) if every_answer
                       else [None] * len(samples))
            for i, ds, gt, loss, q in zip(idx, samples, boxes, losses, answers):
                keys = [(ds.metainfo['img_id'], j) for j in range(len(gt))]
                self.parts.update(zip(keys, box_records(gt, ds.metainfo)))
                out[i] = loss, q, keys
        return out

    def _norm(self, pseudo: bool) -> Dict[str, Any]:
        return dict(avg_factor=self.avg_factor, positives=self.positives,
                    foreground_only=self.foreground_only and not pseudo,
                    class_weights=None if pseudo else self.class_weights)

    def _group_losses(self, model: nn.Module, inputs: Tensor, samples: list,
                      pseudo: bool) -> Tensor:
        x = self._features(model, inputs, samples)
        outs = head_outputs(model, x)
        if pseudo and self.soft:
            return soft_label_losses(model, outs, samples)
        self._set_targets(model, x, outs, samples, pseudo)
        return per_image_losses(model, x, outs, samples, self.seed, **self._norm(pseudo))

    def _pseudo_gt(self, model: nn.Module, x: tuple, outs: tuple,
                   samples: list) -> Tuple[List[InstanceData], List[int]]:
        """Each image's pseudo boxes (with scores, best first, network input scale) and how
        many degenerate ones were dropped."""
        gts, dropped = [], []
        for ds, pred in zip(samples, self.predict(model, x, outs, samples)):
            mask = None if self.draw is None else presence_draw(
                pred.scores.detach(), ds.metainfo['img_id'], self.seed, self.draw)
            gt, n = to_pseudo_gt(pred, self.score_thr, self.max_per_img, self.max_per_class,
                                 mask)
            gts.append(gt)
            dropped.append(n)
        return gts, dropped

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


@torch.no_grad()
def detection_candidates(model: nn.Module, batch: Any, score_thr: float = 0.1,
                         max_per_img: int = 100) -> Dict[Hashable, List[Dict[str, Any]]]:
    """``{img_id: [dict(bbox, label, score)]}``: each image's pseudo boxes (score >=
    ``score_thr``, best first, at most ``max_per_img``) in original image coordinates, the
    boxes :meth:`DetectionObjective.per_part_loss` scores, so that box-level baselines rank
    the same boxes as per-box ISAL."""
    objective = DetectionObjective(score_thr, max_per_img)
    out: Dict[Hashable, List[Dict[str, Any]]] = {}
    for _, inputs, samples in same_shape_groups(model, batch):
        x = model.extract_feat(inputs)
        gts, _ = objective._pseudo_gt(model, x, head_outputs(model, x), samples)
        out.update((ds.metainfo['img_id'], box_records(gt, ds.metainfo))
                   for ds, gt in zip(samples, gts))
    return out
