"""ISAL for MMDetection 3.x.

Three layers: :mod:`isal_mmdet.influence` (task-agnostic, pure torch),
:mod:`isal_mmdet.detection` (the mmdet adapter) and :mod:`isal_mmdet.al` (active-learning
orchestration). Importing the package registers its components in mmdet's registries; the
research shelf (:mod:`isal_mmdet.study`: box queries, the studies' strategies) registers only
when imported itself.
"""
from . import checkpoints  # noqa: F401  (checkpoints load as data, applied once)
from .al.hook import ISALSelectionHook
from .detection.backbones import EfficientNetLite
from .al.strategies import (BADGE, DCUS, ESI, STRATEGIES, CoreSet, Entropy, GradSimilarity,
                            ISAL, LeastConfidence, Random, build_strategy)
from .datasets.al_subset import ActiveSubset

__version__ = '0.1.0'

__all__ = [
    'ActiveSubset', 'BADGE', 'CoreSet', 'DCUS', 'ESI', 'EfficientNetLite', 'Entropy',
    'GradSimilarity', 'ISAL', 'ISALSelectionHook', 'LeastConfidence', 'Random', 'STRATEGIES',
    'build_strategy'
]
