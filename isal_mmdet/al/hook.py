"""``ISALSelectionHook``: add to any mmdet config to select the next batch after training."""
from __future__ import annotations

import os.path as osp
from typing import Any, Literal, Optional

from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from ..checkpoints import allow_unpickling
from ..detection.semi import evaluated_model, labelled_view
from .arguments import Count, NonNegativeInt, PreannotationThr, TypedArguments
from .context import selection_context
from .data import (build_dataset, check_split_overlap, dataset_ids, scoring_dataset_cfg,
                   subset_ids, test_pipeline_of, unwrap_subset)
from .launch import rank0_model_everywhere
from .selection import Selection, select
from .settings import REFERENCES, budget_of, checked_strategy


@HOOKS.register_module()
class ISALSelectionHook(TypedArguments, Hook):
    """Selects ``budget`` images from the pool once training ends and writes the exports.

    Defaults come from the runner: the labelled set is the train dataloader's images
    (an ``ActiveSubset``'s ids, or the whole train dataset), the pool is the rest of its
    data source (or ``pool``, a dataset config), the reference set is the val split. In a
    mean teacher's config (mmdet's ``SemiBaseDetector``) the labelled images are its
    ``ConcatDataset``'s first dataset and the teacher selects. The arguments are checked against their annotations when the runner builds its hooks, before
    any training or checkpoint.

    Args:
        strategy: name or config of a strategy (``'isal'``, ``dict(type='ISAL', ...)``).
        budget: how much to select, in ``budget_unit``: ``'images'``, ``'boxes'`` or
            ``'seconds'`` of annotation priced by ``cost`` (as in the ``active_learning``
            block).
        pool: dataset config of the unlabelled images; default: the train data source.
        reference: ``'val'`` (paper), ``'labelled'``, or ``'test'`` (a leakage diagnostic).
        allow_split_overlap: with ``reference='val'``, run although the val or test split
            shares images with the training data, the pool or each other (else an error
            before training).
        out_dir: where exports go; default ``<work_dir>/selection``.
        preannotation_thr, labelstudio_image_root: as in the ``active_learning`` block.
        unsafe_load: load every checkpoint of this run (``load_from``, resume) with full
            unpickling, which can run code in it (:mod:`isal_mmdet.checkpoints`); only for
            files you trust.
    """
    priority = 'LOW'

    def __init__(self, strategy: Any = 'isal', budget: float = 100, budget_unit: str = 'images',
                 cost: Optional[dict] = None, pool: Optional[dict] = None,
                 reference: Literal[REFERENCES] = 'val', out_dir: Optional[str] = None,
                 batch_size: Count = 4, num_workers: NonNegativeInt = 0,
                 seed: NonNegativeInt = 0, export_coco: bool = True,
                 preannotation_thr: PreannotationThr = 'auto',
                 labelstudio_image_root: Optional[str] = None, unsafe_load: bool = False,
                 allow_split_overlap: bool = False):
        """One argument per config key of the hook (the class docstring), as mmengine builds
        hooks from dicts."""
        checked_strategy(strategy, 'ISALSelectionHook.strategy', images_only=True)
        self.preannotation_thr, self.image_root = preannotation_thr, labelstudio_image_root
        try:
            self.budget = budget_of(dict(budget=budget, budget_unit=budget_unit, cost=cost))
        except ValueError as e:
            raise ValueError(str(e).replace('active_learning.', 'ISALSelectionHook.')) from None
        self.strategy, self.pool = strategy, pool
        self.reference, self.out_dir = reference, out_dir
        self.allow_split_overlap = allow_split_overlap
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed, self.export_coco = seed, export_coco
        self.result: Optional[Selection] = None
        if unsafe_load:
            allow_unpickling()

    def labelled_ids(self, cfg) -> list:
        inner, subset = unwrap_subset(cfg.train_dataloader.dataset)
        if subset is None:
            return dataset_ids(build_dataset(inner, 'train_dataloader.dataset'))
        return subset_ids(subset)

    def before_train(self, runner) -> None:
        """A separate ``pool`` and, with ``reference='val'``, the splits' overlap are read and
        checked before training, not after it."""
        sources = {} if self.pool is None else {'ISALSelectionHook.pool': self.pool}
        if self.reference == 'val' and not self.allow_split_overlap:
            cfg = labelled_view(runner.cfg)
            sources['train_dataloader.dataset'] = cfg.train_dataloader.dataset
            check_split_overlap(cfg, sources, 'ISALSelectionHook')
        elif sources:
            build_dataset(scoring_dataset_cfg(self.pool, test_pipeline_of(runner.cfg)),
                          'ISALSelectionHook.pool')

    def after_train(self, runner) -> None:
        rank0_model_everywhere(runner.model)
        cfg = labelled_view(runner.cfg)
        ctx = selection_context(cfg, evaluated_model(runner.model), self.labelled_ids(cfg),
                                self.reference, self.pool, self.batch_size, self.num_workers,
                                self.seed)
        out_dir = self.out_dir or osp.join(runner.work_dir, 'selection')
        self.result = select(self.strategy, ctx, self.budget, out_dir, self.export_coco,
                             self.preannotation_thr, self.image_root)
        runner.logger.info(
            f"{self.result.strategy}: selected {len(self.result.selected)} of "
            f"{len(ctx.pool)} pool images in {self.result.seconds:.1f}s -> {out_dir}")
