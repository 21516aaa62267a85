"""Core-set selection (k-center greedy on pooled neck features)."""
from __future__ import annotations

import math
from typing import Any, Dict, Hashable, List, Optional

import torch
from torch import Tensor

from ...detection.uncertainty import pooled_features
from ...influence.dist import gather_objects
from ...registry import STRATEGIES
from ..state import sort_ids
from .base import SelectionContext, Strategy


def k_center_greedy(pool: Tensor, labelled: Optional[Tensor], budget: int,
                    min_dist: Optional[Tensor] = None) -> List[int]:
    """Indices of ``pool`` picked greedily farthest from everything chosen so far.

    Keeps one distance per pool point (O(pool × dim) memory, no N×N matrix). Ties go to the
    lowest index, so a pool sorted by id breaks ties by id.
    """
    if min_dist is None:
        min_dist = torch.full((len(pool),), math.inf)
        if labelled is not None:
            for chunk in labelled.split(1024):
                min_dist = torch.minimum(min_dist, torch.cdist(pool, chunk).min(1).values)
    picked: List[int] = []
    for _ in range(min(budget, len(pool))):
        j = int(torch.argmax(min_dist))
        picked.append(j)
        min_dist = torch.minimum(min_dist, torch.cdist(pool, pool[j:j + 1]).squeeze(1))
        min_dist[j] = -1.0
    return picked


def image_features(ctx: SelectionContext, dataset: Any) -> Dict[Hashable, Tensor]:
    """Pooled neck features of every image in ``dataset``, merged over ranks."""
    ctx.model.eval()
    local = {}
    for batch in ctx.loader(dataset):
        ids = [ds.metainfo['img_id'] for ds in batch['data_samples']]
        local.update(zip(ids, pooled_features(ctx.model, batch)))
    merged: Dict[Hashable, Tensor] = {}
    for part in gather_objects(local) or []:
        merged.update(part)
    return merged


@STRATEGIES.register_module(name='coreset')
@STRATEGIES.register_module()
class CoreSet(Strategy):
    """k-center greedy on pooled neck features (Sener & Savarese)."""

    def score(self, ctx):
        self._pool = image_features(ctx, ctx.pool)
        self._labelled = image_features(ctx, ctx.labelled)
        ids = sort_ids(self._pool)
        feats = torch.stack([self._pool[i] for i in ids]) if ids else torch.zeros(0, 1)
        lab = torch.stack(list(self._labelled.values())) if self._labelled else None
        dist = torch.full((len(ids),), math.inf)
        if lab is not None:
            for chunk in lab.split(1024):
                dist = torch.minimum(dist, torch.cdist(feats, chunk).min(1).values)
        return {i: float(d) for i, d in zip(ids, dist)}

    def select(self, scores, budget, ctx):
        ids = sort_ids(self._pool)
        feats = torch.stack([self._pool[i] for i in ids])
        dist = torch.tensor([scores[i] for i in ids])
        return [ids[j] for j in k_center_greedy(feats, None, budget, min_dist=dist)]
