"""Selection strategies behind one interface (:class:`Strategy`): score the pool, then
pick ``budget`` ids. One module per family: random, uncertainty (entropy, least confidence,
DCUS), coreset, badge, isal, esi. Research strategies (box queries, the studies' variants)
register when :mod:`isal_mmdet.study` is imported."""
from __future__ import annotations

from typing import Any

from ...registry import STRATEGIES
from .badge import BADGE, count_sketch
from .base import SelectionContext, Strategy, collate_readable, rank_ids
from ..batch import TopK, build_batch_stage, k_center_greedy, kmeans_pp
from .coreset import CoreSet, image_features
from .esi import ESI
from .influence_base import DEFAULT_SOLVER
from .isal import GradSimilarity, ISAL
from .random import Random
from .uncertainty import (DCUS, Entropy, LeastConfidence, difficulty_weights, entropy_of_boxes,
                          least_confidence_of_boxes)

__all__ = [
    'BADGE', 'CoreSet', 'DCUS', 'DEFAULT_SOLVER', 'ESI', 'Entropy', 'GradSimilarity', 'ISAL',
    'LeastConfidence', 'Random', 'STRATEGIES', 'SelectionContext', 'Strategy', 'build_strategy', 'collate_readable',
    'difficulty_weights', 'entropy_of_boxes', 'count_sketch', 'image_features',
    'k_center_greedy', 'kmeans_pp', 'least_confidence_of_boxes', 'rank_ids'
]


def build_strategy(cfg: Any) -> Strategy:
    """``'isal'`` or ``dict(type='ISAL', solver=..., batch=...)`` → a strategy with its batch
    stage, with a one-line error."""
    if isinstance(cfg, Strategy):
        return cfg
    cfg = {'type': cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop('type', None)
    batch = cfg.pop('batch', None)
    cls = STRATEGIES.module_dict.get(name)
    if cls is None:
        names = sorted(k for k in STRATEGIES.module_dict if k.islower())
        research = str(name).endswith(('Research', 'Box', '_box'))
        hint = (" (a research strategy: add custom_imports=dict(imports="
                "['isal_mmdet.study']) to the config)" if research else '')
        raise ValueError(f'unknown strategy {name!r}; choose one of {names}{hint}')
    strategy = cls(**cfg)
    if batch is not None:
        stage = build_batch_stage(batch)
        if not isinstance(stage, TopK) and strategy.sets_batch:
            raise ValueError(f'batch: {name} picks its own set, so it takes no batch stage '
                             '(batch stages apply to strategies that score images)')
        strategy.batch = stage
    return strategy
