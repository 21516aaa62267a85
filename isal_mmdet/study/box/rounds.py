"""What a round of box queries adds to the round loop (:class:`BoxRounds`, the loop's
:class:`~isal_mmdet.al.extension.RoundExtension`): the answers become the partly labelled
images the next round trains on.

``W/round_<k>/box_queries.json`` (round k's selection) is answered by the simulated oracle
(:mod:`.oracle`) against the dataset's real boxes, merged with the earlier answers into
``W/round_<k+1>/box_labels.json``, and round k+1 trains on its images through
:class:`~.partial_labels.PartialLabels`, with the assigner's ignore regions switched on
(``ignore_iof_thr``: an anchor mostly inside an unasked uncertain detection is neither
positive nor negative). Detections below the band's floor are left out: mostly duplicates
and background, their regions train as background, as any unlabelled region does. An image
is opened in one round only; later rounds do not revisit it. Only the simulated oracle
answers box queries for now.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Any, Callable, Dict, Hashable, List, Optional

from ...al.extension import RoundExtension
from ...al.selection import preannotation_thresholds
from ...al.settings import budget_of
from ...datasets.al_subset import ActiveSubset
from ...detection.assigners import with_ignore_regions
from ...fileio import read_json, write_json
from .band import band_fit
from .oracle import Annotator, merge_labels, partial_labels
from .partial_labels import PartialLabels
from .selection import QUERIES_FILE, queried_images, select_boxes

LABELS_FILE = 'box_labels.json'
IGNORE_IOF_THR = 0.5


class BoxRounds(RoundExtension):
    """A box strategy's rounds: round k>0 first answers round k-1's queries, trains on the
    partly labelled images with ignore regions, and selects boxes, not images; a partly
    labelled image costs what its queries were charged.

    Args:
        strategy (BoxStrategy): the round loop's strategy.
    """

    def __init__(self, strategy: Any):
        self.strategy = strategy

    def before_training(self, loop: Any, k: int) -> None:
        if k > 0:
            answer_round(loop.path, k, loop.source, self.strategy.pseudo,
                         budget_of(loop.al).cost.check_boxes)

    def train_dataset(self, loop: Any, k: int, dataset: dict, cfg: Any) -> dict:
        labels = latest_labels(loop.path, k)
        if labels is None:
            return dataset
        enable_ignore_regions(cfg)
        return with_partial_labels(dataset, labels)

    def select(self, loop: Any, k: int, ctx: Any) -> Optional[float]:
        """Round k's box queries; the labelled set the Hessian sees is what was answered,
        never the unasked boxes of a partly labelled image."""
        labels = latest_labels(loop.path, k)
        if labels is not None:
            ctx.labelled = ActiveSubset(PartialLabels(ctx.labelled.dataset, labels_file=labels),
                                        ids=list(ctx.labelled.wanted_ids()))
        classes = tuple(ctx.pool.metainfo.get('classes', ()))
        thr = preannotation_thresholds(ctx, loop.al['preannotation_thr'], classes,
                                       fit=band_fit(self.strategy.band_precision))
        budget = budget_of(loop.al)
        # checks priced apart are charged as answered: the simulated person answers in turn
        person = Annotator(real_instances(loop.source)) \
            if budget.cost.per_check is not None else None
        return select_boxes(self.strategy, ctx, budget, thr, loop.round_dir(k),
                            person)['seconds']

    def charged(self, loop: Any, k: int) -> Dict[Hashable, float]:
        return queries_by_image(latest_labels(loop.path, k))


def latest_labels(path: Callable[[int, str], str], k: int) -> Optional[str]:
    """The newest ``box_labels.json`` of rounds 1..k, or None."""
    return next((path(j, LABELS_FILE) for j in range(k, 0, -1)
                 if osp.exists(path(j, LABELS_FILE))), None)


def answer_round(path: Callable[[int, str], str], k: int, source: Any, pseudo: str,
                 check_boxes: float = 1.0) -> None:
    """Writes ``round_<k>/box_labels.json`` from round k-1's queries, answered from
    ``source``'s real boxes, merged with the earlier answers; once (a resumed round keeps
    the file it wrote). ``check_boxes``: the price, in boxes, of an answer that adds no human
    box."""
    out = path(k, LABELS_FILE)
    queries = path(k - 1, QUERIES_FILE)
    if not osp.exists(queries) or osp.exists(out):
        return
    real = real_instances(source)
    previous = latest_labels(path, k - 1)
    entries = []
    for img_id, dets in queried_images(queries).items():
        # below the band's floor a detection is mostly wrong: its region stays background
        dets = [d for d in dets if d['band'] != 'below']
        entries.append(partial_labels(
            dets, [d['queried'] for d in dets], real.get(img_id, []),
            [d['band'] == 'confident' for d in dets], pseudo=pseudo, img_id=img_id,
            check_boxes=check_boxes))
    write_json(out, merge_labels(read_json(previous) if previous else None, entries))


def queries_by_image(labels_file: Optional[str]) -> Dict[Hashable, float]:
    """Each partly labelled image's cost in boxes (before checks were priced apart: its
    number of queries)."""
    if labels_file is None:
        return {}
    return {e['img_id']: e.get('charged', e['queries']) for e in read_json(labels_file)['images']}


def with_partial_labels(ds_cfg: dict, labels_file: Optional[str]) -> dict:
    """``ds_cfg`` reading its partly labelled images from ``labels_file``."""
    if labels_file is None:
        return ds_cfg
    return dict(type='PartialLabels', dataset=ds_cfg, labels_file=labels_file)


def enable_ignore_regions(cfg: Any) -> None:
    """Turns on the assigner's ignore regions (mmdet leaves them off for RetinaNet), with
    :class:`~isal_mmdet.detection.assigners.IgnoringMaxIoUAssigner` so that they hold in an image
    whose queries found no object."""
    with_ignore_regions(cfg.model.train_cfg.assigner, IGNORE_IOF_THR)


def real_instances(source: Any) -> Dict[Hashable, List[dict]]:
    """Every image's real (not ignored) boxes, as the dataset reads them; no image is read."""
    out = {}
    for i in range(len(source)):
        info = source.get_data_info(i)
        out[info['img_id']] = [copy.deepcopy(inst) for inst in info.get('instances', [])
                               if not inst.get('ignore_flag', 0)]
    return out
