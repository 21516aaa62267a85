"""BADGE (Ash et al., ICLR 2020) for detection: k-means++ seeding on gradient embeddings."""
from __future__ import annotations

from typing import Annotated, Dict, Hashable

import torch
from torch import Tensor

from ...detection import DetectionObjective, detector_param_groups
from ...influence import influence_mode, per_sample_grads
from ...influence.dist import merge_over_ranks
from ...registry import STRATEGIES
from ..state import sort_ids
from ..arguments import Count, Interval, ParamGroupsSpec, Score
from ..batch.geometry import kmeans_pp
from .base import Strategy


def count_sketch(rows: Tensor, dim: int, seed: int) -> Tensor:
    """``rows [B, P]`` projected to ``[B, dim]`` by a fixed seeded count sketch: each
    coordinate goes to one of ``dim`` buckets with a random sign, so inner products are kept
    in expectation with O(P) memory (a dense Gaussian projection of a full-width RetinaNet's
    1.7M head weights to 1,024 dimensions would take 7 GB)."""
    g = torch.Generator().manual_seed(seed)
    bucket = torch.randint(0, dim, (rows.shape[1],), generator=g)
    sign = torch.randint(0, 2, (rows.shape[1],), generator=g).to(rows.dtype) * 2 - 1
    out = rows.new_zeros(rows.shape[0], dim)
    return out.index_add_(1, bucket.to(rows.device), rows * sign.to(rows.device))


@STRATEGIES.register_module(name='badge')
@STRATEGIES.register_module()
class BADGE(Strategy):
    """Each pool image's embedding is its UUIC gradient of θ (the model's own boxes above
    ``score_thr`` as labels, ISAL's g_z) through a fixed seeded count sketch to ``dim``
    dimensions; k-means++ seeding then picks images whose gradients are large and unlike
    one another. The score written per image is its embedding's norm."""
    sets_batch = True

    def __init__(self, dim: Annotated[int, Interval(1, 1024)] = 1024, score_thr: Score = 0.1,
                 max_per_img: Count = 100, param_groups: ParamGroupsSpec = None):
        self.dim, self.score_thr, self.max_per_img = dim, score_thr, max_per_img
        self.param_groups = param_groups
        self._emb: Dict[Hashable, Tensor] = {}

    def score(self, ctx):
        groups = detector_param_groups(ctx.model, self.param_groups)
        objective = DetectionObjective(self.score_thr, self.max_per_img, seed=ctx.seed)
        local: Dict[Hashable, Tensor] = {}
        with influence_mode(ctx.model, groups):
            for batch in ctx.loader(ctx.pool):
                rows = per_sample_grads(objective, ctx.model, groups, batch, pseudo=True)
                emb = count_sketch(rows, self.dim, ctx.seed).float().cpu()
                local.update(zip(objective.sample_ids(batch), emb))
        self._emb = merge_over_ranks(local)
        return {i: float(e.norm()) for i, e in self._emb.items()}

    def select(self, scores, budget, ctx):
        ids = sort_ids(list(scores))
        points = torch.stack([self._emb[i] for i in ids])
        return [ids[j] for j in kmeans_pp(points, budget, ctx.seed)]
