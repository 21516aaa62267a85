"""Cluster-Margin-style batches (Citovsky et al., NeurIPS 2021, "Batch Active Learning at
Scale"): cluster the pool and the labelled images together on their pooled neck features,
take the best-scored candidates, then fill the batch round-robin over the clusters, the
clusters with the fewest picks (then the fewest labelled images) first."""
from __future__ import annotations

from typing import Dict, Hashable, Optional, Tuple

import torch
from torch import Tensor, nn

from ...detection.uncertainty import pooled_features
from ...registry import BATCH_STAGES
from ..arguments import Count
from ..passes import per_image
from ..state import sort_ids
from .base import BatchStage, Multiple, candidates_of
from .geometry import kmeans, round_robin


@BATCH_STAGES.register_module(name='clusters')
@BATCH_STAGES.register_module()
class Clusters(BatchStage):
    """Args:
        candidates (float >= 1): how many best-scored images the batch is drawn from, as a
            multiple of its size. Default 3.
        num_clusters (int, optional): k-means clusters over pool and labelled images;
            ``None`` (default): as many as the batch has images, so a batch takes one image
            per cluster before any cluster gets a second.
        max_iter (int): Lloyd iterations of k-means. Default 20.
    """

    def __init__(self, candidates: Multiple = 3.0, num_clusters: Optional[Count] = None,
                 max_iter: Count = 20):
        self.candidates, self.num_clusters, self.max_iter = candidates, num_clusters, max_iter
        self._ctx = None
        self._feats: Tuple[list, Tensor, int] = ([], torch.zeros(0), 0)
        self._labels: Dict[int, Tensor] = {}

    def features(self, ctx) -> Tuple[list, Tensor, int]:
        """The pooled neck features of pool and labelled images, read once per selection
        (every rank takes part in the pass).

        Args:
            ctx (SelectionContext): the selection (model, pool and labelled set).

        Returns:
            tuple: ``(ids, [N, D] L2-normalised features, number of pool ids first)``.
        """
        if self._ctx is not ctx:
            ctx.model.eval()

            def run(batch):  # each image alone: batched convolutions round differently
                return [pooled_features(ctx.model, dict(inputs=[x], data_samples=[d]))[0]
                        for x, d in zip(batch['inputs'], batch['data_samples'])]
            pool, lab = per_image(ctx, ctx.pool, run), per_image(ctx, ctx.labelled, run)
            ids = sort_ids(pool) + sort_ids(lab)
            feats = torch.stack([pool[i] if n < len(pool) else lab[i]
                                 for n, i in enumerate(ids)]) if ids else torch.zeros(0, 1)
            self._ctx, self._labels = ctx, {}
            self._feats = (ids, nn.functional.normalize(feats.double(), dim=1), len(pool))
        return self._feats

    def pick(self, ranked, scores, n, ctx):
        ids, feats, n_pool = self.features(ctx)
        k = min(self.num_clusters or n, len(ids))
        if k not in self._labels:
            self._labels[k] = kmeans(feats, k, ctx.seed, self.max_iter)
        labels = self._labels[k].tolist()
        cluster: Dict[Hashable, int] = dict(zip(ids, labels))
        labelled: Dict[int, int] = {}
        for c in labels[n_pool:]:
            labelled[c] = labelled.get(c, 0) + 1
        order = candidates_of(ranked, n, self.candidates)
        batch = round_robin(order, cluster, labelled, n)
        ctx.info['batch'] = dict(self.describe(), clusters=k,
                                 candidate_clusters=len({cluster[i] for i in order}),
                                 batch_clusters=len({cluster[i] for i in batch}))
        return batch
