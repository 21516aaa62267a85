"""One selection step shared by the hook, the round loop and tools/al_select.py."""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional

from ..influence.dist import barrier, broadcast_object, rank_and_world
from .export import coco_preannotations, export_selection
from .report import contact_sheet
from .settings import checked_strategy
from .strategies import SelectionContext, Strategy, rank_ids

logger = logging.getLogger('isal_mmdet')


def select(strategy_cfg: Any, ctx: SelectionContext, budget: int,
           out_dir: Optional[str] = None, export_coco: bool = True) -> Dict[str, Any]:
    """Scores the pool, picks ``budget`` ids and (rank 0 only) writes the exports.

    Returns ``dict(strategy, selected, scores, seconds, info, paths)`` on every rank.
    """
    strategy: Strategy = checked_strategy(strategy_cfg)
    name = type(strategy).__name__
    spec = (strategy_cfg.to_dict() if hasattr(strategy_cfg, 'to_dict') else strategy_cfg
            if isinstance(strategy_cfg, (str, dict)) else name)
    if not isinstance(budget, int) or budget <= 0:
        raise ValueError(f'active_learning.budget must be a positive integer, got {budget!r}')
    if len(ctx.pool) == 0:
        raise ValueError('the unlabelled pool is empty: nothing left to select')
    if budget > len(ctx.pool):
        logger.warning('budget %d > unlabelled pool %d: selecting all of it', budget,
                       len(ctx.pool))
        budget = len(ctx.pool)
    start = time.perf_counter()
    scores = strategy.score(ctx)
    selected = broadcast_object(strategy.select(scores, budget, ctx))
    seconds = time.perf_counter() - start
    result = dict(strategy=name, selected=selected, scores=scores, seconds=seconds,
                  info=ctx.info, paths={})
    if out_dir is not None and rank_and_world()[0] == 0:
        pre = None
        ranking = rank_ids(scores, strategy.higher_is_better)
        if export_coco:
            classes = ctx.pool.metainfo.get('classes', ())
            pre = coco_preannotations(ctx.model, ctx.pool, selected, classes)
            chosen = set(selected)
            contact_sheet(os.path.join(out_dir, 'selected.jpg'), pre, ctx.pool,
                          [i for i in ranking if i in chosen], scores)
        result['paths'] = export_selection(out_dir, name, selected, scores, ranking,
                                           preannotations=pre, seconds=seconds, info=ctx.info,
                                           strategy_cfg=spec)
    barrier()
    return result
