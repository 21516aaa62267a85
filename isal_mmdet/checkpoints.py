"""Checkpoints load as data, never as code.

A ``.pth`` is a pickle: loaded with full unpickling it runs whatever its author put in it.
mmengine's local-file loader (behind ``load_from``, resume, ``runner.load_checkpoint`` and
``CheckpointLoader``: the tools, the round loop and the hook all read checkpoints through it)
is replaced here by ``torch.load(weights_only=True)`` that allows, besides torch's own types,
only what mmengine and mmdet checkpoints hold: the message hub's ``HistoryBuffer`` (with the
statistics methods it pickles through ``getattr``) and numpy arrays, scalars and dtypes. A
file that needs more is refused in one line naming it and the type; :func:`allow_unpickling`
(``--unsafe-load``) is the explicit way out, with a warning.

A checkpoint named by URL (``http://``, ``https://``, and the ``torchvision://``,
``open-mmlab://`` and ``mmcls://`` names mmengine resolves to one) is downloaded to torch hub's
cache as mmengine would (``$TORCH_HOME/hub/checkpoints``) and then loaded the same way, its
errors naming the URL: mmengine hands URLs to ``torch.hub.load_state_dict_from_url``, which
unpickles in full (``weights_only=False``) whatever the server sent. mmengine's other schemes
(``s3://``/``petrel://`` object storage, ``pavi://``, and ``open-mmlab://`` names that resolve
to a file under mmengine's home) call ``torch.load`` with torch's default, which unpickles in
full before torch 2.6: they are fetched as mmengine fetches them and loaded as data too.
"""
from __future__ import annotations

import io
import logging
import os
import os.path as osp
import pickle
import re
import tempfile
import zipfile
from typing import Any, Optional
from urllib.parse import urlparse

import numpy as np
import torch
import mmengine.runner.checkpoint as mmengine_checkpoint
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
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
    return load_as_data(filename, filename, map_location)


def load_from_url(url: str, map_location: Any = None, model_dir: Optional[str] = None,
                  progress: bool = os.isatty(0)) -> Any:
    """mmengine's ``http(s)://`` loader (``load_from_http``), as data: the same download and
    cache, rank 0 first, then :func:`load_as_data` with ``url`` as the name in its errors."""
    rank, world_size = get_dist_info()
    if rank == 0:
        cached = download(url, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = download(url, model_dir, progress)
    single = one_file_zip(cached)  # a .pth zipped by hand, which torch.hub also reads
    try:
        return load_as_data(single if single is not None else cached, url, map_location)
    except UnreadableCheckpoint as e:
        raise UnreadableCheckpoint(f'{e}; downloaded to {cached}: delete it to download it '
                                   'again') from None


def download(url: str, model_dir: Optional[str] = None, progress: bool = False) -> str:
    """``url``'s file in torch hub's cache (where ``load_state_dict_from_url`` keeps it),
    downloaded if not there yet; a failed download is one ``OSError`` naming the URL."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'{url}: names no file to download a checkpoint from')
    cached = osp.join(model_dir, name)
    if not osp.isfile(cached):
        os.makedirs(model_dir, exist_ok=True)
        print_log(f'Downloading: "{url}" to {cached}', logger='current')
        try:
            torch.hub.download_url_to_file(url, cached, progress=progress)
        except (OSError, ValueError) as e:  # urllib's URLError and HTTPError are OSErrors
            raise OSError(f'{url}: could not be downloaded ({type(e).__name__}: '
                          f'{" ".join(str(e).split())})') from None
    return cached


def one_file_zip(path: str) -> Optional[io.BytesIO]:
    """The single member of a zip holding one file (torch < 1.6's ``torch.save`` zipped by
    hand), in memory; None for anything else, a checkpoint ``torch.save`` wrote included."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        if len(members) != 1 or members[0].is_dir():
            return None
        return io.BytesIO(zf.read(members[0]))


def load_as_data(source: Any, name: str, map_location: Any = None) -> Any:
    """``torch.load`` of ``source`` (a path or a binary file) with ``weights_only=True`` and
    :data:`SAFE_GLOBALS`, or in full after :func:`allow_unpickling`; its errors are one line
    that starts with ``name``, the file or URL the user gave."""
    try:
        if _unpickle:
            print_log(f'{name}: loaded with full unpickling (--unsafe-load): a checkpoint '
                      'loaded this way can run code', logger='current', level=logging.WARNING)
            return torch.load(source, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch reports a cut or foreign file in many ways
        text = str(e)
        refused = re.search(r'GLOBAL (\S+)|function (\S+)|but got (.+)', text)
        if 'Weights only load failed' in text and refused:
            raise ValueError(f'{name}: holds {next(filter(None, refused.groups()))}, which '
                             'a checkpoint does not need and which could run code: not loaded; '
                             'if you trust the file, load it with --unsafe-load '
                             '(ISALSelectionHook: unsafe_load=True)') from None
        first = next((line for line in text.splitlines() if line.strip()), '')
        raise UnreadableCheckpoint(f'{name}: not a readable checkpoint, truncated or not '
                                   f'written by torch.save ({type(e).__name__}: {first})'
                                   ) from None


def load_from_storage(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``s3://``/``petrel://`` loader (``load_from_ceph``), as data."""
    data = get_file_backend(filename, backend_args={'backend': 'petrel'}).get(filename)
    return load_as_data(io.BytesIO(data), filename, map_location)


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``pavi://`` loader, as data: downloaded to a temporary folder first."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(f'{filename}: install pavi to load checkpoints from modelcloud'
                          ) from None
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, osp.basename(model.name))
        model.download(path)
        return load_as_data(path, filename, map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``open-mmlab://`` names: a URL, or a file under mmengine's home; as data."""
    prefix = 'open-mmlab://' if filename.startswith('open-mmlab://') else 'openmmlab://'
    name = filename[len(prefix):]
    name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    target = mmengine_checkpoint.get_external_models().get(name)
    if target is None:
        raise ValueError(f'{filename}: no such model in mmengine\'s open-mmlab list')
    if target.startswith(('http://', 'https://')):
        return load_from_url(target, map_location)
    return load_checkpoint_file(osp.join(mmengine_checkpoint._get_mmengine_home(), target),
                                map_location)


CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
CheckpointLoader.register_scheme(prefixes=[r'(\S+\:)?s3://', r'(\S+\:)?petrel://'],
                                 loader=load_from_storage, force=True)
CheckpointLoader.register_scheme(prefixes='pavi://', loader=load_from_pavi, force=True)
CheckpointLoader.register_scheme(prefixes=('open-mmlab://', 'openmmlab://'),
                                 loader=load_from_openmmlab, force=True)
CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_url,
                                 force=True)
# mmengine resolves torchvision://, open-mmlab:// and mmcls:// names to URLs and loads them
# through its module's own ``load_from_http``, not through the scheme table
mmengine_checkpoint.load_from_http = load_from_url
