"""Core-set selection (k-center greedy on pooled neck features)."""
from __future__ import annotations

import math
from typing import Any, Dict, Hashable

import torch
from torch import Tensor

from ...detection.uncertainty import pooled_features
from ...registry import STRATEGIES
from ..batch.geometry import k_center_greedy
from ..passes import per_image
from ..state import sort_ids
from .base import SelectionContext, Strategy


def image_features(ctx: SelectionContext, dataset: Any) -> Dict[Hashable, Tensor]:
    """Pooled neck features of every image in ``dataset``, merged over ranks."""
    ctx.model.eval()
    return per_image(ctx, dataset, lambda batch: list(pooled_features(ctx.model, batch)))


@STRATEGIES.register_module(name='coreset')
@STRATEGIES.register_module()
class CoreSet(Strategy):
    """k-center greedy on pooled neck features (Sener & Savarese)."""
    sets_batch = True

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
