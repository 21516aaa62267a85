"""Checkpoints load as data, never as code.

A ``.pth`` is a pickle: loaded with full unpickling it runs whatever its author put in it.
mmengine's local-file loader (behind ``load_from``, resume, ``runner.load_checkpoint`` and
``CheckpointLoader``: the tools, the round loop and the hook all read checkpoints through it)
is replaced here by ``torch.load(weights_only=True)`` that allows, besides torch's own types,
only what mmengine and mmdet checkpoints hold: the message hub's ``HistoryBuffer`` (with the
statistics methods it pickles through ``getattr``) and numpy arrays, scalars and dtypes. A
file that needs more is refused in one line naming it and the type; :func:`allow_unpickling`
(``--unsafe-load``) is the explicit way out, with a warning.
"""
from __future__ import annotations

import logging
import os.path as osp
import pickle
import re
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

_unpickle = False


class UnreadableCheckpoint(ValueError):
    """Not a file ``torch.save`` wrote whole (truncated, text, empty)."""


def history_buffer_method(owner: Any, name: str) -> Any:
    """``builtins.getattr`` as the unpickler sees it: only ``HistoryBuffer``'s statistics
    methods, which its pickle names that way; a free ``getattr`` would reach any object."""
    if owner is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(owner, name)
    raise pickle.UnpicklingError(f'Unsupported global: GLOBAL builtins.getattr({name!r})')


# numpy 1.x pickles name ``numpy.core``, 2.x ``numpy._core``: both names map to one function
SAFE_GLOBALS = [HistoryBuffer, np.ndarray, (history_buffer_method, 'builtins.getattr')]
SAFE_GLOBALS += [(getattr(np._core.multiarray, fn), f'numpy.{core}.multiarray.{fn}')
                 for fn in ('_reconstruct', 'scalar') for core in ('core', '_core')]
SAFE_GLOBALS += [t for t in vars(np.dtypes).values() if isinstance(t, type) and
                 issubclass(t, np.dtype)] + [np.dtype]


def allow_unpickling() -> None:
    """Every later checkpoint loads with full unpickling: the user trusts the files."""
    global _unpickle
    _unpickle = True


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file loader, as data (see the module docstring)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename}: checkpoint not found')
    try:
        if _unpickle:
            print_log(f'{filename}: loaded with full unpickling (--unsafe-load): a checkpoint '
                      'loaded this way can run code', logger='current', level=logging.WARNING)
            return torch.load(filename, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch reports a cut or foreign file in many ways
        text = str(e)
        refused = re.search(r'GLOBAL (\S+)|function (\S+)|but got (.+)', text)
        if 'Weights only load failed' in text and refused:
            raise ValueError(f'{filename}: holds {next(filter(None, refused.groups()))}, which '
                             'a checkpoint does not need and which could run code: not loaded; '
                             'if you trust the file, load it with --unsafe-load '
                             '(ISALSelectionHook: unsafe_load=True)') from None
        first = next((line for line in text.splitlines() if line.strip()), '')
        raise UnreadableCheckpoint(f'{filename}: not a readable checkpoint, truncated or not '
                                   f'written by torch.save ({type(e).__name__}: {first})'
                                   ) from None


CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
