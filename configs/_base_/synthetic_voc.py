# The tiny RetinaNet on the embedded synthetic shapes set, VOC layout
# (python tools/make_synthetic.py data/synthetic_voc).
_base_ = './tiny_retinanet.py'

dataset_type = 'XMLDataset'
data_root = 'data/synthetic_voc/'
metainfo = dict(classes=('circle', 'square', 'triangle'),
                palette=[(220, 20, 60), (0, 128, 255), (0, 160, 0)])
backend_args = None
img_scale = (320, 240)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]


def _split(name, pipeline, test_mode):
    return dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                ann_file=f'ImageSets/Main/{name}.txt', data_prefix=dict(sub_data_root=''),
                test_mode=test_mode, pipeline=pipeline, backend_args=backend_args)


# InfiniteSampler: an epoch-based sampler makes IterBasedTrainLoop sleep 2 s per epoch.
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(_split('train', train_pipeline, False), _delete_=True,
                 filter_cfg=dict(filter_empty_gt=False, min_size=1)))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_split('val', test_pipeline, True), _delete_=True))
test_dataloader = dict(val_dataloader, dataset=dict(_split('test', test_pipeline, True),
                                                    _delete_=True))
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator
