# A RetinaNet small enough to train from scratch on CPU: ResNet-18 at 1/4 width, 3 FPN
# levels (strides 8-32), one tower conv. No pretrained weights (init_cfg=None).
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        depth=18, base_channels=16, out_indices=(1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=32, start_level=0,
              add_extra_convs=False, num_outs=3),
    bbox_head=dict(
        num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1,
        anchor_generator=dict(octave_base_scale=2, strides=[8, 16, 32])),
    test_cfg=dict(nms_pre=300, score_thr=0.05, max_per_img=100))

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10, norm_type=2))
# Iteration-based: every round trains the same number of steps, whatever its labelled size.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=600, val_interval=100000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[450, 550], gamma=0.1)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=1,
                    save_last=True))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
