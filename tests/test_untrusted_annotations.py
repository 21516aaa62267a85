"""Annotation inputs that would lose, merge or corrupt boxes, or end in a traceback: a COCO
``ann_file``, a COCO or Label Studio export imported after a labelling round, and VOC XML.

Each case is one line naming the file, the entry as it is in the file and the field (or, where
the user asked for it, a named and counted skip), raised before mmdet reads the file and
before anything is written. Most cases call the checks directly; two run tools/al_train.py to
show the exit code and the one line. ``CASES`` is the list the README's "Bad input" section is
made from.
"""
import hashlib
import json
import logging
import math
import os
import os.path as osp
import re
import shutil

import pytest

from conftest import TEST_PIPELINE
from test_annotation_roundtrip import al_train as coco_al_train
from test_annotation_roundtrip import coco_config, tool_export  # noqa: F401  (a fixture)
from test_bad_input import assert_one_line_error
from test_loop import al_train as voc_al_train

CLASSES = ('circle', 'square', 'triangle')
FIELD = 'train_dataloader.dataset'


# -- the dataset's COCO ann_file -------------------------------------------------------------
# (case id, description, spoil of the train file, what the line must contain)
ANN_FILE_CASES = [
    ('ann-file-category-id-twice', 'COCO ann_file listing a category id twice (circle and '
     'square both id 1)', lambda d: d['categories'][1].update(id=1),
     ("categories[1].id 1 is used twice ('circle' and 'square')",)),
    ('ann-file-category-name-twice', 'COCO ann_file listing a category name twice',
     lambda d: d['categories'].append(dict(id=9, name='circle')),
     ("categories[3].name 'circle' is used twice",)),
    ('ann-file-unknown-category', 'COCO ann_file with boxes of a category not in '
     'metainfo.classes (an error unless named in metainfo.skip_classes)',
     lambda d: (d['categories'].append(dict(id=4, name='hexagon')),
                d['annotations'][6].update(category_id=4)),
     ("annotations[6].category_id: category 'hexagon' (1 boxes) is not in "
      f'{FIELD}.metainfo.classes', 'metainfo.skip_classes')),
    ('ann-file-class-not-a-category', 'COCO ann_file without a category for one of '
     'metainfo.classes (mmdet would shift the labels of the classes after it)',
     lambda d: d['categories'][1].update(name='squares'),
     (f"categories: {FIELD}.metainfo.classes ['square'] not in it",)),
    ('ann-file-orphan-image-id', 'COCO ann_file with an annotation whose image_id has no image',
     lambda d: d['annotations'][6].update(image_id=999),
     ('annotations[6].image_id 999 is not in images',)),
    ('ann-file-nan-width', 'COCO ann_file with a NaN box width',
     lambda d: d['annotations'][6]['bbox'].__setitem__(2, math.nan),
     ('annotations[6].bbox', 'is not finite')),
    ('ann-file-inf-coordinate', 'COCO ann_file with an infinite box coordinate',
     lambda d: d['annotations'][6]['bbox'].__setitem__(0, math.inf),
     ('annotations[6].bbox [inf,', 'is not finite')),
    ('ann-file-negative-height', 'COCO ann_file with a negative box height',
     lambda d: d['annotations'][6]['bbox'].__setitem__(3, -4),
     ('annotations[6].bbox', 'width and height must be positive')),
    ('ann-file-box-outside-image', 'COCO ann_file with a box wholly outside its image',
     lambda d: d['annotations'][6]['bbox'].__setitem__(0, 5000),
     ('annotations[6].bbox [5000,', 'lies outside its image')),
    ('ann-file-category-name-spaced', "COCO ann_file with a category named 'circle ' (mmdet "
     'matches names exactly: its boxes would be dropped and the classes after it shifted)',
     lambda d: d['categories'][0].update(name=d['categories'][0]['name'] + ' '),
     ('categories[0].name', "' has spaces around it", 'matches category names')),
    ('ann-file-annotation-id-twice', 'COCO ann_file with an annotation id used twice', lambda d: d['annotations'][6].update(id=d['annotations'][2]['id']),
     ('annotations[6].id', 'is used twice (also annotations[2])')),
    ('ann-file-image-id-twice', 'COCO ann_file with an image id used twice',
     lambda d: d['images'][5].update(id=d['images'][0]['id']),
     ('images[5].id', 'is used twice (also images[0])')),
    ('ann-file-shared-file-name', 'COCO ann_file with two image ids sharing one file_name '
     "(one would be trained with the other's boxes)",
     lambda d: d['images'][5].update(file_name=d['images'][3]['file_name']),
     ('images[5].file_name', 'duplicate file name (images[3] has it too)')),
    ('ann-file-image-without-size', 'COCO ann_file with an image without a width',
     lambda d: d['images'][2].pop('width'), ('images[2].width None is not a positive number',)),
    ('ann-file-path-up', "COCO ann_file with a file_name that climbs out of the image folder "
     "with '../'", lambda d: d['images'][4].update(file_name='../../../etc/x.jpg'),
     ("images[4].file_name '../../../etc/x.jpg' reaches outside",)),
    ('ann-file-absolute-path', 'COCO ann_file with an absolute file_name outside the image '
     'folder', lambda d: d['images'][4].update(file_name='/etc/x.jpg'),
     ("images[4].file_name '/etc/x.jpg' reaches outside",)),
]

# (case id, description, raw bytes of the file or a function of the train file, the line)
RAW_FILE_CASES = [
    ('json-list', 'an ann_file or export that is a JSON list',
     lambda text: b'[1, 2, 3]', 'a JSON list, not a COCO file'),
    ('not-utf8', 'an ann_file or export that is not UTF-8 (latin-1 category names)',
     lambda text: text.replace(b'"circle"', '"cïrcle"'.encode('latin-1')),
     'not UTF-8 text (byte 0xef at offset'),
    ('nested-deeply', 'an ann_file or export nested deeply',
     lambda text: b'[' * 100000 + b']' * 100000, 'nested too deeply'),
    ('not-json', 'an ann_file or export cut short', lambda text: text[:len(text) // 2],
     'not valid JSON'),
]


def digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def assert_one_line(err, path, *needles):
    """One line, naming the file and containing every needle."""
    text = str(err.value)
    assert '\n' not in text, text
    assert text.startswith(f'{path}:'), text
    for needle in needles:
        assert needle in text, text


@pytest.fixture
def train_json(synthetic_coco):
    return json.load(open(osp.join(synthetic_coco, 'annotations', 'instances_train.json')))


def coco_cfg(root, ann_file, **metainfo):
    return dict(type='CocoDataset', data_root=root, ann_file=str(ann_file),
                metainfo=dict(classes=CLASSES, **metainfo), data_prefix=dict(img='images/'),
                test_mode=True, pipeline=TEST_PIPELINE)


def build(cfg):
    from mmdet.utils import register_all_modules
    from isal_mmdet.al.data import build_dataset
    register_all_modules(init_default_scope=True)
    return build_dataset(cfg, FIELD)


@pytest.mark.parametrize('case, description, spoil, needles', ANN_FILE_CASES,
                         ids=[c[0] for c in ANN_FILE_CASES])
def test_bad_ann_file_is_one_line_before_mmdet_reads_it(synthetic_coco, train_json, tmp_path,
                                                        case, description, spoil, needles):
    spoil(train_json)
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(train_json))
    before = digest(path)
    with pytest.raises(ValueError) as err:
        build(coco_cfg(synthetic_coco, path))
    assert_one_line(err, path, *needles)
    assert digest(path) == before and os.listdir(tmp_path) == ['ann.json']


@pytest.mark.parametrize('case, description, rewrite, needle', RAW_FILE_CASES,
                         ids=[c[0] for c in RAW_FILE_CASES])
def test_unreadable_ann_file_and_export_name_the_file(synthetic_coco, tmp_path, case,
                                                      description, rewrite, needle):
    from isal_mmdet.labelling.annotations import import_export
    train = osp.join(synthetic_coco, 'annotations', 'instances_train.json')
    path = tmp_path / 'ann.json'
    path.write_bytes(rewrite(open(train, 'rb').read()))
    with pytest.raises(ValueError) as err:
        build(coco_cfg(synthetic_coco, path))
    assert_one_line(err, path, needle)
    if case != 'json-list':  # a JSON list is what Label Studio exports
        with pytest.raises(ValueError) as err:
            import_export(str(path), train, [1], CLASSES)
        assert_one_line(err, path, needle)


def test_every_coco_file_mmdet_reads_is_checked(tmp_path):
    """A val/test ann_file that only mmdet's evaluator reads goes through the same check."""
    import isal_mmdet  # noqa: F401  (patches mmdet's COCO wrapper)
    from mmdet.datasets.api_wrappers import COCO
    path = tmp_path / 'val.json'
    path.write_text('[]')
    with pytest.raises(ValueError) as err:
        COCO(str(path))
    assert_one_line(err, path, 'a JSON list, not a COCO file')


def test_unknown_category_named_in_skip_classes_is_left_out_counted(synthetic_coco, train_json,
                                                                   tmp_path, caplog):
    boxes = len(train_json['annotations'])
    train_json['categories'].append(dict(id=4, name='hexagon'))
    for k in (6, 9):
        train_json['annotations'][k]['category_id'] = 4
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(train_json))
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        ds = build(coco_cfg(synthetic_coco, path, skip_classes=('hexagon',)))
    assert f"{path}: 2 boxes of 'hexagon' left out ({FIELD}.metainfo.skip_classes)" in \
        caplog.text
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == boxes - 2


def test_roboflow_supercategory_without_boxes_loads(synthetic_coco, train_json, tmp_path,
                                                    caplog):
    """Roboflow exports a category 0 (the supercategory) that no box uses."""
    boxes = len(train_json['annotations'])
    train_json['categories'].insert(0, dict(id=0, name='shapes', supercategory='none'))
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(train_json))
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        ds = build(coco_cfg(synthetic_coco, path))
    assert 'left out' not in caplog.text
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == boxes


# -- COCO exports of a labelling round -------------------------------------------------------
EXPORT_CASES = [
    ('export-category-id-twice', 'COCO export listing a category id twice',
     lambda e: e['categories'][1].update(id=e['categories'][0]['id']),
     ("categories[1].id 0 is used twice ('triangle' and 'square')",)),
    ('export-category-name-twice', 'COCO export listing a category name twice',
     lambda e: e['categories'].append(dict(id=7, name=e['categories'][0]['name'])),
     ("categories[3].name 'triangle' is used twice",)),
    ('export-nan-width', 'COCO export with a NaN box width', lambda e: e['annotations'][2]['bbox'].__setitem__(2, math.nan),
     ('annotations[2].bbox', 'is not finite')),
    ('export-negative-width', 'COCO export with a negative box width',
     lambda e: e['annotations'][2]['bbox'].__setitem__(2, -3),
     ('annotations[2].bbox', 'width and height must be positive')),
    ('export-shared-file-name', 'COCO export with two image ids sharing one file_name',
     lambda e: e['images'][1].update(file_name=e['images'][0]['file_name']),
     ('images[1].file_name', 'duplicate file name (images[0] has it too)')),
    ('export-orphan-image-id', 'COCO export with an annotation whose image_id has no image',
     lambda e: e['annotations'][2].update(image_id=999),
     ('annotations[2].image_id 999 is not in images',)),
]


@pytest.fixture
def base(synthetic_coco):
    path = osp.join(synthetic_coco, 'annotations', 'instances_train.json')
    coco = json.load(open(path))
    return path, coco, sorted({a['image_id'] for a in coco['annotations']})[:4]


def import_error(base, export, obj):
    """The error of importing ``obj``, written to ``export``, for ``base``'s selection."""
    from isal_mmdet.labelling.annotations import import_export
    path, _, selected = base
    export.write_text(json.dumps(obj))
    with pytest.raises(ValueError) as err:
        import_export(str(export), path, selected, CLASSES)
    return err


@pytest.mark.parametrize('case, description, spoil, needles', EXPORT_CASES,
                         ids=[c[0] for c in EXPORT_CASES])
def test_bad_coco_export_is_one_line_naming_the_entry(base, tmp_path, case, description,
                                                      spoil, needles):
    export = tool_export(base[0], base[2])
    spoil(export)
    assert_one_line(import_error(base, tmp_path / 'e.json', export), tmp_path / 'e.json',
                    *needles)


def test_export_path_that_is_a_folder_is_one_line(base, tmp_path):
    from isal_mmdet.labelling.annotations import import_export
    path, _, selected = base
    with pytest.raises(ValueError) as err:
        import_export(str(tmp_path), path, selected, CLASSES)
    assert_one_line(err, tmp_path, 'cannot be read as an annotation file (Is a directory)')


# -- Label Studio JSON exports ---------------------------------------------------------------
def rectangle(bbox, width, height, label):
    """A RectangleLabels result for ``bbox`` (pixels) on a ``width`` x ``height`` image."""
    x, y, w, h = bbox
    return dict(type='rectanglelabels', from_name='label', to_name='image',
                original_width=width, original_height=height,
                value=dict(x=100 * x / width, y=100 * y / height, width=100 * w / width,
                           height=100 * h / height, rotation=0, rectanglelabels=[label]))


def ls_export(base_coco, selected):
    """Label Studio's JSON export of ``selected`` with the dataset's own boxes: one task each
    (ids from 100), one timed annotation, uploads named ``<hash>-<file name>``."""
    images = {img['id']: img for img in base_coco['images']}
    names = {c['id']: c['name'] for c in base_coco['categories']}
    tasks = []
    for n, i in enumerate(selected):
        img = images[i]
        result = [rectangle(a['bbox'], img['width'], img['height'], names[a['category_id']])
                  for a in base_coco['annotations'] if a['image_id'] == i]
        tasks.append(dict(id=100 + n, data=dict(image=f'/data/upload/1/{n:04x}-'
                                                      f'{img["file_name"]}'),
                          annotations=[dict(id=n, result=result, was_cancelled=False,
                                            created_at='2024-05-01T10:00:00.000000Z',
                                            updated_at='2024-05-01T10:00:00.000000Z')]))
    return tasks


def boxes_of(coco, image_id):
    names = {c['id']: c['name'] for c in coco['categories']}
    return sorted((names[a['category_id']], [round(v, 3) for v in a['bbox']])
                  for a in coco['annotations'] if a['image_id'] == image_id)


def polygon(tasks):
    tasks[1]['annotations'][0]['result'].append(dict(
        type='polygonlabels', original_width=320, original_height=240,
        value=dict(points=[[1, 1], [20, 1], [10, 30]], polygonlabels=['circle'])))
    return len(tasks[1]['annotations'][0]['result']) - 1


def untimed(tasks):
    ann = tasks[0]['annotations'][0]
    tasks[0]['annotations'] = [dict(result=ann['result']), dict(result=[])]


def result_dict(tasks):
    tasks[0]['annotations'][0]['result'] = tasks[0]['annotations'][0]['result'][0]


def first_value(tasks, **values):
    tasks[0]['annotations'][0]['result'][0]['value'].update(values)


LABEL_STUDIO_CASES = [
    ('ls-polygon', 'Label Studio task with a PolygonLabels result',
     polygon, lambda r: f"[1] (task 101).annotations[0].result[{r}].type 'polygonlabels': "
                        'only rectangles'),
    ('ls-untimed-annotations', 'Label Studio task with several annotations and no timestamps '
     '(list order does not tell the newest)', untimed,
     lambda r: '[0] (task 100).annotations[0].updated_at: 2 finished annotations'),
    ('ls-result-dict', 'Label Studio annotation whose result is a dict',
     result_dict, lambda r: '[0] (task 100).annotations[0].result is a dict, not a list'),
    ('ls-result-string', 'Label Studio result holding a string',
     lambda t: t[0]['annotations'][0]['result'].insert(0, 'circle'),
     lambda r: '[0] (task 100).annotations[0].result[0] is a str, not a result object'),
    ('ls-nan-x', 'Label Studio rectangle with x=NaN',
     lambda t: first_value(t, x=math.nan),
     lambda r: '[0] (task 100).annotations[0].result[0].value.x nan is not a finite number'),
    ('ls-negative-width', 'Label Studio rectangle with a negative width',
     lambda t: first_value(t, width=-2),
     lambda r: '[0] (task 100).annotations[0].result[0].value.width -2.0 is not a finite '
               'positive number'),
    ('ls-unknown-label', 'Label Studio rectangle of a label not in the classes',
     lambda t: first_value(t, rectanglelabels=['hexagon']),
     lambda r: "[0] (task 100).annotations[0].result[0].value.rectanglelabels: unknown "
               "class name(s) ['hexagon']"),
    ('ls-same-image-twice', 'Label Studio tasks of one image',
     lambda t: t[1]['data'].update(image=t[0]['data']['image']),
     lambda r: "[1] (task 101).data.image '/data/upload/1/0000-"),
]


@pytest.mark.parametrize('case, description, spoil, message', LABEL_STUDIO_CASES,
                         ids=[c[0] for c in LABEL_STUDIO_CASES])
def test_bad_labelstudio_export_names_the_task_and_result(base, tmp_path, case, description,
                                                          spoil, message):
    tasks = ls_export(base[1], base[2])
    where = spoil(tasks)
    assert_one_line(import_error(base, tmp_path / 'ls.json', tasks), tmp_path / 'ls.json',
                    message(where))


def test_labelstudio_newest_annotation_wins_by_timestamp_not_list_order(base, tmp_path):
    """The newest annotation is listed first and an older, empty one after it: the boxes are
    the newest's. Then the newest is the empty one: the image is labelled without boxes."""
    from isal_mmdet.labelling.annotations import import_export
    path, coco, selected = base
    tasks = ls_export(coco, selected)
    done = tasks[0]['annotations'][0]
    done['updated_at'] = '2024-05-02T09:00:00Z'
    tasks[0]['annotations'].append(dict(result=[], created_at='2024-05-01T08:00:00Z'))
    export = tmp_path / 'ls.json'
    export.write_text(json.dumps(tasks))
    got = import_export(str(export), path, selected, CLASSES)
    assert boxes_of(got.coco, selected[0]) == boxes_of(coco, selected[0]) != []
    tasks[0]['annotations'][1]['created_at'] = '2024-05-03T08:00:00+02:00'
    export.write_text(json.dumps(tasks))
    got = import_export(str(export), path, selected, CLASSES)
    assert boxes_of(got.coco, selected[0]) == [] and selected[0] in got.labelled


def test_labelstudio_results_of_other_recorded_sizes_map_onto_the_same_image(base, tmp_path):
    """Percentages are of the image: a result recording twice the size (the image replaced
    at another resolution between two sessions) gives the same pixels, not a box twice as
    large."""
    from isal_mmdet.labelling.annotations import import_export
    path, coco, selected = base
    tasks = ls_export(coco, selected)
    result = tasks[0]['annotations'][0]['result']
    assert len(result) >= 2
    for res in result[1:]:
        res['original_width'] *= 2
        res['original_height'] *= 2
    export = tmp_path / 'ls.json'
    export.write_text(json.dumps(tasks))
    got = import_export(str(export), path, selected, CLASSES)
    assert boxes_of(got.coco, selected[0]) == boxes_of(coco, selected[0])


# -- VOC XML ---------------------------------------------------------------------------------
def sub(tag, value):
    """A spoil that sets the first ``<tag>`` of an XML to ``value``."""
    return lambda text: re.sub(f'<{tag}>[^<]*</{tag}>', f'<{tag}>{value}</{tag}>', text, count=1)


# (case id, description, spoil of an XML's text, what the line after the XML's path holds)
XML_CASES = [
    ('xml-cut-in-half', 'VOC XML cut in half', lambda t: t[:len(t) // 2],
     ('not valid XML (', 'line')),
    ('xml-without-bndbox', 'VOC XML object without <bndbox>',
     lambda t: re.sub(r'<bndbox>.*?</bndbox>', '', t, count=1, flags=re.S),
     ('object[0] (', 'has no <bndbox>')),
    ('xml-decimal-comma', "VOC XML with xmin '12,5'",
     sub('xmin', '12,5'), ("object[0].bndbox.xmin '12,5' is not a number",)),
    ('xml-inverted-box', 'VOC XML with xmax below xmin', sub('xmax', '0'),
     ('object[0].bndbox.xmax 0 is below xmin',)),
    ('xml-unknown-class', 'VOC XML object of a class not in metainfo.classes (an error unless '
     'named in metainfo.skip_classes)', sub('name', 'hexagon'),
     ("object[0].name 'hexagon' is not in", 'metainfo.skip_classes')),
    ('xml-box-outside-image', 'VOC XML with a box wholly outside its image (as the COCO '
     'check refuses it)', lambda t: sub('xmax', '5100')(sub('xmin', '5000')(t)),
     ('object[0].bndbox (5000,', 'lies outside its image')),
    ('xml-size-not-a-number', 'VOC XML with <width> not an integer', sub('width', 'wide'),
     ("size.width 'wide' is not a positive integer",)),
]


@pytest.fixture(scope='module')
def voc(tmp_path_factory):
    from isal_mmdet.demo.synthetic import make_synthetic
    root = tmp_path_factory.mktemp('untrusted') / 'voc'
    make_synthetic(str(root), num_images=8, seed=0, fmt='voc')
    return root


def voc_split(voc, name, text):
    """A split ``name`` of one image whose XML is ``text``."""
    stem = next(s for s in sorted(os.listdir(voc / 'Annotations'))  # a generated one, unspoiled
                if s.startswith('syn_') and '<object>' in (voc / 'Annotations' / s).read_text())[:-4]
    shutil.copy(voc / 'JPEGImages' / f'{stem}.jpg', voc / 'JPEGImages' / f'{name}.jpg')
    (voc / 'Annotations' / f'{name}.xml').write_text(text(
        (voc / 'Annotations' / f'{stem}.xml').read_text()))
    (voc / 'ImageSets' / 'Main' / f'{name}.txt').write_text(f'{name}\n')
    return f'ImageSets/Main/{name}.txt', str(voc / 'Annotations' / f'{name}.xml')


def voc_cfg(voc, split, **metainfo):
    return dict(type='VOCDataset', data_root=str(voc), ann_file=split,
                metainfo=dict(classes=CLASSES, **metainfo),
                data_prefix=dict(sub_data_root=''), test_mode=True, pipeline=TEST_PIPELINE)


@pytest.mark.parametrize('case, description, spoil, needles', XML_CASES,
                         ids=[c[0] for c in XML_CASES])
def test_bad_voc_xml_is_one_line_naming_the_file(voc, case, description, spoil, needles):
    split, xml = voc_split(voc, case, spoil)
    before = digest(xml)
    with pytest.raises(ValueError) as err:
        build(voc_cfg(voc, split))
    assert_one_line(err, xml, *needles)
    assert digest(xml) == before


def test_voc_class_named_in_skip_classes_is_left_out_counted(voc, caplog):
    split, _ = voc_split(voc, 'skip', sub('name', 'hexagon'))
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        build(voc_cfg(voc, split, skip_classes=('hexagon',)))
    assert f"1 boxes of 'hexagon' left out ({FIELD}.metainfo.skip_classes)" in caplog.text


def test_zero_size_boxes_of_a_dataset_are_named_not_refused(voc, synthetic_coco, train_json,
                                                             tmp_path, caplog):
    """A published set's point or line boxes (BCCD has two) load, named in one warning per
    file; a negative size is still an error (the inverted-box case above)."""
    def point(text):
        i = text.index('<xmax>') + len('<xmax>')
        j = text.index('</xmax>')
        xmin = text[text.index('<xmin>') + 6:text.index('</xmin>')]
        return text[:i] + xmin + text[j:]
    split, xml = voc_split(voc, 'point', point)
    train_json['annotations'][6]['bbox'][2] = 0
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(train_json))
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        build(voc_cfg(voc, split))
        coco = build(coco_cfg(synthetic_coco, path))
    assert f'{xml}: 1 zero-size box(es)' in caplog.text and 'e.g. object[0].bndbox' in caplog.text
    assert f'{path}: 1 zero-size box(es)' in caplog.text and 'e.g. annotations[6].bbox' in \
        caplog.text
    assert sum(len(coco.get_data_info(i)['instances']) for i in range(len(coco))) == \
        len(train_json['annotations']) - 1


def test_voc_id_climbing_out_of_the_data_root_is_one_line(voc):
    (voc / 'ImageSets' / 'Main' / 'up.txt').write_text('../../../etc/passwd\n')
    with pytest.raises(ValueError) as err:
        build(voc_cfg(voc, 'ImageSets/Main/up.txt'))
    assert_one_line(err, voc / 'ImageSets' / 'Main' / 'up.txt',
                    f"line 1 '../../../etc/passwd' reaches outside {voc}")


def test_voc_split_listing_an_id_twice_is_one_line(voc):
    split, _ = voc_split(voc, 'twice', lambda t: t)
    (voc / split).write_text('twice\ntwice\n')
    with pytest.raises(ValueError) as err:
        build(voc_cfg(voc, split))
    assert_one_line(err, voc / split, "line 2 'twice' is listed twice (line 1 too)")


def exif_rotated(voc, name, orientation):
    """A split of one image saved with EXIF ``orientation`` and its XML as written before:
    the stored (unturned) size."""
    from PIL import Image
    split, xml = voc_split(voc, name, lambda t: t)
    jpg = voc / 'JPEGImages' / f'{name}.jpg'
    with Image.open(jpg) as img:
        exif = img.getexif()
        exif[0x0112] = orientation
        img.save(jpg, exif=exif)
    return split, xml, jpg


def test_voc_image_turned_by_its_exif_orientation_is_one_line(voc):
    """mmcv decodes a JPEG tagged 6 turned by 90 degrees, so the XML's <size> (the stored
    size, which PIL reports) is not the frame mmdet trains the boxes in; a tag that does not
    turn the image (3: upside down) keeps the size and passes."""
    import mmcv
    split, xml, jpg = exif_rotated(voc, 'exif6', 6)
    height, width = mmcv.imread(str(jpg)).shape[:2]
    with pytest.raises(ValueError) as err:
        build(voc_cfg(voc, split))
    assert_one_line(err, xml, f'<size> {height}x{width} is the stored size of {jpg}',
                    f'EXIF orientation 6 turns to {width}x{height} as mmcv decodes it')
    split, _, _ = exif_rotated(voc, 'exif3', 3)
    assert len(build(voc_cfg(voc, split))) == 1


def test_coco_image_turned_by_its_exif_orientation_is_one_line(synthetic_coco, train_json,
                                                                tmp_path):
    from PIL import Image
    img = train_json['images'][0]
    folder = tmp_path / 'images'
    shutil.copytree(osp.join(synthetic_coco, 'images'), folder)
    with Image.open(folder / img['file_name']) as im:
        exif = im.getexif()
        exif[0x0112] = 8
        im.save(folder / img['file_name'], exif=exif)
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(train_json))
    with pytest.raises(ValueError) as err:
        build(coco_cfg(tmp_path, path))
    assert_one_line(err, path, f"image id {img['id']} width/height {img['width']}x"
                               f"{img['height']} is the stored size", 'EXIF orientation 8')


# -- through tools/al_train.py ---------------------------------------------------------------
def test_al_train_on_an_ann_file_with_a_category_id_twice_stops_with_one_line(
        coco_config, train_json, tmp_path):
    train_json['categories'][1]['id'] = 1
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(train_json))
    res = coco_al_train(coco_config, tmp_path / 'w', f'train_dataloader.dataset.ann_file={path}')
    assert res.returncode == 2
    assert_one_line_error(res, f"{path}: categories[1].id 1 is used twice ('circle' and "
                               "'square')")
    assert not osp.exists(tmp_path / 'w' / 'round_0')


def test_al_train_on_a_voc_xml_cut_in_half_stops_with_one_line(voc, tmp_path):
    split, xml = voc_split(voc, 'e2e_cut', lambda t: t[:len(t) // 2])
    res = voc_al_train(tmp_path / 'w', str(voc), **{'train_dataloader.dataset.ann_file': split})
    assert res.returncode == 2
    assert_one_line_error(res, f'{xml}: not valid XML')
    assert not osp.exists(tmp_path / 'w' / 'round_0')


CASES = [(case[0], case[1]) for case in (ANN_FILE_CASES + RAW_FILE_CASES + EXPORT_CASES +
                                          LABEL_STUDIO_CASES + XML_CASES)] + [
    ('export-is-a-folder', 'an export path that is a folder, read by the importer itself'),
    ('coco-file-read-by-mmdet', 'a val/test ann_file read only by mmdet (its evaluator): the '
     'same checks'),
    ('skip-classes', 'boxes of a class named in metainfo.skip_classes: left out, counted and '
     'named in the log'),
    ('roboflow-supercategory', 'a category without boxes outside metainfo.classes (Roboflow\'s '
     'supercategory 0): loads'),
    ('ls-newest-annotation', 'Label Studio task with several annotations: the newest by '
     'updated_at/created_at is imported, whatever the list order'),
    ('ls-result-sizes', 'Label Studio results recording different original sizes in one task: '
     'each mapped onto the same image'),
    ('voc-id-twice', 'a VOC split listing an id twice: names the split file, the line and the '
     'id'),
    ('exif-orientation', 'a JPEG whose EXIF orientation (5 to 8) makes mmcv decode it turned '
     'by 90 degrees, its VOC <size> or COCO width/height the stored size: names the annotation '
     'file, the entry and the field'),
    ('voc-id-outside-root', "a VOC split listing an id with '../' that reaches outside the "
     'data root'),
    ('zero-size-box', 'a zero-size box (a point or a line) in a dataset\'s VOC XML or COCO '
     'ann_file: loads, named in one warning per file'),
    ('sub-pixel-box',
     'a COCO ann_file box under one pixel wide or high, or marked ignore: left out as '
     'mmdet leaves it out, named in one warning per file; its area must still be a '
     'number (mmdet compares it)'),
    ('voc-fractional-coordinates',
     'VOC coordinates with fractions: read as mmdet reads them (whole pixels, from 0);'
     ' a box that this makes a point or a line is named as zero-size'),
    ('normal-form',
     'every accepted COCO, VOC or Label Studio form (categories out of class order, '
     'string ids, crowd and difficult boxes, an XML without <size>, EXIF orientation '
     "3): what the check returns is what mmdet's dataset holds "
     '(tests/test_normal_form.py)'),
    ('random-mutations',
     'random mutations of a valid VOC XML, COCO file and Label Studio export: each is '
     'refused in one line naming the file, or read by mmdet exactly as checked (every '
     'rectangle of an imported task a box, or counted as under a pixel), within seconds '
     '(tests/test_normal_form.py)'),
]
