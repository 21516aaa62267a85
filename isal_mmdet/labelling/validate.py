"""One validation pass over an annotation input (COCO file or export, VOC XML, a JSON list of
image ids), before any expensive work: what mmdet or pycocotools would silently drop, merge or
mislabel, or fail on with a traceback, is a one-line ``ValueError`` naming the file, the entry
as it appears in the file (``annotations[6]``, ``object[2]``) and the field. No image is read.

Converted inputs (Label Studio tasks read as COCO) carry where each entry and field came from
in ``isal_source``, so that these lines name the original entry, not the converted one.

What a check of a dataset's file accepts it also returns in the form mmdet reads it (``Seen``:
image id -> size and boxes by class name, ``[x1, y1, x2, y2]`` as mmdet's loader computes
them, crowd or difficult boxes flagged): the tests compare it with what mmdet's dataset holds.
"""
from __future__ import annotations

import logging
import math
import os.path as osp
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

from ..fileio import read_json

logger = logging.getLogger('isal_mmdet')

SOURCE = 'isal_source'  # key of a converted entry: where it was in the original file
ID = (int, str)
Box = Tuple[str, List[float], bool]  # class name, [x1, y1, x2, y2], ignored (crowd, difficult)
Seen = Dict[Hashable, dict]  # image id -> dict(width=, height=, boxes=[Box, ...])


def read_annotation_json(path: str) -> Any:
    """``read_json`` with the other ways a JSON input fails named as one line with the file."""
    try:
        return read_json(path)
    except (IsADirectoryError, PermissionError) as e:
        raise ValueError(f'{path}: cannot be read as an annotation file ({e.strerror})') from None
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset '
                         f'{e.start}); save it as UTF-8') from None
    except RecursionError:
        raise ValueError(f'{path}: nested too deeply to be an annotation file') from None


def read_ids(path: str, key: Optional[str] = None) -> List[Hashable]:
    """The JSON list of image ids in ``path`` (under ``key`` of a JSON object if given),
    checked here: a stray entry would fail far from the file, in sorting or a lookup, and an
    id listed twice would train on its image twice."""
    data, under = read_annotation_json(path), ''
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise ValueError(f'{path}: no "{key}" field (expected a JSON object with the '
                             f'list of image ids under "{key}")')
        data, under = data[key], f' under "{key}"'
    if not isinstance(data, list):
        raise ValueError(f'{path}: expected a JSON list of image ids{under}, got '
                         f'{type(data).__name__}')
    return check_ids(data, path, under)


def check_ids(data: List[Any], name: str, under: str = '') -> List[Hashable]:
    """``data`` if every entry is an image id of one type (string or integer), each once;
    otherwise one line naming ``name`` and the entry."""
    seen: Dict[Hashable, int] = {}
    for i, x in enumerate(data):
        if isinstance(x, bool) or not isinstance(x, (str, int)):
            raise ValueError(f'{name}: entry [{i}]{under} is {x!r}, not an image id (a string '
                             'or an integer)')
        if type(x) is not type(data[0]):
            raise ValueError(f'{name}: entry [{i}]{under} is {x!r} ({type(x).__name__}), the '
                             f'ids before it are {type(data[0]).__name__}')
        if x in seen:
            raise ValueError(f'{name}: entry [{i}]{under} {x!r} is listed twice (entry '
                             f'[{seen[x]}] too)')
        seen[x] = i
    return data


def place(item: Any, default: str, key: Optional[str] = None) -> str:
    """Where ``item`` (and its field ``key``) is in the file read: ``default.key``, or for a
    converted entry its ``isal_source``: ``dict(at=entry, <field>=original field name)``."""
    src = item.get(SOURCE) if isinstance(item, dict) else None
    at = src['at'] if src else default
    if key is None:
        return at
    return f'{at}.{src.get(key, key) if src else key}'


def field_list(data: Any, path: str, key: str) -> list:
    """``data[key]``, which must be a list, or a one-line error saying the file is not COCO."""
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a JSON {type(data).__name__}, not a COCO file (an object '
                         'with images, annotations and categories)')
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f'{path}: field {key!r} is missing or not a list: not COCO')
    return value


def get(item: Any, path: str, where: str, key: str, kind: Any = ID) -> Any:
    """``item[key]`` of type ``kind`` (bool never counts as a number); ``where``: the entry."""
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        what = 'a string' if kind is str else 'an integer or string'
        raise ValueError(f'{path}: {place(item, where, key)} is missing or not {what}')
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_size(img: dict, path: str, where: str, required: bool) -> None:
    """An image's ``width``/``height``: positive finite numbers (or absent, unless
    ``required``)."""
    for key in ('width', 'height'):
        value = img.get(key)
        if (value is not None or required) and not (is_number(value) and value > 0):
            raise ValueError(f'{path}: {place(img, where, key)} {value!r} is not a positive '
                             'number')


def check_bbox(bbox: Any, path: str, field: str, zero_ok: bool = False) -> List[float]:
    """``[x, y, width, height]`` of finite numbers with a positive width and height;
    ``zero_ok``: a zero width or height passes (a dataset's degenerate box, see
    :func:`warn_zero_size`)."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
        raise ValueError(f'{path}: {field} must be [x, y, width, height], got {bbox!r}')
    if not all(math.isfinite(v) for v in bbox):
        raise ValueError(f'{path}: {field} {bbox} is not finite')
    if bbox[2] < 0 or bbox[3] < 0 or (not zero_ok and (bbox[2] == 0 or bbox[3] == 0)):
        raise ValueError(f'{path}: {field} {bbox}: width and height must be positive (a zero '
                         'or negative size is no box)')
    return bbox


def warn_zero_size(path: str, places: List[str]) -> None:
    """Published sets hold a few zero-size boxes (BCCD has two); mmdet leaves them out of a
    COCO file and FilterAnnotations out of training: named here, not refused, since refusing
    the whole set would be worse."""
    if places:
        logger.warning('%s: %d zero-size box(es), a point or a line with nothing to learn '
                       'from (in a COCO file, under one pixel wide or high: mmdet leaves it '
                       'out), e.g. %s', path, len(places), places[0])


def outside(bbox: Sequence[float], width: float, height: float) -> bool:
    """True when no part of ``[x, y, w, h]`` lies inside a ``width`` x ``height`` image."""
    x, y, w, h = bbox
    return min(x + w, width) <= max(x, 0) or min(y + h, height) <= max(y, 0)


def check_categories(data: Any, path: str, dataset: bool) -> Dict[Hashable, str]:
    """Category id -> name (stripped). A duplicate id would read every box of one category as
    the other; a duplicate name would merge two categories by name. ``dataset``: a name with
    spaces around it is refused, since mmdet matches names to ``metainfo.classes`` exactly
    (its boxes would be dropped and the classes after it shifted); an export's names are
    matched stripped by the importer."""
    names: Dict[Hashable, str] = {}
    ids: Dict[str, Hashable] = {}
    for i, cat in enumerate(field_list(data, path, 'categories')):
        at = f'categories[{i}]'
        cid = get(cat, path, at, 'id')
        name = get(cat, path, at, 'name', str)
        if dataset and name != name.strip():
            raise ValueError(f'{path}: {place(cat, at, "name")} {name!r} has spaces around it, '
                             'and mmdet matches category names to metainfo.classes exactly; '
                             f'write {name.strip()!r}')
        name = name.strip()
        if cid in names:
            raise ValueError(f'{path}: {place(cat, at, "id")} {cid!r} is used twice '
                             f'({names[cid]!r} and {name!r}): the boxes of one would be read '
                             'as the other')
        if name in ids:
            raise ValueError(f'{path}: {place(cat, at, "name")} {name!r} is used twice (ids '
                             f'{ids[name]!r} and {cid!r})')
        names[cid] = name
        ids[name] = cid
    return names


def check_images(data: Any, path: str, dataset: bool) -> Dict[Hashable, dict]:
    """Image id -> image entry. Ids and file names unique (pycocotools keeps one entry of a
    duplicate id; a shared file name trains one image's boxes on the other's pixels)."""
    images: Dict[Hashable, dict] = {}
    names: Dict[str, str] = {}
    for i, img in enumerate(field_list(data, path, 'images')):
        at = f'images[{i}]'
        img_id = get(img, path, at, 'id')
        name = get(img, path, at, 'file_name', str)
        if img_id in images:
            raise ValueError(f'{path}: {place(img, at, "id")} {img_id!r} is used twice (also '
                             f'{names[images[img_id]["file_name"]]})')
        if name in names:
            raise ValueError(f'{path}: {place(img, at, "file_name")} {name!r}: duplicate file '
                             f'name ({names[name]} has it too); one image would be read with '
                             'the other\'s boxes')
        check_size(img, path, at, dataset)
        images[img_id] = img
        names[name] = place(img, at)
    return images


def check_coco(data: Any, path: str, dataset: bool = False) -> Seen:
    """Every structural defect of a COCO file that would lose, merge or corrupt a box.
    ``dataset``: a file mmdet reads as it is (image sizes, annotation ids and areas
    required, no box wholly outside its image); an export is matched and clipped later.
    Returns what a dataset's file holds as mmdet reads it (``Seen``; empty for an export):
    a box under one pixel wide or high, or marked ``ignore``, is left out as mmdet leaves it
    out, and named in a warning."""
    cats = check_categories(data, path, dataset)
    images = check_images(data, path, dataset)
    seen: Seen = {i: dict(width=img.get('width'), height=img.get('height'), boxes=[])
                  for i, img in images.items()} if dataset else {}
    ann_ids: Dict[Any, str] = {}
    zero: List[str] = []
    marked: List[str] = []
    for i, ann in enumerate(field_list(data, path, 'annotations')):
        at = f'annotations[{i}]'
        img_id = get(ann, path, at, 'image_id')
        if img_id not in images:
            raise ValueError(f'{path}: {place(ann, at, "image_id")} {img_id!r} is not in images')
        cid = get(ann, path, at, 'category_id')
        if cid not in cats:
            raise ValueError(f'{path}: {place(ann, at, "category_id")} {cid!r} is not in '
                             'categories')
        bbox = check_bbox(ann.get('bbox'), path, place(ann, at, 'bbox'), zero_ok=dataset)
        if not dataset:
            continue
        ann_id = get(ann, path, at, 'id')
        if ann_id in ann_ids:
            raise ValueError(f'{path}: {at}.id {ann_id!r} is used twice (also {ann_ids[ann_id]})')
        ann_ids[ann_id] = at
        area = ann.get('area')  # mmdet compares it for every box, even one it leaves out
        if not is_number(area) or (area <= 0 and bbox[2] >= 1 and bbox[3] >= 1):
            raise ValueError(f'{path}: {at}.area {area!r} is not a positive number')
        if bbox[2] < 1 or bbox[3] < 1:
            zero.append(f'{at}.bbox {bbox}')
            continue
        img = images[img_id]
        if outside(bbox, img['width'], img['height']):
            raise ValueError(f'{path}: {at}.bbox {bbox} lies outside its image '
                             f'{img["file_name"]!r} ({img["width"]}x{img["height"]})')
        if ann.get('ignore'):
            marked.append(f'{at}.ignore')
            continue
        x, y, w, h = bbox
        seen[img_id]['boxes'].append((cats[cid], [x, y, x + w, y + h], bool(ann.get('iscrowd'))))
    warn_zero_size(path, zero)
    if marked:
        logger.warning('%s: %d box(es) marked "ignore", which mmdet leaves out, e.g. %s', path,
                       len(marked), marked[0])
    return seen


def check_classes(data: dict, path: str, classes: Sequence[str], skip: Sequence[str],
                  field: str) -> Counter:
    """Boxes per skipped category name, for a checked COCO file read with ``classes``: every
    class must be a category (mmdet would shift the labels of the classes after a missing
    one), and every box's category a class, or named in ``skip``. A category without boxes
    (Roboflow's supercategory) needs neither."""
    names = {c['id']: c['name'] for c in data['categories']}
    absent = [c for c in classes if c not in names.values()]
    if absent:
        raise ValueError(f'{path}: categories: {field}.metainfo.classes {absent} not in it '
                         f'(its names: {sorted(names.values())})')
    skipped: Counter = Counter()
    first: Dict[str, str] = {}
    for i, ann in enumerate(data['annotations']):
        name = names[ann['category_id']]
        if name not in classes:
            skipped[name] += 1
            first.setdefault(name, f'annotations[{i}]')
    unknown = sorted(set(skipped) - set(skip))
    if unknown:
        name = unknown[0]
        raise ValueError(f'{path}: {first[name]}.category_id: category {name!r} '
                         f'({skipped[name]} boxes) is not in {field}.metainfo.classes '
                         f'{list(classes)}; add it there, or to metainfo.skip_classes to '
                         'leave its boxes out')
    return skipped


def check_inside(path: str, folder: str, where: str) -> None:
    """``path`` (made from an annotation file's entry) must stay inside ``folder``, where the
    config says the data is: a ``../`` or absolute name would read, score and export a file
    elsewhere. ``where``: the file, entry and value, for the line."""
    folder = osp.abspath(folder or '.')
    if not osp.abspath(osp.join(folder, path)).startswith(osp.join(folder, '')):
        raise ValueError(f'{where} reaches outside {folder}')


def voc_bndbox(obj: ET.Element, name: str, at: str) -> Dict[str, float]:
    """One ``<object>``'s ``<bndbox>`` as numbers, each named where it is missing, not a
    number or of negative size."""
    box = obj.find('bndbox')
    if box is None:
        raise ValueError(f'{at} ({name!r}) has no <bndbox>')
    values = {}
    for key in ('xmin', 'ymin', 'xmax', 'ymax'):
        text = box.findtext(key)
        try:
            values[key] = float(text)
        except (TypeError, ValueError):
            values[key] = math.nan
        if not math.isfinite(values[key]):
            raise ValueError(f'{at}.bndbox.{key} {text!r} is not a number')
    for lo, hi in (('xmin', 'xmax'), ('ymin', 'ymax')):
        if values[hi] < values[lo]:
            raise ValueError(f'{at}.bndbox.{hi} {values[hi]:g} is below {lo} '
                             f'{values[lo]:g} (a negative size is no box)')
    return values


def check_voc_xml(xml: str, classes: Sequence[str], skip: Sequence[str],
                  field: str) -> Tuple[Counter, dict]:
    """``(boxes per skipped class name, the image as mmdet reads it)`` of one VOC XML (its
    ``Seen`` entry; ``width``/``height`` None without ``<size>``, where mmdet reads the image),
    every field mmdet's XML loader reads checked (it fails on a cut file, a missing
    ``<bndbox>`` or a ``12,5`` with a traceback that names no file, and drops an unknown name
    silently). mmdet truncates coordinates to whole pixels and makes them 0-based: a box
    that truncation makes a point or a line is named as zero-size."""
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise ValueError(f'{xml}: not valid XML ({e})') from None
    except FileNotFoundError:
        raise FileNotFoundError(f'{xml}: annotation file not found (its id is in '
                                f'{field}.ann_file)') from None
    size = root.find('size')
    dims = []
    for key in ('width', 'height') if size is not None else ():
        text = size.findtext(key)
        if not (text or '').strip().isdigit() or int(text) <= 0:
            raise ValueError(f'{xml}: size.{key} {text!r} is not a positive integer')
        dims.append(int(text))
    skipped: Counter = Counter()
    zero: List[str] = []
    seen = dict(width=dims[0] if dims else None, height=dims[1] if dims else None, boxes=[])
    for i, obj in enumerate(root.findall('object')):
        at = f'{xml}: object[{i}]'
        name = obj.findtext('name')
        if name not in classes:
            if name in skip:
                skipped[name] += 1
                continue
            raise ValueError(f'{at}.name {name!r} is not in {field}.metainfo.classes '
                             f'{sorted(classes)}; add it there, or to metainfo.skip_classes '
                             'to leave its boxes out')
        difficult = obj.findtext('difficult')
        if difficult is not None and not difficult.strip().lstrip('-').isdigit():
            raise ValueError(f'{at}.difficult {difficult!r} is not an integer')
        values = voc_bndbox(obj, name, at)
        x1, y1, x2, y2 = (int(values[k]) - 1 for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        if x2 == x1 or y2 == y1:
            zero.append(f'object[{i}].bndbox')
        elif dims and outside((x1 + 1, y1 + 1, x2 - x1, y2 - y1), *dims):
            raise ValueError(f'{at}.bndbox ({values["xmin"]:g}, {values["ymin"]:g}, '
                             f'{values["xmax"]:g}, {values["ymax"]:g}) lies outside its image '
                             f'({dims[0]}x{dims[1]})')
        seen['boxes'].append((name, [x1, y1, x2, y2], bool(int(difficult or 0))))
    warn_zero_size(xml, zero)
    return skipped, seen
