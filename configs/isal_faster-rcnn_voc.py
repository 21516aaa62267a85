# ISAL with Faster R-CNN-R50-FPN on Pascal VOC (mmdet's own VOC config underneath).
# Pool: VOC2012 trainval (11,540 images). ISAL reference set ('val'): VOC2007 val (2,510).
# Evaluation: VOC2007 test (4,952). The three are disjoint: selection never sees test images.
# The default ISAL (configs/_base_/al_default.py); the paper's settings: configs/paper/.
_base_ = ['mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py', './_base_/al_default.py']

data_root = 'data/VOCdevkit/'
train_dataloader = dict(
    dataset=dict(_delete_=True, type='VOCDataset', data_root=data_root,
                 ann_file='VOC2012/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2012/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
                 pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(data_root=data_root,
                                   ann_file='VOC2007/ImageSets/Main/val.txt',
                                   data_prefix=dict(sub_data_root='VOC2007/')))
test_dataloader = dict(dataset=dict(data_root=data_root,
                                    ann_file='VOC2007/ImageSets/Main/test.txt',
                                    data_prefix=dict(sub_data_root='VOC2007/')))
# mmdet repeats VOC 3x per epoch; the labelled set is small, so train longer instead.
train_cfg = dict(max_epochs=12, val_interval=12)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[9, 11], gamma=0.1)]

active_learning = dict(initial_size=1000, budget=1000)
