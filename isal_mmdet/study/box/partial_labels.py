"""``PartialLabels``: a dataset whose box-queried images train on their answers.

Box-level active learning labels some boxes of an image, not all of them. The round loop
writes what is known of each such image to a labels file (the format below); this wrapper
hands the inner dataset's pipeline those instances instead of the image's real ones, so
``LoadAnnotations`` and ``PackDetInputs`` treat them as any annotation: ``ignore_flag=1``
instances become ``data_sample.ignored_instances``, which mmdet's ``MaxIoUAssigner`` leaves
out of both positives and negatives once ``ignore_iof_thr`` > 0. Every other image keeps its
own instances. ``background`` regions (an annotator's "no object here") need no instance:
anchors outside every box are negatives anyway.

Two limits of mmdet's own machinery: ``MaxIoUAssigner`` makes every anchor of an image
without a (not ignored) box a negative before it looks at ignore regions, so the ignore
regions of such an image train as background; and FCOS's head does not read
``ignored_instances`` at all.

Labels file::

    {"images": [{"img_id": <VOC stem or COCO id>, "queries": int,
                 "instances": [{"bbox": [x1, y1, x2, y2], "bbox_label": int,
                                "ignore_flag": 0 | 1, "source": "human" | "pseudo" | "ignore"}],
                 "background": [[x1, y1, x2, y2], ...]}]}

Boxes are in original-image pixels, as the dataset's own ``data_info`` holds them.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, Hashable, List, Sequence, Union

import numpy as np
from mmdet.registry import DATASETS

from ...labelling.validate import get, is_number, read_annotation_json

logger = logging.getLogger('isal_mmdet')

SOURCES = {'human': 0, 'pseudo': 0, 'ignore': 1}  # source -> its ignore_flag


@DATASETS.register_module()
class PartialLabels:
    """``dataset`` with the instances of the images listed in ``labels_file`` replaced.

    The file is read and checked against the inner dataset (its image ids, sizes and
    classes) in ``full_init``, before any training. An id the inner dataset does not hold is
    an error, unless that dataset filters images (``filter_cfg`` in training mode) and the id
    has the type of the dataset's ids: then its filter is the likely cause, as for
    ``ActiveSubset``, and the entry is logged and skipped.
    """

    def __init__(self, dataset: Union[dict, Any], labels_file: str, lazy_init: bool = False):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.labels_file = labels_file
        self.labels: Dict[Hashable, List[dict]] = {}
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    @property
    def test_mode(self) -> bool:
        return self.dataset.test_mode

    @property
    def max_refetch(self) -> int:
        return self.dataset.max_refetch

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.dataset.full_init()
        infos = {}
        for idx in range(len(self.dataset)):
            info = self.dataset.get_data_info(idx)
            infos[info['img_id']] = info
        self.labels = read_labels(self.labels_file, infos, self.dataset.metainfo['classes'],
                                  filtered=may_filter(self.dataset))
        self._fully_initialized = True

    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        info = self.dataset.get_data_info(idx)
        if info['img_id'] in self.labels:
            info['instances'] = copy.deepcopy(self.labels[info['img_id']])
        return info

    def prepare_data(self, idx: int) -> Any:
        return self.dataset.pipeline(self.get_data_info(idx))

    def __getitem__(self, idx: int) -> Any:
        """As mmengine's ``BaseDataset``: in training, a sample the pipeline rejects is
        replaced by a random other one."""
        self.full_init()
        if self.test_mode:
            data = self.prepare_data(idx)
            if data is None:
                raise RuntimeError(f'PartialLabels: the test pipeline rejected sample {idx}')
            return data
        for _ in range(self.max_refetch + 1):
            data = self.prepare_data(idx)
            if data is not None:
                return data
            idx = int(np.random.randint(0, len(self)))
        raise RuntimeError(f'PartialLabels: the pipeline rejected {self.max_refetch} samples '
                           'in a row')

    def __len__(self) -> int:
        self.full_init()
        return len(self.dataset)


def may_filter(dataset: Any) -> bool:
    """Whether ``dataset`` may have left images out (mmdet filters only in training)."""
    return not getattr(dataset, 'test_mode', True) and bool(getattr(dataset, 'filter_cfg', None))


def read_labels(path: str, infos: Dict[Hashable, dict], classes: Sequence[str],
                filtered: bool = False) -> Dict[Hashable, List[dict]]:
    """img_id -> the instances mmdet loads (bbox, bbox_label, ignore_flag), every entry of
    ``path`` checked; ``infos``: the dataset's data_info by img_id. ``filtered``: an id of
    the dataset's id type that it does not hold is skipped (see :class:`PartialLabels`)."""
    data = read_annotation_json(path)
    images = data.get('images') if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise ValueError(f'{path}: field "images" is missing or not a list: not a box labels '
                         'file')
    id_types = {type(k) for k in infos}
    out: Dict[Hashable, List[dict]] = {}
    skipped = 0
    for i, entry in enumerate(images):
        at = f'images[{i}]'
        img_id = get(entry, path, at, 'img_id')
        at = f'{at} (img_id {img_id!r})'
        if img_id in out:
            raise ValueError(f'{path}: {at}.img_id is listed twice')
        info = infos.get(img_id)
        if info is None:
            if filtered and type(img_id) in id_types:
                skipped += 1
                continue
            raise ValueError(f'{path}: {at}.img_id is not an image of the dataset')
        queries = entry.get('queries')
        if not (isinstance(queries, int) and not isinstance(queries, bool) and queries >= 0):
            raise ValueError(f'{path}: {at}.queries {queries!r} is missing or not a '
                             'non-negative integer')
        for j, box in enumerate(field(entry, path, at, 'background')):
            check_box(box, info, path, f'{at}.background[{j}]')
        out[img_id] = [instance(inst, info, classes, path, f'{at}.instances[{j}]')
                       for j, inst in enumerate(field(entry, path, at, 'instances'))]
    if skipped:
        logger.info('%s: %d image(s) are not in the dataset after its filter_cfg; their box '
                    'labels are skipped', path, skipped)
    return out


def field(entry: Any, path: str, at: str, key: str) -> list:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, list):
        raise ValueError(f'{path}: {at}.{key} is missing or not a list')
    return value


def instance(inst: Any, info: dict, classes: Sequence[str], path: str, at: str) -> dict:
    """The checked instance as mmdet's ``LoadAnnotations`` reads it."""
    if not isinstance(inst, dict):
        raise ValueError(f'{path}: {at} is not an object')
    bbox = check_box(inst.get('bbox'), info, path, f'{at}.bbox')
    label = inst.get('bbox_label')
    if not (isinstance(label, int) and not isinstance(label, bool)
            and 0 <= label < len(classes)):
        raise ValueError(f'{path}: {at}.bbox_label {label!r} is missing or not a class index '
                         f'(0..{len(classes) - 1}: {list(classes)})')
    source = inst.get('source')
    if source not in SOURCES:
        raise ValueError(f'{path}: {at}.source {source!r} is missing or not one of '
                         f'{sorted(SOURCES)}')
    flag = inst.get('ignore_flag')
    if type(flag) is not int or flag != SOURCES[source]:
        raise ValueError(f'{path}: {at}.ignore_flag {flag!r} is missing or not '
                         f'{SOURCES[source]}, as a {source!r} instance needs')
    return dict(bbox=bbox, bbox_label=label, ignore_flag=flag)


def check_box(bbox: Any, info: dict, path: str, at: str) -> List[float]:
    """``[x1, y1, x2, y2]``: finite, a positive size, not wholly outside the image."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        raise ValueError(f'{path}: {at} {bbox!r} is not [x1, y1, x2, y2] of finite numbers')
    x1, y1, x2, y2 = bbox
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'{path}: {at} {bbox}: x2 and y2 must exceed x1 and y1')
    width, height = info.get('width'), info.get('height')
    if width and height and (x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height):
        raise ValueError(f'{path}: {at} {bbox} lies outside its image ({width}x{height})')
    return list(bbox)
