"""``ActiveSubset``: any mmdet dataset restricted to a set of image ids."""
from __future__ import annotations

import copy
import logging
import os
from typing import Any, Collection, Dict, Hashable, Iterable, List, Optional, Union

import numpy as np
from mmdet.registry import DATASETS

from ..labelling.validate import check_ids, read_ids
from . import coco_checks  # noqa: F401  (COCO categories by name, unique image ids)

logger = logging.getLogger('isal_mmdet')


@DATASETS.register_module()
class ActiveSubset:
    """Keeps the images of ``dataset`` whose ``img_id`` is in ``ids`` (or the JSON list
    in ``ids_file``), checked entry by entry before the dataset is read.

    Selection is by stable id (VOC stem, COCO integer id), never by position. The inner
    dataset is built and initialised as usual, so its ``filter_cfg``, lazy init and
    ``metainfo`` apply first; ids that its filters removed are logged, not an error.
    ``invert=True`` keeps every image *not* in the set (the unlabelled pool).
    """

    def __init__(self, dataset: Union[dict, Any], ids: Optional[Iterable[Hashable]] = None,
                 ids_file: Optional[str] = None, invert: bool = False,
                 lazy_init: bool = False):
        if (ids is None) == (ids_file is None):
            raise ValueError('ActiveSubset: give exactly one of `ids` or `ids_file`')
        self.ids_file = ids_file
        if ids is not None and (isinstance(ids, (str, bytes, dict)) or
                                not isinstance(ids, Iterable)):
            raise ValueError(f'ActiveSubset.ids: expected a list of image ids, got '
                             f'{type(ids).__name__}')
        self._ids = None if ids is None else check_ids(list(ids), 'ActiveSubset.ids')
        if not lazy_init:
            self.wanted_ids()  # a bad ids_file fails before the dataset is built and read
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.invert = invert
        self._indices: List[int] = []
        self._fully_initialized = False
        self.skipped: set = set()
        self._complete: set = set()
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    def wanted_ids(self) -> List[Hashable]:
        if self._ids is None:
            self._ids = read_ids(self.ids_file)
        return self._ids

    def full_init(self) -> None:
        """Selects the images; a subset of no image is an error (mmengine's infinite sampler
        would wait forever for the first batch)."""
        if self._fully_initialized:
            return
        ids = self.wanted_ids()  # a bad ids_file fails before the dataset is read
        self.dataset.full_init()
        present = {}
        for idx in range(len(self.dataset)):
            present[self.dataset.get_data_info(idx)['img_id']] = idx
        source = self.ids_file or 'ActiveSubset.ids'
        self._ids = resolve_ids(ids, present, source)
        wanted = set(self._ids)
        if self.invert:
            self._indices = [i for k, i in present.items() if k not in wanted]
        else:
            self._indices = [present[k] for k in self._ids if k in present]
            missing = len(wanted - set(present))
            if not self._indices:
                why = (f'none of its {len(wanted)} ids is an image of the dataset (after its '
                       'filter_cfg)' if wanted else 'no image id')
                raise ValueError(f'{source}: {why}: no image to use')
            if missing:
                logger.info('ActiveSubset: %d of %d ids are not in the dataset after its '
                            'filter_cfg (e.g. images without boxes); they are skipped',
                            missing, len(wanted))
        self._fully_initialized = True

    def img_ids(self) -> List[Hashable]:
        self.full_init()
        return [self.dataset.get_data_info(i)['img_id'] for i in self._indices]

    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        return self.dataset.get_data_info(self._indices[idx])

    def __getitem__(self, idx: int) -> Any:
        """Like BaseDataset, but a sample the pipeline rejects is replaced from *this*
        subset, never from the whole dataset (that would train on unlabelled images). An
        unreadable image is logged once and skipped: in test mode (scoring) it yields None."""
        self.full_init()
        inner = self.dataset
        test_mode = getattr(inner, 'test_mode', True) or not hasattr(inner, 'prepare_data')
        for _ in range(getattr(inner, 'max_refetch', 1000) + 1):
            data = self._load(self._indices[idx])
            if data is not None or test_mode:
                return data
            idx = int(np.random.randint(0, len(self._indices)))
        raise RuntimeError(f'ActiveSubset: the pipeline rejected {inner.max_refetch} samples '
                           'in a row; check its filters against the labelled set')

    def _load(self, index: int) -> Any:
        try:
            self._check_complete(index)
            if hasattr(self.dataset, 'prepare_data'):
                return self.dataset.prepare_data(index)
            return self.dataset[index]
        except Exception as e:  # noqa: BLE001 - a corrupt file must not stop a run
            path = self.dataset.get_data_info(index).get('img_path')
            if path not in self.skipped:
                self.skipped.add(path)
                logger.warning('skipping unreadable image %s (%s: %s)', path,
                               type(e).__name__, ' '.join(str(e).split()))
            return None

    def _check_complete(self, index: int) -> None:
        if index in self._complete:
            return
        path = self.dataset.get_data_info(index).get('img_path')
        if path and truncated_jpeg(path):
            raise OSError('JPEG data ends before its end-of-image marker (truncated file)')
        self._complete.add(index)

    def __len__(self) -> int:
        self.full_init()
        return len(self._indices)


IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.xml')


def other_forms(x: Hashable) -> List[Hashable]:
    """The ids ``x`` may be written for: a COCO id as a string (``"3"``), a VOC id as its
    file name or path (``"x.jpg"``, ``"JPEGImages/x.jpg"``), a numeric id as an integer."""
    if not isinstance(x, str):
        return [str(x)]
    forms: List[Hashable] = [int(x)] if x.strip().lstrip('-').isdigit() else []
    return forms + [os.path.splitext(x)[0], os.path.splitext(os.path.basename(x))[0]]


def resolve_ids(wanted: List[Hashable], known: Collection[Hashable],
                source: str) -> List[Hashable]:
    """``wanted`` in the form of the dataset's ids ``known``: an id written in another form
    (:func:`other_forms`) is matched to the dataset's; one that matches none and is not of the
    dataset's form is one line naming ``source``, the entry and the form expected (skipped,
    it would train on fewer images, or none). An id of the dataset's form that it lacks is
    kept: its filter_cfg may have removed the image."""
    if not known:
        return list(wanted)
    like = next(iter(known))
    out: Dict[Hashable, int] = {}
    for i, x in enumerate(wanted):
        y = x if x in known else next((f for f in other_forms(x) if f in known), None)
        if y is None:
            if type(x) is not type(like) or (isinstance(x, str) and (
                    os.path.splitext(x)[1].lower() in IMAGE_SUFFIXES or
                    ('/' in x and '/' not in like))):
                raise ValueError(f'{source}: entry [{i}] {x!r} is no image id of the dataset, '
                                 f'whose ids are {type(like).__name__}s like {like!r}')
            y = x
        if y in out:
            raise ValueError(f'{source}: entry [{i}] {x!r} is image {y!r} again (entry '
                             f'[{out[y]}])')
        out[y] = i
    return list(out)


def truncated_jpeg(path: str, tail: int = 4096) -> bool:
    """True for a local JPEG without its end-of-image marker. OpenCV decodes a JPEG cut short
    without an error (the missing rows come out grey), so the loader alone would score and
    train on it. The marker is looked for in the last ``tail`` bytes: some cameras append
    data after it."""
    if not os.path.isfile(path):
        return False
    with open(path, 'rb') as f:
        if f.read(2) != b'\xff\xd8':
            return False
        f.seek(max(2, os.path.getsize(path) - tail))
        return b'\xff\xd9' not in f.read()
