"""Batch stages: how a strategy's ranking becomes the batch sent to annotators. ``topk`` (the
default), ``clusters`` (Cluster-Margin-style cover of the pool), ``class_medoids`` (PPAL's
class-conditioned medoids) and ``stochastic`` (rank-based sampling). Named in a strategy's
config: ``dict(type='dcus', batch=dict(type='clusters', candidates=3))``."""
from ...registry import BATCH_STAGES
from .base import BatchStage, TopK, build_batch_stage
from .class_conditioned import ClassMedoids, image_distances
from .clusters import Clusters
from .geometry import k_center_greedy, k_center_on, k_medoids, kmeans, kmeans_pp, round_robin
from .stochastic import Stochastic

__all__ = [
    'BATCH_STAGES', 'BatchStage', 'ClassMedoids', 'Clusters', 'Stochastic', 'TopK',
    'build_batch_stage', 'image_distances', 'k_center_greedy', 'k_center_on', 'k_medoids',
    'kmeans', 'kmeans_pp', 'round_robin'
]
