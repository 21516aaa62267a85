"""The bad-input matrix, through the real entry points: tools/al_train.py, tools/al_select.py
and the hook under mmdet's own tools/train.py.

Each case ends either in a one-line error (non-zero exit, one ``error:`` line on stderr naming
the file or field, no traceback) or in a run that succeeds and logs what it skipped; either
way no file of the work dir is left half-written. The defects are planted in one shared
synthetic set, and the al_select cases reuse the checkpoint of one tiny run, to stay fast.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, TEST_PIPELINE, build_detector, coco_dataset
from test_hook_upstream import UPSTREAM_TRAIN
from test_loop import DEMO, al_train, tiny_options

AL_SELECT = osp.join(ROOT, 'tools', 'al_select.py')
STRATEGIES = ('random', 'entropy', 'least_confidence', 'coreset', 'isal', 'grad_similarity', 'esi',
              'dcus', 'badge')
CLASSES = ('circle', 'square', 'triangle')


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def al_select(data, checkpoint, out, *args, **options):
    return run(AL_SELECT, DEMO, checkpoint, '--out', out, *args, '--cfg-options',
               *tiny_options(data, **options))


def assert_one_line_error(res, *needles):
    assert res.returncode != 0, res.stdout[-2000:]
    assert 'Traceback' not in res.stderr, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, res.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def assert_intact(folder):
    """No temp file left behind, and every JSON parses (mmengine's logs: one per line)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = osp.join(root, name)
            assert not (name.startswith('.') or name.endswith('.tmp')), path
            if name.endswith('.json'):
                text = open(path).read()
                try:
                    json.loads(text)
                except ValueError:
                    for line in filter(str.strip, text.splitlines()):
                        json.loads(line)


# -- the VOC set with planted defects, and one tiny run on it ---------------------------------

@pytest.fixture(scope='module')
def voc(tmp_path_factory):
    """Defects go where round 0 meets them: its labelled set (training, the Hessian) and its
    pool (scoring). Also a split of images without boxes, and an id file of all of train."""
    from isal_mmdet.al.state import initial_split
    from isal_mmdet.demo.synthetic import make_synthetic
    root = tmp_path_factory.mktemp('bad') / 'voc'
    train = make_synthetic(str(root), num_images=30, seed=0, fmt='voc')['splits']['train']
    labelled = initial_split(train, 6, seed=0)  # round 0's labelled set, as al_train draws it
    pool = [s for s in train if s not in labelled]
    jpg = lambda stem: root / 'JPEGImages' / f'{stem}.jpg'  # noqa: E731
    xml = lambda stem: root / 'Annotations' / f'{stem}.xml'  # noqa: E731
    with_boxes = [s for s in labelled if '<object>' in xml(s).read_text()]
    d = SimpleNamespace(root=str(root), labelled=labelled, pool=pool, jpg=jpg, xml=xml,
                        gray=pool[0], cmyk=pool[1], truncated=pool[2], empty=pool[3],
                        resized=pool[4], outside=with_boxes[0],
                        truncated_labelled=with_boxes[1], empty_labelled=with_boxes[2])
    Image.open(jpg(d.gray)).convert('L').save(jpg(d.gray), quality=90)
    Image.open(jpg(d.cmyk)).convert('CMYK').save(jpg(d.cmyk), quality=90)
    for stem in (d.truncated, d.truncated_labelled):
        data = jpg(stem).read_bytes()
        jpg(stem).write_bytes(data[:len(data) // 2])
    for stem in (d.empty, d.empty_labelled):
        jpg(stem).write_bytes(b'')
    text = xml(d.resized).read_text()
    xml(d.resized).write_text(text.replace('<width>320<', '<width>640<')
                              .replace('<height>240<', '<height>480<'))
    text = xml(d.outside).read_text()
    xml(d.outside).write_text(re.sub(r'<xmax>\d+</xmax>', '<xmax>360</xmax>', text, count=1))
    for stem in ('nobox_a', 'nobox_b'):
        shutil.copy(jpg(pool[5]), jpg(stem))
        xml(stem).write_text(re.sub(r'\s*<object>.*?</object>', '',
                                    xml(pool[5]).read_text(), flags=re.S))
    (root / 'ImageSets' / 'Main' / 'nobox.txt').write_text('nobox_a\nnobox_b\n')
    d.all_train = root.parent / 'all_train.json'
    d.all_train.write_text(json.dumps(train))
    return d


@pytest.fixture(scope='module')
def trained(voc, tmp_path_factory):
    """Two rounds of al_train (ISAL) over every planted image defect."""
    work = tmp_path_factory.mktemp('bad_run') / 'w'
    res = al_train(work, voc.root, **{'train_cfg.max_iters': 2, 'active_learning.rounds': 2})
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = (work / 'round_0' / 'train' / 'last_checkpoint').read_text().strip()
    return SimpleNamespace(work=work, log=res.stdout + res.stderr, checkpoint=ckpt,
                           labelled=work / 'round_0' / 'labeled.json',
                           scores=json.load(open(work / 'round_0' / 'selection.json'))['scores'])


def test_grayscale_jpeg_is_read_as_three_channels(voc, trained):
    assert voc.gray in trained.scores
    assert str(voc.jpg(voc.gray)) not in trained.log
    assert_intact(trained.work)


def test_cmyk_jpeg_is_read_as_three_channels(voc, trained):
    assert voc.cmyk in trained.scores
    assert str(voc.jpg(voc.cmyk)) not in trained.log


def test_truncated_jpeg_is_logged_and_skipped(voc, trained):
    """OpenCV decodes a half JPEG without an error; ActiveSubset checks the end marker."""
    for stem in (voc.truncated, voc.truncated_labelled):
        assert f'skipping unreadable image {voc.jpg(stem)} (OSError' in trained.log
    assert voc.truncated not in trained.scores
    assert json.load(open(trained.work / 'summary.json'))[1]['num_labelled'] == 9


def test_zero_byte_image_is_logged_and_skipped(voc, trained):
    for stem in (voc.empty, voc.empty_labelled):
        assert f'skipping unreadable image {voc.jpg(stem)}' in trained.log
    assert voc.empty not in trained.scores


def test_xml_size_disagreeing_with_the_pixels_is_logged_naming_the_file(voc, trained):
    assert f'{voc.xml(voc.resized)}: <size> 640x480 disagrees with its image' in trained.log
    assert voc.resized in trained.scores  # the pixels are read as they are


def test_box_partly_outside_the_image_is_kept_and_clipped(voc, trained):
    """Kept as written by the loader; selection's pipeline (real labels for v and H) resizes
    and clips it with the image, as training's does. mmdet's test pipelines load boxes after
    Resize, so taken as they are they would stay in original-image coordinates."""
    from mmengine.config import Config
    from mmdet.utils import register_all_modules
    from isal_mmdet.al.data import build_dataset, scoring_dataset_cfg, test_pipeline_of
    register_all_modules(init_default_scope=True)
    assert voc.outside in json.load(open(trained.labelled))
    cfg = Config.fromfile(DEMO)
    half = [dict(p, scale=(160, 120)) if p['type'] == 'Resize' else p
            for p in test_pipeline_of(cfg)]
    ds = build_dataset(scoring_dataset_cfg(dict(cfg.train_dataloader.dataset,
                                                data_root=voc.root), half), 'train')
    index = [ds.get_data_info(i)['img_id'] for i in range(len(ds))].index(voc.outside)
    written = torch.tensor([inst['bbox'] for inst in ds.get_data_info(index)['instances']],
                           dtype=torch.float32)
    assert written[:, 2].max() == 359  # VOC's 360, 0-based
    want = written / 2
    want[:, 0::2].clamp_(0, 160)
    want[:, 1::2].clamp_(0, 120)
    assert torch.equal(ds[index]['data_samples'].gt_instances.bboxes.tensor, want)


# -- every strategy on the same pool: unreadable images are never selected --------------------

@pytest.fixture(scope='module')
def matrix(voc, trained, tmp_path_factory):
    """tools/al_select.py's main() once per strategy, in one interpreter (imports paid once).
    The budget is the readable part of the pool: a strategy that scores an unreadable image
    selects it."""
    out = tmp_path_factory.mktemp('matrix')
    budget = len(voc.pool) - 2
    argv = {name: [DEMO, trained.checkpoint, '--strategy', name, '--budget', str(budget),
                   '--out', str(out / name), '--labelled', str(trained.labelled),
                   '--cfg-options', *tiny_options(voc.root)] for name in STRATEGIES}
    script = '\n'.join([
        'import json, sys, traceback',
        f'sys.path.insert(0, {osp.join(ROOT, "tools")!r})',
        'from al_select import main',
        'for name, argv in json.loads(sys.argv[1]).items():',
        '    try:',
        '        rc = main(argv)',
        '    except Exception:',
        '        traceback.print_exc()',
        '        rc = 1',
        '    print("RC", name, rc, flush=True)'])
    res = run('-c', script, json.dumps(argv))
    rcs = dict(line.split()[1:] for line in res.stdout.splitlines() if line.startswith('RC '))
    return SimpleNamespace(out=out, rcs=rcs, log=res.stdout + res.stderr)


@pytest.mark.parametrize('strategy', STRATEGIES)
def test_unreadable_images_are_never_selected(voc, matrix, strategy):
    assert matrix.rcs.get(strategy) == '0', matrix.log[-3000:]
    selected = json.load(open(matrix.out / strategy / 'selection.json'))['selected']
    assert not set(selected) & {voc.truncated, voc.empty}
    assert_intact(matrix.out / strategy)


# -- COCO: category ids from 0, categories in another order, PNGs, under mmdet's train.py ------

def recategorise(path, ids, order):
    """Rewrites a COCO file's category ids (``ids``: name -> id) and lists the categories
    in ``order``."""
    data = json.load(open(path))
    old = {c['id']: c['name'] for c in data['categories']}
    data['categories'] = [dict(id=ids[n], name=n, supercategory='shape') for n in order]
    for ann in data['annotations']:
        ann['category_id'] = ids[old[ann['category_id']]]
    json.dump(data, open(path, 'w'))


def boxes_by_class(data):
    """``{img_id: sorted (x1, y1, x2, y2, class name)}`` of a COCO file."""
    names = {c['id']: c['name'] for c in data['categories']}
    out = {img['id']: [] for img in data['images']}
    for a in data['annotations']:
        x, y, w, h = a['bbox']
        out[a['image_id']].append((x, y, x + w, y + h, names[a['category_id']]))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    """Synthetic COCO; ``variant(name, ids, order)`` writes instances_<name>.json from the
    train split with other category ids / order."""
    from isal_mmdet.demo.synthetic import make_synthetic
    root = tmp_path_factory.mktemp('bad') / 'coco'
    info = make_synthetic(str(root), num_images=20, seed=1, fmt='coco')
    ann = root / 'annotations'
    truth = boxes_by_class(json.load(open(ann / 'instances_train.json')))

    def variant(name, ids, order):
        shutil.copy(ann / 'instances_train.json', ann / f'instances_{name}.json')
        recategorise(ann / f'instances_{name}.json', ids, order)
        return name

    return SimpleNamespace(root=root, train=info['splits']['train'], truth=truth,
                           variant=variant)


def assert_boxes_in_named_classes(coco, split):
    import isal_mmdet  # noqa: F401  (its COCO reading by category name)
    ds = coco_dataset(str(coco.root), split, classes=CLASSES)
    got = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        got[info['img_id']] = sorted((*inst['bbox'], CLASSES[inst['bbox_label']])
                                     for inst in info['instances'])
    assert got == coco.truth


def test_coco_category_ids_from_zero_map_by_name(coco):
    assert_boxes_in_named_classes(coco, coco.variant(
        'zero', {'circle': 0, 'square': 1, 'triangle': 2}, CLASSES))


def test_coco_categories_in_another_order_map_by_name(coco):
    """pycocotools returns category ids in file order; mmdet would label every square a
    circle here."""
    assert_boxes_in_named_classes(coco, coco.variant(
        'order', {'circle': 3, 'square': 1, 'triangle': 2}, ('square', 'triangle', 'circle')))


HOOK_CFG = '''
_base_ = '{tiny}'
custom_imports = dict(imports=['isal_mmdet'], allow_failed_imports=False)
custom_hooks = [dict(type='ISALSelectionHook', strategy='entropy', budget=100, seed=0)]
metainfo = dict(classes={classes})
_train = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
          dict(type='PackDetInputs')]
_test = {test}
def _coco(split, pipe, test_mode=True):
    return dict(type='CocoDataset', data_root='{data}/', metainfo=metainfo,
                ann_file=f'annotations/instances_{{split}}.json', data_prefix=dict(img='images/'),
                pipeline=pipe, test_mode=test_mode)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(_delete_=True, type='ActiveSubset', ids={labelled},
                                     dataset=_coco('hook', _train, False)))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=_coco('val', _test))
test_dataloader = dict(val_dataloader, dataset=_coco('test', _test))
val_evaluator = dict(ann_file='{data}/annotations/instances_val.json')
test_evaluator = dict(ann_file='{data}/annotations/instances_test.json')
train_cfg = dict(max_iters=2)
'''


@pytest.fixture(scope='module')
def hook_run(coco, tmp_path_factory):
    """mmdet's train.py with the hook on the COCO set with ids from 0 in another order, an
    RGBA PNG and a 16-bit PNG in the pool, and a budget larger than the pool."""
    tmp = tmp_path_factory.mktemp('hook')
    name = coco.variant('hook', {'circle': 2, 'square': 0, 'triangle': 1},
                        ('square', 'triangle', 'circle'))
    labelled, pool = coco.train[:6], coco.train[6:]
    path = coco.root / 'annotations' / f'instances_{name}.json'
    data = json.load(open(path))
    images = {img['id']: img for img in data['images']}
    for img_id, convert in zip(pool, (lambda im: im.convert('RGBA'),
                                      lambda im: Image.fromarray(
                                          np.asarray(im.convert('L'), np.uint16) * 257))):
        stem = osp.splitext(images[img_id]['file_name'])[0]
        convert(Image.open(coco.root / 'images' / f'{stem}.jpg')).save(
            coco.root / 'images' / f'{stem}.png')
        images[img_id]['file_name'] = f'{stem}.png'
    json.dump(data, open(path, 'w'))
    cfg = tmp / 'cfg.py'
    cfg.write_text(HOOK_CFG.format(tiny=osp.join(ROOT, 'configs', '_base_', 'tiny_retinanet.py'),
                                   classes=CLASSES, test=TEST_PIPELINE, data=coco.root,
                                   labelled=labelled))
    res = run(UPSTREAM_TRAIN, cfg, '--work-dir', tmp / 'work')
    assert res.returncode == 0, res.stderr[-3000:]
    return SimpleNamespace(work=tmp / 'work', log=res.stdout + res.stderr, pool=pool,
                           sel=json.load(open(tmp / 'work' / 'selection' / 'selection.json')))


def test_rgba_and_16_bit_pngs_are_read_as_three_channels(hook_run):
    assert {str(i) for i in hook_run.pool[:2]} <= set(hook_run.sel['scores'])
    assert 'skipping unreadable image' not in hook_run.log
    assert_intact(hook_run.work)


def test_budget_larger_than_the_pool_selects_the_pool_with_a_warning(hook_run):
    assert f'budget 100 > unlabelled pool {len(hook_run.pool)}: selecting all of it' in \
        hook_run.log
    assert sorted(hook_run.sel['selected']) == sorted(hook_run.pool)


def test_duplicate_coco_image_ids_are_an_error_naming_the_file_and_id(coco, tmp_path):
    path = coco.root / 'annotations' / 'instances_dup.json'
    data = json.load(open(coco.root / 'annotations' / 'instances_train.json'))
    data['images'].append(dict(data['images'][1], id=data['images'][0]['id']))
    json.dump(data, open(path, 'w'))
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f'''_base_ = {DEMO!r}
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CocoDataset', data_root='{coco.root}/', ann_file='{path}',
    metainfo=dict(classes={CLASSES}), data_prefix=dict(img='images/'),
    pipeline=[dict(type='LoadImageFromFile')]))
''')
    res = run(osp.join(ROOT, 'tools', 'al_train.py'), cfg, '--work-dir', tmp_path / 'w')
    assert_one_line_error(res, f'{path}: images[{len(data["images"]) - 1}].id '
                               f'{data["images"][0]["id"]} is used twice (also images[0])')
    assert_intact(tmp_path / 'w')


# -- one-line errors and logged outcomes of the two tools -------------------------------------

def test_missing_ann_file_is_an_error_naming_field_and_file(voc, tmp_path):
    res = al_train(tmp_path / 'w', voc.root,
                   **{'train_dataloader.dataset.ann_file': 'ImageSets/Main/missing.txt'})
    assert_one_line_error(res, 'train_dataloader.dataset.ann_file: file not found',
                          'missing.txt')
    assert_intact(tmp_path / 'w')


def test_empty_pool_is_an_error(voc, trained, tmp_path):
    res = al_select(voc.root, trained.checkpoint, tmp_path / 'out', '--strategy', 'entropy',
                    '--labelled', voc.all_train)
    assert_one_line_error(res, 'the unlabelled pool is empty')
    assert_intact(tmp_path)


def test_reference_set_without_boxes_is_a_warning_naming_it(voc, trained, tmp_path):
    res = al_select(voc.root, trained.checkpoint, tmp_path / 'out', '--strategy',
                    'grad_similarity', '--budget', '3', '--labelled', trained.labelled,
                    '--reference', 'val',
                    **{'val_dataloader.dataset.ann_file': 'ImageSets/Main/nobox.txt'})
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'val_dataloader.dataset: none of its 2 images has a box' in res.stderr
    assert_intact(tmp_path)


@pytest.fixture(scope='module')
def silent(voc, trained, tmp_path_factory):
    """ISAL with a model whose every score is sigmoid(-30): no prediction above any
    threshold, so no pseudo box."""
    tmp = tmp_path_factory.mktemp('silent')
    ckpt = torch.load(trained.checkpoint, map_location='cpu', weights_only=False)
    ckpt['state_dict']['bbox_head.retina_cls.bias'].fill_(-30.0)
    torch.save(ckpt, tmp / 'silent.pth')
    res = al_select(voc.root, tmp / 'silent.pth', tmp / 'out', '--strategy', 'isal',
                    '--budget', '3', '--labelled', trained.labelled)
    return SimpleNamespace(res=res, out=tmp / 'out')


def test_model_without_predictions_above_threshold_still_selects(silent):
    assert silent.res.returncode == 0, silent.res.stderr[-3000:]
    assert len(json.load(open(silent.out / 'selection.json'))['selected']) == 3
    assert_intact(silent.out)


def test_model_without_predictions_above_threshold_is_recorded_as_uninformative(silent):
    assert json.load(open(silent.out / 'selection.json'))['info']['uninformative']


def test_strategy_typo_in_al_select_is_an_error(voc, trained, tmp_path):
    res = al_select(voc.root, trained.checkpoint, tmp_path / 'out', '--strategy', 'isla',
                    '--labelled', trained.labelled)
    assert_one_line_error(res, "unknown strategy 'isla'")
    assert_intact(tmp_path)


def test_strategy_typo_in_al_train_is_an_error_before_training(voc, tmp_path):
    start = time.time()
    res = al_train(tmp_path / 'w', voc.root, **{'train_cfg.max_iters': 1,
                                                'active_learning.strategy': 'isla'})
    assert_one_line_error(res, 'strategy', "'isla'")
    assert not list((tmp_path / 'w').rglob('*.pth'))
    assert time.time() - start < 60
    assert_intact(tmp_path / 'w')


def test_checkpoint_of_another_architecture_is_an_error_naming_it(voc, trained, tmp_path):
    ckpt = tmp_path / 'fcos.pth'
    torch.save(dict(state_dict=build_detector('fcos').state_dict()), ckpt)
    res = al_select(voc.root, ckpt, tmp_path / 'out', '--strategy', 'entropy',
                    '--labelled', trained.labelled)
    assert_one_line_error(res, f"{ckpt}: not a checkpoint of the config's model")
    assert not osp.exists(tmp_path / 'out')
