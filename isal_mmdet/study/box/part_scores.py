"""Influence of the parts of samples (a detection's boxes), for box queries: one batched pass
per batch, whatever the number of parts, merged over ranks like
:func:`isal_mmdet.influence.influence_scores`. The objective gives the parts' losses
(:meth:`~isal_mmdet.influence.Objective.per_part_loss`,
:meth:`~isal_mmdet.influence.Objective.per_answer_loss`)."""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable

from torch import nn

from ...influence import GroupVector, Objective, ParamGroups, influence_mode, loss_projections
from ...influence.dist import merge_over_ranks


def part_influence_scores(objective: Objective, model: nn.Module, groups: ParamGroups,
                          s: GroupVector, batches: Iterable[Any],
                          pseudo: bool = True) -> Dict[Hashable, float]:
    """``{part key: −⟨s, ∇θ L_part⟩}`` over this rank's batches, merged over ranks."""
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
    :mod:`isal_mmdet.influence.expected`), merged over ranks. Every part's every answer goes
    through one batched pass."""
    local: Dict[Hashable, float] = {}
    with influence_mode(model, groups):
        for batch in batches:
            losses, probs, keys = objective.per_answer_loss(model, batch)
            proj = loss_projections(losses.reshape(-1), groups, s).reshape(losses.shape)
            local.update(zip(keys, (probs.to(proj) * proj.square()).sum(1).tolist()))
    return merge_over_ranks(local)
