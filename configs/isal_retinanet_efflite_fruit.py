# Active learning at budgets of hundreds of images: the fruit freshness set (VOC layout, 3,093
# images, 9 classes, 1-8 boxes per image), read in place from ../shared/data/fruit.
# Fruit-freshness-detection-dataset, zijianchen98 (GitHub), Apache-2.0. Part of the set are
# rotated or flipped copies of the same photos, so near-duplicates can fall into different
# splits: absolute mAP on it is optimistic; every strategy sees the same splits.
# Pool: train (2,393). Reference: val (300). Evaluation: test (400).
# The pretrained EfficientNet-Lite0 RetinaNet of isal_retinanet_efflite_bccd.py at 320x240.
# Schedule: 200 labelled images, +200 per round, to 800 (4 rounds). Round 0 trains 600
# iterations (24 epochs of 200 images at batch 8); later rounds fine-tune the previous model
# for 300 (3-6 epochs of 400-800 images; warm_start_iters, the schedule scaled alike).
_base_ = './isal_retinanet_efflite_bccd.py'

data_root = '../shared/data/fruit/'
metainfo = dict(classes=('fresh_apple', 'normal_apple', 'rotten_apple', 'fresh_banana',
                         'normal_banana', 'rotten_banana', 'fresh_orange', 'normal_orange',
                         'rotten_orange'),
                palette=[(0, 200, 0), (200, 200, 0), (200, 0, 0), (0, 200, 100),
                         (200, 200, 100), (200, 0, 100), (0, 100, 200), (200, 100, 200),
                         (100, 0, 200)])
model = dict(bbox_head=dict(num_classes=9))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
train_cfg = dict(max_iters=600)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[480], gamma=0.1)
]
active_learning = dict(initial_size=200, budget=200, rounds=4, warm_start_iters=300)
