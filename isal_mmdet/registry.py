"""isal_mmdet's own registry; hooks, datasets and transforms go in mmdet's."""
from mmengine.registry import Registry

# the research variants of the studies register under CamelCase names only, beside the
# product's strategies, so a config of a study runs through tools/al_train.py too
STRATEGIES = Registry('active-learning strategy', scope='isal_mmdet',
                      locations=['isal_mmdet.al.strategies',
                                 'isal_mmdet.study.research_strategies'])
