# ISAL with RetinaNet-R50 on COCO, the paper's protocol: pool = train2017 (118k images),
# 5,000 random initial images, 1,000 selected per round, evaluation on val2017.
# reference='val' is paper-faithful, but val2017 is also the evaluation split, so selection
# sees the test images' labels. Set reference='labelled' for a leak-free run.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', './_base_/al_paper.py']
