import collections
import hashlib
import importlib.util
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isal_mmdet.demo.synthetic import (DEFAULT_CLASSES, MARKER, SHAPES,
                                           VOC_CLASSES, make_synthetic,
                                           render_sample)

ROOT = Path(__file__).resolve().parents[1]
W, H = 320, 240


def _hashes(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def _index(stem: str) -> int:
    return int(stem.split('_')[1]) - 1


def _boxes(data_info: dict) -> list:
    return [(inst['bbox_label'], [int(v) for v in inst['bbox']])
            for inst in data_info['instances']]


@pytest.fixture(scope='module')
def voc_dir(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('voc')
    return out, make_synthetic(str(out), num_images=30, seed=7)


@pytest.fixture(scope='module')
def coco_dir(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('coco')
    return out, make_synthetic(str(out), num_images=30, seed=7, fmt='coco')


def test_same_seed_gives_identical_files(tmp_path):
    a = make_synthetic(str(tmp_path / 'a'), num_images=12, seed=3)
    b = make_synthetic(str(tmp_path / 'b'), num_images=12, seed=3)
    ha, hb = _hashes(tmp_path / 'a'), _hashes(tmp_path / 'b')
    assert ha == hb
    assert MARKER in ha and len(ha) == 12 * 2 + 4 + 1
    assert {k: v for k, v in a.items() if k != 'out_dir'} == \
        {k: v for k, v in b.items() if k != 'out_dir'}

    make_synthetic(str(tmp_path / 'c'), num_images=12, seed=4)
    hc = _hashes(tmp_path / 'c')
    jpgs = [k for k in ha if k.endswith('.jpg')]
    assert all(ha[k] != hc[k] for k in jpgs)


def test_images_are_textured_and_sized(voc_dir):
    out, summary = voc_dir
    img = np.asarray(Image.open(out / 'JPEGImages' / 'syn_000001.jpg'))
    assert img.shape == (H, W, 3)
    assert img.std() > 10
    assert summary['classes'] == list(DEFAULT_CLASSES)
    assert summary['num_boxes'] > summary['num_images']


def test_render_sample_is_pure():
    img1, objs1 = render_sample(5, 2, SHAPES[:3])
    img2, objs2 = render_sample(5, 2, SHAPES[:3])
    assert np.array_equal(img1, img2) and objs1 == objs2
    assert 1 <= len(objs1) <= 6
    empty_img, empty_objs = render_sample(5, 2, SHAPES[:3], empty=True)
    assert empty_objs == [] and empty_img.shape == (H, W, 3)


def test_voc_loads_with_mmdet(voc_dir):
    from mmdet.datasets import XMLDataset
    out, summary = voc_dir
    ds = XMLDataset(
        metainfo=dict(classes=DEFAULT_CLASSES), data_root=str(out),
        ann_file='ImageSets/Main/train.txt',
        data_prefix=dict(sub_data_root=''), pipeline=[], test_mode=True)
    assert len(ds) == len(summary['splits']['train']) == 18
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == \
        summary['splits']['train']
    num_empty = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert (info['width'], info['height']) == (W, H)
        assert os.path.isfile(info['img_path'])
        num_empty += not info['instances']
        for label, (x1, y1, x2, y2) in _boxes(info):
            assert 0 <= label < len(DEFAULT_CLASSES)
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
            assert 15 <= max(x2 - x1, y2 - y1) <= 90
        if info['instances']:
            _, objects = render_sample(7, _index(info['img_id']),
                                       SHAPES[:3], (W, H))
            assert _boxes(info) == [(lab, list(box)) for lab, box in objects]
    assert num_empty >= 1

    splits = summary['splits']
    assert sorted(splits['trainval']) == sorted(splits['train'] +
                                                 splits['val'])
    all_ids = splits['train'] + splits['val'] + splits['test']
    assert sorted(all_ids) == [f'syn_{i:06d}' for i in range(1, 31)]
    lines = (out / 'ImageSets/Main/val.txt').read_text().split()
    assert lines == splits['val']


def test_voc_xml_fields(voc_dir):
    out, summary = voc_dir
    stem = summary['splits']['train'][0]
    root = ET.parse(out / 'Annotations' / f'{stem}.xml').getroot()
    assert root.tag == 'annotation'
    assert root.findtext('filename') == f'{stem}.jpg'
    assert root.findtext('size/depth') == '3'
    for obj in root.findall('object'):
        assert obj.findtext('name') in DEFAULT_CLASSES
        assert obj.findtext('pose') == 'Unspecified'
        assert obj.findtext('truncated') == '0'
        assert obj.findtext('difficult') == '0'
        xmin, xmax = int(obj.findtext('bndbox/xmin')), int(
            obj.findtext('bndbox/xmax'))
        assert 1 <= xmin < xmax <= W


def test_coco_loads_and_matches_voc(coco_dir, voc_dir):
    from mmdet.datasets import CocoDataset, XMLDataset
    from pycocotools.coco import COCO
    out, summary = coco_dir
    for split, ids in summary['splits'].items():
        api = COCO(str(out / 'annotations' / f'instances_{split}.json'))
        assert sorted(api.getImgIds()) == ids
        assert sorted(api.getCatIds()) == [1, 2, 3]
        for img in api.loadImgs(ids):
            assert img['file_name'] == f"syn_{img['id']:06d}.jpg"
    all_ids = sum(summary['splits'].values(), [])
    assert sorted(all_ids) == list(range(1, 31))

    coco_ds = CocoDataset(
        metainfo=dict(classes=DEFAULT_CLASSES), data_root=str(out),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'), pipeline=[], test_mode=True)
    assert [coco_ds.get_data_info(i)['img_id']
            for i in range(len(coco_ds))] == summary['splits']['val']

    voc_out, voc_summary = voc_dir
    voc_ds = XMLDataset(
        metainfo=dict(classes=DEFAULT_CLASSES), data_root=str(voc_out),
        ann_file='ImageSets/Main/val.txt',
        data_prefix=dict(sub_data_root=''), pipeline=[], test_mode=True)
    assert [f'syn_{i:06d}' for i in summary['splits']['val']] == \
        voc_summary['splits']['val']
    for i in range(len(coco_ds)):
        info = coco_ds.get_data_info(i)
        assert os.path.isfile(info['img_path'])
        assert _boxes(info) == _boxes(voc_ds.get_data_info(i))


def test_voc2012_layout_with_vocdataset(tmp_path):
    from mmdet.datasets import VOCDataset
    summary = make_synthetic(str(tmp_path), num_images=12, seed=1,
                             voc2012=True)
    assert summary['classes'] == ['person', 'car', 'dog']
    assert tuple(VOCDataset.METAINFO['classes']) == VOC_CLASSES
    ds = VOCDataset(
        data_root=str(tmp_path / 'VOCdevkit') + '/',
        ann_file='VOC2012/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2012/'), pipeline=[],
        test_mode=True)
    assert len(ds) == len(summary['splits']['trainval'])
    wanted = {VOC_CLASSES.index(c) for c in summary['classes']}
    labels = {label for i in range(len(ds))
              for label, _ in _boxes(ds.get_data_info(i))}
    assert labels and labels <= wanted


def test_idempotent_and_overwrites(tmp_path):
    out = tmp_path / 'd'
    first = make_synthetic(str(out), num_images=12, seed=2)
    marker = out / MARKER
    stamp = marker.stat().st_mtime_ns
    jpg_stamp = (out / 'JPEGImages' / 'syn_000001.jpg').stat().st_mtime_ns
    assert make_synthetic(str(out), num_images=12, seed=2) == first
    assert marker.stat().st_mtime_ns == stamp
    assert (out / 'JPEGImages' / 'syn_000001.jpg').stat().st_mtime_ns == \
        jpg_stamp

    (out / 'notes.txt').write_text('keep me')
    second = make_synthetic(str(out), num_images=5, seed=2)
    assert second['num_images'] == 5
    assert len(list((out / 'JPEGImages').iterdir())) == 5
    assert len(list((out / 'Annotations').iterdir())) == 5
    assert (out / 'notes.txt').read_text() == 'keep me'

    marker.unlink()
    (out / 'JPEGImages' / 'syn_000002.jpg').write_bytes(b'partial')
    fresh = make_synthetic(str(tmp_path / 'e'), num_images=5, seed=2)
    redone = make_synthetic(str(out), num_images=5, seed=2)
    assert {k: v for k, v in redone.items() if k != 'out_dir'} == \
        {k: v for k, v in fresh.items() if k != 'out_dir'}
    assert _hashes(out / 'JPEGImages') == _hashes(tmp_path / 'e' /
                                                  'JPEGImages')


@pytest.mark.parametrize('kwargs, word', [
    (dict(num_images=0), 'num_images'),
    (dict(fmt='yolo'), 'fmt'),
    (dict(classes=[]), 'classes'),
    (dict(splits={'train': 0.5, 'val': 0.2}), 'splits'),
    (dict(voc2012=True, classes=['person', 'circle']), 'circle'),
    (dict(voc2012=True, fmt='coco'), 'voc2012'),
    (dict(img_size=(10, 10)), 'img_size'),
    (dict(empty_fraction=1.5), 'empty_fraction'),
    (dict(objects=(5, 2)), 'objects'),
    (dict(objects=(-1, 3)), 'objects'),
    (dict(objects=3), 'objects'),
    (dict(objects=(0.5, 3)), 'objects'),
    (dict(obj_size=(4, 20)), 'obj_size'),
    (dict(obj_size=(239, 300)), 'obj_size'),
    (dict(class_weights=(1, 1)), 'class_weights'),
    (dict(class_weights=(0, 0, 0)), 'class_weights'),
    (dict(class_weights=(1, -1, 1)), 'class_weights'),
    (dict(class_weights=(1, float('nan'), 1)), 'class_weights'),
])
def test_bad_arguments(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word) as err:
        make_synthetic(str(tmp_path / 'x'), **kwargs)
    assert '\n' not in str(err.value)
    assert not (tmp_path / 'x').exists()


SPREAD = dict(num_images=300, seed=5, img_size=(160, 120), objects=(0, 20),
              obj_size=(8, 32), class_weights=(1, 1, 0.1), empty_fraction=0)


def _voc_stats(root: Path) -> tuple[list[int], collections.Counter]:
    """Boxes per image and per class name, read back from the XML files."""
    counts, names = [], collections.Counter()
    for xml in sorted((root / 'Annotations').iterdir()):
        objs = ET.parse(xml).getroot().findall('object')
        counts.append(len(objs))
        names.update(obj.findtext('name') for obj in objs)
    return counts, names


def test_objects_and_class_weights(tmp_path):
    out = tmp_path / 's'
    summary = make_synthetic(str(out), **SPREAD)
    counts, names = _voc_stats(out)
    assert sum(counts) == summary['num_boxes']
    assert min(counts) == 0 and max(counts) >= 15
    assert len(set(counts)) >= 16
    total = sum(names.values())
    assert 0.03 <= names['triangle'] / total <= 0.15
    assert all(0.35 <= names[c] / total <= 0.6 for c in ('circle', 'square'))
    for xml in (out / 'Annotations').iterdir():
        for obj in ET.parse(xml).getroot().findall('object'):
            side = max(int(obj.findtext('bndbox/xmax')) -
                       int(obj.findtext('bndbox/xmin')),
                       int(obj.findtext('bndbox/ymax')) -
                       int(obj.findtext('bndbox/ymin')))
            assert 7 <= side <= 32

    args = json.loads((out / MARKER).read_text())['args']
    assert args['objects'] == [0, 20] and args['obj_size'] == [8, 32]
    assert args['class_weights'] == [1.0, 1.0, 0.1]
    # a changed argument regenerates instead of reusing the files
    uniform = make_synthetic(str(out), **{**SPREAD, 'class_weights': None})
    args = json.loads((out / MARKER).read_text())['args']
    assert 'class_weights' not in args and args['objects'] == [0, 20]
    counts, names = _voc_stats(out)
    assert sum(counts) == uniform['num_boxes']
    assert names['triangle'] / sum(counts) > 0.25


def test_default_spread_arguments_keep_files(tmp_path):
    """Explicit defaults and equal weights write exactly the default set,
    marker included, so existing datasets are not regenerated."""
    make_synthetic(str(tmp_path / 'a'), num_images=8, seed=1)
    make_synthetic(str(tmp_path / 'b'), num_images=8, seed=1, objects=(1, 6),
                   obj_size=(16, 90), class_weights=(2, 2, 2))
    assert _hashes(tmp_path / 'a') == _hashes(tmp_path / 'b')


def _cli():
    spec = importlib.util.spec_from_file_location(
        'make_synthetic_cli', ROOT / 'tools' / 'make_synthetic.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_cli_spread_round_trip(tmp_path, capsys):
    kwargs = dict(num_images=12, seed=2, img_size=(160, 120), objects=(0, 20),
                  obj_size=(8, 32), class_weights=(1, 1, 0.1))
    _cli().main([str(tmp_path / 'cli'), '--num-images', '12', '--seed', '2',
                 '--img-size', '160', '120', '--objects', '0', '20',
                 '--obj-size', '8', '32', '--class-weights', '1', '1', '0.1'])
    assert '12 images' in capsys.readouterr().out
    make_synthetic(str(tmp_path / 'api'), **kwargs)
    assert _hashes(tmp_path / 'cli') == _hashes(tmp_path / 'api')

    with pytest.raises(SystemExit):
        _cli().main([str(tmp_path / 'bad'), '--class-weights', '1', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert 'error: class_weights' in err[-1]


def test_cli(tmp_path, capsys):
    cli = _cli()
    cli.main([str(tmp_path), '--num-images', '4', '--format', 'coco',
              '--classes', 'a', 'b', 'c', 'd', '--img-size', '64', '48'])
    printed = capsys.readouterr().out
    assert '4 images' in printed and str(tmp_path) in printed
    assert len(list((tmp_path / 'images').iterdir())) == 4
    img = Image.open(tmp_path / 'images' / 'syn_000004.jpg')
    assert img.size == (64, 48)
