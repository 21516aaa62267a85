"""The package's layers, read from the source: no module imports from a layer above its own,
and no file but isal_mmdet/fileio.py hand-rolls an atomic write."""
import ast
import os
import os.path as osp

import pytest

from conftest import ROOT

PKG = osp.join(ROOT, 'isal_mmdet')
# lower number = lower layer; a module may import its own package and lower layers. Labelling
# formats (exports, their validation) sit below the dataset wrappers that read them.
LAYERS = {'fileio': 0, 'dataset_index': 0, 'registry': 0, 'compat': 0, 'checkpoints': 0, 'demo': 1,
          'influence': 1, 'detection': 2, 'labelling': 2, 'datasets': 3, 'al': 4,
          'tools_api': 5, 'study': 5, 'serve': 5, '__init__': 6}


def modules():
    for folder, _, files in os.walk(PKG):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                yield path, osp.relpath(path, PKG).replace(os.sep, '/')


def imported(path, rel):
    """Top-level package parts of ``isal_mmdet`` that ``path`` imports."""
    parts = rel[:-3].split('/')
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:len(parts) - node.level]
                target = base + (node.module.split('.') if node.module else [])
                if not target:  # 'from . import x' at the top: x itself
                    yield from (a.name for a in node.names)
                    continue
                yield target[0]
            elif node.module and node.module.split('.')[0] == 'isal_mmdet':
                yield (node.module.split('.') + [node.names[0].name])[1]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split('.')[0] == 'isal_mmdet' and '.' in a.name:
                    yield a.name.split('.')[1]


def layer(part):
    return LAYERS[part[:-3] if part.endswith('.py') else part]


@pytest.mark.parametrize('path,rel', list(modules()), ids=lambda x: x if isinstance(x, str)
                         and not osp.isabs(x) else '')
def test_no_import_from_a_higher_layer(path, rel):
    own = rel.split('/')[0]
    for target in imported(path, rel):
        assert target in LAYERS or target + '.py' in os.listdir(PKG), (rel, target)
        if target != own[:-3] and target != own:
            assert layer(target) <= layer(own) and (layer(target) < layer(own) or
                                                    own == '__init__.py'), \
                f'{rel} imports isal_mmdet.{target}, a layer above or beside its own'


def test_only_fileio_writes_atomically():
    for path, rel in modules():
        if rel != 'fileio.py':
            assert 'os.replace(' not in open(path).read(), rel


RESEARCH = 'study'


def test_the_product_never_imports_the_research_package():
    """Box queries and the studies' levers live in isal_mmdet/study, beside the product: no
    module outside it imports it, at any depth (a function-level import counts too)."""
    for path, rel in modules():
        if rel.split('/')[0] != RESEARCH:
            assert RESEARCH not in set(imported(path, rel)), \
                f'{rel} imports isal_mmdet.{RESEARCH}, the research package'
