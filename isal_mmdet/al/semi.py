"""``active_learning.semi``: rounds that train on the unlabelled pool too, as mmdet's mean
teacher (:mod:`..detection.semi` rewrites the round's config). Off by default (None);
``semi=dict()`` turns it on with the defaults below."""
from __future__ import annotations

import copy
import os.path as osp
from typing import Any, Dict, Hashable, List, Optional, Sequence, Set

from ..detection.semi import to_semi
from ..fileio import write_json
from .arguments import Count, Fraction, NonNegative, Score, TypedArguments, check_arguments
from .data import build_dataset, scoring_dataset_cfg, test_pipeline_of, unwrap_subset
from .state import read_ids


class Semi(TypedArguments):
    """The mean teacher's settings, chosen for small detectors trained a few hundred steps on
    CPU.

    Args:
        momentum: the share of the student's weights the teacher takes after each step.
            mmdet's 0.001 suits its 180,000-step schedules; 0.02 averages about the last 50
            steps, so a round of 150 to 300 steps ends with a teacher of that round.
        cls_pseudo_thr: the teacher's detections at or above this score are the unlabelled
            images' boxes.
        unsup_weight: the weight of the unlabelled images' losses against the labelled ones'.
            mmdet's 1.0 collapsed a BCCD round 0 (0.14 test mAP, against 0.49 at 0.25 and
            0.68 supervised: docs/design.md, "Semi-supervised rounds").
        unlabelled_per_labelled: unlabelled images per labelled image in each batch; the
            config's batch size stays the labelled images' (each unlabelled image costs a
            teacher pass and a student step).
        ignore_thr: the teacher's detections from this score up to ``cls_pseudo_thr`` are
            ignore regions of the unlabelled images (anchors mostly inside one are neither
            object nor background), for detectors that assign anchors by IoU (RetinaNet,
            Faster R-CNN; it turns the assigners' ignore regions on, so a VOC ``difficult``
            box is ignored in labelled images too); None: every other region is background.
        burn_in: the share of the round's steps trained on the labelled images alone, the
            teacher a copy of the student; the mean teacher starts after them, its pseudo
            boxes from a model trained out at the high learning rate (the shipped schedules
            drop it at 80 %). 0: mmdet's mean teacher from the first step, where an untrained
            teacher's pseudo boxes, and a teacher that lags the learning-rate drop, cost a
            BCCD round 0 most of its accuracy (docs/design.md, "Semi-supervised rounds").
    """

    def __init__(self, momentum: Fraction = 0.02, cls_pseudo_thr: Score = 0.5,
                 unsup_weight: NonNegative = 0.25, unlabelled_per_labelled: Count = 1,
                 ignore_thr: Optional[Score] = None, burn_in: Score = 0.8):
        self.momentum, self.cls_pseudo_thr = momentum, cls_pseudo_thr
        self.unsup_weight, self.unlabelled_per_labelled = unsup_weight, unlabelled_per_labelled
        self.ignore_thr, self.burn_in = ignore_thr, burn_in


def semi_settings(spec: Any) -> Optional[Semi]:
    """``active_learning.semi`` checked: None (off) or a dict of :class:`Semi`'s arguments;
    a bad one is one line naming ``active_learning.semi.<field>``."""
    if spec is None:
        return None
    spec = spec.to_dict() if hasattr(spec, 'to_dict') else spec
    if not isinstance(spec, dict):
        raise ValueError(f'active_learning.semi must be None or dict(momentum=..., '
                         f'cls_pseudo_thr=..., unsup_weight=..., unlabelled_per_labelled=..., '
                         f'ignore_thr=..., burn_in=...), got {spec!r}')
    try:
        check_arguments(Semi, (), spec)
    except ValueError as e:
        raise ValueError(str(e).replace('Semi.', 'active_learning.semi.').replace(
            'Semi has no argument', 'active_learning.semi has no field')) from None
    return Semi(**spec)


def held_out_ids(cfg: Any, source: Any) -> Set[Hashable]:
    """The pool's images whose file is also in the val or test split: never trained on, not
    even unlabelled (allow_split_overlap=True or reference='test' let such splits run)."""
    pipeline = test_pipeline_of(cfg)
    paths: Set[str] = set()
    for split in ('val_dataloader', 'test_dataloader'):
        if cfg.get(split):
            ds = build_dataset(scoring_dataset_cfg(cfg[split].dataset, pipeline),
                               f'{split}.dataset')
            paths |= {osp.abspath(ds.get_data_info(i)['img_path']) for i in range(len(ds))}
    infos = (source.get_data_info(i) for i in range(len(source)))
    return {info['img_id'] for info in infos if osp.abspath(info['img_path']) in paths}


def unlabelled_ids(pool: Sequence[Hashable], labelled: Sequence[Hashable],
                   held_out: Set[Hashable]) -> List[Hashable]:
    """The images a round trains on without labels: the pool less the labelled and held-out
    ones."""
    out = set(labelled) | held_out
    ids = [i for i in pool if i not in out]
    if not ids:
        raise ValueError('active_learning.semi: no unlabelled image is left in the pool '
                         '(every image is labelled or in the val/test split)')
    return ids


def semi_round_cfg(cfg: Any, semi: Semi, ids_file: str) -> None:
    """Round ``cfg`` (its train dataset the round's labelled ``ActiveSubset``) rewritten in
    place to train a mean teacher, the unlabelled images read from ``ids_file``. They come
    from the data source without any wrapper that holds labels (partial box labels), and
    without its ``filter_cfg``: an image without boxes is as good an unlabelled one."""
    inner, _ = unwrap_subset(cfg.train_dataloader.dataset)
    while inner.get('type') == 'PartialLabels':
        inner = copy.deepcopy(inner['dataset'])
    inner.pop('filter_cfg', None)
    unlabelled: Dict[str, Any] = dict(type='ActiveSubset', dataset=inner, ids_file=ids_file)
    to_semi(cfg, unlabelled, semi.momentum, semi.cls_pseudo_thr, semi.unsup_weight,
            semi.unlabelled_per_labelled, semi.ignore_thr, semi.burn_in)


def semi_round(loop: Any, cfg: Any, k: int) -> None:
    """Round ``k`` of the round loop ``loop`` as a mean teacher when its settings ask for one:
    the unlabelled images are written once to ``round_<k>/unlabelled.json`` (the pool less
    round k's labelled images and any image of the val or test split), then ``cfg`` is
    rewritten (:func:`semi_round_cfg`)."""
    semi = semi_settings(loop.al['semi'])
    if semi is None:
        return
    path = loop.path(k, 'unlabelled.json')

    def write_once() -> None:
        if not osp.exists(path):
            labelled = read_ids(loop.path(k, 'labeled.json'))
            write_json(path, unlabelled_ids(loop.all_ids, labelled,
                                            held_out_ids(loop.cfg, loop.source)))

    loop.write(write_once)
    semi_round_cfg(cfg, semi, path)
