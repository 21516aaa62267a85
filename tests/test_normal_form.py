"""What a check accepts is what mmdet trains on. For every form an annotation input may take
(COCO files, VOC XML, a Label Studio export imported into a COCO file; EXIF-tagged images),
the boxes, class names, image ids and sizes the check returns (``Seen``) are compared with
what mmdet's dataset holds after reading the same files, and the image size with what mmcv
decodes. Then random mutations of a valid VOC XML, COCO file and Label Studio export
(hypothesis): each one is refused in one line naming the file, or accepted and read by mmdet
exactly as the check reported; none takes more than a few seconds."""
import contextlib
import copy
import json
import signal
from datetime import timedelta
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from conftest import TEST_PIPELINE

CLASSES = ('circle', 'square', 'triangle')
# (stem, width, height, [(class, x1, y1, x2, y2)]): pixel boxes, 0-based, VOC adds 1
IMAGES = [('a', 64, 48, [('circle', 3, 4, 30, 20), ('square', 10.5, 8.25, 60, 40)]),
          ('b', 40, 56, [('triangle', 0, 0, 39, 55), ('dog', 5, 5, 20, 20)]),
          ('c', 50, 50, [])]


def write_images(root, orientation=1):
    (root / 'images').mkdir(parents=True, exist_ok=True)
    for stem, w, h, _ in IMAGES:
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.new('RGB', (w, h), (40, 90, 160)).save(root / 'images' / f'{stem}.jpg',
                                                     exif=exif)


def coco_file(crowd=False):
    """A COCO file of IMAGES: categories out of class order, one box marked ``ignore``, one
    under a pixel, a category outside the classes (skipped), a partly outside box."""
    cats = [dict(id=7, name='triangle'), dict(id=2, name='circle'), dict(id=5, name='square'),
            dict(id=9, name='dog')]
    ids = {c['name']: c['id'] for c in cats}
    images, anns = [], []
    for n, (stem, w, h, boxes) in enumerate(IMAGES):
        images.append(dict(id=100 + n, file_name=f'{stem}.jpg', width=w, height=h))
        for name, x1, y1, x2, y2 in boxes:
            anns.append(dict(id=len(anns) + 1, image_id=100 + n, category_id=ids[name],
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                             iscrowd=int(crowd and name == 'circle')))
    anns += [dict(id=90, image_id=102, category_id=2, bbox=[5, 5, 0.5, 9], area=4.5),
             dict(id=91, image_id=102, category_id=5, bbox=[5, 5, 9, 9], area=81, ignore=1),
             dict(id=92, image_id=102, category_id=7, bbox=[40, 44, 30, 20], area=600)]
    return dict(images=images, annotations=anns, categories=cats)


def voc_xml(w, h, objects, size=True):
    """``objects``: dicts of the ``<object>`` fields' text (``name``, ``difficult``,
    ``xmin`` ...)."""
    parts = ['<annotation><filename>x.jpg</filename>']
    if size:
        parts.append(f'<size><width>{w}</width><height>{h}</height><depth>3</depth></size>')
    for obj in objects:
        box = ''.join(f'<{k}>{escape(obj[k])}</{k}>' for k in ('xmin', 'ymin', 'xmax', 'ymax')
                      if k in obj)
        extra = ''.join(f'<{k}>{escape(obj[k])}</{k}>' for k in ('name', 'difficult')
                        if k in obj)
        parts.append(f'<object>{extra}<bndbox>{box}</bndbox></object>')
    return ''.join(parts) + '</annotation>'


def voc_objects(boxes):
    return [dict(name=name, difficult=str(int(k == 1)), xmin=f'{x1 + 1:g}', ymin=f'{y1 + 1:g}',
                 xmax=f'{x2 + 1:g}', ymax=f'{y2 + 1:g}')
            for k, (name, x1, y1, x2, y2) in enumerate(boxes)]


def write_voc(root, xmls=None):
    """VOC folders over ``images/``; ``xmls``: stem -> XML text (default: IMAGES')."""
    for sub in ('Annotations', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if not (root / 'JPEGImages').exists():
        (root / 'JPEGImages').symlink_to(root / 'images')
    for stem, w, h, boxes in IMAGES:
        text = (xmls or {}).get(stem) or voc_xml(w, h, voc_objects(boxes), size=stem != 'b')
        (root / 'Annotations' / f'{stem}.xml').write_text(text)
    (root / 'ImageSets/Main/train.txt').write_text(''.join(f'{s}\n' for s, *_ in IMAGES))


def dataset(root, kind, ann_file=None):
    """The mmdet dataset of ``root`` as the tools build it for scoring (lazily: not read)."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    import isal_mmdet  # noqa: F401 (COCO categories by name)
    register_all_modules(init_default_scope=True)
    meta = dict(classes=CLASSES, skip_classes=('dog',))
    if kind == 'coco':
        cfg = dict(type='CocoDataset', ann_file=ann_file or 'ann.json',
                   data_prefix=dict(img='images/'))
    else:
        cfg = dict(type='XMLDataset', ann_file='ImageSets/Main/train.txt',
                   data_prefix=dict(sub_data_root=''))
    return DATASETS.build(dict(cfg, data_root=str(root), metainfo=meta, test_mode=True,
                               pipeline=TEST_PIPELINE, lazy_init=True))


def as_mmdet_reads(ds):
    """``Seen`` of a read dataset: image id -> size and (class name, box, ignored)."""
    classes = ds.metainfo['classes']
    out = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        out[info['img_id']] = dict(width=info['width'], height=info['height'], boxes=sorted(
            (classes[inst['bbox_label']], [float(v) for v in inst['bbox']],
             bool(inst['ignore_flag'])) for inst in info['instances']))
    return out


def normal(seen):
    return {k: dict(v, boxes=sorted((n, [float(x) for x in b], f) for n, b, f in v['boxes']))
            for k, v in seen.items()}


def checked_and_read(root, kind, ann_file=None):
    """``(what the check returned, what mmdet read)`` for the same files."""
    from isal_mmdet.al.data import check_annotations
    ds = dataset(root, kind, ann_file)
    seen = check_annotations(ds, 'train_dataloader.dataset')
    ds.full_init()
    return normal(seen), as_mmdet_reads(ds)


def expected_boxes(stem, voc=False):
    """The boxes of IMAGES' ``stem`` a trainer should see: the classes', by name (VOC:
    written 1-based, read as whole pixels from 0, the second one difficult)."""
    boxes = next(b for s, *_, b in IMAGES if s == stem)
    return sorted((n, [float(int(v) if voc else v) for v in (x1, y1, x2, y2)], voc and k == 1)
                  for k, (n, x1, y1, x2, y2) in enumerate(boxes) if n in CLASSES)


@pytest.mark.parametrize('crowd', [False, True])
def test_coco_check_sees_what_mmdet_reads(tmp_path, crowd):
    write_images(tmp_path)
    (tmp_path / 'ann.json').write_text(json.dumps(coco_file(crowd)))
    seen, read = checked_and_read(tmp_path, 'coco')
    assert seen == read
    assert sorted(seen) == [100, 101, 102]
    want = [(n, b, crowd and n == 'circle') for n, b, _ in expected_boxes('a')]
    assert seen[100]['boxes'] == want
    # the sub-pixel and the ignore-marked boxes left out, the partly outside one as written
    assert seen[102]['boxes'] == [('triangle', [40.0, 44.0, 70.0, 64.0], False)]


def test_coco_string_ids_and_file_order_are_read_as_checked(tmp_path):
    write_images(tmp_path)
    data = coco_file()
    for img in data['images']:
        img['id'] = f"img-{img['id']}"
    for ann in data['annotations']:
        ann['image_id'] = f"img-{ann['image_id']}"
    data['images'].reverse()
    (tmp_path / 'ann.json').write_text(json.dumps(data))
    seen, read = checked_and_read(tmp_path, 'coco')
    assert seen == read and list(read) == ['img-102', 'img-101', 'img-100']


@pytest.mark.parametrize('orientation', [1, 3])
def test_voc_check_sees_what_mmdet_reads_and_mmcv_decodes(tmp_path, orientation):
    """Fractional coordinates (mmdet truncates them), a difficult box, a skipped class, an
    XML without <size> (mmdet measures the image), EXIF orientation 3 (turned by 180
    degrees: the same size; 5 to 8 are refused elsewhere)."""
    from mmcv.transforms import LoadImageFromFile
    write_images(tmp_path, orientation)
    write_voc(tmp_path)
    seen, read = checked_and_read(tmp_path, 'voc')
    assert seen == read
    assert seen['a']['boxes'] == expected_boxes('a', voc=True)
    for stem, w, h, _ in IMAGES:
        img = LoadImageFromFile()(dict(img_path=str(tmp_path / 'images' / f'{stem}.jpg')))
        assert img['img_shape'] == (seen[stem]['height'], seen[stem]['width']) == (h, w)


def labelstudio_task(stem, w, h, boxes):
    result = [dict(type='rectanglelabels', from_name='label', to_name='image',
                   original_width=w, original_height=h, value=dict(
                       x=100 * x1 / w, y=100 * y1 / h, width=100 * (x2 - x1) / w,
                       height=100 * (y2 - y1) / h, rotation=0, rectanglelabels=[name]))
              for name, x1, y1, x2, y2 in boxes]
    return dict(id=len(stem), data=dict(image=f'/data/upload/1/ab12cd-{stem}.jpg'),
                annotations=[dict(id=1, result=result, was_cancelled=False)])


def test_labelstudio_import_sees_what_mmdet_reads(tmp_path):
    """A Label Studio JSON export (percent of the image, a box past the edge, a class name
    with a space after it) imported into the COCO file: what the import reports is what
    mmdet reads from the merged file, and the annotator's boxes in pixels."""
    from isal_mmdet.labelling.annotations import import_export
    write_images(tmp_path)
    base = coco_file()
    (tmp_path / 'ann.json').write_text(json.dumps(base))
    drawn = {'a': [('square ', 2, 3, 20, 30), ('circle', 50, 10, 70, 30)],
             'b': [('triangle', 1.5, 2.25, 33.75, 50)]}
    tasks = [labelstudio_task(stem, w, h, drawn[stem]) for stem, w, h, _ in IMAGES
             if stem in drawn]
    (tmp_path / 'export.json').write_text(json.dumps(tasks))
    imported = import_export(str(tmp_path / 'export.json'), str(tmp_path / 'ann.json'),
                             [100, 101], CLASSES)
    (tmp_path / 'merged.json').write_text(json.dumps(imported.coco))
    seen, read = checked_and_read(tmp_path, 'coco', 'merged.json')
    assert seen == read
    assert normal(imported.seen) == {k: seen[k] for k in (100, 101)}
    want = {100: [('square', [2, 3, 20, 30]), ('circle', [50, 10, 64, 30])],  # clipped at 64
            101: [('triangle', [1.5, 2.25, 33.75, 50])]}
    for img_id, boxes in want.items():
        got = read[img_id]['boxes']
        assert [n for n, *_ in got] == sorted(n for n, _ in boxes)
        for (n, b, _), (m, c) in zip(got, sorted(boxes)):
            assert n == m and max(abs(x - y) for x, y in zip(b, c)) < 1e-9, (b, c)


# -- random mutations --------------------------------------------------------------------

TEXTS = ['', ' 12 ', '12.7', '-3', '0', 'abc', '1e9', 'nan', 'inf', 'circle ', 'Circle',
         'dog', 'square', '65', '1,5', '3', '49.99']
VALUES = [None, 0, -1, 0.4, 1, 2.5, 10, 63, 64, 1e9, '', '7', 'circle ', 'dog', True, [], {},
          [1, 2], [0, 0, 0.5, 3], [5, 5, 10, 10], [60, 40, 10, 10], float('nan')]


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """A check or read that hangs raises here instead of waiting for ever."""
    def stop(*_):
        raise Hang(f'no answer in {seconds} s')
    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def refused_or_read_as_checked(root, kind, path):
    """The property: one line naming ``path``, or the check's view is mmdet's."""
    with time_limit(20):
        try:
            seen, read = checked_and_read(root, kind)
        except (ValueError, FileNotFoundError) as e:
            message = str(e)
            assert '\n' not in message and str(path) in message, message
            return
    assert seen == read


# a generous deadline (a loaded machine is slow), and the alarm for a check that never ends
SETTINGS = settings(max_examples=40, deadline=timedelta(seconds=15), derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('mutations')
    write_images(root)
    write_voc(root)
    return root


@SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, 1), st.sampled_from(
    ['name', 'difficult', 'xmin', 'ymin', 'xmax', 'ymax', 'drop', 'size']),
    st.sampled_from(TEXTS)), min_size=1, max_size=4), cut=st.one_of(st.none(),
                                                                      st.integers(1, 300)))
def test_mutated_voc_xml_is_refused_in_one_line_or_read_as_checked(folder, edits, cut):
    stem, w, h, boxes = IMAGES[0]
    objects = voc_objects(boxes)
    size = (w, h)
    for k, key, text in edits:
        if key == 'drop':
            objects[k].pop(text if text in objects[k] else 'difficult', None)
        elif key == 'size':
            size = (text, h) if k == 0 else (w, text)
        else:
            objects[k][key] = text
    xml = voc_xml(*size, objects)
    write_voc(folder, {stem: xml[:cut] if cut else xml})
    refused_or_read_as_checked(folder, 'voc', folder / 'Annotations' / f'{stem}.xml')


def coco_paths(data):
    """Every (entry, field) a mutation may change."""
    return [(part, i, key) for part in ('images', 'annotations', 'categories')
            for i, entry in enumerate(data[part]) for key in entry] + [
        ('annotations', 0, 'iscrowd'), ('annotations', 1, 'ignore')]


BASE = coco_file()


@SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(coco_paths(BASE)), st.sampled_from(VALUES),
                                st.booleans()), min_size=1, max_size=4))
def test_mutated_coco_file_is_refused_in_one_line_or_read_as_checked(folder, edits):
    data = copy.deepcopy(BASE)
    for (part, i, key), value, delete in edits:
        if delete:
            data[part][i].pop(key, None)
        else:
            data[part][i][key] = value
    path = folder / 'ann.json'
    path.write_text(json.dumps(data))
    refused_or_read_as_checked(folder, 'coco', path)


def ls_paths(tasks):
    """Every field of a Label Studio export a mutation may change."""
    paths = [(t, 'data', 'image') for t in range(len(tasks))]
    paths += [(t, 'ann', 'was_cancelled') for t in range(len(tasks))]
    for t, task in enumerate(tasks):
        for r, res in enumerate(task['annotations'][0]['result']):
            paths += [(t, r, key) for key in ('original_width', 'original_height', 'type')]
            paths += [(t, r, f'value.{key}') for key in res['value']]
    return paths


DRAWN = {'a': [('square', 2, 3, 20, 30), ('circle', 50, 10, 70, 30)],
         'b': [('triangle', 1.5, 2.25, 33.75, 50)]}
TASKS = [labelstudio_task(stem, w, h, DRAWN[stem]) for stem, w, h, _ in IMAGES if stem in DRAWN]


@SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(ls_paths(TASKS)), st.sampled_from(
    VALUES + TEXTS), st.booleans()), min_size=1, max_size=3))
def test_mutated_labelstudio_export_is_refused_in_one_line_or_imported_as_read(folder, edits):
    """Imported: what the import reports is what mmdet reads from the merged file, and
    every rectangle of an imported task is a box or counted as dropped (under a pixel)."""
    from isal_mmdet.labelling.annotations import import_export
    tasks = copy.deepcopy(TASKS)
    for (t, r, key), value, delete in edits:
        if r == 'data' or r == 'ann':
            entry = tasks[t]['data'] if r == 'data' else tasks[t]['annotations'][0]
        else:
            entry = tasks[t]['annotations'][0]['result'][r]
            if key.startswith('value.'):
                entry, key = entry['value'], key[6:]
        if delete:
            entry.pop(key, None)
        else:
            entry[key] = value
    path = folder / 'export.json'
    path.write_text(json.dumps(tasks))
    (folder / 'ann.json').write_text(json.dumps(BASE))
    with time_limit(20):
        try:
            imported = import_export(str(path), str(folder / 'ann.json'), [100, 101], CLASSES)
        except ValueError as e:
            assert '\n' not in str(e) and str(path) in str(e), str(e)
            return
        (folder / 'merged.json').write_text(json.dumps(imported.coco))
        seen, read = checked_and_read(folder, 'coco', 'merged.json')
    assert seen == read
    assert normal(imported.seen) == {k: seen[k] for k in imported.seen}
    drawn = sum(res.get('type') == 'rectanglelabels' for t, img_id in zip(tasks, (100, 101))
                if img_id in imported.seen for res in t['annotations'][0]['result'])
    assert sum(len(v['boxes']) for v in imported.seen.values()) + imported.dropped == drawn
