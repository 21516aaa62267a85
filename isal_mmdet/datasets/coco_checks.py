"""COCO annotation files read by category name, with unique image ids.

mmdet's ``CocoDataset`` and ``CocoMetric`` map ``metainfo.classes[i]`` to the i-th id that
``get_cat_ids(cat_names=classes)`` returns, but pycocotools returns the ids in the *file's*
order: a file listing its categories in another order trains and scores every box under
the wrong class, silently. pycocotools also merges duplicate image ids silently (one entry
wins and gets the boxes of both). This patches mmdet's COCO wrapper, the one class both use,
in this one place: ids come back in the order of the names asked for, and a duplicate image
id is a one-line error naming the file.
"""
from __future__ import annotations

from collections import Counter

from mmdet.datasets.api_wrappers import coco_api

_init = coco_api.COCO.__init__
_get_cat_ids = coco_api.COCO.get_cat_ids


def _checked_init(self, annotation_file=None):
    _init(self, annotation_file)
    counts = Counter(img['id'] for img in self.dataset.get('images', []))
    dups = [i for i, n in counts.items() if n > 1]
    if dups:
        raise ValueError(f'{annotation_file}: image id {dups[0]!r} appears {counts[dups[0]]} '
                         f'times in `images` ({len(dups)} duplicated id(s)); ids must be unique')


def _cat_ids_by_name(self, cat_names=[], sup_names=[], cat_ids=[]):
    ids = _get_cat_ids(self, cat_names, sup_names, cat_ids)
    names = [cat_names] if isinstance(cat_names, str) else list(cat_names)
    if not names:
        return ids
    rank = {name: k for k, name in enumerate(names)}
    return sorted(ids, key=lambda i: rank[self.cats[i]['name']])


coco_api.COCO.__init__ = _checked_init
coco_api.COCO.get_cat_ids = _cat_ids_by_name
