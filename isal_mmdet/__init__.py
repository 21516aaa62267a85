"""ISAL for MMDetection 3.x.

Three layers: :mod:`isal_mmdet.influence` (task-agnostic, pure torch),
:mod:`isal_mmdet.detection` (the mmdet adapter) and :mod:`isal_mmdet.al` (active-learning
orchestration). Importing the package registers its components in mmdet's registries.
"""
from . import checkpoints  # noqa: F401  (checkpoints load as data, applied once)
from .al.hook import ISALSelectionHook
from .detection.backbones import EfficientNetLite
from .al.strategies import (BADGE, DCUS, ESI, STRATEGIES, CoreSet, Entropy, EntropyBox,
                            ESIBox, GradSimilarity, ISAL, ISALBox, LeastConfidence, Random,
                            RandomBox, build_strategy)
from .datasets.al_subset import ActiveSubset
from .datasets.partial_labels import PartialLabels

__version__ = '0.1.0'

__all__ = [
    'ActiveSubset', 'BADGE', 'CoreSet', 'DCUS', 'ESI', 'EfficientNetLite', 'Entropy',
    'EntropyBox', 'ESIBox', 'GradSimilarity', 'ISAL', 'ISALBox', 'ISALSelectionHook',
    'LeastConfidence', 'PartialLabels', 'Random', 'RandomBox', 'STRATEGIES', 'build_strategy'
]
