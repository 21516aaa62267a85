"""Datasets for selection, derived from an ordinary mmdet config."""
from __future__ import annotations

import contextlib
import copy
import logging
import os.path as osp
from collections import Counter
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

from mmengine.config import ConfigDict
from mmengine.fileio import list_from_file
from mmdet.datasets import CocoDataset, XMLDataset
from mmdet.registry import DATASETS
from PIL import Image

from ..datasets.al_subset import ActiveSubset
from ..labelling.validate import (Seen, check_classes, check_coco, check_inside,
                                  check_voc_xml, read_annotation_json, read_ids)

logger = logging.getLogger('isal_mmdet')
_SIZES_CHECKED: set = set()
EVALUATION_SPLITS = ('val_dataloader.dataset', 'test_dataloader.dataset')


def _plain(cfg: Any) -> dict:
    return cfg.to_dict() if isinstance(cfg, ConfigDict) else copy.deepcopy(dict(cfg))


def unwrap_subset(ds_cfg: Any) -> Tuple[dict, Optional[dict]]:
    """``(inner dataset cfg, ActiveSubset args or None)``."""
    ds_cfg = _plain(ds_cfg)
    if ds_cfg.get('type') in ('ActiveSubset', ActiveSubset):
        inner = ds_cfg.pop('dataset')
        ds_cfg.pop('type')
        return _plain(inner), ds_cfg
    return ds_cfg, None


def subset_ids(subset: dict) -> list:
    """The labelled ids an ``ActiveSubset``'s arguments name: ``ids``, or ``ids_file``'s."""
    return list(subset['ids']) if subset.get('ids') is not None else read_ids(subset['ids_file'])


def with_annotations(pipeline: Sequence[dict]) -> List[dict]:
    """A deterministic pipeline that also loads boxes (real labels for v and H), right after
    the image, so that ``Resize`` rescales and clips them with it. mmdet's test pipelines
    load boxes after ``Resize``, in original-image coordinates, for evaluation only."""
    loads = ('LoadAnnotations', 'mmdet.LoadAnnotations')
    pipeline = [dict(p) for p in pipeline]
    found = [p for p in pipeline if p.get('type') in loads]
    pipeline = [p for p in pipeline if p.get('type') not in loads]
    pipeline.insert(1, found[0] if found else dict(type='LoadAnnotations', with_bbox=True))
    return pipeline


def scoring_dataset_cfg(ds_cfg: Any, pipeline: Sequence[dict]) -> dict:
    """The same images as ``ds_cfg`` in test mode (no filtering, no augmentation)."""
    inner, _ = unwrap_subset(ds_cfg)
    inner = _plain(inner)
    inner['pipeline'] = with_annotations(pipeline)
    inner['test_mode'] = True
    inner.pop('filter_cfg', None)
    return inner


def check_data_source(ds_cfg: dict, field: str) -> None:
    """One-line errors for a missing data root or annotation file."""
    root = ds_cfg.get('data_root') or ''
    if root and not osp.isdir(root):
        raise FileNotFoundError(f'{field}.data_root: folder not found: {root}')
    ann = ds_cfg.get('ann_file')
    if ann:
        path = ann if osp.isabs(ann) else osp.join(root, ann)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{field}.ann_file: file not found: {path}')


def build_dataset(ds_cfg: dict, field: str) -> Any:
    """The dataset of ``ds_cfg``, its annotations checked (:func:`check_annotations`) before
    mmdet reads them."""
    check_data_source(ds_cfg, field)
    ds = DATASETS.build(dict(copy.deepcopy(ds_cfg), lazy_init=True))
    check_annotations(ds, field)
    ds.full_init()
    for i in range(len(ds) if isinstance(ds, (XMLDataset, CocoDataset)) else 0):
        info = ds.get_data_info(i)
        check_image_size(info, f'{info["xml_path"]}: <size>' if 'xml_path' in info else
                         f'{ds.ann_file}: image id {info["img_id"]!r} width/height')
    warn_if_no_box(ds, field)
    return ds


def check_annotations(ds: Any, field: str) -> Seen:
    """One pass over a COCO or VOC dataset's annotation files (:mod:`..labelling.validate`),
    before mmdet reads them: it would drop boxes of a class not in ``metainfo.classes``
    silently, and fail on a malformed entry with a traceback naming no file. Such boxes are
    an error unless their class is in ``metainfo.skip_classes``; then they are counted and
    logged. Returns what the check accepted, as mmdet will read it (``Seen``; a VOC image
    without ``<size>`` measured as mmcv decodes it); empty for another dataset type."""
    classes = tuple(ds.metainfo.get('classes') or ())
    skip = tuple(ds.metainfo.get('skip_classes') or ())
    seen: Seen = {}
    skipped: Counter = Counter()
    if isinstance(ds, CocoDataset):
        data = read_annotation_json(ds.ann_file)
        seen = check_coco(data, ds.ann_file, dataset=True)
        folder = ds.data_prefix.get('img', '')
        for i, img in enumerate(data['images']):
            check_inside(img['file_name'], folder,
                         f'{ds.ann_file}: images[{i}].file_name {img["file_name"]!r}')
        skipped = check_classes(data, ds.ann_file, classes, skip, field)
        for img in seen.values():
            img['boxes'] = [box for box in img['boxes'] if box[0] in classes]
    elif isinstance(ds, XMLDataset):
        lines: Dict[str, int] = {}
        for n, img_id in enumerate(list_from_file(ds.ann_file)):
            if img_id in lines:
                raise ValueError(f'{ds.ann_file}: line {n + 1} {img_id!r} is listed twice (line '
                                 f'{lines[img_id]} too); its image would be trained and its '
                                 'boxes counted twice')
            lines[img_id] = n + 1
            for sub, ext in ((ds.img_subdir, 'jpg'), (ds.ann_subdir, 'xml')):
                check_inside(osp.join(sub, f'{img_id}.{ext}'), ds.sub_data_root,
                             f'{ds.ann_file}: line {n + 1} {img_id!r}')
            count, seen[img_id] = check_voc_xml(
                osp.join(ds.sub_data_root, ds.ann_subdir, f'{img_id}.xml'), classes, skip, field)
            skipped += count
            if seen[img_id]['width'] is None:  # mmdet reads the image for its size
                image = osp.join(ds.sub_data_root, ds.img_subdir, f'{img_id}.jpg')
                with contextlib.suppress(OSError):  # unreadable: ActiveSubset logs, skips it
                    seen[img_id].update(zip(('width', 'height'), decoded_size(image)[:2]))
    for name, count in sorted(skipped.items()):
        logger.warning('%s: %d boxes of %r left out (%s.metainfo.skip_classes)', ds.ann_file,
                       count, name, field)
    return seen


def decoded_size(path: str) -> Tuple[int, int, int]:
    """``(width, height, EXIF orientation)`` of an image as mmcv decodes it: OpenCV applies
    the orientation, so a photo tagged 5 to 8 (turned by 90 degrees, as phones save them)
    comes out with width and height swapped from the size stored in the file."""
    with Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (height, width, orientation) if orientation in (5, 6, 7, 8) else (
        width, height, orientation)


def check_image_size(info: dict, where: str) -> None:
    """Boxes are in the frame of the annotation's width and height (``where``: its file,
    entry and field). An image turned by its EXIF orientation would train every box on the wrong
    pixels: an error. One of another size (resized or replaced after annotation) may have
    its boxes in the wrong place; mmdet uses the pixels and the boxes as written, so that is
    logged once per file."""
    if where in _SIZES_CHECKED:
        return
    try:
        width, height, orientation = decoded_size(info['img_path'])
    except Exception:  # noqa: BLE001 - unreadable (or its EXIF): ActiveSubset logs, skips it
        return
    written = (info.get('width'), info.get('height'))
    if (width, height) != written and (height, width) == written and orientation != 1:
        raise ValueError(f'{where} {written[0]}x{written[1]} is the stored size of '
                         f'{info["img_path"]}, which its EXIF orientation {orientation} turns '
                         f'to {width}x{height} as mmcv decodes it, so every box would be on the '
                         'wrong pixels; save the image turned (PIL.ImageOps.exif_transpose) '
                         'and annotate that')
    _SIZES_CHECKED.add(where)
    if (width, height) != written:
        logger.warning('%s %sx%s disagrees with its image %s (%dx%d as decoded); '
                       'its boxes are used as written', where, *written, info['img_path'],
                       width, height)


def warn_if_no_box(ds: Any, field: str) -> None:
    """A set without a single box (a wrong ann_file, or classes that match no category) trains
    nothing and, as ISAL's reference set, gives a gradient without label information."""
    boxes = sum(not inst.get('ignore_flag', 0) for i in range(len(ds))
                for inst in ds.get_data_info(i).get('instances', []))
    if len(ds) and not boxes:
        logger.warning('%s: none of its %d images has a box (check ann_file and '
                       'metainfo.classes); it carries no label information', field, len(ds))


def class_counts(ds: Any, num_classes: int) -> List[int]:
    """Boxes per class (not ignored) in a dataset's annotations; no image is read."""
    counts = [0] * num_classes
    for i in range(len(ds)):
        for inst in ds.get_data_info(i).get('instances', []):
            label = inst.get('bbox_label', -1)
            if not inst.get('ignore_flag', 0) and 0 <= label < num_classes:
                counts[label] += 1
    return counts


def boxes_by_image(ds: Any) -> Dict[str, List[int]]:
    """Each image's real (not ignored) box labels, keyed by ``str(img_id)`` as selection files
    name images; no image is read. Reading a strategy's picks against how busy images are
    needs it for VOC and COCO alike."""
    out = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        out[str(info['img_id'])] = [inst['bbox_label'] for inst in info.get('instances', [])
                                    if not inst.get('ignore_flag', 0)]
    return out


def check_reference(ds: Any, field: str) -> None:
    """The reference set defines v: without an image there is nothing to select for (one
    without a box is logged by :func:`build_dataset`)."""
    if len(ds) == 0:
        raise ValueError(f'{field}: the reference set has no image')


def check_disjoint(splits: Dict[str, Any], who: str = 'active_learning') -> None:
    """With ``reference='val'`` the splits ``{field: dataset}`` (train pool, val reference,
    test) must not share an image file: the test set would score a model whose selection its
    labels steered, or images it trained on; a val image in the pool could be selected with
    its labels already read. Many mmdet configs evaluate on their val split. Every pair with
    a val or test split is compared (a training set and a separate pool may share images).
    ``who``: where ``reference`` and ``allow_split_overlap`` are set, for the line."""
    paths = {field: {osp.abspath(ds.get_data_info(i)['img_path']) for i in range(len(ds))}
             for field, ds in splits.items()}
    fields = sorted(paths)
    for n, a in enumerate(fields):
        for b in fields[n + 1:]:
            shared = sorted(paths[a] & paths[b])
            if shared and {a, b} & set(EVALUATION_SPLITS):
                raise ValueError(f'{a} and {b} share {len(shared)} images (e.g. {shared[0]}), '
                                 f"and {who}.reference='val' reads the val labels: "
                                 f'give disjoint splits, or set {who}.allow_split_overlap=True '
                                 'to run anyway')


def check_split_overlap(cfg: Any, sources: Dict[str, Any], who: str) -> None:
    """:func:`check_disjoint` of the config's val and test splits and ``sources`` (``{field:
    dataset config}``: the training data source, a separate pool), each read and checked
    here: what the hook and tools/al_select.py check before training or loading a model."""
    pipeline = test_pipeline_of(cfg)
    fields = dict(sources)
    for field in EVALUATION_SPLITS:
        loader = cfg.get(field.split('.')[0])
        if loader:
            fields[field] = loader['dataset']
    check_disjoint({field: build_dataset(scoring_dataset_cfg(ds_cfg, pipeline), field)
                    for field, ds_cfg in fields.items()}, who)


def dataset_ids(ds: Any) -> List[Hashable]:
    return [ds.get_data_info(i)['img_id'] for i in range(len(ds))]


def test_pipeline_of(cfg: Any) -> List[dict]:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader:
            inner, _ = unwrap_subset(loader['dataset'])
            return _plain(inner)['pipeline']
    raise ValueError('config has no test_dataloader/val_dataloader to take a test pipeline from')
