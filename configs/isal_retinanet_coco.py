# ISAL with RetinaNet-R50 on COCO: pool = train2017 less a held-out reference part, 5,000 random initial images,
# 1,000 selected per round, evaluation on val2017. ISAL's reference set ('val') is that
# held-out part of train2017, never val2017: selection reads the reference labels, and val2017
# is what the model is evaluated on. Make the two files once (5,000 seeded reference images):
#   python tools/split_coco.py data/coco/annotations/instances_train2017.json --reference 5000
# The default ISAL (configs/_base_/al_default.py); the paper's protocol: configs/paper/.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', './_base_/al_default.py']

data_root = 'data/coco/'
reference_ann = 'annotations/instances_train2017_reference.json'
train_dataloader = dict(dataset=dict(ann_file='annotations/instances_train2017_pool.json'))
val_dataloader = dict(dataset=dict(ann_file=reference_ann, data_prefix=dict(img='train2017/')))
val_evaluator = dict(ann_file=data_root + reference_ann)
