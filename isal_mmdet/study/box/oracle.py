"""The simulated box-level oracle, and the labels entry of one partly labelled image.

An annotator checks single detections ("queries"). The simulation answers each from the
dataset's real, not ignored boxes:

- A query is matched to the real box of highest IoU, whatever its class (the annotator
  corrects the class). IoU >= 0.5 (``MATCH_IOU``, VOC's criterion for a found object)
  answers with that box: the real class and the real coordinates, a human label. Below, the
  answer is "no object here", a background region at the query's box. Two queries on the
  same real box yield it once; the second costs a box all the same.
- A query that adds a human box costs one box. Any other answer ("no object", or a box
  already found) is a check, priced by the cost model: one box by default, ``per_check /
  per_box`` of one when a check is priced apart (:mod:`.cost`). ``queries`` in the entry is
  the number asked, ``charged`` the image's cost in boxes. With checks priced below a box the
  selection cannot know its spend in advance: the annotator works down the strategy's order
  until the budget is used (:func:`~.selection.spend_queries`, :class:`Annotator`).

What the image trains on (:class:`~isal_mmdet.study.box.partial_labels.PartialLabels`):
human boxes as ground truth; an unasked confident detection as a pseudo box
(``pseudo='confident'``, BLAD's complementary pseudo labels) or, with ``pseudo='none'``,
as an ignore region; an unasked uncertain detection as an ignore region, whose anchors are
neither positive nor negative. A background region needs no instance (its anchors are
negatives as anywhere outside a box); it is kept in the entry for the drop rule and the
record. A pseudo box or ignore region overlapping a human box or a background region with
IoU >= 0.3 (``DROP_IOU``) is dropped: the person's answer stands for that place, and mmdet's
assigner ignores anchors before it matches them, so an ignore region there would cancel the
human box's positives. For the same reason an ignore region is dropped over a kept pseudo
box (a cross-class duplicate of a confident detection).
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps

MATCH_IOU = 0.5
DROP_IOU = 0.3
PSEUDO_MODES = ('confident', 'none')


def iou(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> torch.Tensor:
    """IoU of every box of ``a`` with every box of ``b``, mmdet's definition (``[len(a),
    len(b)]``)."""
    ta = torch.tensor([list(map(float, x)) for x in a], dtype=torch.float64).reshape(-1, 4)
    tb = torch.tensor([list(map(float, x)) for x in b], dtype=torch.float64).reshape(-1, 4)
    return bbox_overlaps(ta, tb)


class Annotator:
    """Answers box queries one at a time, as a person working down a queue does: a query
    finds the real (not ignored) box of highest IoU if that IoU is >= ``iou_thr``, and the
    box is new the first time it is found in its image."""

    def __init__(self, real: Mapping[Hashable, Sequence[Mapping[str, Any]]],
                 iou_thr: float = MATCH_IOU) -> None:
        self.real = {i: [r for r in boxes if not r.get('ignore_flag', 0)]
                     for i, boxes in real.items()}
        self.iou_thr = iou_thr
        self.found: Dict[Hashable, set] = {}

    def ask(self, img_id: Hashable, bbox: Sequence[float]) -> Tuple[Optional[int], bool]:
        """``(index of the real box found or None, whether it was found for the first
        time)``."""
        real = self.real.get(img_id, [])
        if not real:
            return None, False
        overlaps = iou([bbox], [r['bbox'] for r in real])[0]
        best = int(overlaps.argmax())
        if float(overlaps[best]) < self.iou_thr:
            return None, False
        found = self.found.setdefault(img_id, set())
        new = best not in found
        found.add(best)
        return best, new

    def is_object(self, img_id: Hashable, det: Mapping[str, Any]) -> bool:
        """Whether asking about ``det`` adds a human box (what the query is charged by)."""
        return self.ask(img_id, det['bbox'])[1]


def answer(queries: Sequence[Mapping[str, Any]], real: Sequence[Mapping[str, Any]],
           iou_thr: float = MATCH_IOU) -> List[Dict[str, Any]]:
    """The oracle's answers to ``queries`` (detections: ``bbox``, ``label``, ``score``) on
    one image whose ``real`` instances are the dataset's (``bbox``, ``bbox_label``,
    ``ignore_flag``): ``{'answer': 'object', 'bbox', 'label', 'query'}`` with the real box,
    once per real box found, or ``{'answer': 'background', 'bbox', 'query'}`` with the
    query's box; ``query`` is the index of the query answered."""
    person = Annotator({0: real}, iou_thr)
    out: List[Dict[str, Any]] = []
    for q, det in enumerate(queries):
        best, new = person.ask(0, det['bbox'])
        if best is None:
            out.append(dict(answer='background', bbox=[float(v) for v in det['bbox']],
                            query=q))
        elif new:
            found = person.real[0][best]
            out.append(dict(answer='object', bbox=[float(v) for v in found['bbox']],
                            label=int(found['bbox_label']), query=q))
    return out


def partial_labels(detections: Sequence[Mapping[str, Any]], queried_mask: Sequence[bool],
                   real: Sequence[Mapping[str, Any]], confident_mask: Sequence[bool],
                   pseudo: str = 'confident', *, img_id: Hashable,
                   check_boxes: float = 1.0) -> Dict[str, Any]:
    """One image's entry of the box labels file (see
    :mod:`~isal_mmdet.study.box.partial_labels`) after the oracle answered its queried
    ``detections``; the masks run along ``detections``; ``check_boxes``: the price of an
    answer that adds no human box, in boxes."""
    if pseudo not in PSEUDO_MODES:
        raise ValueError(f'pseudo must be one of {PSEUDO_MODES}, got {pseudo!r}')
    if not len(detections) == len(queried_mask) == len(confident_mask):
        raise ValueError(f'image {img_id!r}: {len(detections)} detections but masks of '
                         f'{len(queried_mask)} and {len(confident_mask)}')
    asked = [d for d, q in zip(detections, queried_mask) if q]
    answers = answer(asked, real)
    human = [box(a['bbox'], a['label'], 'human') for a in answers if a['answer'] == 'object']
    background = [a['bbox'] for a in answers if a['answer'] == 'background']
    settled = [h['bbox'] for h in human] + background
    unasked = [(d, c) for d, q, c in zip(detections, queried_mask, confident_mask) if not q]
    pseudo_boxes = keep_apart([box(d['bbox'], d['label'], 'pseudo') for d, c in unasked
                               if c and pseudo == 'confident'], settled)
    ignore = keep_apart([box(d['bbox'], d['label'], 'ignore') for d, c in unasked
                         if not (c and pseudo == 'confident')],
                        settled + [p['bbox'] for p in pseudo_boxes])
    return dict(img_id=img_id, instances=human + pseudo_boxes + ignore, background=background,
                queries=len(asked),
                charged=len(human) + check_boxes * (len(asked) - len(human)))


def box(bbox: Sequence[float], label: int, source: str) -> Dict[str, Any]:
    return dict(bbox=[float(v) for v in bbox], bbox_label=int(label),
                ignore_flag=int(source == 'ignore'), source=source)


def keep_apart(candidates: List[Dict[str, Any]],
               settled: List[List[float]]) -> List[Dict[str, Any]]:
    """``candidates`` whose IoU with every ``settled`` box is below ``DROP_IOU``."""
    if not candidates or not settled:
        return candidates
    overlaps = iou([c['bbox'] for c in candidates], settled)
    return [c for c, row in zip(candidates, overlaps) if float(row.max()) < DROP_IOU]


def merge_labels(previous: Optional[Dict[str, Any]],
                 new_entries: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """The labels file with ``new_entries`` added to ``previous`` (None: the first round).
    An image is queried in one round only: an image already there is an error."""
    images = list(previous['images']) if previous else []
    seen = {e['img_id'] for e in images}
    for entry in new_entries:
        if entry['img_id'] in seen:
            raise ValueError(f'merge_labels: image {entry["img_id"]!r} already has box labels '
                             '(an image is queried in one round only)')
        seen.add(entry['img_id'])
        images.append(entry)
    return dict(images=images)
