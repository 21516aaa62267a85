"""Random selection: the baseline every other strategy must beat."""
from __future__ import annotations

import zlib

from ...registry import STRATEGIES
from ...dataset_index import id_index
from .base import Strategy, rank_ids


@STRATEGIES.register_module(name='random')
@STRATEGIES.register_module()
class Random(Strategy):
    """A seeded random draw. Each id's score is a hash of (seed, id), so the draw does not
    depend on pool order, batch size or rank."""
    sets_batch = True

    def score(self, ctx):
        ids = [ctx.pool.get_data_info(i)['img_id'] for i in range(len(ctx.pool))]
        return {i: zlib.crc32(f'{ctx.seed}:{i}'.encode()) / 2 ** 32 for i in ids}

    def select(self, scores, budget, ctx):
        """The draw's order, skipping images the pool cannot load (logged by the dataset):
        the other strategies never score them, so no strategy selects them."""
        index = id_index(ctx.pool)
        picked = []
        for img_id in rank_ids(scores, self.higher_is_better):
            if len(picked) == budget:
                break
            if ctx.pool[index[img_id]] is not None:
                picked.append(img_id)
        return picked
