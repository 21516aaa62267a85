"""Atomic file writes (a reader sees the old file or the new one, never half of one), and
inputs read with one-line errors naming the file."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Dict, Optional


def atomic_write(path: str, write: Callable[[Any], None], mode: str = 'w') -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=1, sort_keys=False))


def write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not valid JSON ({e})') from None


def load_config(path: str, options: Optional[Dict[str, Any]] = None) -> Any:
    """``path``'s mmengine config with ``options`` (``--cfg-options``) merged in. A config that
    cannot be read (missing, a syntax error, an error while its code runs) is one line naming
    the file: every tool reads its config here, so none ends in mmengine's traceback."""
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise ValueError(f'{path}: config file not found')
    try:
        cfg = Config.fromfile(path)
    except Exception as e:  # noqa: BLE001 - the config's own code may raise anything
        raise ValueError(f'{path}: cannot be read as a config ({type(e).__name__}: '
                         f'{" ".join(str(e).split())})') from None
    cfg.merge_from_dict(options or {})
    return cfg
