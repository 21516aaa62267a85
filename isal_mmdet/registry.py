"""isal_mmdet's own registries; hooks, datasets and transforms go in mmdet's."""
from mmengine.registry import Registry

# Research strategies (isal_mmdet.study: the studies' variants, box queries) register when
# their package is imported, which the product never does: mmengine imports a registry's
# ``locations`` on get() and build(), not on a module_dict lookup, so a study's
# config runs through tools/al_train.py with custom_imports=dict(imports=['isal_mmdet.study']).
STRATEGIES = Registry('active-learning strategy', scope='isal_mmdet',
                      locations=['isal_mmdet.al.strategies'])
# how a strategy's scores become a batch: top-k, clusters, class-conditioned medoids, sampling
BATCH_STAGES = Registry('batch stage', scope='isal_mmdet', locations=['isal_mmdet.al.batch'])
