"""Influence of a stream of samples, or of their parts: I(z) = −⟨s, ∇θ L_z⟩, batched,
O(batch) memory."""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, Iterator, List, Tuple

from torch import Tensor, nn

from .autograd_ops import directional_derivatives, influence_mode, loss_projections
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


def part_influence_scores(objective: Objective, model: nn.Module, groups: ParamGroups,
                          s: GroupVector, batches: Iterable[Any],
                          pseudo: bool = True) -> Dict[Hashable, float]:
    """``{part key: −⟨s, ∇θ L_part⟩}`` over this rank's batches (see
    :meth:`Objective.per_part_loss`), merged over ranks like :func:`influence_scores`: one
    batched pass per batch, whatever the number of parts."""
    local: Dict[Hashable, float] = {}
    with influence_mode(model, groups):
        for batch in batches:
            losses, keys = objective.per_part_loss(model, batch, pseudo=pseudo)
            local.update(zip(keys, (-loss_projections(losses, groups, s)).tolist()))
    return merge_over_ranks(local)


def part_esi_scores(objective: Objective, model: nn.Module, groups: ParamGroups,
                    s: GroupVector, batches: Iterable[Any]) -> Dict[Hashable, float]:
    """``{part key: Σ_r q_r ⟨s, ∇θ L_part(r)⟩²}``: each part's expected squared influence
    over the model's own distribution q of the answers r to it (see
    :meth:`Objective.per_answer_loss` and :mod:`.expected`), merged over ranks like
    :func:`influence_scores`. Every part's every answer goes through one batched pass."""
    local: Dict[Hashable, float] = {}
    with influence_mode(model, groups):
        for batch in batches:
            losses, probs, keys = objective.per_answer_loss(model, batch)
            proj = loss_projections(losses.reshape(-1), groups, s).reshape(losses.shape)
            local.update(zip(keys, (probs.to(proj) * proj.square()).sum(1).tolist()))
    return merge_over_ranks(local)
