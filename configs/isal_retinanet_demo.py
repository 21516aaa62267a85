# Demo: ISAL on the generated synthetic shapes set, tiny RetinaNet, CPU.
_base_ = './_base_/synthetic_voc.py'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

train_cfg = dict(max_iters=300)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, milestones=[220, 270], gamma=0.1)
]

active_learning = dict(
    initial_size=40,      # seeded random round-0 set
    budget=30,            # images labelled per round
    rounds=3,
    # the default ISAL, spelt out: the empirical Fisher solved exactly on up to 64 labelled
    # images (seconds); the paper's Hessian + LiSSA: curvature='hessian', solver='lissa'
    strategy=dict(type='ISAL', solver=dict(type='woodbury', num_samples=64)),
    reference='val',      # the val split, disjoint from the test split used for metrics
    seed=0)
