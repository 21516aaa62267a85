"""The hook added to an unmodified upstream mmdet config, run by mmdet's own tools/train.py."""
import json
import os.path as osp
import subprocess
import sys

import mmdet
from pycocotools.coco import COCO

from conftest import ROOT

UPSTREAM_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')


LISSA = "dict(type='ISAL', solver=dict(type='lissa', depth=10, power_iters=3, power_samples=4))"


def upstream_config(tmp_path, strategy: str = LISSA, backbone: str = 'init_cfg=None'):
    """An unmodified upstream RetinaNet config on synthetic COCO data, 8 of its training
    images labelled, with the hook added: (config path, synthetic summary, labelled ids)."""
    from isal_mmdet.demo.synthetic import make_synthetic
    data = tmp_path / 'coco'
    summary = make_synthetic(str(data), num_images=30, seed=1, fmt='coco')
    train_ids = summary['splits']['train'][:8]
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f'''
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)
custom_hooks = [dict(type='ISALSelectionHook', budget=4, reference='val', strategy={strategy},
                     seed=0)]
model = dict(backbone=dict({backbone}), bbox_head=dict(num_classes=3))
metainfo = dict(classes=('circle', 'square', 'triangle'))
_pipe = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
         dict(type='Resize', scale=(160, 120), keep_ratio=True), dict(type='PackDetInputs')]
_test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(160, 120), keep_ratio=True),
         dict(type='LoadAnnotations', with_bbox=True),
         dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor'))]
def _coco(split, pipe):
    return dict(type='CocoDataset', data_root='{data}/', metainfo=metainfo,
                ann_file=f'annotations/instances_{{split}}.json', data_prefix=dict(img='images/'),
                pipeline=pipe, test_mode=split != 'train')
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(_delete_=True, type='ActiveSubset', ids={train_ids},
                                     dataset=_coco('train', _pipe)))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=_coco('val', _test))
test_dataloader = dict(val_dataloader, dataset=_coco('test', _test))
val_evaluator = dict(ann_file='{data}/annotations/instances_val.json')
test_evaluator = dict(ann_file='{data}/annotations/instances_test.json')
train_cfg = dict(max_epochs=1, val_interval=10)
''')
    return cfg, summary, train_ids


def test_hook_on_upstream_retinanet_config_with_coco_data(tmp_path):
    cfg, summary, train_ids = upstream_config(tmp_path)
    work = tmp_path / 'work'
    res = subprocess.run([sys.executable, UPSTREAM_TRAIN, str(cfg), '--work-dir', str(work)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    sel = json.load(open(work / 'selection' / 'selection.json'))
    assert sel['strategy'] == 'ISAL' and len(sel['selected']) == 4
    pool = set(summary['splits']['train']) - set(train_ids)
    assert set(sel['selected']) <= pool and len(sel['scores']) == len(pool)
    coco = COCO(str(work / 'selection' / 'preannotations_coco.json'))
    assert sorted(im['isal_img_id'] for im in coco.loadImgs(coco.getImgIds())) == \
        sorted(sel['selected'])
