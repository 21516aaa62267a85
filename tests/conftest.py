"""Shared fixtures: a generated synthetic VOC set and tiny detectors from the shipped configs."""
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BCCD = osp.join(osp.dirname(ROOT), 'shared', 'data', 'BCCD')
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
TINY = {
    'retinanet': 'configs/_base_/tiny_retinanet.py',
    'fcos': 'configs/_base_/tiny_fcos.py',
    'faster_rcnn': 'configs/_base_/tiny_faster-rcnn.py',
}


@pytest.fixture(scope='session')
def synthetic_voc(tmp_path_factory):
    from isal_mmdet.demo.synthetic import make_synthetic
    out = str(tmp_path_factory.mktemp('synthetic') / 'voc')
    make_synthetic(out, num_images=40, seed=0, fmt='voc')
    return out


def build_detector(family: str, seed: int = 0, num_classes: int = 3):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import isal_mmdet  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(ROOT, TINY[family]))
    if family == 'faster_rcnn':
        cfg.model.roi_head.bbox_head.num_classes = num_classes
    else:
        cfg.model.bbox_head.num_classes = num_classes
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def voc_dataset(data_root: str, split: str = 'train', classes=('circle', 'square', 'triangle'),
                ann_file: str = None):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds = DATASETS.build(dict(type='XMLDataset', data_root=data_root,
                             metainfo=dict(classes=classes),
                             ann_file=ann_file or f'ImageSets/Main/{split}.txt',
                             data_prefix=dict(sub_data_root=''), test_mode=True,
                             pipeline=TEST_PIPELINE))
    ds.full_init()
    return ds


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory):
    from isal_mmdet.demo.synthetic import make_synthetic
    out = str(tmp_path_factory.mktemp('synthetic') / 'coco')
    make_synthetic(out, num_images=30, seed=0, fmt='coco')
    return out


def coco_dataset(data_root: str, split: str = 'train', classes=('circle', 'square', 'triangle')):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds = DATASETS.build(dict(type='CocoDataset', data_root=data_root,
                             metainfo=dict(classes=classes),
                             ann_file=f'annotations/instances_{split}.json',
                             data_prefix=dict(img='images/'), test_mode=True,
                             pipeline=TEST_PIPELINE))
    ds.full_init()
    return ds
