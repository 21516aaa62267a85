"""One selection step shared by the hook, the round loop, tools/al_select.py and the Label
Studio backend, in three parts: score the pool (the strategy), turn the scores into a batch
for the budget (the strategy's batch stage, spent in images, boxes or seconds), write the
artefacts (rank 0; the optional ones never end a run)."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple, Union

from ..detection.recorder import Detections, recorded_detections
from ..influence.dist import barrier, broadcast_object, rank_and_world
from ..labelling.export import coco_preannotations, export_selection
from ..labelling.labelstudio import tasks_from_coco
from ..labelling.report import contact_sheet, optional_artefact
from ..labelling.thresholds import ThresholdFit, calibrate_thresholds
from .budget import Budget, expected_boxes, plan
from ..dataset_index import id_index
from .settings import checked_strategy
from .strategies import SelectionContext, Strategy, rank_ids

logger = logging.getLogger('isal_mmdet')


@dataclass
class Selection:
    """What one selection decided, the same on every rank.

    Attributes:
        strategy (str): the strategy's class name.
        selected (list): the batch, in the order its budget was spent.
        scores (dict): every scored pool image's score.
        seconds (float): scoring and batch time.
        info (dict): what the strategy and batch stage recorded (``selection.json``).
        paths (dict): ``{kind: path}`` of the files written (rank 0, with an ``out_dir``).
    """
    strategy: str
    selected: List[Hashable]
    scores: Dict[Hashable, float]
    seconds: float
    info: Dict[str, Any]
    paths: Dict[str, str] = field(default_factory=dict)


@dataclass
class Artefacts:
    """Where and what to write besides ``selection.json``.

    Attributes:
        out_dir (str): the folder.
        export_coco (bool): pre-annotations as COCO and Label Studio tasks, and the contact
            sheet. Default True.
        preannotation_thr ('auto' or float): see :func:`preannotation_thresholds`.
        image_root (str, optional): Label Studio's image URL prefix
            (:func:`..labelling.labelstudio.image_url`).
    """
    out_dir: str
    export_coco: bool = True
    preannotation_thr: Union[str, float] = 'auto'
    image_root: Optional[str] = None


def preannotation_thresholds(ctx: SelectionContext, thr: Union[str, float],
                             classes: Sequence[str],
                             fit: ThresholdFit = calibrate_thresholds) -> Dict[str, Any]:
    """The pre-annotation thresholds.

    Args:
        ctx (SelectionContext): the model and its labelled reference set.
        thr ('auto' or float): ``'auto'``: per-class thresholds fitted on the reference set
            (a fixed 0.5, with a warning, when there is none); a number: that threshold for
            every class, and nothing fitted.
        classes (sequence of str): the class names.
        fit (callable): ``fit(model, reference, classes)`` fits the thresholds; a research
            extension may fit more from the same matches. Default
            :func:`~isal_mmdet.labelling.thresholds.calibrate_thresholds`.
    """
    if thr != 'auto':
        return dict(source='fixed', per_class={c: float(thr) for c in classes})
    if ctx.reference is None or len(ctx.reference) == 0:
        logger.warning("preannotation_thr='auto' needs a reference set; using 0.5")
        return dict(source='fixed', per_class={c: 0.5 for c in classes})
    return dict(source='reference', **fit(ctx.model, ctx.reference, classes))


def score_pool(strategy: Strategy, ctx: SelectionContext,
               record: bool) -> Tuple[Dict[Hashable, float], Optional[Detections]]:
    """Every pool image's score; with ``record``, the detections made meanwhile too (a box
    or seconds budget prices images by them)."""
    if not record:
        return strategy.score(ctx), None
    with recorded_detections(ctx.model) as seen:
        scores = strategy.score(ctx)
    return scores, seen


def pick_batch(strategy: Strategy, scores: Dict[Hashable, float], ctx: SelectionContext,
               budget: Budget, seen: Optional[Detections],
               thr: Optional[Dict[str, Any]]) -> List[Hashable]:
    """The batch for ``budget``: the strategy's batch stage, spent in the budget's unit
    (``thr``: the pre-annotation thresholds a box count is read at)."""
    if budget.unit == 'images':
        amount = budget.amount
        if amount > len(ctx.pool):
            logger.warning('budget %d > unlabelled pool %d: selecting all of it', amount,
                           len(ctx.pool))
            amount = len(ctx.pool)
        return broadcast_object(strategy.select(scores, amount, ctx))
    classes = tuple(ctx.pool.metainfo.get('classes', ()))
    boxes, how = expected_boxes(ctx, seen, thr, classes)
    selected, planned = plan(strategy, scores, ctx, budget, boxes)
    ctx.info['budget'] = dict(planned, expected_boxes=how)
    return broadcast_object(selected)


def write_artefacts(sel: Selection, strategy: Strategy, spec: Any, ctx: SelectionContext,
                    out: Artefacts, thr: Optional[Dict[str, Any]]) -> Dict[str, str]:
    """Writes the selection's files (call on rank 0); returns ``{kind: path}``. The
    pre-annotations, Label Studio tasks and contact sheet are optional: a failure is a
    warning, and ``selection.json`` is still written."""
    classes = tuple(ctx.pool.metainfo.get('classes', ()))
    ranking = rank_ids(sel.scores, strategy.higher_is_better)
    extra, pre, tasks = {}, None, None
    if out.export_coco:
        thr = thr or preannotation_thresholds(ctx, out.preannotation_thr, classes)
        pre = optional_artefact('the pre-annotations', coco_preannotations, ctx.model,
                                ctx.pool, sel.selected, classes, thr['per_class'])
    if pre is not None:
        thr['selected_boxes_per_image'] = len(pre['annotations']) / max(len(pre['images']), 1)
        extra['preannotation'] = thr
        index = id_index(ctx.pool)
        paths = {i: ctx.pool.get_data_info(index[i])['img_path'] for i in sel.selected}
        tasks = optional_artefact('the Label Studio tasks', tasks_from_coco, pre, paths,
                                  ranking, sel.scores,
                                  f'isal_mmdet {sel.strategy} {os.path.basename(out.out_dir)}',
                                  out.image_root)
        chosen = set(sel.selected)
        sheet = os.path.join(out.out_dir, 'selected.jpg')
        optional_artefact(sheet, contact_sheet, sheet, pre, ctx.pool,
                          [i for i in ranking if i in chosen], ranking,
                          note=f'{sel.strategy}, best first; boxes: pre-annotations '
                               f'({thr["source"]} thresholds)')
    return export_selection(out.out_dir, sel.strategy, sel.selected, sel.scores, ranking,
                            preannotations=pre, tasks=tasks, classes=classes,
                            palette=ctx.pool.metainfo.get('palette'), seconds=sel.seconds,
                            info=sel.info, strategy_cfg=spec, **extra)


def select(strategy_cfg: Any, ctx: SelectionContext, budget: Union[int, Budget],
           out_dir: Optional[str] = None, export_coco: bool = True,
           preannotation_thr: Union[str, float] = 'auto',
           image_root: Optional[str] = None) -> Selection:
    """Scores the pool, picks the batch for ``budget`` (a number of images, or a
    :class:`~.budget.Budget` in images, boxes or seconds) and, with ``out_dir``, writes the
    artefacts (rank 0; see :class:`Artefacts` for the other arguments). Seven parameters:
    the three entry points pass the ``active_learning`` block's fields as they are."""
    strategy: Strategy = checked_strategy(strategy_cfg, images_only=True)
    name = type(strategy).__name__
    spec = (strategy_cfg.to_dict() if hasattr(strategy_cfg, 'to_dict') else strategy_cfg
            if isinstance(strategy_cfg, (str, dict)) else name)
    budget = budget if isinstance(budget, Budget) else Budget(budget)
    if len(ctx.pool) == 0:
        raise ValueError('the unlabelled pool is empty: nothing left to select')
    start = time.perf_counter()
    scores, seen = score_pool(strategy, ctx, record=budget.unit != 'images')
    thr = None
    if budget.unit != 'images':
        thr = preannotation_thresholds(ctx, preannotation_thr,
                                       tuple(ctx.pool.metainfo.get('classes', ())))
    ctx.info['batch'] = strategy.batch.describe()
    selected = pick_batch(strategy, scores, ctx, budget, seen, thr)
    sel = Selection(name, selected, scores, time.perf_counter() - start, ctx.info)
    if out_dir is not None and rank_and_world()[0] == 0:
        sel.paths = write_artefacts(sel, strategy, spec, ctx,
                                    Artefacts(out_dir, export_coco, preannotation_thr,
                                              image_root), thr)
    barrier()
    return sel
