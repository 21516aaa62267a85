"""One pass over a dataset, image by image, sharded over ranks and merged on every rank: the
shape every strategy's scoring and every batch stage's features share."""
from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, List

from ..influence.dist import merge_over_ranks


def per_image(ctx: Any, dataset: Any, fn: Callable[[Any], List[Any]]) -> Dict[Hashable, Any]:
    """``{img_id: fn(batch)[i]}`` over ``dataset`` (this rank's share through ``ctx.loader``),
    merged over ranks and the same on every rank."""
    local: Dict[Hashable, Any] = {}
    for batch in ctx.loader(dataset):
        ids = [ds.metainfo['img_id'] for ds in batch['data_samples']]
        local.update(zip(ids, fn(batch)))
    return merge_over_ranks(local)
