# ISAL on the real Aquarium set (COCO layout, 7 classes, 0-56 boxes per image, mostly
# portrait photos), read in place from ../shared/data/aquarium. Aquarium dataset, Roboflow
# (public.roboflow.ai/object-detection/aquarium), CC BY 4.0.
# Pool: train (448). Reference: valid (127). Evaluation: test (63), mAP at IoU 0.5 (VOCMetric,
# as the BCCD configs), so the two real sets read alike.
# The pretrained EfficientNet-Lite0 RetinaNet and schedule of isal_retinanet_efflite_bccd.py,
# with images fitted inside 320x320 (a 768x1024 portrait photo becomes 240x320).
_base_ = './isal_retinanet_efflite_bccd.py'

data_root = '../shared/data/aquarium/'
metainfo = dict(classes=('fish', 'jellyfish', 'penguin', 'puffin', 'shark', 'starfish',
                         'stingray'),
                palette=[(0, 128, 255), (255, 0, 255), (255, 255, 255), (255, 128, 0),
                         (128, 128, 128), (255, 220, 0), (0, 200, 100)])
model = dict(bbox_head=dict(num_classes=7))
img_scale = (320, 320)
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
    return dict(_delete_=True, type='CocoDataset', data_root=data_root, metainfo=metainfo,
                ann_file=f'annotations/{name}.json', data_prefix=dict(img=f'{name}/'),
                test_mode=test_mode, pipeline=pipeline)


train_dataloader = dict(dataset=dict(_split('train', train_pipeline, False),
                                     filter_cfg=dict(filter_empty_gt=False, min_size=1)))
val_dataloader = dict(dataset=_split('valid', test_pipeline, True))
test_dataloader = dict(dataset=_split('test', test_pipeline, True))
