"""Checkpoint loading under torch >= 2.6, whose ``torch.load`` defaults to ``weights_only``.

mmengine 0.10 calls ``torch.load`` without ``weights_only``, so its own checkpoints (message
hub HistoryBuffers, numpy dtypes) fail to load. This replaces mmengine's local-file loader,
in this one place: files under a trusted path (work dirs this tool writes, checkpoints the
user named) load with full unpickling; every other file keeps safe ``weights_only`` loading.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import List

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_TRUSTED: List[str] = []


def trust_checkpoints(path: str) -> None:
    """Trust ``path`` (a checkpoint file, or a folder and everything below it)."""
    real = osp.realpath(osp.expanduser(path))
    if real not in _TRUSTED:
        _TRUSTED.append(real)


def is_trusted(path: str) -> bool:
    real = osp.realpath(osp.expanduser(path))
    return any(real == t or real.startswith(t.rstrip(os.sep) + os.sep) for t in _TRUSTED)


def load_local_checkpoint(filename: str, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if is_trusted(filename):
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the way out
        raise RuntimeError(
            f'{filename}: refused by safe loading ({type(e).__name__}). If you trust this '
            'file, name it on the command line (--load-from/--checkpoint) or in `load_from`.'
        ) from e


CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
