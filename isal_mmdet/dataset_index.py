"""Where each image id sits in an mmengine dataset: one map for every layer that looks an
image up by id (labelling exports, strategies, batch stages, the round loop)."""
from __future__ import annotations

from typing import Any, Dict, Hashable


def id_index(dataset: Any) -> Dict[Hashable, int]:
    """``{img_id: position}`` of ``dataset`` (any object with ``__len__`` and
    ``get_data_info(i)['img_id']``); no image is read."""
    return {dataset.get_data_info(i)['img_id']: i for i in range(len(dataset))}
