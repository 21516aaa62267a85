# The paper's protocol and settings, to reproduce it: RetinaNet-R50 on COCO, pool = train2017
# (118k images), 5,000 random initial images, 1,000 selected per round, evaluation on val2017;
# ISAL with the Hessian and LiSSA (configs/_base_/al_paper.py). Its reference set ('val') is
# val2017, the evaluation split itself, as in the official code: selection sees the labels it
# is evaluated on. For real use take configs/isal_retinanet_coco.py.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/al_paper.py']
