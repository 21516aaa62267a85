"""Library side of ``tools/al_select.py``."""
from __future__ import annotations

import os.path as osp
import re
from typing import Any, Dict, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from .al.context import selection_context
from .al.data import check_split_overlap, subset_ids, unwrap_subset
from .al.launch import init_distributed
from .al.settings import (AL_DEFAULTS, al_settings, budget_of, checked_strategy,
                          strategy_for_tool)
from .al.loop import check_writable_dir
from .al.selection import Selection, select
from .al.state import read_ids


def build_model(cfg: Config, checkpoint: str) -> torch.nn.Module:
    """The config's detector with ``checkpoint`` (a file, or any name mmengine loads:
    ``https://``, ``s3://``, ``open-mmlab://`` ...) loaded as data (:mod:`..checkpoints`)."""
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    register_all_modules(init_default_scope=False)
    model = MODELS.build(cfg.model)
    state = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state) if isinstance(state, dict) else None
    if state is None:
        raise ValueError(f'{checkpoint}: not a checkpoint (no state dict in it)')
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    check_fits(model, state, checkpoint)
    model.load_state_dict(state, strict=False)  # only extra keys are left to ignore
    if torch.cuda.is_available():
        model = model.cuda()
    return model.eval()


def check_fits(model: torch.nn.Module, state: Dict[str, Any], checkpoint: str) -> None:
    """A checkpoint of another architecture (or class count) loads with mere warnings in
    mmengine and then selects with random weights; here it is a one-line error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    other = [k for k in own if k in state and
             tuple(getattr(state[k], 'shape', ())) != tuple(own[k].shape)]
    if missing or other:
        example = (f'e.g. {missing[0]} is missing' if missing else
                   f'e.g. {other[0]} is {tuple(state[other[0]].shape)}, the model has '
                   f'{tuple(own[other[0]].shape)}')
        raise ValueError(f'{checkpoint}: not a checkpoint of the config\'s model '
                         f'({type(model).__name__}): {len(missing)} of its {len(own)} weights '
                         f'missing, {len(other)} of another shape ({example})')


# the active_learning fields a command line may set for one selection
TOOL_OVERRIDES = ('strategy', 'budget', 'budget_unit', 'reference', 'batch_size', 'seed')


def select_from_checkpoint(cfg: Config, checkpoint: str, out_dir: str,
                           overrides: Optional[Dict[str, Any]] = None,
                           labelled_file: Optional[str] = None,
                           launcher: str = 'none') -> Selection:
    """Selects with ``checkpoint``'s model. ``overrides`` are ``active_learning`` fields set
    for this selection (:data:`TOOL_OVERRIDES`; None leaves the config's); a strategy name
    that is the config strategy's type keeps its arguments (:func:`strategy_for_tool`).
    Every input is checked before the model is loaded and the pool scored."""
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(over) - set(TOOL_OVERRIDES))
    if unknown:
        raise ValueError(f'select_from_checkpoint: unknown override {unknown[0]!r}; '
                         f'one of {TOOL_OVERRIDES}')
    strategy, budget = over.pop('strategy', None), over.get('budget')
    if budget is not None and budget <= 0:
        raise ValueError(f'--budget must be a positive integer, got {budget}')
    check_writable_dir(out_dir, '--out')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    al = dict(al_settings(cfg) if 'active_learning' in cfg else AL_DEFAULTS, **over)
    spent = budget_of(al)
    spec, how = strategy_for_tool(al['strategy'], strategy)
    checked_strategy(spec, '--strategy', images_only=True)
    print_log(f'strategy: {spec} ({how})', logger='current')
    init_distributed(launcher)
    if labelled_file is not None:
        labelled = read_ids(labelled_file)
    else:
        _, subset = unwrap_subset(cfg.train_dataloader.dataset)
        if subset is None:
            raise ValueError('give --labelled IDS_JSON: the config trains on the whole dataset, '
                             'so there is no unlabelled pool')
        labelled = subset_ids(subset)
    reference = al['reference']
    if reference == 'val' and not al['allow_split_overlap']:
        check_split_overlap(cfg, {'train_dataloader.dataset': cfg.train_dataloader.dataset},
                            'active_learning')
    model = build_model(cfg, checkpoint)
    ctx = selection_context(cfg, model, labelled, reference,
                            batch_size=al['batch_size'], num_workers=al['num_workers'],
                            seed=al['seed'])
    return select(spec, ctx, spent, out_dir, al['export_coco'],
                  al['preannotation_thr'], al['labelstudio_image_root'])
