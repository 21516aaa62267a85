"""Label Studio's own formats, both ways: tasks with the model's boxes as predictions and a
labelling config for each selection, and its JSON export read back as COCO.

Label Studio stores a rectangle in percent of the image (``x, y, width, height``, top-left
origin) with ``original_width/height`` beside it; COCO boxes are in pixels.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, Hashable, List, Optional, Sequence
from xml.sax.saxutils import quoteattr

LOCAL_FILES = '/data/local-files/?d='
FROM_NAME, TO_NAME = 'label', 'image'


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


def _latest_annotation(task: dict) -> Optional[dict]:
    done = [a for a in task.get('annotations') or []
            if isinstance(a, dict) and not a.get('was_cancelled')]
    return done[-1] if done else None


def export_to_coco(tasks: Any, path: str) -> dict:
    """Label Studio's JSON export (a list of tasks) as COCO, for the COCO importer: one image
    per task with a finished (not skipped) annotation, its latest one's rectangles in pixels.
    A task without one is not exported yet. Bad fields are one line naming the task."""
    if not isinstance(tasks, list):
        raise ValueError(f'{path}: a Label Studio JSON export is a list of tasks')
    images, anns, cats = [], [], {}
    for t, task in enumerate(tasks):
        where = f'{path}: [{t}]'
        if not isinstance(task, dict) or not isinstance(task.get('data'), dict):
            raise ValueError(f'{where}.data is missing: not a Label Studio task')
        ann = _latest_annotation(task)
        if ann is None:
            continue
        image = task['data'].get('image')
        if not isinstance(image, str):
            raise ValueError(f'{where}.data.image is missing or not a string')
        size = None
        boxes = []
        for r, res in enumerate(ann.get('result') or []):
            if res.get('type') != 'rectanglelabels':
                continue
            at = f'{where}.annotations.result[{r}]'
            v = res.get('value') or {}
            try:
                ow, oh = float(res['original_width']), float(res['original_height'])
                x, y, w, h = (float(v[k]) for k in ('x', 'y', 'width', 'height'))
                label, = v['rectanglelabels']
            except (KeyError, TypeError, ValueError):
                raise ValueError(f'{at}: needs original_width/height and value.x/y/width/'
                                 f'height and one value.rectanglelabels') from None
            if float(v.get('rotation') or 0) != 0:
                raise ValueError(f'{at}.value.rotation is {v["rotation"]}: rotated boxes '
                                 'cannot be imported')
            size = (ow, oh)
            cat = cats.setdefault(label, len(cats) + 1)
            boxes.append(dict(id=len(anns) + len(boxes) + 1, image_id=len(images) + 1,
                              category_id=cat, iscrowd=0,
                              bbox=[x * ow / 100, y * oh / 100, w * ow / 100, h * oh / 100]))
        img = dict(id=len(images) + 1, file_name=image)
        if size is not None:
            img.update(width=int(round(size[0])), height=int(round(size[1])))
        images.append(img)
        anns += boxes
    return dict(images=images, annotations=anns,
                categories=[dict(id=i, name=n) for n, i in cats.items()])
