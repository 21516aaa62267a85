# ISAL on the real BCCD blood-cell set (VOC layout, classes RBC/WBC/Platelets), read in
# place from ../shared/data/BCCD. Pool: train (205). Reference: val (87). Evaluation: test (72).
# A RetinaNet-R18 (FPN 64 channels) trained from scratch at 320x240.
_base_ = './_base_/synthetic_voc.py'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

data_root = '../shared/data/BCCD/'
metainfo = dict(classes=('RBC', 'WBC', 'Platelets'),
                palette=[(220, 20, 60), (255, 255, 255), (0, 160, 0)])
model = dict(
    backbone=dict(base_channels=64),
    neck=dict(in_channels=[128, 256, 512], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
# About 10 epochs of the 80-image round at batch 8. Too short for a plateau in later rounds
# (docs/benchmarks.md); raise max_iters for a quality comparison.
train_cfg = dict(max_iters=100)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, milestones=[80], gamma=0.1)
]

active_learning = dict(
    initial_size=40, budget=40, rounds=3, seed=0, reference='val',
    # LiSSA scales from a power iteration on 16 labelled images (10 steps): at this size the
    # default 64 x 20 would cost more than the rest of the selection.
    strategy=dict(type='ISAL', solver=dict(type='lissa', depth=200, power_iters=10,
                                           power_samples=16)))
