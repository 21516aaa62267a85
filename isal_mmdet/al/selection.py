"""One selection step shared by the hook, the round loop and tools/al_select.py."""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional, Sequence, Union

from ..detection.recorder import recorded_detections
from ..influence.dist import barrier, broadcast_object, rank_and_world
from ..labelling.export import coco_preannotations, export_selection
from ..labelling.labelstudio import tasks_from_coco
from ..labelling.report import contact_sheet, optional_artefact
from ..labelling.thresholds import calibrate_thresholds
from .budget import Budget, expected_boxes, plan
from .settings import checked_strategy
from .strategies import SelectionContext, Strategy, rank_ids

logger = logging.getLogger('isal_mmdet')


def preannotation_thresholds(ctx: SelectionContext, thr: Union[str, float],
                             classes: Sequence[str],
                             band_precision: Optional[float] = None) -> Dict[str, Any]:
    """``thr='auto'``: per-class thresholds fitted on the labelled reference set (see
    :mod:`.thresholds`; with ``band_precision``, the box-query band's floors too); a
    number: that threshold for every class, and no fitted floor."""
    if thr != 'auto':
        return dict(source='fixed', per_class={c: float(thr) for c in classes})
    if ctx.reference is None or len(ctx.reference) == 0:
        logger.warning("preannotation_thr='auto' needs a reference set; using 0.5")
        return dict(source='fixed', per_class={c: 0.5 for c in classes})
    return dict(source='reference', **calibrate_thresholds(ctx.model, ctx.reference, classes,
                                                           band_precision=band_precision))


def select(strategy_cfg: Any, ctx: SelectionContext, budget: Union[int, Budget],
           out_dir: Optional[str] = None, export_coco: bool = True,
           preannotation_thr: Union[str, float] = 'auto',
           image_root: Optional[str] = None) -> Dict[str, Any]:
    """Scores the pool, picks ids for ``budget`` (a number of images, or a
    :class:`~.budget.Budget` in images, boxes or seconds) and (rank 0 only) writes the
    exports: with ``export_coco``, the model's boxes at ``preannotation_thr`` as COCO and as
    Label Studio tasks (images at ``image_root``, see :func:`.labelstudio.image_url`), and
    the contact sheet.

    Returns ``dict(strategy, selected, scores, seconds, info, paths)`` on every rank.
    """
    strategy: Strategy = checked_strategy(strategy_cfg, images_only=True)
    name = type(strategy).__name__
    spec = (strategy_cfg.to_dict() if hasattr(strategy_cfg, 'to_dict') else strategy_cfg
            if isinstance(strategy_cfg, (str, dict)) else name)
    budget = budget if isinstance(budget, Budget) else Budget(budget)
    if len(ctx.pool) == 0:
        raise ValueError('the unlabelled pool is empty: nothing left to select')
    classes = tuple(ctx.pool.metainfo.get('classes', ()))
    start = time.perf_counter()
    thr = None
    if budget.unit == 'images':
        amount = budget.amount
        if amount > len(ctx.pool):
            logger.warning('budget %d > unlabelled pool %d: selecting all of it', amount,
                           len(ctx.pool))
            amount = len(ctx.pool)
        scores = strategy.score(ctx)
        selected = broadcast_object(strategy.select(scores, amount, ctx))
    else:
        with recorded_detections(ctx.model) as seen:
            scores = strategy.score(ctx)
        thr = preannotation_thresholds(ctx, preannotation_thr, classes)
        boxes, how = expected_boxes(ctx, seen, thr, classes)
        selected, planned = plan(strategy, scores, ctx, budget, boxes)
        selected = broadcast_object(selected)
        ctx.info['budget'] = dict(planned, expected_boxes=how)
    seconds = time.perf_counter() - start
    result = dict(strategy=name, selected=selected, scores=scores, seconds=seconds,
                  info=ctx.info, paths={})
    if out_dir is not None and rank_and_world()[0] == 0:
        pre = None
        ranking = rank_ids(scores, strategy.higher_is_better)
        extra, tasks = {}, None
        if export_coco:
            thr = thr or preannotation_thresholds(ctx, preannotation_thr, classes)
            pre = coco_preannotations(ctx.model, ctx.pool, selected, classes,
                                      thr['per_class'])
            thr['selected_boxes_per_image'] = len(pre['annotations']) / max(len(pre['images']),
                                                                            1)
            extra['preannotation'] = thr
            index = {ctx.pool.get_data_info(i)['img_id']: i for i in range(len(ctx.pool))}
            paths = {i: ctx.pool.get_data_info(index[i])['img_path'] for i in selected}
            tasks = tasks_from_coco(pre, paths, ranking, scores,
                                    f'isal_mmdet {name} {os.path.basename(out_dir)}',
                                    image_root)
            chosen = set(selected)
            sheet = os.path.join(out_dir, 'selected.jpg')
            optional_artefact(sheet, contact_sheet, sheet, pre, ctx.pool,
                              [i for i in ranking if i in chosen], ranking,
                              note=f'{name}, best first; boxes: pre-annotations '
                                   f'({thr["source"]} thresholds)')
        result['paths'] = export_selection(out_dir, name, selected, scores, ranking,
                                           preannotations=pre, tasks=tasks, classes=classes,
                                           palette=ctx.pool.metainfo.get('palette'),
                                           seconds=seconds, info=ctx.info, strategy_cfg=spec,
                                           **extra)
    barrier()
    return result
