"""Gradients, Hessian-vector products (Pearlmutter) and per-sample directional derivatives."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, List, Sequence

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
           grad_outputs: Any = None) -> List[Tensor]:
    gs = torch.autograd.grad(out, params, grad_outputs=grad_outputs, create_graph=create_graph,
                             allow_unused=True)
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


def fisher_vp(objective: Objective, model: nn.Module, groups: ParamGroups, batch: Any,
              vec: GroupVector, reduction: str = 'mean') -> GroupVector:
    """F·vec for the empirical Fisher F = mean (or sum) of g_i g_iᵀ, g_i = ∇θ L_i.

    Positive semi-definite where the Hessian of a non-convex loss (focal loss) is not, so
    solvers converge. The per-sample ⟨g_i, vec⟩ come from :func:`directional_derivatives`'
    dummy-weight trick; Σ_i ⟨g_i, vec⟩ g_i is one more backward through the same graph.
    """
    losses = objective.per_sample_loss(model, batch, pseudo=False)
    if not losses.requires_grad:
        return groups.zeros()
    u = torch.ones_like(losses, requires_grad=True)
    params = groups.params()
    gs = _grads(losses, params, create_graph=True, grad_outputs=u)
    dot = sum((g * v).sum() for g, v in zip(gs, vec.tensors()) if g.requires_grad)
    if not isinstance(dot, Tensor) or not dot.requires_grad:
        return groups.zeros()
    (proj,) = torch.autograd.grad(dot, u, retain_graph=True)
    if reduction == 'mean':
        proj = proj / losses.shape[0]
    return groups.wrap([t.detach() for t in _grads(losses, params, grad_outputs=proj.detach())])


def directional_derivatives(objective: Objective, model: nn.Module, groups: ParamGroups,
                            batch: Any, vec: GroupVector, pseudo: bool = True) -> Tensor:
    """``[⟨∇θ L_i, vec⟩ for i in batch]`` from one batched pass.

    With ``u`` a dummy weight per sample, ``⟨∇θ Σ u_i L_i, vec⟩`` is linear in ``u`` and its
    gradient in ``u`` is exactly the per-sample projection: two backward passes for the whole
    batch, and no per-sample gradient is ever stored.
    """
    losses = objective.per_sample_loss(model, batch, pseudo=pseudo)
    if not losses.requires_grad:
        return torch.zeros(losses.shape[0], dtype=torch.float64)
    u = torch.ones_like(losses, requires_grad=True)
    params = groups.params()
    gs = _grads(losses, params, create_graph=True, grad_outputs=u)
    dot = sum((g * v).sum() for g, v in zip(gs, vec.tensors()) if g.requires_grad)
    if not isinstance(dot, Tensor) or not dot.requires_grad:
        return torch.zeros(losses.shape[0], dtype=torch.float64)
    (du,) = torch.autograd.grad(dot, u)
    return du.detach().double()
