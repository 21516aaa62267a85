"""Influence of a stream of samples: I(z) = −⟨s, ∇θ L_z⟩, batched, O(batch) memory (the
parts of samples, a detection's boxes, are scored in :mod:`isal_mmdet.study.box.part_scores`)."""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, Iterator, List, Tuple

from torch import Tensor, nn

from .autograd_ops import directional_derivatives, influence_mode
from .dist import merge_over_ranks
from .objective import Objective
from .params import ParamGroups
from .vector import GroupVector


def iter_influence(objective: Objective, model: nn.Module, groups: ParamGroups,
                   s: GroupVector, batches: Iterable[Any],
                   pseudo: bool = True) -> Iterator[Tuple[List[Hashable], Tensor]]:
    """Yields ``(ids, scores)`` per batch; nothing per sample outlives its batch."""
    with influence_mode(model, groups):
        for batch in batches:
            proj = directional_derivatives(objective, model, groups, batch, s, pseudo=pseudo)
            yield objective.sample_ids(batch), -proj


def influence_scores(objective: Objective, model: nn.Module, groups: ParamGroups,
                     s: GroupVector, batches: Iterable[Any],
                     pseudo: bool = True) -> Dict[Hashable, float]:
    """``{id: I(id)}`` over this rank's batches, merged over ranks on every rank's return.

    Negative influence means labelling the sample is predicted to lower the reference loss.
    """
    local: Dict[Hashable, float] = {}
    for ids, vals in iter_influence(objective, model, groups, s, batches, pseudo):
        local.update(zip(ids, vals.tolist()))
    return merge_over_ranks(local)
