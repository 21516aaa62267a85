"""What annotators get: Label Studio tasks and config, its JSON export read back, thresholds
fitted on the reference set, and a contact sheet for any image shape that never ends a run."""
import json
import logging
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from conftest import build_detector, coco_dataset, voc_dataset
from isal_mmdet.labelling.labelstudio import (export_to_coco, image_url, labelling_config,
                                       tasks_from_coco)
from isal_mmdet.labelling.report import contact_sheet, fit
from isal_mmdet.labelling.thresholds import best_f1_threshold

CLASSES = ('circle', 'square', 'triangle')


@pytest.mark.parametrize('shape', [(480, 640), (640, 480), (12, 9), (4000, 6000), (1, 300)])
def test_fit_keeps_any_image_inside_its_tile(shape):
    image = np.zeros((*shape, 3), np.uint8)
    out, scale = fit(image, (320, 240))
    h, w = out.shape[:2]
    assert w <= 320 and h <= 240 and (w == 320 or h == 240)
    assert scale == pytest.approx(min(320 / shape[1], 240 / shape[0]))


def _sheet_dataset(tmp_path, shapes):
    """A tiny dataset stand-in: images of the given (h, w) on disk."""
    infos = []
    for k, (h, w) in enumerate(shapes):
        path = str(tmp_path / f'img{k}.jpg')
        img = np.full((h, w, 3), 90, np.uint8)
        cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (255, 255, 255), -1)
        cv2.imwrite(path, img)
        infos.append(dict(img_id=f'img{k}', img_path=path, width=w, height=h))

    class Stub:
        metainfo = dict(classes=CLASSES, palette=[(220, 20, 60), (0, 128, 255), (0, 160, 0)])

        def __len__(self):
            return len(infos)

        def get_data_info(self, i):
            return infos[i]
    pre = dict(images=[dict(id=k + 1, isal_img_id=i['img_id'], width=i['width'],
                            height=i['height'], file_name=i['img_path'])
                       for k, i in enumerate(infos)],
               annotations=[dict(id=k + 1, image_id=k + 1, category_id=1 + k % 3, score=0.9,
                                 bbox=[i['width'] / 4, i['height'] / 4, i['width'] / 4,
                                       i['height'] / 4]) for k, i in enumerate(infos)],
               categories=[dict(id=k + 1, name=n) for k, n in enumerate(CLASSES)])
    return Stub(), pre, [i['img_id'] for i in infos]


def test_contact_sheet_draws_portrait_landscape_tiny_and_huge_images(tmp_path):
    ds, pre, ids = _sheet_dataset(tmp_path, [(640, 480), (480, 640), (9, 12), (3000, 4500)])
    out = str(tmp_path / 'sheet.jpg')
    assert contact_sheet(out, pre, ds, ids, ids, columns=2) == 4
    sheet = cv2.imread(out)
    assert sheet.shape == (24 + 2 * 240, 2 * 320, 3)
    portrait = sheet[24:24 + 240, :320]
    # fitted by height and centred: dark margins left and right, the image in the middle
    assert portrait[120, 5].max() < 60 and portrait[120, 160].max() > 60


def test_contact_sheet_names_an_image_it_cannot_draw_and_goes_on(tmp_path, caplog):
    ds, pre, ids = _sheet_dataset(tmp_path, [(240, 320), (240, 320)])
    bad = ds.get_data_info(1)['img_path']
    open(bad, 'wb').close()
    out = str(tmp_path / 'sheet.jpg')
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        assert contact_sheet(out, pre, ds, ids, ids) == 2
    assert bad in caplog.text and cv2.imread(out) is not None


def test_best_f1_threshold():
    # 3 real boxes; predictions by score: right, right, wrong, right, wrong
    scores, tp = [0.9, 0.8, 0.7, 0.6, 0.2], [True, True, False, True, False]
    assert best_f1_threshold(scores, tp, 3) == 0.6  # F1 6/7 at 0.6 against 4/5 at 0.8
    assert best_f1_threshold([0.5], [False], 2) == 1.0


def _pre():
    return dict(images=[dict(id=1, isal_img_id='a', width=200, height=100, file_name='a.jpg'),
                        dict(id=2, isal_img_id='b', width=50, height=80, file_name='b.jpg')],
                annotations=[dict(id=1, image_id=1, category_id=2, bbox=[20, 10, 40, 30],
                                  score=0.8),
                             dict(id=2, image_id=1, category_id=1, bbox=[0, 0, 200, 100],
                                  score=0.6)],
                categories=[dict(id=k + 1, name=n) for k, n in enumerate(CLASSES)])


def test_labelstudio_tasks_and_config_agree_and_round_trip(tmp_path):
    ranking = ['x', 'b', 'a']
    tasks = tasks_from_coco(_pre(), {'a': '/d/imgs/a.jpg', 'b': '/d/imgs/b.jpg'}, ranking,
                            {'a': 0.1, 'b': 0.5, 'x': 0.9}, 'isal_mmdet test')
    assert [t['meta']['isal_rank'] for t in tasks] == [2, 3]  # best first, rank in the pool
    assert tasks[0]['data']['image'] == '/data/local-files/?d=d/imgs/b.jpg'
    assert tasks[0]['predictions'][0]['result'] == []
    first = tasks[1]['predictions'][0]
    assert first['model_version'] == 'isal_mmdet test' and first['score'] == pytest.approx(0.7)
    box = first['result'][0]
    assert box['value'] == dict(x=10.0, y=10.0, width=20.0, height=30.0, rotation=0,
                                rectanglelabels=['square'])
    assert (box['original_width'], box['original_height'], box['score']) == (200, 100, 0.8)
    assert image_url('/d/imgs/a.jpg', 'http://127.0.0.1:8000/') == 'http://127.0.0.1:8000/a.jpg'
    root = ET.fromstring(labelling_config(CLASSES, [(255, 0, 0)]))
    control = root.find('RectangleLabels')
    assert (control.get('name'), control.get('toName')) == (box['from_name'], box['to_name'])
    assert root.find('Image').get('name') == box['to_name']
    assert [lab.get('value') for lab in control] == list(CLASSES)
    assert control[0].get('background') == '#ff0000'

    # what Label Studio's JSON export holds once predictions are accepted as annotations
    for t in tasks:
        t['annotations'] = [dict(result=t['predictions'][0]['result'], was_cancelled=False)]
    tasks[0]['annotations'].append(dict(result=[], was_cancelled=True))  # a skip: ignored
    coco = export_to_coco(json.loads(json.dumps(tasks)), 'export.json')
    assert [i['file_name'] for i in coco['images']] == [t['data']['image'] for t in tasks]
    names = {c['id']: c['name'] for c in coco['categories']}
    got = sorted((names[a['category_id']], [round(v, 6) for v in a['bbox']])
                 for a in coco['annotations'])
    assert got == [('circle', [0, 0, 200, 100]), ('square', [20, 10, 40, 30])]
    with pytest.raises(ValueError, match=r'export.json: \[0\].data is missing'):
        export_to_coco([dict(annotations=[])], 'export.json')
    bad = [dict(data=dict(image='a.jpg'), annotations=[dict(result=[dict(
        type='rectanglelabels', value=dict(x=1))])])]
    with pytest.raises(ValueError, match=r'\[0\].annotations\[0\].result\[0\]: needs original'):
        export_to_coco(bad, 'export.json')


def test_selection_writes_labelstudio_tasks_and_fitted_thresholds(synthetic_voc, tmp_path,
                                                                  monkeypatch, caplog):
    from isal_mmdet.al import selection
    from test_strategies import _ctx
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)

    def broken(*args, **kwargs):
        raise RuntimeError('no picture today')
    monkeypatch.setattr(selection, 'contact_sheet', broken)
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        out = selection.select('entropy', ctx, 3, out_dir=str(tmp_path))
    assert 'no picture today' in caplog.text and str(tmp_path / 'selected.jpg') in caplog.text
    sel = json.load(open(tmp_path / 'selection.json'))
    pre = sel['preannotation']
    assert pre['source'] == 'reference' and set(pre['per_class']) == set(CLASSES)
    assert pre['images'] == len(voc_dataset(synthetic_voc, 'val'))
    assert pre['real_boxes_per_image'] > 0
    tasks = json.load(open(tmp_path / 'preannotations_labelstudio.json'))
    assert [t['meta']['isal_img_id'] for t in tasks] == [str(i) for i in out.selected]
    coco = json.load(open(tmp_path / 'preannotations_coco.json'))
    thr = [pre['per_class'][c] for c in CLASSES]
    assert all(a['score'] >= thr[a['category_id'] - 1] for a in coco['annotations'])
    assert ET.parse(tmp_path / 'labelstudio_config.xml').getroot().tag == 'View'
    fixed = selection.select('entropy', ctx, 3, out_dir=str(tmp_path / 'f'),
                             preannotation_thr=0.0)
    fixed_pre = json.load(open(tmp_path / 'f' / 'selection.json'))['preannotation']
    assert fixed_pre['source'] == 'fixed' and fixed_pre['per_class'] == {c: 0.0 for c in CLASSES}
    assert fixed_pre['selected_boxes_per_image'] >= pre['selected_boxes_per_image']
    assert fixed.selected == out.selected


def test_coco_labelstudio_export_imports_like_a_coco_one(synthetic_coco, tmp_path):
    """Label Studio's JSON export goes through the same checks and merge as COCO exports."""
    from isal_mmdet.labelling.annotations import import_export
    ann_file = f'{synthetic_coco}/annotations/instances_train.json'
    base = json.load(open(ann_file))
    ds = coco_dataset(synthetic_coco)
    selected = [base['images'][k]['id'] for k in (0, 1)]
    pre = dict(images=[dict(id=n + 1, isal_img_id=i, **{k: img[k] for k in (
        'width', 'height', 'file_name')}) for n, i in enumerate(selected)
        for img in base['images'] if img['id'] == i], annotations=[],
        categories=[dict(id=k + 1, name=n) for k, n in enumerate(CLASSES)])
    names = {c['id']: c['name'] for c in base['categories']}
    cat = {n: k + 1 for k, n in enumerate(CLASSES)}
    for n, i in enumerate(selected):
        for a in base['annotations']:
            if a['image_id'] == i:
                pre['annotations'].append(dict(id=len(pre['annotations']) + 1, image_id=n + 1,
                                               category_id=cat[names[a['category_id']]],
                                               bbox=a['bbox'], score=1.0))
    paths = {ds.get_data_info(k)['img_id']: ds.get_data_info(k)['img_path']
             for k in range(len(ds))}
    tasks = tasks_from_coco(pre, paths, selected, {i: 0.0 for i in selected}, 'v')
    for t in tasks:
        t['annotations'] = [dict(result=t['predictions'][0]['result'])]
    path = tmp_path / 'ls.json'
    path.write_text(json.dumps(tasks))
    got = import_export(str(path), ann_file, selected, CLASSES)
    assert sorted(got.labelled) == sorted(selected) and not got.missing

    def boxes(coco, i):
        return sorted((a['category_id'], [round(v, 3) for v in a['bbox']])
                      for a in coco['annotations'] if a['image_id'] == i)
    assert all(boxes(got.coco, i) == boxes(base, i) for i in selected)
