"""COCO annotation files read by category name, and checked before pycocotools indexes them.

mmdet's ``CocoDataset`` and ``CocoMetric`` map ``metainfo.classes[i]`` to the i-th id that
``get_cat_ids(cat_names=classes)`` returns, but pycocotools returns the ids in the *file's*
order: a file listing its categories in another order trains and scores every box under
the wrong class, silently. pycocotools also merges duplicate image or category ids silently,
and fails on a file that is not a JSON object with an assertion. This patches mmdet's COCO
wrapper, the one class both use, in this one place: ids come back in the order of the names
asked for, and every file is read and checked by :func:`..labelling.validate.check_coco`
first (one line naming the file, entry and field), so no COCO file mmdet reads in this
process is trusted unchecked.
"""
from __future__ import annotations

from mmdet.datasets.api_wrappers import coco_api

from ..labelling.validate import check_coco, read_annotation_json

_init = coco_api.COCO.__init__
_get_cat_ids = coco_api.COCO.get_cat_ids


def _checked_init(self, annotation_file=None):
    if type(self) is not coco_api.COCO:  # COCOPanoptic: another format
        return _init(self, annotation_file)
    _init(self, None)
    if annotation_file is None:
        return
    data = read_annotation_json(annotation_file)
    check_coco(data, annotation_file, dataset=True)
    self.dataset = data
    self.createIndex()
    self.img_ann_map, self.cat_img_map = self.imgToAnns, self.catToImgs  # as mmdet's __init__


def _cat_ids_by_name(self, cat_names=[], sup_names=[], cat_ids=[]):
    ids = _get_cat_ids(self, cat_names, sup_names, cat_ids)
    names = [cat_names] if isinstance(cat_names, str) else list(cat_names)
    if not names:
        return ids
    rank = {name: k for k, name in enumerate(names)}
    return sorted(ids, key=lambda i: rank[self.cats[i]['name']])


coco_api.COCO.__init__ = _checked_init
coco_api.COCO.get_cat_ids = _cat_ids_by_name
