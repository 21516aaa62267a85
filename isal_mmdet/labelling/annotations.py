"""Reading a labelling tool's export of one round's selected images (COCO: CVAT "COCO 1.0",
Label Studio "COCO", datumaro ``coco_instances``; or Label Studio's own JSON, read as COCO by
:func:`.labelstudio.export_to_coco`), and merging it into a new training annotation file.

Tools renumber image and category ids and rewrite file names, so images are matched by file
name and categories by name. Matching rule, on the base name of ``file_name`` (folders and
URL prefixes stripped): an exact match with a selected image's base name first; otherwise the
one selected base name that the export's base name ends with after a ``-`` (Label Studio
stores uploads as ``<hash>-<name>``). Anything ambiguous is refused.

Nothing here writes: :func:`import_export` validates the whole export first
(:func:`.validate.check_coco`: one line naming the file, the entry as it is in the file and
the field on any error) and returns the merged file for the caller to write.
"""
from __future__ import annotations

import os.path as osp
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

from .labelstudio import export_to_coco
from .validate import Seen, check_coco, field_list, outside, place, read_annotation_json

EXPORT_FILE = 'annotations_coco.json'   # W/round_<k>/: the finished export of round k
MERGED_FILE = 'train_annotations.json'  # W/round_<k+1>/: what round k+1 trains on


@dataclass
class Imported:
    """The merged annotation file and what the import found."""
    coco: dict
    labelled: List[Hashable]
    missing: List[str]
    boxes: int = 0
    clipped: int = 0
    dropped: int = 0
    ignored: List[str] = field(default_factory=list)
    seen: Seen = field(default_factory=dict)  # each imported image as mmdet will read it


def base_name(file_name: str) -> str:
    """``images/ab12-x.jpg``, ``C:\\up\\x.jpg`` or ``/data/local-files/?d=x%20y.jpg`` → the
    file's own name."""
    return urllib.parse.unquote(re.split(r'[\\/=]', file_name)[-1])


def match_name(name: str, selected: Dict[str, Hashable]) -> Optional[str]:
    """The selected base name ``name`` stands for (see the module docstring), or None."""
    if name in selected:
        return name
    hits = [s for s in selected if name.endswith('-' + s)]
    if len(hits) > 1:
        raise ValueError(f'matches several selected images {sorted(hits)}')
    return hits[0] if hits else None


def clip_box(bbox: List[float], width: float, height: float) -> Optional[List[float]]:
    """``[x, y, w, h]`` clipped to the image (the same list when inside it); None when no
    part of it is inside."""
    x, y, w, h = bbox
    if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
        return bbox
    if outside(bbox, width, height):
        return None
    x1, y1 = max(x, 0), max(y, 0)
    return [x1, y1, min(x + w, width) - x1, min(y + h, height) - y1]


def selected_names(base: dict, base_path: str, selected: Sequence[Hashable]) -> Dict[str, dict]:
    """Base name → the base file's image entry, for the selected images."""
    images = {img.get('id'): img for img in field_list(base, base_path, 'images')}
    names: Dict[str, dict] = {}
    for img_id in selected:
        if img_id not in images:
            raise ValueError(f'{base_path}: images: selected image id {img_id!r} is missing')
        name = base_name(images[img_id]['file_name'])
        if name in names:
            raise ValueError(f'{base_path}: images.file_name: selected images {names[name]["id"]!r}'
                             f' and {img_id!r} share the file name {name!r}; an export cannot '
                             'tell them apart')
        names[name] = images[img_id]
    return names


def match_images(export: dict, export_path: str, wanted: Dict[str, dict],
                 base_path: str) -> Tuple[Dict[Any, Optional[dict]], List[str]]:
    """Every image of the checked ``export`` matched by :func:`match_name`: ``({export image
    id: base image entry, or None when not selected}, [file names of the export images not
    selected])``."""
    matched: Dict[Any, Optional[dict]] = {}
    where: Dict[str, str] = {}  # selected base name -> the export image that matched it
    ignored = []
    for i, img in enumerate(export['images']):
        at = place(img, f'images[{i}]', 'file_name')
        name = base_name(img['file_name'])
        try:
            hit = match_name(name, wanted)
        except ValueError as e:
            raise ValueError(f'{export_path}: {at} {name!r} {e}') from None
        matched[img['id']] = None if hit is None else wanted[hit]
        if hit is None:
            ignored.append(name)
            continue
        if hit in where:
            raise ValueError(f'{export_path}: {at} {name!r}: duplicate file name ({where[hit]} '
                             f'is the same image {hit!r})')
        where[hit] = place(img, f'images[{i}]')
        ref = wanted[hit]
        size = (img.get('width'), img.get('height'))
        if None not in size and size != (ref['width'], ref['height']):
            raise ValueError(f'{export_path}: {place(img, f"images[{i}]", "width")}/height '
                             f'{size[0]}x{size[1]} differ from {hit!r} in {base_path} '
                             f'({ref["width"]}x{ref["height"]})')
    return matched, ignored


def import_export(export_path: str, base_path: str, selected: Sequence[Hashable],
                  classes: Sequence[str]) -> Imported:
    """Matches ``export_path`` to the ``selected`` images of the COCO file ``base_path`` and
    returns the merged file: ``base_path``'s images, categories and annotations, with the
    annotations of every exported selected image replaced by the export's (category ids of
    ``base_path``, boxes clipped to the image, boxes under 1 px dropped as mmdet would,
    annotation ids renumbered)."""
    export = read_annotation_json(export_path)
    if isinstance(export, list):  # Label Studio's JSON export: a list of tasks
        export = export_to_coco(export, export_path)
    check_coco(export, export_path)
    base = read_annotation_json(base_path)
    wanted = selected_names(base, base_path, selected)
    base_cats = {c.get('name'): c.get('id') for c in field_list(base, base_path, 'categories')}
    known = {name: base_cats[name] for name in classes if name in base_cats}
    cats = {cat['id']: cat['name'].strip() for cat in export['categories']}
    matched, ignored = match_images(export, export_path, wanted, base_path)

    new: Dict[Hashable, List[dict]] = {ref['id']: [] for ref in matched.values() if ref}
    found = {base_name(ref['file_name']) for ref in matched.values() if ref}
    result = Imported(coco={}, labelled=list(new), ignored=ignored,
                      missing=sorted(set(wanted) - found),
                      seen={ref['id']: dict(width=ref['width'], height=ref['height'], boxes=[])
                            for ref in matched.values() if ref})
    unknown: Dict[str, str] = {}  # class name -> the first box of it
    for i, ann in enumerate(export['annotations']):
        ref = matched[ann['image_id']]
        if ref is None:
            continue
        name, bbox = cats[ann['category_id']], ann['bbox']
        if name not in known:
            unknown.setdefault(name, place(ann, f'annotations[{i}]', 'category_id'))
            continue
        box = clip_box(bbox, ref['width'], ref['height'])
        if box is None:
            raise ValueError(f'{export_path}: {place(ann, f"annotations[{i}]", "bbox")} {bbox} '
                             f'lies outside its image {base_name(ref["file_name"])!r} '
                             f'({ref["width"]}x{ref["height"]})')
        result.clipped += box is not bbox
        if box[2] < 1 or box[3] < 1:
            result.dropped += 1
            continue
        new[ref['id']].append(dict(image_id=ref['id'], category_id=known[name], bbox=box,
                                   area=box[2] * box[3], iscrowd=int(bool(ann.get('iscrowd')))))
        result.seen[ref['id']]['boxes'].append(
            (name, [box[0], box[1], box[0] + box[2], box[1] + box[3]], bool(ann.get('iscrowd'))))
    if unknown:
        raise ValueError(f'{export_path}: {next(iter(unknown.values()))}: unknown class name(s) '
                         f'{sorted(unknown)}; the dataset has {list(classes)}')
    result.boxes = sum(len(v) for v in new.values())
    result.coco = merge(base, base_path, new)
    return result


def merge(base: dict, base_path: str, new: Dict[Hashable, List[dict]]) -> dict:
    """``base`` with the annotations of the images in ``new`` replaced, in image order,
    annotation ids renumbered from 1."""
    old: Dict[Hashable, List[dict]] = {}
    for ann in field_list(base, base_path, 'annotations'):
        old.setdefault(ann.get('image_id'), []).append(ann)
    anns = []
    for img in base['images']:
        for ann in new.get(img['id'], old.get(img['id'], [])):
            anns.append(dict(ann, id=len(anns) + 1))
    return dict(base, annotations=anns)


def export_path_for(round_dir: str, annotations: Optional[str]) -> str:
    """Where round ``round_dir``'s export is read from: ``--annotations FILE`` or the fixed
    ``round_<k>/annotations_coco.json``."""
    return osp.abspath(annotations) if annotations else osp.join(round_dir, EXPORT_FILE)
