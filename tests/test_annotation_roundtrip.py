"""Real annotation of a COCO dataset through a labelling tool's export (CVAT, Label Studio):
the pause, the import and merge, the bad exports, and the contact sheet of a selection."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from conftest import ROOT, coco_dataset
from test_loop import DEMO, tiny_options

CLASSES = ('circle', 'square', 'triangle')
COCO_CONFIG = """
_base_ = {demo!r}
metainfo = dict(classes={classes!r})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 240), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]


def split(name, pipeline, test_mode):
    return dict(_delete_=True, type='CocoDataset', data_root={root!r}, metainfo=metainfo,
                ann_file=f'annotations/instances_{{name}}.json', data_prefix=dict(img='images/'),
                test_mode=test_mode, pipeline=pipeline)


train_dataloader = dict(dataset=dict(split('train', train_pipeline, False),
                                     filter_cfg=dict(filter_empty_gt=False, min_size=1)))
val_dataloader = dict(dataset=split('val', test_pipeline, True))
test_dataloader = dict(dataset=split('test', test_pipeline, True))
val_evaluator = dict(_delete_=True, type='CocoMetric', metric='bbox',
                     ann_file={root!r} + '/annotations/instances_val.json')
test_evaluator = dict(val_evaluator, ann_file={root!r} + '/annotations/instances_test.json')
"""


@pytest.fixture(scope='module')
def coco_config(synthetic_coco, tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'isal_retinanet_coco_demo.py'
    path.write_text(COCO_CONFIG.format(demo=DEMO, classes=CLASSES, root=synthetic_coco))
    return str(path), synthetic_coco


def al_train(config, work_dir, *args):
    """tools/al_train.py with test_loop's tiny options on the COCO config."""
    path, root = config
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), path, '--work-dir',
           str(work_dir), '--cfg-options', *tiny_options(root), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def tool_export(ann_file, selected, exact=()):
    """What a labelling tool exports for ``selected``: the dataset's own boxes, image ids
    renumbered from 0 in another order, category ids from 0 in reverse name order, and file
    names under a folder with Label Studio's ``<hash>-`` prefix (except the ``exact`` ids)."""
    base = json.load(open(ann_file))
    names = {c['id']: c['name'] for c in base['categories']}
    cats = [dict(id=i, name=n) for i, n in enumerate(sorted(names.values(), reverse=True))]
    new_cat = {c['name']: c['id'] for c in cats}
    images, anns = [], []
    for img in sorted((i for i in base['images'] if i['id'] in selected), key=lambda i: -i['id']):
        prefix = '' if img['id'] in exact else f'{img["id"] * 7919:08x}-'
        images.append(dict(id=len(images), file_name=f'upload/3/{prefix}{img["file_name"]}',
                           width=img['width'], height=img['height']))
        anns += [dict(id=0, image_id=images[-1]['id'],
                      category_id=new_cat[names[a['category_id']]], bbox=a['bbox'],
                      area=a['area'], iscrowd=0, segmentation=[], ignore=0)
                 for a in base['annotations'] if a['image_id'] == img['id']]
    for i, ann in enumerate(anns):
        ann['id'] = i
    return dict(images=images, annotations=anns, categories=cats)


def boxes_of(coco, ids):
    names = {c['id']: c['name'] for c in coco['categories']}
    return {i: [(names[a['category_id']], a['bbox']) for a in coco['annotations']
                if a['image_id'] == i] for i in ids}


def write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)


# -- the importer alone -------------------------------------------------------------------------
@pytest.fixture
def base(synthetic_coco):
    path = osp.join(synthetic_coco, 'annotations', 'instances_train.json')
    coco = json.load(open(path))
    with_boxes = sorted({a['image_id'] for a in coco['annotations']})
    return path, coco, with_boxes[:4]


def test_import_matches_names_and_categories_and_merges(base, tmp_path):
    from isal_mmdet.labelling.annotations import import_export
    path, coco, selected = base
    export = tool_export(path, selected, exact=selected[:1])
    first = export['annotations'][0]  # the first box of the highest selected id
    x, y, w, h = first['bbox']
    first['bbox'] = [-5, y, x + w + 5, h]  # sticks out on the left: clipped to x = 0
    export['annotations'].append(dict(first, id=99, bbox=[0, 0, 0.5, 30]))  # degenerate
    export['images'].append(dict(id=77, file_name='other.jpg', width=3, height=3))
    write(tmp_path / 'e.json', export)
    got = import_export(str(tmp_path / 'e.json'), path, selected, CLASSES)
    assert sorted(got.labelled) == selected and not got.missing
    assert (got.clipped, got.dropped, got.ignored) == (1, 1, ['other.jpg'])
    want = boxes_of(coco, selected)
    name, _ = want[selected[-1]][0]
    want[selected[-1]][0] = (name, [0, y, x + w, h])
    assert boxes_of(got.coco, selected) == want  # each box under its own class
    others = [i['id'] for i in coco['images'] if i['id'] not in selected]
    assert boxes_of(got.coco, others) == boxes_of(coco, others)
    assert [a['id'] for a in got.coco['annotations']] == list(
        range(1, len(got.coco['annotations']) + 1))
    assert got.coco['categories'] == coco['categories'] and got.coco['images'] == coco['images']


@pytest.mark.parametrize('spoil, message', [
    (lambda e: e['categories'][0].update(name='hexagon'), "unknown class name(s) ['hexagon']"),
    (lambda e: e['images'].append(dict(e['images'][0], id=50)), 'duplicate file name'),
    (lambda e: e['annotations'][0].update(bbox=[400, 10, 20, 20]), 'lies outside its image'),
    (lambda e: e['annotations'][0].update(category_id=42), 'category_id 42 is not in'),
    (lambda e: e['annotations'][0].update(image_id=999), 'image_id 999 is not in images'),
    (lambda e: e.pop('images'), "field 'images' is missing"),
])
def test_bad_exports_give_one_line_naming_file_and_field(base, tmp_path, spoil, message):
    from isal_mmdet.labelling.annotations import import_export
    path, _, selected = base
    export = tool_export(path, selected)
    spoil(export)
    write(tmp_path / 'e.json', export)
    with pytest.raises(ValueError) as err:
        import_export(str(tmp_path / 'e.json'), path, selected, CLASSES)
    assert message in str(err.value) and str(tmp_path / 'e.json') in str(err.value)
    assert '\n' not in str(err.value)
    (tmp_path / 'bad.json').write_text('{"images": [')
    with pytest.raises(ValueError, match='bad.json: not valid JSON'):
        import_export(str(tmp_path / 'bad.json'), path, selected, CLASSES)


def test_missing_and_ambiguous_images(base, tmp_path):
    from isal_mmdet.labelling.annotations import import_export, match_name
    path, coco, selected = base
    export = tool_export(path, selected[1:])
    write(tmp_path / 'e.json', export)
    got = import_export(str(tmp_path / 'e.json'), path, selected, CLASSES)
    name = next(i['file_name'] for i in coco['images'] if i['id'] == selected[0])
    assert got.missing == [name] and sorted(got.labelled) == selected[1:]
    assert match_name('x.jpg', {'x.jpg': 1, 'a-x.jpg': 2}) == 'x.jpg'
    assert match_name('f00-a-x.jpg', {'x.jpg': 1, 'b-x.jpg': 2}) == 'x.jpg'
    with pytest.raises(ValueError, match='matches several selected images'):
        match_name('f00-a-x.jpg', {'x.jpg': 1, 'a-x.jpg': 2})


def test_contact_sheet_caps_tiles(synthetic_coco, tmp_path):
    import cv2
    from isal_mmdet.labelling.report import contact_sheet
    ds = coco_dataset(synthetic_coco)
    ids = [ds.get_data_info(i)['img_id'] for i in range(len(ds))]
    pre = dict(images=[dict(id=n + 1, isal_img_id=i) for n, i in enumerate(ids)],
               annotations=[dict(image_id=1, category_id=2, bbox=[10, 10, 50, 40], score=0.5)])
    out = str(tmp_path / 'sheet.jpg')
    assert contact_sheet(out, pre, ds, ids, ids, max_tiles=6, tile_size=(160, 120),
                         columns=4) == 6
    assert cv2.imread(out).shape == (24 + 2 * 120, 4 * 160, 3)  # legend strip + 2 rows
    assert len(ids) > 6


# -- the whole loop -----------------------------------------------------------------------------
def test_coco_round_trip_matches_simulated_labelling(coco_config, synthetic_coco, tmp_path):
    import cv2
    ann_file = osp.join(synthetic_coco, 'annotations', 'instances_train.json')
    gt = tmp_path / 'gt'
    res = al_train(coco_config, gt)
    assert res.returncode == 0, res.stderr[-3000:]

    work = tmp_path / 'w'
    res = al_train(coco_config, work, '--oracle', 'none')
    assert res.returncode == 0, res.stderr[-3000:]
    export0 = work / 'round_0' / 'annotations_coco.json'
    assert 'round 1 waits for annotations: label the 3 selected images: Label Studio' in res.stdout
    assert str(export0) in res.stdout
    pre = json.load(open(work / 'round_0' / 'preannotations_coco.json'))
    assert {'id', 'file_name', 'width', 'height'} <= set(pre['images'][0])
    assert [c['name'] for c in pre['categories']] == list(CLASSES)
    assert all({'id', 'image_id', 'category_id', 'bbox', 'area', 'iscrowd', 'segmentation',
                'score'} <= set(a) for a in pre['annotations'])
    assert cv2.imread(str(work / 'round_0' / 'selected.jpg')).shape == (24 + 240, 3 * 320, 3)

    selected = json.load(open(work / 'round_0' / 'selection.json'))['selected']
    spoilt = tool_export(ann_file, selected)
    spoilt['categories'][0]['name'] = 'hexagon'
    write(export0, spoilt)
    res = al_train(coco_config, work, '--oracle', 'none')
    assert res.returncode == 2 and 'unknown class name' in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    write(export0, tool_export(ann_file, selected[1:]))
    res = al_train(coco_config, work, '--oracle', 'none')
    assert 'round 1 waits for annotations: 1 of 3 selected images are not in' in res.stdout
    assert not osp.exists(work / 'round_1')  # nothing written

    write(export0, tool_export(ann_file, selected, exact=selected[:1]))
    res = al_train(coco_config, work, '--oracle', 'none')
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'round 2 waits for annotations' in res.stdout
    assert 'imported 3 images' in res.stdout + res.stderr
    merged = json.load(open(work / 'round_1' / 'train_annotations.json'))
    original = json.load(open(ann_file))
    ids = [i['id'] for i in original['images']]
    assert boxes_of(merged, ids) == boxes_of(original, ids)

    selected = json.load(open(work / 'round_1' / 'selection.json'))['selected']
    export1 = tmp_path / 'cvat_export.json'
    write(export1, tool_export(ann_file, selected, exact=selected))
    res = al_train(coco_config, work, '--oracle', 'none', '--annotations', str(export1))
    assert res.returncode == 0, res.stderr[-3000:]
    assert osp.exists(work / 'round_2' / 'metrics.json')
    for k in range(3):
        assert json.load(open(work / f'round_{k}' / 'labeled.json')) == json.load(
            open(gt / f'round_{k}' / 'labeled.json'))
    assert json.load(open(ann_file)) == original  # the user's ann_file is never modified
