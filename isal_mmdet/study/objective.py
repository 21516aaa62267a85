"""The studies' detection objective: the product's :class:`DetectionObjective` with the
levers the research strategies and box queries pull (pseudo-box caps and draws, soft labels,
a fixed normaliser, foreground-only or class-weighted reference losses, per-box losses)."""
from __future__ import annotations

import zlib
from typing import Any, Dict, Hashable, List, Optional, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..detection.batching import same_shape_groups
from ..detection.losses import head_outputs
from ..detection.objective import DetectionObjective
from .box.answers import answer_distribution
from .box.losses import box_loss_head, box_losses
from .losses import ResearchTargets, soft_label_losses


def presence_draw(scores: torch.Tensor, img_id: Hashable, seed: int, draw: int) -> torch.Tensor:
    """Keeps each box with probability equal to its score, seeded by image, seed and draw.

    Averaging influence over draws gives the expected gradient over which predicted boxes
    are real, instead of treating every box above the threshold as certain."""
    gen = torch.Generator().manual_seed(
        (zlib.crc32(str(img_id).encode()) + 1000003 * seed + 7919 * draw) % (2 ** 63))
    return torch.rand(len(scores), generator=gen) < scores.cpu()


def box_records(instances: InstanceData, meta: dict) -> List[Dict[str, Any]]:
    """``[dict(bbox=[x1, y1, x2, y2], label, score)]`` in original image coordinates (the
    network-input box divided by the resize's ``scale_factor``), for labelling tools and
    box-level selection; boxes without a score (real labels) get 1."""
    boxes = instances.bboxes
    boxes = (boxes.tensor if hasattr(boxes, 'tensor') else boxes).detach()
    scale = boxes.new_tensor(meta.get('scale_factor', (1.0, 1.0))).repeat(2)
    scores = instances.scores.tolist() if 'scores' in instances else [1.0] * len(instances)
    return [dict(bbox=b, label=int(k), score=float(p)) for b, k, p in
            zip((boxes / scale).tolist(), instances.labels.tolist(), scores)]


class ResearchObjective(DetectionObjective):
    """:class:`DetectionObjective` with the studies' options.

    Args:
        score_thr, max_per_img, seed, cache_bytes: see :class:`DetectionObjective`.
        max_per_class (int, optional): at most this many pseudo boxes per class and image.
            Defaults to None (no cap).
        draw (int, optional): ``None`` keeps every box above the threshold (hard labels, the
            paper); an integer keeps each with probability equal to its score
            (:func:`presence_draw`). Defaults to None.
        soft (bool): pseudo loss = the expected loss over the predicted class probabilities
            (:func:`.losses.soft_label_losses`) instead of boxes.
            Defaults to False.
        avg_factor (float, optional): ``None``: each image's loss is divided by its own
            positive count; a number: by this fixed count (anchor heads), the same for every
            image. Defaults to None.
        foreground_only (bool): real-label losses keep only the terms of anchors assigned to
            a box (no background classification); pseudo-label losses are never restricted.
            Defaults to False.
        class_weights (Tensor, optional): ``[K]``: real-label losses weigh class k's terms
            by it (:func:`.losses.class_weighted_targets`); pseudo-label
            losses are never weighted. Defaults to None.

    ``positives`` collects every image's own positive count (anchor heads), from which a
    fixed ``avg_factor`` is taken; ``parts`` every box :meth:`per_part_loss` or
    :meth:`per_answer_loss` scored.
    """

    def __init__(self, score_thr: float = 0.1, max_per_img: int = 100, seed: int = 0,
                 max_per_class: Optional[int] = None, draw: Optional[int] = None,
                 soft: bool = False, avg_factor: Optional[float] = None,
                 cache_bytes: int = 2 ** 30, foreground_only: bool = False,
                 class_weights: Optional[Tensor] = None):
        """Nine arguments: the product's four and the studies' levers, each a keyword the
        study variants name."""
        super().__init__(score_thr, max_per_img, seed, cache_bytes)
        self.foreground_only, self.class_weights = foreground_only, class_weights
        self.max_per_class, self.draw, self.soft = max_per_class, draw, soft
        self.avg_factor = avg_factor
        self.positives: List[float] = []
        self.parts: Dict[Hashable, Dict[str, Any]] = {}

    def per_part_loss(self, model: nn.Module, batch: Any,
                      pseudo: bool = True) -> Tuple[Tensor, List[Hashable]]:
        """Each box's loss (:mod:`.box.losses`), flat over the batch's images in order, keyed
        ``(img_id, j)``, j the box's rank in its image (pseudo boxes: best score first).
        Records each box in :attr:`parts` as
        :func:`detection_candidates` gives it."""
        parts = self._box_parts(model, batch, pseudo, every_answer=False)
        return (torch.cat([loss for loss, _, _ in parts]),
                [k for _, _, keys in parts for k in keys])

    def per_answer_loss(self, model: nn.Module,
                        batch: Any) -> Tuple[Tensor, Tensor, List[Hashable]]:
        """Each pseudo box's loss under every answer a person checking it could give
        (``[P, K + 1]``: class 0..K−1, then "no object"; :func:`.box.losses.box_losses`),
        the model's probability of each answer (:func:`.box.answers.answer_distribution`)
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
        return dict(targets=ResearchTargets(self.avg_factor, self.positives,
                                            self.foreground_only and not pseudo,
                                            None if pseudo else self.class_weights))

    def _group_losses(self, model: nn.Module, inputs: Tensor, samples: list,
                      pseudo: bool) -> Tensor:
        if not (pseudo and self.soft):
            return super()._group_losses(model, inputs, samples, pseudo)
        x = self._features(model, inputs, samples)
        return soft_label_losses(model, head_outputs(model, x), samples)

    def _pseudo_options(self, pred: InstanceData, ds: Any) -> Dict[str, Any]:
        mask = None if self.draw is None else presence_draw(
            pred.scores.detach(), ds.metainfo['img_id'], self.seed, self.draw)
        return dict(max_per_class=self.max_per_class, keep_mask=mask)


@torch.no_grad()
def detection_candidates(model: nn.Module, batch: Any, score_thr: float = 0.1,
                         max_per_img: int = 100) -> Dict[Hashable, List[Dict[str, Any]]]:
    """``{img_id: [dict(bbox, label, score)]}``: each image's pseudo boxes (score >=
    ``score_thr``, best first, at most ``max_per_img``) in original image coordinates, the
    boxes :meth:`ResearchObjective.per_part_loss` scores, so that box-level baselines rank
    the same boxes as per-box ISAL."""
    objective = DetectionObjective(score_thr, max_per_img)
    out: Dict[Hashable, List[Dict[str, Any]]] = {}
    for _, inputs, samples in same_shape_groups(model, batch):
        x = model.extract_feat(inputs)
        gts, _ = objective._pseudo_gt(model, x, head_outputs(model, x), samples)
        out.update((ds.metainfo['img_id'], box_records(gt, ds.metainfo))
                   for ds, gt in zip(samples, gts))
    return out
