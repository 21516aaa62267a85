# The paper's active-learning settings (Hessian + LiSSA, v on the val split); only the
# configs under configs/paper/ use them. Everyday configs: al_default.py.
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

active_learning = dict(
    initial_size=5000, budget=1000, rounds=6, seed=0, reference='val',
    strategy=dict(type='ISAL', score_thr=0.1, curvature='hessian',
                  solver=dict(type='lissa', depth=1000, num_chains=1, damp=0.01)),
    batch_size=8)
