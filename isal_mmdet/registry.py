"""isal_mmdet's own registry; hooks, datasets and transforms go in mmdet's."""
from mmengine.registry import Registry

STRATEGIES = Registry('active-learning strategy', scope='isal_mmdet',
                      locations=['isal_mmdet.al.strategies'])
