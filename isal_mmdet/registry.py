"""isal_mmdet's own registries; hooks, datasets and transforms go in mmdet's."""
from mmengine.registry import Registry

# the research variants of the studies register under CamelCase names only, beside the
# product's strategies, so a config of a study runs through tools/al_train.py too
STRATEGIES = Registry('active-learning strategy', scope='isal_mmdet',
                      locations=['isal_mmdet.al.strategies',
                                 'isal_mmdet.study.research_strategies'])
# how a strategy's scores become a batch: top-k, clusters, class-conditioned medoids, sampling
BATCH_STAGES = Registry('batch stage', scope='isal_mmdet', locations=['isal_mmdet.al.batch'])
