"""Builds the selection datasets (pool, labelled, reference) from a config."""
from __future__ import annotations

from typing import Any, Hashable, Optional, Sequence

from torch import nn

from ..datasets.al_subset import ActiveSubset, resolve_ids
from .data import (build_dataset, dataset_ids, scoring_dataset_cfg, test_pipeline_of,
                   unwrap_subset)
from .settings import REFERENCES
from .strategies import SelectionContext


def selection_context(cfg: Any, model: nn.Module, labelled_ids: Sequence[Hashable],
                      reference: str = 'val', pool: Optional[dict] = None,
                      batch_size: int = 4, num_workers: int = 0, seed: int = 0,
                      progress: bool = True) -> SelectionContext:
    """Pool = the training images (``pool``'s if given) minus ``labelled_ids``; labelled = the
    training images in ``labelled_ids`` with their boxes (they define the Hessian);
    reference = the val split (``'val'``), the labelled set (``'labelled'``), or the test
    split (``'test'``: the official code's protocol, which leaks the evaluation set into
    selection; a diagnostic, never for real use). The loop, the hook and the tools each hold
    the ``active_learning`` fields it takes in their own form, hence nine arguments."""
    if reference not in REFERENCES:
        raise ValueError(f'active_learning.reference must be one of {REFERENCES}, '
                         f'got {reference!r}')
    pipeline = test_pipeline_of(cfg)
    train = build_dataset(scoring_dataset_cfg(cfg.train_dataloader.dataset, pipeline),
                          'train_dataloader.dataset')
    known = set(dataset_ids(train))
    labelled_ids = resolve_ids(list(labelled_ids), known, 'the labelled ids')
    unknown = [i for i in labelled_ids if i not in known]
    if unknown:
        raise ValueError(f'{len(unknown)} labelled id(s) are not in train_dataloader.dataset, '
                         f'e.g. {unknown[:3]}')
    labelled = ActiveSubset(train, ids=list(labelled_ids))
    # a separate pool (the hook's ``pool``) loses only what it shares with the labelled set
    source = train if pool is None else build_dataset(scoring_dataset_cfg(pool, pipeline),
                                                      'ISALSelectionHook.pool')
    pool_ds = ActiveSubset(source, ids=list(labelled_ids), invert=True)
    if reference in ('val', 'test'):
        split = f'{reference}_dataloader'
        inner, _ = unwrap_subset(cfg[split].dataset)
        ref = build_dataset(scoring_dataset_cfg(inner, pipeline), f'{split}.dataset')
    else:
        ref = labelled
    return SelectionContext(model=model, pool=pool_ds, labelled=labelled, reference=ref,
                            batch_size=batch_size, num_workers=num_workers, seed=seed,
                            progress=progress)
