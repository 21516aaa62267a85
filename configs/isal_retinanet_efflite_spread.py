# Does ISAL prefer near-empty images when the object count varies widely and one class is
# rare? The pretrained EfficientNet-Lite0 RetinaNet and schedule of
# isal_retinanet_efflite_bccd.py on a synthetic VOC set of 360 images (BCCD has 364) at
# 320x240: 0-20 shapes per image (median 9; side 16-64 px, within the 16-101 px anchors),
# circle:square:triangle drawn 1:1:0.1 (triangle 5% of boxes); 39 images are empty (the
# generator's 5% plus draws of 0). Pool: train (216). Reference: val (72). Evaluation: test (72).
# Create the seeded data from the repository root with
#   python tools/make_synthetic.py data/synthetic_spread --num-images 360 --seed 0 \
#       --objects 0 20 --obj-size 16 64 --class-weights 1 1 0.1
_base_ = './isal_retinanet_efflite_bccd.py'

data_root = 'data/synthetic_spread/'
metainfo = dict(classes=('circle', 'square', 'triangle'),
                palette=[(220, 20, 60), (0, 128, 255), (0, 160, 0)])
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
