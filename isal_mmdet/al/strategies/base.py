"""What every strategy shares: the selection context, the interface, ranking."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, Iterator, List, Optional

import torch
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar
from torch import nn

from ...influence.dist import rank_and_world
from ..arguments import TypedArguments
from ..batch.base import BatchStage, TopK
from ..extension import RoundExtension
from ..passes import per_image
from ..state import sort_ids


@dataclass
class SelectionContext:
    """What a strategy may look at. Datasets yield mmdet samples with ``img_id`` metainfo."""
    model: nn.Module
    pool: Any
    labelled: Any
    reference: Any = None
    batch_size: int = 4
    num_workers: int = 0
    seed: int = 0
    progress: bool = True
    info: Dict[str, Any] = field(default_factory=dict)

    def loader(self, dataset: Any, shard: bool = True) -> Iterator[Any]:
        """This rank's share of ``dataset`` in batches, in a fixed order."""
        rank, world = rank_and_world() if shard else (0, 1)
        indices = list(range(len(dataset)))[rank::world]
        subset = torch.utils.data.Subset(dataset, indices)
        dl = torch.utils.data.DataLoader(subset, batch_size=self.batch_size, shuffle=False,
                                         num_workers=self.num_workers,
                                         collate_fn=collate_readable)
        bar = ProgressBar(len(indices)) if self.progress and rank == 0 and indices else None
        for batch, n in dl:
            if batch is not None:
                yield batch
            if bar is not None:
                for _ in range(n):
                    bar.update()
        if bar is not None:
            print(flush=True)


def collate_readable(samples: List[Any]) -> Any:
    """``(batch of the readable samples or None, number of samples)``: unreadable images
    (None, logged by ActiveSubset) are left out of scoring."""
    ok = [s for s in samples if s is not None]
    return (pseudo_collate(ok) if ok else None), len(samples)


def rank_ids(scores: Dict[Hashable, float], higher_is_better: bool) -> List[Hashable]:
    """Best first; ties broken by id so equal scores select the same images every time."""
    ordered = sort_ids(scores)
    sign = -1.0 if higher_is_better else 1.0
    return sorted(ordered, key=lambda i: sign * scores[i])


class Strategy(TypedArguments):
    """Base class. ``score`` runs on every rank over its shard; ``select`` on the merged
    scores, through the strategy's batch stage (``batch``: top-k unless the config names
    another, see :mod:`..batch`). Subclasses set ``higher_is_better``; the annotations of
    their ``__init__`` are their typed settings, checked on every construction
    (:class:`..arguments.TypedArguments`). ``sets_batch``: the strategy picks a set itself
    (core-set, BADGE, random's draw), so no batch stage applies."""
    higher_is_better = True
    sets_batch = False
    batch: BatchStage = TopK()

    def score(self, ctx: SelectionContext) -> Dict[Hashable, float]:
        return per_image(ctx, ctx.pool, lambda batch: self.score_batch(ctx, batch))

    def score_batch(self, ctx: SelectionContext, batch: Any) -> List[float]:
        raise NotImplementedError

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        """Raises ValueError, before any training, if the model config cannot be scored."""

    def check_settings(self, al: Dict[str, Any]) -> None:
        """Raises ValueError, before any training, if the ``active_learning`` settings
        (defaults merged in) cannot run this strategy."""

    def round_extension(self) -> Optional[RoundExtension]:
        """What this strategy changes in the round loop's rounds; None: nothing, and then it
        also selects from a checkpoint (tools/al_select.py, the hook)."""
        return None

    def select(self, scores: Dict[Hashable, float], budget: int,
               ctx: SelectionContext) -> List[Hashable]:
        return self.batch.pick(rank_ids(scores, self.higher_is_better), scores, budget, ctx)
