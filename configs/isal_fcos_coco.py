# ISAL with FCOS-R50 (GN head) on COCO, the paper's protocol: pool = train2017 (118k images),
# 5,000 random initial images, 1,000 selected per round, evaluation on val2017.
# reference='val' is paper-faithful, but val2017 is also the evaluation split, so selection
# sees the test images' labels. Set reference='labelled' for a leak-free run.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

active_learning = dict(
    initial_size=5000, budget=1000, rounds=6, seed=0, reference='val',
    strategy=dict(type='ISAL', score_thr=0.1,
                  solver=dict(type='lissa', depth=1000, num_chains=1, damp=0.01)),
    batch_size=8)
