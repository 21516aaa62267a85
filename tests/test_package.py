"""Packaging contracts: registries, shipped configs, layering, checkpoint loading."""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import ROOT

import isal_mmdet  # noqa: F401
from isal_mmdet.al.loop import al_settings
from isal_mmdet.compat import trust_checkpoints

CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))


def test_import_registers_components():
    from mmdet.registry import DATASETS, HOOKS
    from isal_mmdet.registry import STRATEGIES
    assert HOOKS.get('ISALSelectionHook') is not None
    assert DATASETS.get('ActiveSubset') is not None
    for name in ('isal', 'grad_similarity', 'entropy', 'least_confidence', 'coreset', 'random'):
        assert STRATEGIES.get(name) is not None, name


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_shipped_config_builds_its_model(path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['isal_mmdet']
    al = al_settings(cfg)
    assert al['budget'] > 0 and al['rounds'] > 0
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_influence_core_imports_no_mmdet():
    for path in glob.glob(osp.join(ROOT, 'isal_mmdet', 'influence', '*.py')):
        src = open(path).read()
        assert not re.search(r'^\s*(from|import)\s+mm(det|engine|cv)', src, re.M), path


def test_checkpoints_load_only_when_trusted(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import CheckpointLoader
    ckpt = {'meta': {'hub': HistoryBuffer(), 'dtype': np.dtype('float32')},
            'state_dict': {'w': torch.ones(2)}}
    path = tmp_path / 'runs' / 'epoch_1.pth'
    path.parent.mkdir()
    torch.save(ckpt, path)
    with pytest.raises(RuntimeError, match='epoch_1.pth: refused by safe loading'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    trust_checkpoints(str(tmp_path / 'runs'))
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    # a plain weights file needs no trust
    plain = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}}, plain)
    assert CheckpointLoader.load_checkpoint(str(plain), map_location='cpu')['state_dict'][
        'w'].shape == (1,)
