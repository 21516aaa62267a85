"""The pre-annotation threshold: the score at which the model's boxes are worth an annotator's
time, chosen on the labelled reference set.

ISAL's ``score_thr`` (0.1) keeps many false boxes (82–99 per BCCD image against 13.7 real);
annotators who accept those train the next round on noise. Here each class gets the score
that maximises F1 (IoU ≥ 0.5, greedy matching in score order, as VOC's AP) on the reference
set, where it holds at least ``min_boxes`` real boxes; other classes take the threshold
that maximises F1 over all classes together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.dataset import pseudo_collate

# fit(model, reference set, class names) -> the thresholds' dict (calibrate_thresholds's)
ThresholdFit = Callable[[torch.nn.Module, Any, Sequence[str]], Dict[str, Any]]


def best_f1_threshold(scores: Sequence[float], tp: Sequence[bool], num_gt: int) -> float:
    """The score threshold with the highest F1 for predictions ``scores`` whose greedy match
    status is ``tp`` (ties: the higher threshold); 1.0 when nothing is right."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    best, thr, hits = 0.0, 1.0, 0
    for n, i in enumerate(order, 1):
        hits += bool(tp[i])
        if n < len(order) and scores[order[n]] == scores[i]:
            continue  # a threshold keeps every prediction of equal score
        f1 = 2 * hits / (n + num_gt) if n + num_gt else 0.0
        if f1 > best:
            best, thr = f1, float(scores[i])
    return thr


def _match(pred_boxes: torch.Tensor, pred_scores: torch.Tensor, gt: torch.Tensor,
           iou_thr: float) -> List[bool]:
    """Greedy in score order: a prediction is right when it overlaps a real box not yet
    taken by ``iou_thr``."""
    if len(pred_boxes) == 0:
        return []
    if len(gt) == 0:
        return [False] * len(pred_boxes)
    ious = bbox_overlaps(pred_boxes, gt)
    taken = torch.zeros(len(gt), dtype=torch.bool)
    tp = [False] * len(pred_boxes)
    for i in torch.argsort(pred_scores, descending=True, stable=True).tolist():
        iou = ious[i].masked_fill(taken, -1)
        j = int(iou.argmax())
        if iou[j] >= iou_thr:
            taken[j], tp[i] = True, True
    return tp


@dataclass
class ReferenceMatches:
    """The model's detections on the labelled reference set, matched to its real boxes: what
    a threshold is fitted from (a research extension reads more from them, e.g. a band).

    Attributes:
        per_class (dict): class index -> ``(scores, tp, num_gt)``: every detection's score,
            whether it matched a real box (:func:`_match`), and the class's real boxes.
        images (int): the reference images read.
    """
    per_class: Dict[int, Tuple[List[float], List[bool], int]]
    images: int

    def overall(self) -> Tuple[List[float], List[bool], int]:
        """Every class's detections and real boxes together."""
        return (sum((s for s, _, _ in self.per_class.values()), []),
                sum((t for _, t, _ in self.per_class.values()), []),
                sum(n for _, _, n in self.per_class.values()))


@torch.no_grad()
def reference_matches(model: torch.nn.Module, dataset: Any, num_classes: int,
                      iou_thr: float = 0.5, batch_size: int = 4) -> ReferenceMatches:
    """Runs ``model`` over ``dataset`` (labelled) and matches each class's detections to its
    real boxes at ``iou_thr`` (ignored boxes left out)."""
    model.eval()
    per_class = {k: ([], [], 0) for k in range(num_classes)}
    images = 0
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        infos = [dataset.get_data_info(i) for i in range(start, start + len(items))]
        pairs = [(it, info) for it, info in zip(items, infos) if it is not None]
        if not pairs:
            continue
        for (_, info), result in zip(pairs, model.test_step(pseudo_collate(
                [it for it, _ in pairs]))):
            images += 1
            pred = result.pred_instances
            real = [inst for inst in info.get('instances', []) if not inst.get('ignore_flag')]
            for k in per_class:
                gt = torch.tensor([inst['bbox'] for inst in real if inst['bbox_label'] == k],
                                  dtype=torch.float32).reshape(-1, 4)
                keep = pred.labels == k
                scores = pred.scores[keep].cpu()
                tp = _match(pred.bboxes[keep].cpu().float(), scores, gt, iou_thr)
                s, t, n = per_class[k]
                per_class[k] = (s + scores.tolist(), t + tp, n + len(gt))
    return ReferenceMatches(per_class, images)


def fit_thresholds(matches: ReferenceMatches, classes: Sequence[str],
                   min_boxes: int = 20) -> Dict[str, Any]:
    """Per-class thresholds fitted on ``matches``, with what they give there:
    ``dict(per_class={name: thr}, overall=thr, fitted=[names fitted on their own],
    images, real_boxes_per_image, boxes_per_image)``. A class with fewer than ``min_boxes``
    real boxes takes the threshold fitted on every class together."""
    overall = matches.overall()
    common = best_f1_threshold(*overall)
    thresholds, fitted = {}, []
    for k, (s, t, n) in matches.per_class.items():
        if n >= min_boxes:
            thresholds[classes[k]] = best_f1_threshold(s, t, n)
            fitted.append(classes[k])
        else:
            thresholds[classes[k]] = common
    kept = sum(sc >= thresholds[classes[k]]
               for k, (s, _, _) in matches.per_class.items() for sc in s)
    images = matches.images
    return dict(per_class=thresholds, overall=common, fitted=fitted, images=images,
                real_boxes_per_image=overall[2] / max(images, 1),
                boxes_per_image=kept / max(images, 1))


def calibrate_thresholds(model: torch.nn.Module, dataset: Any, classes: Sequence[str],
                         min_boxes: int = 20, iou_thr: float = 0.5,
                         batch_size: int = 4) -> Dict[str, Any]:
    """Per-class thresholds chosen on ``dataset`` (labelled): :func:`fit_thresholds` of
    :func:`reference_matches`."""
    return fit_thresholds(reference_matches(model, dataset, len(classes), iou_thr, batch_size),
                          classes, min_boxes)
