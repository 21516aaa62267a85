"""The shipped VOC config trains and selects on a generated VOC2012-layout tree."""
import json
import subprocess
import sys

from conftest import ROOT


def test_isal_retinanet_voc_config_smoke(tmp_path):
    from isal_mmdet.demo.synthetic import make_synthetic
    make_synthetic(str(tmp_path / 'voc'), num_images=20, seed=3, voc2012=True)
    root = f'{tmp_path}/voc/VOCdevkit/'
    opts = {
        'model.backbone.init_cfg': None,
        'train_dataloader.dataset.data_root': root,
        # the generated tree has no VOC2007: train on VOC2012 train, not trainval, so that
        # the val split stands apart from the pool (overlap is refused before round 0)
        'train_dataloader.dataset.ann_file': 'VOC2012/ImageSets/Main/train.txt',
        'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.pipeline.2.scale': '(320,240)',
        'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'val_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.ann_file': 'VOC2012/ImageSets/Main/val.txt',
        'val_dataloader.dataset.data_prefix.sub_data_root': 'VOC2012/',
        'val_dataloader.dataset.pipeline.1.scale': '(320,240)',
        'test_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.ann_file': 'VOC2012/ImageSets/Main/test.txt',
        'test_dataloader.dataset.data_prefix.sub_data_root': 'VOC2012/',
        'test_dataloader.dataset.pipeline.1.scale': '(320,240)',
        'train_cfg.max_epochs': 1,
        'active_learning.initial_size': 2, 'active_learning.budget': 2,
        'active_learning.rounds': 2, 'active_learning.batch_size': 2,
    }
    work = tmp_path / 'w'
    res = subprocess.run(
        [sys.executable, f'{ROOT}/tools/al_train.py', f'{ROOT}/configs/isal_retinanet_voc.py',
         '--work-dir', str(work), '--cfg-options', *[f'{k}={v}' for k, v in opts.items()]],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    sel = json.load(open(work / 'round_0' / 'selection.json'))
    assert sel['strategy'] == 'ISAL' and len(sel['selected']) == 2
    metrics = json.load(open(work / 'round_1' / 'metrics.json'))
    assert 'pascal_voc/mAP' in metrics
