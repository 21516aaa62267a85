"""Label Studio's own formats, both ways: tasks with the model's boxes as predictions and a
labelling config for each selection, and its JSON export read back as COCO.

Label Studio stores a rectangle in percent of the image (``x, y, width, height``, top-left
origin) with ``original_width/height`` beside it; COCO boxes are in pixels.
"""
from __future__ import annotations

import math
import os.path as osp
from datetime import datetime, timezone
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

LOCAL_FILES = '/data/local-files/?d='
FROM_NAME, TO_NAME = 'label', 'image'
# result types without a region: nothing of them is lost by importing rectangles only
NON_REGION = ('choices', 'textarea', 'rating', 'taxonomy', 'relation', 'number', 'datetime')


def image_url(img_path: str, image_root: Optional[str]) -> str:
    """``data.image`` of a task. ``None``: Label Studio's local-files form for a document
    root of ``/`` (``/data/local-files/?d=abs/path/x.jpg``); otherwise ``image_root`` + the
    file name (a URL prefix where the images are served, or another local-files prefix)."""
    if image_root is None:
        return LOCAL_FILES + osp.abspath(img_path).lstrip('/')
    return image_root + osp.basename(img_path)


def labelling_config(classes: Sequence[str], palette: Optional[Sequence] = None) -> str:
    """A RectangleLabels config whose control and label names match the tasks."""
    labels = []
    for k, name in enumerate(classes):
        colour = ''
        if palette and k < len(palette):
            colour = ' background=' + quoteattr('#%02x%02x%02x' % tuple(palette[k][:3]))
        labels.append(f'    <Label value={quoteattr(name)}{colour}/>')
    return ('<View>\n'
            f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n' +
            '\n'.join(labels) + '\n  </RectangleLabels>\n</View>\n')


def tasks_from_coco(pre: dict, img_paths: Dict[Hashable, str], ranking: Sequence[Hashable],
                    scores: Dict[Hashable, float], model_version: str,
                    image_root: Optional[str] = None) -> List[dict]:
    """One task per image of the pre-annotation COCO ``pre`` (best first), its boxes as one
    prediction; ``data`` and ``meta`` carry the image's rank in the pool and its score."""
    rank = {img_id: r + 1 for r, img_id in enumerate(ranking)}
    names = {c['id']: c['name'] for c in pre['categories']}
    boxes: Dict[int, List[dict]] = {}
    for ann in pre['annotations']:
        boxes.setdefault(ann['image_id'], []).append(ann)
    tasks = []
    for img in sorted(pre['images'], key=lambda im: rank[im['isal_img_id']]):
        w, h, img_id = img['width'], img['height'], img['isal_img_id']
        result = []
        for ann in boxes.get(img['id'], []):
            x, y, bw, bh = ann['bbox']
            result.append(dict(
                id=f"isal{ann['id']}", from_name=FROM_NAME, to_name=TO_NAME,
                type='rectanglelabels', original_width=w, original_height=h,
                image_rotation=0, score=ann.get('score'),
                value=dict(x=100 * x / w, y=100 * y / h, width=100 * bw / w,
                           height=100 * bh / h, rotation=0,
                           rectanglelabels=[names[ann['category_id']]])))
        task_score = (sum(r['score'] for r in result) / len(result)) if result else 0.0
        info = dict(isal_rank=rank[img_id], isal_score=scores[img_id], isal_img_id=str(img_id))
        tasks.append(dict(
            data=dict(image=image_url(img_paths[img_id], image_root), **info),
            meta=info,
            predictions=[dict(model_version=model_version, score=task_score, result=result)]))
    return tasks


def task_name(task: dict, t: int) -> str:
    """How a task is named in a line: its place in the export and its id."""
    tid = task.get('id')
    return f'[{t}] (task {tid})' if isinstance(tid, (int, str)) else f'[{t}]'


def _timestamp(ann: dict) -> Optional[datetime]:
    for key in ('updated_at', 'created_at'):
        try:
            stamp = datetime.fromisoformat(ann[key])
        except (KeyError, TypeError, ValueError):
            continue
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return None


def newest_annotation(task: dict, where: str) -> Optional[Tuple[int, dict]]:
    """``(index, annotation)`` of the finished (not skipped) annotation to import: the only
    one, or the newest by ``updated_at``/``created_at``. List order says nothing (an edited
    annotation keeps its place), so several without timestamps, or a tie, are an error."""
    anns = task.get('annotations') or []
    if not isinstance(anns, list):
        raise ValueError(f'{where}.annotations is a {type(anns).__name__}, not a list')
    done = []
    for a, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise ValueError(f'{where}.annotations[{a}] is a {type(ann).__name__}, not an '
                             'annotation object')
        if not ann.get('was_cancelled'):
            done.append((_timestamp(ann), a))
    if len(done) < 2:
        return (done[0][1], anns[done[0][1]]) if done else None
    untimed = [a for stamp, a in done if stamp is None]
    if untimed:
        raise ValueError(f'{where}.annotations[{untimed[0]}].updated_at: {len(done)} finished '
                         'annotations and this one has no readable timestamp to tell the newest;'
                         ' delete the others in Label Studio and export again')
    done.sort()
    if done[-1][0] == done[-2][0]:
        raise ValueError(f'{where}.annotations[{done[-1][1]}].updated_at: the same as '
                         f'annotations[{done[-2][1]}]: cannot tell the newest')
    return done[-1][1], anns[done[-1][1]]


def _rectangle(res: dict, at: str) -> Tuple[float, float, float, float, float, float, str]:
    """``(original_width, original_height, x, y, width, height, label)`` of a checked
    ``rectanglelabels`` result, the box in percent of the image."""
    v = res.get('value')
    try:
        ow, oh = float(res['original_width']), float(res['original_height'])
        x, y, w, h = (float(v[k]) for k in ('x', 'y', 'width', 'height'))
        label, = v['rectanglelabels']
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'{at}: needs original_width/height and value.x/y/width/height and '
                         'one value.rectanglelabels') from None
    if not isinstance(label, str):
        raise ValueError(f'{at}.value.rectanglelabels {v["rectanglelabels"]!r}: not a label name')
    for key, value, low in (('original_width', ow, 0), ('original_height', oh, 0),
                            ('value.x', x, None), ('value.y', y, None),
                            ('value.width', w, 0), ('value.height', h, 0)):
        if not math.isfinite(value) or (low is not None and value <= low):
            raise ValueError(f'{at}.{key} {value!r} is not a finite'
                             f'{"" if low is None else " positive"} number')
    rotation = v.get('rotation') or 0
    if isinstance(rotation, bool) or not isinstance(rotation, (int, float, str)):
        raise ValueError(f'{at}.value.rotation {rotation!r} is not a number')
    try:
        turned = float(rotation) != 0
    except ValueError:
        raise ValueError(f'{at}.value.rotation {rotation!r} is not a number') from None
    if turned:
        raise ValueError(f'{at}.value.rotation is {rotation}: rotated boxes cannot be '
                         'imported')
    return ow, oh, x, y, w, h, label


def export_to_coco(tasks: Any, path: str) -> dict:
    """Label Studio's JSON export (a list of tasks) as COCO, for the COCO importer: one image
    per task with a finished (not skipped) annotation, its newest one's rectangles in pixels.
    A task without one is not exported yet. Label Studio's percentages are of the image, so
    a result whose ``original_width/height`` differs from the task's first one still maps
    onto the same image: every box is taken in the frame of the first. Anything but a
    rectangle that carries a region is an error (it would be lost). Each entry records its
    task and result in ``isal_source`` for the importer's lines (:mod:`.validate`)."""
    if not isinstance(tasks, list):
        raise ValueError(f'{path}: a Label Studio JSON export is a list of tasks')
    images, anns, cats = [], [], {}
    for t, task in enumerate(tasks):
        name = task_name(task, t) if isinstance(task, dict) else f'[{t}]'
        where = f'{path}: {name}'
        if not isinstance(task, dict) or not isinstance(task.get('data'), dict):
            raise ValueError(f'{where}.data is missing: not a Label Studio task')
        picked = newest_annotation(task, where)
        if picked is None:
            continue
        a, ann = picked
        image = task['data'].get('image')
        if not isinstance(image, str):
            raise ValueError(f'{where}.data.image is missing or not a string')
        results = ann.get('result') or []
        if not isinstance(results, list):
            raise ValueError(f'{where}.annotations[{a}].result is a {type(results).__name__}, '
                             'not a list of results')
        frame = None
        for r, res in enumerate(results):
            at = f'{name}.annotations[{a}].result[{r}]'
            if not isinstance(res, dict):
                raise ValueError(f'{path}: {at} is a {type(res).__name__}, not a result object')
            kind = res.get('type')
            if kind in NON_REGION:
                continue
            if kind != 'rectanglelabels':
                raise ValueError(f'{path}: {at}.type {kind!r}: only rectangles '
                                 '(RectangleLabels) can be imported; its region would be lost')
            ow, oh, x, y, w, h, label = _rectangle(res, f'{path}: {at}')
            frame = frame or (ow, oh)
            sx, sy = frame[0] / 100, frame[1] / 100
            anns.append(dict(id=len(anns) + 1, image_id=len(images) + 1, iscrowd=0,
                             category_id=cats.setdefault(label.strip(), len(cats) + 1),
                             bbox=[x * sx, y * sy, w * sx, h * sy],
                             isal_source=dict(at=at, category_id='value.rectanglelabels',
                                              bbox='value')))
        img = dict(id=len(images) + 1, file_name=image,
                   isal_source=dict(at=name, file_name='data.image'))
        if frame is not None:
            img.update(width=int(round(frame[0])), height=int(round(frame[1])))
        images.append(img)
    return dict(images=images, annotations=anns,
                categories=[dict(id=i, name=n) for n, i in cats.items()])
