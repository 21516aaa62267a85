"""Seeded synthetic shape-detection datasets in Pascal VOC or COCO layout.

The generator exists so that configs, active-learning loops and metrics can be
smoke-tested end to end without downloading a real dataset.  It depends only on
numpy and Pillow; the same arguments always produce byte-identical files.

Box convention: an object covering pixel columns ``x1 .. x2 - 1`` and rows
``y1 .. y2 - 1`` has the box ``(x1, y1, x2, y2)``.  Both mmdet loaders return
exactly this box: COCO stores ``[x1, y1, x2 - x1, y2 - y1]`` and VOC stores
``xmin = x1 + 1 ... ymax = y2 + 1`` because mmdet's ``XMLDataset`` subtracts 1
from all four VOC coordinates.  Shapes keep a 1-pixel margin from the right
and bottom borders so that ``xmax <= width`` and ``ymax <= height`` stay in
VOC's 1-based range.
"""
from __future__ import annotations

import io
import json
import math
import numbers
import os
import re
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import atomic_write

SHAPES = ('circle', 'square', 'triangle', 'cross', 'ring', 'star')
DEFAULT_CLASSES = SHAPES[:3]
DEFAULT_VOC_CLASSES = ('person', 'car', 'dog')
VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')
DEFAULT_SPLITS = {'train': 0.6, 'val': 0.2, 'test': 0.2}

MIN_OBJ_SIZE = 16
MAX_OBJ_SIZE = 90
MAX_OBJECTS = 6
MAX_OVERLAP = 0.3
JPEG_QUALITY = 90
MARKER = '.complete'
GENERATOR_VERSION = 1

_STEM_RE = re.compile(r'^syn_\d{6,}\.(jpg|xml)$')
# what an interrupted atomic_write leaves: '.' + one of our names + '.' + random
_TMP_RE = re.compile(r'^\.(syn_\d{6,}\.(jpg|xml)|\w+\.txt|instances_[\w.-]+\.json)\.')


def image_stem(index: int) -> str:
    """File stem of image ``index``; its number is the COCO image id."""
    return f'syn_{index + 1:06d}'


def render_sample(seed: int, index: int, shapes: Sequence[str],
                  img_size: tuple[int, int] = (320, 240),
                  empty: bool = False, *,
                  objects: tuple[int, int] = (1, MAX_OBJECTS),
                  obj_size: tuple[int, int] = (MIN_OBJ_SIZE, MAX_OBJ_SIZE),
                  class_probs: Sequence[float] | None = None
                  ) -> tuple[np.ndarray, list[tuple[int, tuple[int, ...]]]]:
    """Render image ``index`` of a dataset; exposed so tests can recompute
    ground truth without parsing files. It takes :func:`make_synthetic`'s drawing
    arguments one by one, hence eight.

    Args:
        seed: dataset seed.
        index: 0-based image index; each image has its own random stream.
        shapes: shape drawn for each class label (entries of ``SHAPES``).
        img_size: ``(width, height)``.
        empty: draw background only.
        objects: ``(min, max)`` objects to place; a placement that overlaps
            earlier objects more than ``MAX_OVERLAP`` is retried 20 times
            and then dropped, so crowded images can hold fewer.
        obj_size: ``(min, max)`` side of an object's square in pixels; the
            max is capped at ``min(width, height) - 2``.
        class_probs: probability of each label; ``None`` draws labels
            uniformly with ``rng.integers``, the call the default files
            were made with.

    Returns:
        ``(image, objects)``: an ``H x W x 3`` uint8 RGB array and a list of
        ``(label, (x1, y1, x2, y2))`` in drawing order.
    """
    width, height = img_size
    rng = np.random.default_rng([seed, 0, index])
    canvas = _background(rng, width, height)
    placed: list[tuple[int, tuple[int, ...]]] = []
    num_objects = 0 if empty else int(rng.integers(objects[0],
                                                   objects[1] + 1))
    max_size = min(obj_size[1], width - 2, height - 2)
    for _ in range(num_objects):
        label = int(rng.integers(len(shapes)) if class_probs is None else
                    rng.choice(len(shapes), p=class_probs))
        for _attempt in range(20):
            size = int(rng.integers(obj_size[0], max_size + 1))
            x0 = int(rng.integers(1, width - size))
            y0 = int(rng.integers(1, height - size))
            mask = _shape_mask(rng, shapes[label], width, height, x0, y0,
                               size)
            box = _tight_box(mask)
            if all(_overlap(box, other) <= MAX_OVERLAP
                   for _, other in placed):
                break
        else:
            continue
        colour = _contrasting_colour(rng, canvas[box[1]:box[3],
                                                 box[0]:box[2]])
        canvas[mask] = colour
        placed.append((label, box))
    canvas += rng.normal(0.0, rng.uniform(3.0, 9.0), canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), placed


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """Gradient + colour blobs + faint stripes, so that the background is not
    trivially separable from the shapes."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (xs / max(width - 1, 1))[..., None]
    v = (ys / max(height - 1, 1))[..., None]
    corners = rng.uniform(40.0, 215.0, (4, 3))
    img = ((1 - u) * (1 - v) * corners[0] + u * (1 - v) * corners[1] +
           (1 - u) * v * corners[2] + u * v * corners[3])
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(15.0, 70.0)
        amp = rng.uniform(-45.0, 45.0, 3)
        img += amp * np.exp(-((xs - cx)**2 + (ys - cy)**2) /
                            (2 * sigma**2))[..., None]
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(8.0, 40.0)
    phase = rng.uniform(0, 2 * math.pi)
    stripes = np.sin(2 * math.pi *
                     (xs * math.cos(theta) + ys * math.sin(theta)) / period +
                     phase)
    img += rng.uniform(4.0, 14.0) * stripes[..., None]
    return img


def _polygon(radii: Sequence[float],
             angle: float) -> list[tuple[float, float]]:
    """Vertices around the origin evenly spaced in angle, at ``radii``."""
    n = len(radii)
    return [(r * math.cos(angle + 2 * math.pi * k / n),
             r * math.sin(angle + 2 * math.pi * k / n))
            for k, r in enumerate(radii)]


def _fit(points: list[tuple[float, float]], x0: int, y0: int,
         last: int) -> list[tuple[float, float]]:
    """Scale and centre a polygon so its longer side spans the square
    ``[x0, x0 + last]``: every shape of a given size is equally large."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    scale = last / max(max(xs) - min(xs), max(ys) - min(ys))
    ox = x0 + (last - scale * (max(xs) - min(xs))) / 2 - scale * min(xs)
    oy = y0 + (last - scale * (max(ys) - min(ys))) / 2 - scale * min(ys)
    return [(min(max(ox + scale * x, x0), x0 + last),
             min(max(oy + scale * y, y0), y0 + last)) for x, y in points]


def _shape_mask(rng: np.random.Generator, shape: str, width: int,
                height: int, x0: int, y0: int, size: int) -> np.ndarray:
    """Boolean mask of ``shape`` drawn inside the square ``x0, y0, size``."""
    img = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(img)
    last = size - 1
    if shape == 'circle':
        draw.ellipse([x0, y0, x0 + last, y0 + last], fill=255)
    elif shape == 'square':
        tilt = math.radians(rng.uniform(-15.0, 15.0))
        draw.polygon(_fit(_polygon([1.0] * 4, math.pi / 4 + tilt), x0, y0,
                          last), fill=255)
    elif shape == 'triangle':
        draw.polygon(_fit(_polygon([1.0] * 3, rng.uniform(0, 2 * math.pi)),
                          x0, y0, last), fill=255)
    elif shape == 'cross':
        arm = max(size // 3, 3)
        off = (size - arm) // 2
        draw.rectangle([x0 + off, y0, x0 + off + arm - 1, y0 + last],
                       fill=255)
        draw.rectangle([x0, y0 + off, x0 + last, y0 + off + arm - 1],
                       fill=255)
    elif shape == 'ring':
        inner = max(size // 4, 3)
        draw.ellipse([x0, y0, x0 + last, y0 + last], fill=255)
        draw.ellipse([x0 + inner, y0 + inner, x0 + last - inner,
                      y0 + last - inner], fill=0)
    elif shape == 'star':
        draw.polygon(_fit(_polygon([1.0, 0.42] * 5,
                                   rng.uniform(0, 2 * math.pi)), x0, y0,
                          last), fill=255)
    else:
        raise ValueError(f'shapes: unknown shape {shape!r}')
    return np.asarray(img) > 0


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over the smaller box: keeps small objects from being
    buried under big ones, which plain IoU would allow."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller


def _contrasting_colour(rng: np.random.Generator,
                        patch: np.ndarray) -> np.ndarray:
    """Random colour, re-drawn while too close to the local background."""
    mean = patch.reshape(-1, 3).mean(axis=0)
    for _ in range(8):
        colour = rng.uniform(0.0, 255.0, 3)
        if np.abs(colour - mean).sum() >= 150.0:
            return colour
    return 255.0 - mean


def _is_int_pair(value: object, low: int) -> bool:
    """``value`` is two ints ``low <= a <= b``."""
    return (isinstance(value, Sequence) and len(value) == 2 and
            all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                for v in value) and low <= value[0] <= value[1])


def _check_args(num_images: int, seed: int, fmt: str, classes: list[str],
                img_size: tuple[int, int], empty_fraction: float,
                splits: dict[str, float], voc2012: bool, objects: object,
                obj_size: object, class_weights: object) -> None:
    """Every argument of :func:`make_synthetic` checked before a file is written: one
    check per argument, hence its length and arity."""
    if not isinstance(num_images, numbers.Integral) or num_images < 1:
        raise ValueError(f'num_images must be an int >= 1, got {num_images!r}')
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f'seed must be an int >= 0, got {seed!r}')
    if fmt not in ('voc', 'coco'):
        raise ValueError(f"fmt must be 'voc' or 'coco', got {fmt!r}")
    if voc2012 and fmt != 'voc':
        raise ValueError(f"voc2012=True needs fmt='voc', got fmt={fmt!r}")
    if not classes:
        raise ValueError('classes must name at least 1 class')
    if len(classes) > len(SHAPES):
        raise ValueError(f'classes: at most {len(SHAPES)} classes (one per '
                         f'shape in {SHAPES}), got {len(classes)}')
    if any(not isinstance(c, str) or not c.strip() for c in classes):
        raise ValueError(f'classes must be non-empty strings, got {classes}')
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes must be distinct, got {classes}')
    if voc2012:
        bad = [c for c in classes if c not in VOC_CLASSES]
        if bad:
            raise ValueError(f'classes: {bad[0]!r} is not a Pascal VOC class '
                             f'(voc2012=True needs names from VOC_CLASSES)')
    if (len(img_size) != 2 or
            any(not isinstance(s, numbers.Integral) or s < 32
                for s in img_size)):
        raise ValueError(f'img_size must be two ints (width, height) >= 32, '
                         f'got {img_size!r}')
    if not 0.0 <= empty_fraction <= 1.0:
        raise ValueError(f'empty_fraction must be in [0, 1], got '
                         f'{empty_fraction!r}')
    if not _is_int_pair(objects, 0):
        raise ValueError(f'objects must be two ints 0 <= min <= max, got '
                         f'{objects!r}')
    if not _is_int_pair(obj_size, 8) or obj_size[0] > min(img_size) - 2:
        raise ValueError(f'obj_size must be two ints 8 <= min <= max with '
                         f'min <= {min(img_size) - 2} (the shorter image '
                         f'side - 2), got {obj_size!r}')
    if class_weights is not None and not (
            isinstance(class_weights, Sequence) and
            len(class_weights) == len(classes) and
            all(isinstance(w, numbers.Real) and not isinstance(w, bool) and
                math.isfinite(w) and w >= 0 for w in class_weights) and
            sum(class_weights) > 0):
        raise ValueError(f'class_weights must be one finite weight >= 0 per '
                         f'class ({len(classes)}), not all 0, got '
                         f'{class_weights!r}')
    if not splits:
        raise ValueError('splits must name at least one split')
    for name, frac in splits.items():
        if not isinstance(name, str) or not re.fullmatch(r'[\w.-]+', name):
            raise ValueError(f'splits: bad split name {name!r}')
        if frac < 0:
            raise ValueError(f'splits: fraction of {name!r} is negative')
    if abs(sum(splits.values()) - 1.0) > 1e-6:
        raise ValueError(f'splits fractions must sum to 1, got '
                         f'{sum(splits.values())!r}')
    if fmt == 'voc' and 'trainval' in splits:
        raise ValueError("splits: 'trainval' is written as train + val for "
                         'VOC and cannot be a split of its own')


def _layout(num_images: int, seed: int, empty_fraction: float,
            splits: dict[str, float]) -> tuple[dict[str, list[int]], set]:
    """Assign images to splits and pick the empty ones.

    Empty images are evenly spaced through the shuffled order starting at its
    first position, so the first split always receives one and the others
    their proportional share.
    """
    order = np.random.default_rng([seed, 1]).permutation(num_images)
    num_empty = int(round(empty_fraction * num_images))
    if empty_fraction > 0 and num_images >= 10:
        num_empty = max(num_empty, 1)
    empty = {int(order[(k * num_images) // num_empty])
             for k in range(num_empty)}
    assigned: dict[str, list[int]] = {}
    start, cum = 0, 0.0
    names = list(splits)
    for i, name in enumerate(names):
        cum += splits[name]
        end = num_images if i == len(names) - 1 else min(
            num_images, int(math.floor(cum * num_images + 0.5)))
        assigned[name] = sorted(int(j) for j in order[start:end])
        start = end
    return assigned, empty


def _write(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data), mode='wb')


def _jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img, 'RGB').save(buf, 'JPEG', quality=JPEG_QUALITY,
                                     subsampling=0, optimize=False)
    return buf.getvalue()


def _voc_xml(stem: str, folder: str, width: int, height: int,
             objects: list[tuple[str, tuple[int, ...]]]) -> bytes:
    lines = [
        '<annotation>', f'\t<folder>{folder}</folder>',
        f'\t<filename>{stem}.jpg</filename>',
        '\t<source>', '\t\t<database>isal_mmdet synthetic</database>',
        '\t</source>', '\t<size>', f'\t\t<width>{width}</width>',
        f'\t\t<height>{height}</height>', '\t\t<depth>3</depth>', '\t</size>',
        '\t<segmented>0</segmented>'
    ]
    for name, (x1, y1, x2, y2) in objects:
        lines += [
            '\t<object>', f'\t\t<name>{name}</name>',
            '\t\t<pose>Unspecified</pose>', '\t\t<truncated>0</truncated>',
            '\t\t<difficult>0</difficult>', '\t\t<bndbox>',
            f'\t\t\t<xmin>{x1 + 1}</xmin>', f'\t\t\t<ymin>{y1 + 1}</ymin>',
            f'\t\t\t<xmax>{x2 + 1}</xmax>', f'\t\t\t<ymax>{y2 + 1}</ymax>',
            '\t\t</bndbox>', '\t</object>'
        ]
    lines.append('</annotation>')
    return ('\n'.join(lines) + '\n').encode('utf-8')


def _lists_only_own_stems(path: str) -> bool:
    with open(path, encoding='utf-8', errors='replace') as f:
        return all(re.fullmatch(r'syn_\d{6,}', line.strip())
                   for line in f if line.strip())


def _remove_own_files(out_dir: str) -> None:
    """Delete what an earlier (possibly interrupted or different) run wrote,
    in every layout, leaving unrelated files alone."""
    for root in (out_dir, os.path.join(out_dir, 'VOCdevkit', 'VOC2012')):
        for sub in ('Annotations', 'JPEGImages', 'images'):
            folder = os.path.join(root, sub)
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if _STEM_RE.match(name) or _TMP_RE.match(name):
                        os.remove(os.path.join(folder, name))
        sets = os.path.join(root, 'ImageSets', 'Main')
        if os.path.isdir(sets):
            for name in os.listdir(sets):
                path = os.path.join(sets, name)
                if _TMP_RE.match(name) or (name.endswith('.txt') and
                                             _lists_only_own_stems(path)):
                    os.remove(path)
        ann = os.path.join(root, 'annotations')
        if os.path.isdir(ann):
            for name in os.listdir(ann):
                if re.fullmatch(r'instances_[\w.-]+\.json', name) or _TMP_RE.match(name):
                    os.remove(os.path.join(ann, name))


def _non_default(objects: tuple[int, int], obj_size: tuple[int, int],
                 weights: list[float] | None) -> dict:
    """The marker's record of these arguments, only where they differ from the default, so
    that default files (marker included) and the markers of older sets stay unchanged."""
    out = {}
    for key, value, default in (
            ('objects', list(objects), [1, MAX_OBJECTS]),
            ('obj_size', list(obj_size), [MIN_OBJ_SIZE, MAX_OBJ_SIZE]),
            ('class_weights', weights, None)):
        if value != default:
            out[key] = value
    return out


def _finished(marker_path: str, args: dict) -> dict | None:
    """The summary of a finished run with the same arguments, or None (and a stale marker
    removed)."""
    if not os.path.isfile(marker_path):
        return None
    try:
        with open(marker_path, encoding='utf-8') as f:
            marker = json.load(f)
    except (OSError, ValueError):
        marker = None
    if isinstance(marker, dict) and marker.get('args') == args:
        return marker['summary']
    os.remove(marker_path)
    return None


def _make_folders(out_dir: str, fmt: str, voc2012: bool) -> str:
    """Creates the layout's folders; returns the dataset root."""
    if fmt == 'voc':
        root = (os.path.join(out_dir, 'VOCdevkit', 'VOC2012')
                if voc2012 else out_dir)
        for sub in ('Annotations', 'JPEGImages',
                    os.path.join('ImageSets', 'Main')):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        return root
    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
    return out_dir


def _write_voc_image(root: str, folder: str, index: int, img: np.ndarray,
                     named: list[tuple[str, tuple[int, ...]]]) -> None:
    """JPEGImages/<stem>.jpg and Annotations/<stem>.xml."""
    stem = image_stem(index)
    height, width = img.shape[:2]
    _write(os.path.join(root, 'JPEGImages', f'{stem}.jpg'), _jpeg_bytes(img))
    _write(os.path.join(root, 'Annotations', f'{stem}.xml'),
           _voc_xml(stem, folder, width, height, named))


def _write_coco_image(root: str, index: int, img: np.ndarray, drawn: list,
                      coco_images: list[dict], coco_anns: list[dict]) -> None:
    """images/<stem>.jpg; its COCO image and annotation entries appended."""
    stem = image_stem(index)
    height, width = img.shape[:2]
    _write(os.path.join(root, 'images', f'{stem}.jpg'), _jpeg_bytes(img))
    coco_images.append({'id': index + 1, 'file_name': f'{stem}.jpg',
                        'width': width, 'height': height})
    for label, (x1, y1, x2, y2) in drawn:
        coco_anns.append({
            'id': len(coco_anns) + 1, 'image_id': index + 1,
            'category_id': label + 1,
            'bbox': [x1, y1, x2 - x1, y2 - y1],
            'area': (x2 - x1) * (y2 - y1), 'iscrowd': 0
        })


def _write_voc_splits(root: str, assigned: dict[str, list[int]]) -> dict:
    """ImageSets/Main/<split>.txt (and trainval = train + val); returns split -> stems."""
    summary_splits = {k: [image_stem(i) for i in v]
                      for k, v in assigned.items()}
    if 'train' in assigned and 'val' in assigned:
        trainval = sorted(assigned['train'] + assigned['val'])
        summary_splits['trainval'] = [image_stem(i) for i in trainval]
    for name, stems in summary_splits.items():
        _write(os.path.join(root, 'ImageSets', 'Main', f'{name}.txt'),
               ''.join(f'{s}\n' for s in stems).encode('utf-8'))
    return summary_splits


def _write_coco_splits(root: str, assigned: dict[str, list[int]], classes: list[str],
                       coco_images: list[dict], coco_anns: list[dict]) -> dict:
    """annotations/instances_<split>.json; returns split -> COCO image ids."""
    categories = [{'id': k + 1, 'name': c, 'supercategory': 'shape'}
                  for k, c in enumerate(classes)]
    summary_splits = {k: [i + 1 for i in v] for k, v in assigned.items()}
    for name, ids in summary_splits.items():
        keep = set(ids)
        data = {
            'info': {'description': 'isal_mmdet synthetic shapes'},
            'licenses': [],
            'images': [im for im in coco_images if im['id'] in keep],
            'annotations': [a for a in coco_anns
                            if a['image_id'] in keep],
            'categories': categories
        }
        _write(os.path.join(root, 'annotations', f'instances_{name}.json'),
               json.dumps(data, indent=1).encode('utf-8'))
    return summary_splits


def make_synthetic(out_dir: str,
                   num_images: int = 200,
                   seed: int = 0,
                   fmt: str = 'voc',
                   classes: Sequence[str] | None = None,
                   img_size: tuple[int, int] = (320, 240),
                   empty_fraction: float = 0.05,
                   splits: dict[str, float] | None = None,
                   voc2012: bool = False, *,
                   objects: tuple[int, int] = (1, MAX_OBJECTS),
                   obj_size: tuple[int, int] = (MIN_OBJ_SIZE, MAX_OBJ_SIZE),
                   class_weights: Sequence[float] | None = None) -> dict:
    """Write a deterministic shape-detection dataset and return its summary. One argument
    per property of the set the tests and studies vary, hence more than seven.

    Class ``i`` is drawn as ``SHAPES[i]``, unless every class name is a shape
    name, in which case each class is drawn as the shape it names.

    Args:
        out_dir: output folder; created if missing.
        num_images: number of images.
        seed: same seed and arguments give byte-identical files.
        fmt: ``'voc'`` (Annotations/, JPEGImages/, ImageSets/Main/) or
            ``'coco'`` (images/, annotations/instances_<split>.json).
        classes: class names; defaults to ``('circle', 'square',
            'triangle')``, or ``('person', 'car', 'dog')`` with ``voc2012``.
        img_size: ``(width, height)``.
        empty_fraction: share of images without objects (at least one when
            ``num_images >= 10`` and the fraction is positive).
        splits: split name -> fraction; defaults to 60/20/20
            train/val/test.  VOC also gets ``trainval`` = train + val.
        voc2012: VOC layout under ``out_dir/VOCdevkit/VOC2012`` with real VOC
            class names, for smoke-testing mmdet's ``VOCDataset`` configs.
        objects: ``(min, max)`` objects per non-empty image, drawn
            uniformly.  Placements overlapping earlier objects are retried
            and finally dropped, so with many large objects the real count
            falls short of the draw; on 320x240, 20 objects lose about 1%
            at the default ``obj_size`` and none with ``(16, 64)``.
        obj_size: ``(min, max)`` object side in pixels.
        class_weights: relative frequency of each class, e.g. ``(1, 1,
            0.1)`` for a rare third class; ``None`` or equal weights draw
            classes uniformly.

    Returns:
        ``{'out_dir', 'classes', 'num_images', 'num_boxes', 'splits'}`` where
        ``splits`` maps each split to its image ids (stems for VOC, integer
        COCO ids for COCO).  A finished run with the same arguments (marked by
        ``out_dir/.complete``) is not redone.
    """
    out_dir = os.fspath(out_dir)
    if classes is None:
        classes = DEFAULT_VOC_CLASSES if voc2012 else DEFAULT_CLASSES
    classes = list(classes)
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    img_size = tuple(img_size)
    _check_args(num_images, seed, fmt, classes, img_size, empty_fraction,
                splits, voc2012, objects, obj_size, class_weights)
    num_images, seed = int(num_images), int(seed)
    img_size = (int(img_size[0]), int(img_size[1]))
    objects = (int(objects[0]), int(objects[1]))
    obj_size = (int(obj_size[0]), int(obj_size[1]))
    weights = (None if class_weights is None or len(set(class_weights)) == 1
               else [float(w) for w in class_weights])
    probs = None if weights is None else np.asarray(weights) / sum(weights)

    args = {
        'version': GENERATOR_VERSION, 'num_images': num_images, 'seed': seed,
        'fmt': fmt, 'classes': classes, 'img_size': list(img_size),
        'empty_fraction': float(empty_fraction),
        'splits': [[k, float(v)] for k, v in splits.items()],
        'voc2012': bool(voc2012), **_non_default(objects, obj_size, weights)
    }
    marker_path = os.path.join(out_dir, MARKER)
    done = _finished(marker_path, args)
    if done is not None:
        return {'out_dir': out_dir, **done}
    if os.path.isdir(out_dir):
        _remove_own_files(out_dir)

    shapes = classes if set(classes) <= set(SHAPES) else SHAPES[:len(classes)]
    assigned, empty = _layout(num_images, seed, empty_fraction, splits)
    root = _make_folders(out_dir, fmt, voc2012)
    coco_images: list[dict] = []
    coco_anns: list[dict] = []
    num_boxes = 0
    for index in range(num_images):
        img, drawn = render_sample(seed, index, shapes, img_size,
                                   index in empty, objects=objects,
                                   obj_size=obj_size, class_probs=probs)
        num_boxes += len(drawn)
        if fmt == 'voc':
            _write_voc_image(root, 'VOC2012' if voc2012 else 'synthetic', index, img,
                             [(classes[label], box) for label, box in drawn])
        else:
            _write_coco_image(root, index, img, drawn, coco_images, coco_anns)

    if fmt == 'voc':
        summary_splits = _write_voc_splits(root, assigned)
    else:
        summary_splits = _write_coco_splits(root, assigned, classes, coco_images,
                                            coco_anns)
    summary = {'classes': classes, 'num_images': num_images,
               'num_boxes': num_boxes, 'splits': summary_splits}
    _write(marker_path, json.dumps({'args': args, 'summary': summary},
                                   indent=1).encode('utf-8'))
    return {'out_dir': out_dir, **summary}
