# ISAL on the real BCCD blood-cell set (VOC layout, classes RBC/WBC/Platelets), read in
# place from ../shared/data/BCCD. Pool: train (205). Reference: val (87). Evaluation: test (72).
# A RetinaNet-R18 at half width (FPN 64 channels) trained from scratch at 320x240: full width
# is 2.5x slower per iteration on CPU (1.94 s against 0.76 s at batch 8).
_base_ = './_base_/synthetic_voc.py'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

data_root = '../shared/data/BCCD/'
metainfo = dict(classes=('RBC', 'WBC', 'Platelets'),
                palette=[(220, 20, 60), (255, 255, 255), (0, 160, 0)])
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[64, 128, 256], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2))
train_dataloader = dict(num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
# Round 0 trains from scratch for 300 iterations (60 epochs of 40 images at batch 8); later
# rounds fine-tune the previous round's model for 150 (warm_start_iters, schedule scaled).
train_cfg = dict(max_iters=300)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, milestones=[240], gamma=0.1)
]

active_learning = dict(
    initial_size=40, budget=40, rounds=3, seed=0, reference='val',
    warm_start=True, warm_start_iters=150,
    # The default ISAL (empirical Fisher, exact solve) on 16 labelled images; the BCCD tables
    # of docs/studies.md were run with CG (max_iter=30), which reaches the same s. The
    # paper's settings, whose LiSSA diverges here (docs/studies.md): curvature='hessian',
    # solver=dict(type='lissa', depth=200, power_iters=10, power_samples=16).
    strategy=dict(type='ISAL', solver=dict(type='woodbury', num_samples=16)))
