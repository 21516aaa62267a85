"""isal_mmdet's own registries; hooks, datasets and transforms go in mmdet's."""
from mmengine.registry import Registry

# The research variants of the studies (isal_mmdet.study) register under CamelCase names
# when their package is imported, never by the product: a study's config runs through
# tools/al_train.py with custom_imports=dict(imports=['isal_mmdet.study']).
STRATEGIES = Registry('active-learning strategy', scope='isal_mmdet',
                      locations=['isal_mmdet.al.strategies'])
# how a strategy's scores become a batch: top-k, clusters, class-conditioned medoids, sampling
BATCH_STAGES = Registry('batch stage', scope='isal_mmdet', locations=['isal_mmdet.al.batch'])
