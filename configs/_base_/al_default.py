# The active-learning block of the everyday VOC and COCO configs: the default ISAL (the
# empirical Fisher, solved exactly), v on a seeded 500 of the reference images (v costs about
# one scoring pass per reference image). The paper's settings: al_paper.py, configs/paper/.
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)

active_learning = dict(
    initial_size=5000, budget=1000, rounds=6, seed=0, reference='val',
    strategy=dict(type='ISAL', reference_size=500),
    batch_size=8)
