"""The pre-annotation threshold: the score at which the model's boxes are worth an annotator's
time, chosen on the labelled reference set.

ISAL's ``score_thr`` (0.1) keeps many false boxes (82–99 per BCCD image against 13.7 real);
annotators who accept those train the next round on noise. Here each class gets the score
that maximises F1 (IoU ≥ 0.5, greedy matching in score order, as VOC's AP) on the reference
set, where it holds at least ``min_boxes`` real boxes; other classes take the threshold
that maximises F1 over all classes together.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.dataset import pseudo_collate


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


def band_floor(scores: Sequence[float], tp: Sequence[bool], ceiling: float,
               precision: float) -> float:
    """The lowest score ``lo`` such that the predictions scored in ``[lo, ceiling)`` are right
    at least ``precision`` of the time (``ceiling`` when none are): the floor of the band of
    detections worth asking a person about. Below it most detections are duplicates or
    background, and a query there mostly comes back "no object"."""
    below = sorted(((sc, hit) for sc, hit in zip(scores, tp) if sc < ceiling),
                   key=lambda p: -p[0])
    floor, hits = ceiling, 0
    for n, (sc, hit) in enumerate(below, 1):
        hits += bool(hit)
        if n < len(below) and below[n][0] == sc:
            continue  # a floor keeps every prediction of equal score
        if hits >= precision * n:
            floor = sc
    return floor


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


@torch.no_grad()
def calibrate_thresholds(model: torch.nn.Module, dataset: Any, classes: Sequence[str],
                         min_boxes: int = 20, iou_thr: float = 0.5,
                         batch_size: int = 4,
                         band_precision: Optional[float] = None) -> Dict[str, Any]:
    """Per-class thresholds chosen on ``dataset`` (labelled), with what they give there:
    ``dict(per_class={name: thr}, overall=thr, fitted=[names fitted on their own],
    images, real_boxes_per_image, boxes_per_image)``; with ``band_precision``, also
    ``band_low={name: floor}`` (:func:`band_floor` below each class's threshold)."""
    model.eval()
    per_class = {k: ([], [], 0) for k in range(len(classes))}  # scores, tp, num_gt
    overall: tuple = ([], [], 0)
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
    for s, t, n in per_class.values():
        overall = (overall[0] + s, overall[1] + t, overall[2] + n)
    common = best_f1_threshold(*overall)
    thresholds, fitted = {}, []
    for k, (s, t, n) in per_class.items():
        if n >= min_boxes:
            thresholds[classes[k]] = best_f1_threshold(s, t, n)
            fitted.append(classes[k])
        else:
            thresholds[classes[k]] = common
    kept = sum(sc >= thresholds[classes[k]] for k, (s, _, _) in per_class.items() for sc in s)
    out = dict(per_class=thresholds, overall=common, fitted=fitted, images=images,
               real_boxes_per_image=overall[2] / max(images, 1),
               boxes_per_image=kept / max(images, 1))
    if band_precision is not None:
        out['band_low'] = {
            classes[k]: band_floor(*((s, t) if classes[k] in fitted else overall[:2]),
                                   thresholds[classes[k]], band_precision)
            for k, (s, t, _) in per_class.items()}
    return out
