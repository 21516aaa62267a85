"""Packaging contracts: registries, layering (shipped configs: test_configs.py; checkpoint
loading: test_untrusted_inputs.py)."""
import glob
import os.path as osp
import re

from conftest import ROOT

import isal_mmdet  # noqa: F401


def test_import_registers_components():
    from mmdet.registry import DATASETS, HOOKS
    from isal_mmdet.registry import STRATEGIES
    assert HOOKS.get('ISALSelectionHook') is not None
    assert DATASETS.get('ActiveSubset') is not None
    for name in ('isal', 'grad_similarity', 'entropy', 'least_confidence', 'coreset', 'random'):
        assert STRATEGIES.get(name) is not None, name


def test_influence_core_imports_no_mmdet():
    for path in glob.glob(osp.join(ROOT, 'isal_mmdet', 'influence', '*.py')):
        src = open(path).read()
        assert not re.search(r'^\s*(from|import)\s+mm(det|engine|cv)', src, re.M), path
