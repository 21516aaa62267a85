"""The batch stage's interface: a strategy ranks the pool, the stage turns the ranking into a
batch of ``n`` images (baal's split: heuristics only score, the batch is decided apart).

A stage decides on the merged scores, the same on every rank, so a batch depends on neither
batch size, thread count nor number of ranks; features it needs are gathered first.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Dict, Hashable, List, Sequence

from ...registry import BATCH_STAGES
from ..arguments import Interval, TypedArguments

Multiple = Annotated[float, Interval(1)]


class BatchStage(TypedArguments):
    """``pick(ranked, scores, n, ctx)``: ``n`` ids (fewer when the pool is smaller), best
    first in the order a budget in boxes or seconds is spent."""

    def pick(self, ranked: Sequence[Hashable], scores: Dict[Hashable, float], n: int,
             ctx: Any) -> List[Hashable]:
        """The batch.

        Args:
            ranked (sequence): the pool's ids, best first (the strategy's order).
            scores (dict): every ranked id's score, merged over ranks.
            n (int): the batch size.
            ctx (SelectionContext): the model, pool and labelled set, for stages that read
                features; ``ctx.info['batch']`` is what ``selection.json`` records.

        Returns:
            list: at most ``n`` ids of ``ranked``, best first.
        """
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """The stage and its arguments, as ``selection.json`` records them."""
        name = next((k for k, v in BATCH_STAGES.module_dict.items()
                     if v is type(self) and k.islower()), type(self).__name__)
        return dict(type=name, **{k: v for k, v in vars(self).items() if not k.startswith('_')})


def candidates_of(ranked: Sequence[Hashable], n: int, multiple: float) -> List[Hashable]:
    """The candidates a diversity stage draws its batch from.

    Args:
        ranked (sequence): ids, best first.
        n (int): the batch size.
        multiple (float): how many candidates per batch image (>= 1).

    Returns:
        list: the best ``ceil(multiple × n)`` of ``ranked``.
    """
    return list(ranked[:math.ceil(multiple * n)])


@BATCH_STAGES.register_module(name='topk')
@BATCH_STAGES.register_module()
class TopK(BatchStage):
    """The ``n`` best-scored images: what every strategy did before batch stages."""

    def __init__(self):
        pass

    def pick(self, ranked, scores, n, ctx):
        return list(ranked[:n])


def build_batch_stage(cfg: Any) -> BatchStage:
    """A batch stage from a strategy's ``batch`` argument; a wrong name or argument is one
    line naming it.

    Args:
        cfg (str | dict | BatchStage | None): ``'clusters'``,
            ``dict(type='clusters', candidates=3)``, a built stage, or None (:class:`TopK`).

    Returns:
        BatchStage: the stage.
    """
    if isinstance(cfg, BatchStage):
        return cfg
    if cfg is None:
        return TopK()
    if not isinstance(cfg, (str, dict)) and not hasattr(cfg, 'to_dict'):
        raise ValueError(f'batch must be a stage name or dict(type=name, ...), got {cfg!r}')
    cfg = {'type': cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop('type', None)
    cls = BATCH_STAGES.module_dict.get(name)
    if cls is None:
        names = sorted(k for k in BATCH_STAGES.module_dict if k.islower())
        raise ValueError(f'unknown batch stage {name!r}; choose one of {names}')
    try:
        return cls(**cfg)
    except ValueError as e:
        raise ValueError(f'batch: {e}') from None
