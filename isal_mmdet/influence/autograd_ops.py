"""Gradients, Hessian-vector products (Pearlmutter) and per-sample directional derivatives."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .dist import all_reduce_sum_
from .objective import Objective
from .params import ParamGroups
from .vector import GroupVector


@contextmanager
def influence_mode(model: nn.Module, groups: ParamGroups) -> Iterator[None]:
    """Eval mode (so BN/dropout keep samples independent) with grad only towards θ."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), groups.only_these_require_grad(model):
            yield
    finally:
        model.train(was_training)


def _grads(out: Tensor, params: Sequence[Tensor], create_graph: bool = False,
           grad_outputs: Any = None, retain_graph: Optional[bool] = None) -> List[Tensor]:
    gs = torch.autograd.grad(out, params, grad_outputs=grad_outputs, create_graph=create_graph,
                             retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


def loss_grad(objective: Objective, model: nn.Module, groups: ParamGroups, batch: Any,
              pseudo: bool = False) -> GroupVector:
    """∇θ of the summed per-sample loss of ``batch``."""
    loss = objective.per_sample_loss(model, batch, pseudo=pseudo).sum()
    if not loss.requires_grad:
        return groups.zeros()
    return groups.wrap([g.detach() for g in _grads(loss, groups.params())])


def summed_gradient(objective: Objective, model: nn.Module, groups: ParamGroups,
                    batches: Iterable[Any], pseudo: bool = False) -> GroupVector:
    """Σ over every sample of every batch (and rank) of ∇θ loss: the reference gradient v."""
    with influence_mode(model, groups):
        total = groups.zeros()
        for batch in batches:
            total = total + loss_grad(objective, model, groups, batch, pseudo)
    return all_reduce_sum_(total)


def hvp(objective: Objective, model: nn.Module, groups: ParamGroups, batch: Any,
        vec: GroupVector, reduction: str = 'mean') -> GroupVector:
    """H·vec for the Hessian of the batch's ``mean`` (or ``sum``) per-sample loss."""
    losses = objective.per_sample_loss(model, batch, pseudo=False)
    if not losses.requires_grad:
        return groups.zeros()
    loss = losses.mean() if reduction == 'mean' else losses.sum()
    params = groups.params()
    gs = _grads(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(gs, vec.tensors()) if g.requires_grad)
    if not isinstance(dot, Tensor) or not dot.requires_grad:
        return groups.zeros()
    return groups.wrap([h.detach() for h in _grads(dot, params)])


def _projections(losses: Tensor, groups: ParamGroups, vec: GroupVector) -> Optional[Tensor]:
    """``[⟨∇θ L_i, vec⟩]`` from a dummy weight u per sample: ⟨∇θ Σ u_i L_i, vec⟩ is linear in
    u and its gradient in u is the per-sample projection. None when θ is not in the graph.
    Keeps the graph of ``losses`` for one more backward."""
    u = torch.ones_like(losses, requires_grad=True)
    gs = _grads(losses, groups.params(), create_graph=True, grad_outputs=u)
    dot = sum((g * v).sum() for g, v in zip(gs, vec.tensors()) if g.requires_grad)
    if not isinstance(dot, Tensor) or not dot.requires_grad:
        return None
    (du,) = torch.autograd.grad(dot, u, retain_graph=True)
    return du.detach()


def fisher_vp(objective: Objective, model: nn.Module, groups: ParamGroups, batch: Any,
              vec: GroupVector, reduction: str = 'mean') -> GroupVector:
    """F·vec for the empirical Fisher F = mean (or sum) of g_i g_iᵀ, g_i = ∇θ L_i.

    Positive semi-definite where the Hessian of a non-convex loss (focal loss) is not, so
    solvers converge. Σ_i ⟨g_i, vec⟩ g_i is one more backward through the projections' graph.
    """
    losses = objective.per_sample_loss(model, batch, pseudo=False)
    proj = _projections(losses, groups, vec) if losses.requires_grad else None
    if proj is None:
        return groups.zeros()
    if reduction == 'mean':
        proj = proj / losses.shape[0]
    return groups.wrap([t.detach() for t in _grads(losses, groups.params(), grad_outputs=proj)])


def per_sample_grads(objective: Objective, model: nn.Module, groups: ParamGroups, batch: Any,
                     pseudo: bool = False) -> Tensor:
    """``[B, |θ|]`` float64 rows ∇θ L_i, in :meth:`ParamGroups.params` order.

    One batched forward, then one backward per sample through the kept graph: θ is the last
    layers, so each backward is a head's worth of work. Samples are independent (UUIC), so
    row i is sample i's own gradient whatever else is in the batch.
    """
    losses = objective.per_sample_loss(model, batch, pseudo=pseudo)
    params = groups.params()
    rows = torch.zeros(losses.shape[0], groups.numel(), dtype=torch.float64,
                       device=params[0].device)
    if not losses.requires_grad:
        return rows
    for i in range(losses.shape[0]):
        gs = _grads(losses[i], params, retain_graph=i + 1 < losses.shape[0])
        rows[i] = torch.cat([g.reshape(-1) for g in gs]).double()
    return rows


def directional_derivatives(objective: Objective, model: nn.Module, groups: ParamGroups,
                            batch: Any, vec: GroupVector, pseudo: bool = True) -> Tensor:
    """``[⟨∇θ L_i, vec⟩ for i in batch]`` from one batched pass (see :func:`_projections`):
    two backward passes for the whole batch, and no per-sample gradient is ever stored.
    """
    return loss_projections(objective.per_sample_loss(model, batch, pseudo=pseudo), groups,
                            vec)


def loss_projections(losses: Tensor, groups: ParamGroups, vec: GroupVector) -> Tensor:
    """``[⟨∇θ losses_i, vec⟩]`` in float64 for any 1-D loss vector (samples, or parts of
    samples), from one batched pass; 0 where θ is not in the graph."""
    proj = _projections(losses, groups, vec) if losses.requires_grad else None
    if proj is None:
        return torch.zeros(losses.shape[0], dtype=torch.float64)
    return proj.double()
