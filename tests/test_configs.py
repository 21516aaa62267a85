"""Every shipped config loads, its ``active_learning`` block validates and its model builds;
the everyday configs follow the README's guide (default solver, reference not the test split)."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import ROOT

import isal_mmdet  # noqa: F401
from isal_mmdet.al.settings import al_settings
from isal_mmdet.al.strategies import DEFAULT_SOLVER, build_strategy

CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)
EVERYDAY = ['isal_retinanet_voc.py', 'isal_faster-rcnn_voc.py', 'isal_retinanet_coco.py',
            'isal_faster-rcnn_coco.py', 'isal_fcos_coco.py']


def _dataset(cfg, split):
    ds = cfg[f'{split}_dataloader'].dataset
    return ds.get('data_root', ''), ds.ann_file, str(ds.get('data_prefix', ''))


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_shipped_config_validates_and_builds_its_model(path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['isal_mmdet']
    al = al_settings(cfg)
    assert al['budget'] > 0 and al['rounds'] > 0
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize('name', EVERYDAY)
def test_everyday_configs_use_the_default_solver_and_a_held_out_reference(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    al = al_settings(cfg)
    strategy = build_strategy(al['strategy'])
    assert type(strategy).__name__ == 'ISAL'
    spec = al['strategy'] if isinstance(al['strategy'], dict) else {}
    assert spec.get('solver', DEFAULT_SOLVER) == DEFAULT_SOLVER
    assert spec.get('curvature', 'fisher') == 'fisher'
    assert al['reference'] == 'val'
    assert _dataset(cfg, 'val') != _dataset(cfg, 'test'), 'the reference set is the test split'


def test_paper_settings_only_in_configs_named_as_such():
    for path in CONFIGS:
        al = al_settings(Config.fromfile(path))
        spec = al['strategy'] if isinstance(al['strategy'], dict) else {}
        if spec.get('curvature') == 'hessian':
            assert 'paper' in osp.relpath(path, ROOT), path


def test_split_coco_holds_out_a_seeded_reference(tmp_path):
    data = {'images': [{'id': i, 'file_name': f'{i}.jpg'} for i in range(1, 11)],
            'annotations': [{'id': i, 'image_id': i, 'bbox': [0, 0, 1, 1]} for i in range(1, 11)],
            'categories': [{'id': 1, 'name': 'a'}]}
    ann = tmp_path / 'instances_train2017.json'
    ann.write_text(json.dumps(data))
    runs = []
    for _ in range(2):   # seeded: the same split twice
        done = subprocess.run([sys.executable, 'tools/split_coco.py', str(ann), '--reference',
                               '3'], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        runs.append([json.loads((tmp_path / f'instances_train2017_{part}.json').read_text())
                     for part in ('pool', 'reference')])
    assert runs[0] == runs[1]
    pool, ref = runs[0]
    ids = {im['id'] for im in ref['images']}
    assert len(ids) == 3 and not ids & {im['id'] for im in pool['images']}
    assert {a['image_id'] for a in ref['annotations']} == ids
    assert len(pool['images']) + len(ids) == 10 and ref['categories'] == data['categories']


SHARED = osp.join(osp.dirname(ROOT), 'shared', 'data')


@pytest.mark.parametrize('name', ['bccd', 'aquarium', 'fruit'])
def test_real_data_configs_pass_the_annotation_checks(name):
    """The studies' real sets, as published, pass the checks every run makes before training
    (BCCD and Aquarium hold zero-size boxes: named, not refused). Skipped where
    ../shared/data is not present (a clone elsewhere)."""
    from mmdet.utils import register_all_modules
    from isal_mmdet.al.data import build_dataset, unwrap_subset
    if not osp.isdir(SHARED):
        pytest.skip('../shared/data not present')
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'isal_retinanet_efflite_{name}.py'))
    for split in ('train', 'val', 'test'):
        inner, _ = unwrap_subset(cfg[f'{split}_dataloader'].dataset)
        assert len(build_dataset(inner, f'{split}_dataloader.dataset')) > 0
