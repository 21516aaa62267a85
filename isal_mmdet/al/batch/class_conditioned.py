"""Class-conditioned medoids: the second stage of PPAL (Yang et al., CVPR 2024, "Plug and
Play Active Learning for Object Detection", its CCMS), read from its paper and public code.

An image is the set of its detections (score >= ``score_thr``), each with the head's
classification features averaged over its box. Image A's similarity to B is the
score-weighted mean, over A's detections, of the cosine similarity to the closest detection of
the same class in B (−1 when B has none of that class); the distance is 1 − the mean of both
directions. The batch is the medoids of a k-medoids run over the candidates, started by
k-centre greedy from the best-scored candidate.

Two departures from PPAL's code, on purpose: features are pooled over the whole box with
RoIAlign (PPAL reads one point at a centre whose height and width are swapped), and an image
without detections is at distance 0 from another without and 2 (the largest) from any other,
where PPAL's code puts it at distance 0 from everything (a free medoid).
"""
from __future__ import annotations

from typing import Any, Dict, Hashable, List, Sequence

import torch
from torch import Tensor

from ...dataset_index import id_index
from ...detection.box_features import BoxFeatures, box_features
from ...registry import BATCH_STAGES
from ..arguments import Count, Score
from ..passes import per_image
from .base import BatchStage, Multiple, candidates_of
from .geometry import k_center_on, k_medoids


def image_distances(images: Sequence[BoxFeatures], chunk: int = 1024) -> Tensor:
    """Class-conditioned distances (see the module's text).

    Args:
        images (sequence of BoxFeatures): each image's detections, scores and features.
        chunk (int): detections compared at once, bounding memory. Defaults to 1024.

    Returns:
        Tensor: ``[N, N]`` distances in [0, 2], float64, 0 on the diagonal.
    """
    n = len(images)
    feats = torch.cat([im.features for im in images]) if n else torch.zeros(0, 1)
    labels = torch.cat([im.labels for im in images]) if n else torch.zeros(0, dtype=torch.long)
    scores = torch.cat([im.scores for im in images]) if n else torch.zeros(0)
    owner = torch.cat([torch.full((len(im.labels),), k) for k, im in enumerate(images)]) \
        if n else torch.zeros(0, dtype=torch.long)
    weighted = torch.zeros(n, n, dtype=torch.float64)  # Σ_a s_a · best match of a in B
    for c in labels.unique().tolist():
        rows = torch.nonzero(labels == c).flatten()
        cols_owner = owner[rows]
        for part in rows.split(chunk):
            sim = feats[part] @ feats[rows].T
            best = torch.full((len(part), n), -1.0, dtype=torch.float64)
            best.scatter_reduce_(1, cols_owner.expand(len(part), -1), sim, 'amax')
            weighted.index_add_(0, owner[part], scores[part, None] * best)
    mass = torch.zeros(n, dtype=torch.float64).index_add_(0, owner, scores)
    has = mass > 0
    sim = torch.full((n, n), -1.0, dtype=torch.float64)
    sim[has] = weighted[has] / mass[has, None]
    dist = 1.0 - (sim + sim.T) / 2
    empty = ~has
    dist[empty[:, None] & empty[None, :]] = 0.0
    dist[empty[:, None] ^ empty[None, :]] = 2.0
    dist.fill_diagonal_(0.0)
    return dist.clamp_min_(0.0)


@BATCH_STAGES.register_module(name='class_medoids')
@BATCH_STAGES.register_module()
class ClassMedoids(BatchStage):
    """Args:
        candidates (float >= 1): how many best-scored images the medoids are drawn from, as a
            multiple of the batch. Default 4 (PPAL's).
        score_thr (float): detections at or above it describe an image. Default 0.1.
        max_boxes (int): at most this many detections per image, best first. Default 20.
    """

    def __init__(self, candidates: Multiple = 4.0, score_thr: Score = 0.1,
                 max_boxes: Count = 20):
        self.candidates, self.score_thr, self.max_boxes = candidates, score_thr, max_boxes
        self._ctx = None
        self._boxes: Dict[Hashable, BoxFeatures] = {}

    def boxes(self, ctx: Any, ids: Sequence[Hashable]) -> List[BoxFeatures]:
        """Each id's detections and features; what an earlier pick of this selection read is
        kept (every rank takes part in the pass).

        Args:
            ctx (SelectionContext): the selection (model and pool).
            ids (sequence): pool ids.

        Returns:
            list[BoxFeatures]: one per id, in order.
        """
        if self._ctx is not ctx:
            self._ctx, self._boxes = ctx, {}
        missing = [i for i in ids if i not in self._boxes]
        if missing:
            index = id_index(ctx.pool)
            subset = torch.utils.data.Subset(ctx.pool, sorted(index[i] for i in missing))
            self._boxes.update(per_image(ctx, subset, lambda batch: box_features(
                ctx.model, batch, self.score_thr, self.max_boxes)))
        return [self._boxes[i] for i in ids]

    def pick(self, ranked, scores, n, ctx):
        order = candidates_of(ranked, n, self.candidates)
        if n >= len(order):
            return order
        dist = image_distances(self.boxes(ctx, order))
        medoids = sorted(k_medoids(dist, k_center_on(dist, n, first=0)))
        ctx.info['batch'] = dict(self.describe(), candidates_without_detections=sum(
            len(b.labels) == 0 for b in self.boxes(ctx, order)))
        return [order[j] for j in medoids]
