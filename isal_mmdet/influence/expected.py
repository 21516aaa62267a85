"""Expected squared influence (ESI) of a label not yet seen, in closed form.

UUIC's signed score −⟨s, g_z⟩ labels z with the model's own predictions, whose expected
likelihood gradient is zero: it measures self-training, not what a human label adds. ESI
values the label instead: E_{y∼p_θ(·|z)} ⟨s, g_z(y)⟩², how far z's true label would move the
reference loss to first order, whichever way.

For a dense head every logit x is linear in its last layer's weights, so ⟨s, ∂x/∂θ⟩ (the
*directional logit* ``j``) is that layer run with s as its weights. Each anchor–class target
is Bernoulli(p), each anchor is a positive with probability q, and a positive's box gradient
is ±1 per coordinate (L1, Laplace noise around the prediction); taking them independent,

    ESI = (Σ m)² + Σ_ac p(1−p)(d₁−d₀)² j_ac² + Σ_a q_a Σ_coords j_a,coord²,
    m_ac = (p d₁ + (1−p) d₀) j_ac,

with d₁, d₀ the loss's derivative in the logit for target 1 and 0. Pure torch, no mmdet.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor


def focal_logit_grads(logits: Tensor, alpha: float = 0.25,
                      gamma: float = 2.0) -> Tuple[Tensor, Tensor]:
    """``(d₁, d₀)``: ∂/∂x of the sigmoid focal loss (weight not detached, as mmdet's
    ``py_sigmoid_focal_loss``) for target 1 and 0. ``gamma=0, alpha=0.5`` is BCE / 2."""
    p = logits.sigmoid()
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    d1 = alpha * (1 - p).pow(gamma) * (gamma * p * log_p - (1 - p))
    d0 = (1 - alpha) * p.pow(gamma) * (p - gamma * (1 - p) * log_q)
    return d1, d0


def esi_terms(logits: Tensor, cls_dir: Tensor, box_dir: Optional[Tensor] = None,
              alpha: float = 0.25, gamma: float = 2.0, cls_weight: float = 1.0,
              box_weight: float = 1.0) -> Tuple[Tensor, Tensor]:
    """Per-anchor pieces of ESI for one image.

    Args:
        logits, cls_dir: ``[A, K]`` class logits and their directional derivatives along s.
        box_dir: ``[A, C]`` directional derivatives of the box outputs, or ``None``.
        cls_weight, box_weight: the losses' ``loss_weight``.

    Returns:
        ``(variance [A], mean [A])``: each anchor's classification variance plus box term,
        and its classification mean Σ_k m_ak (ESI's first term is the square of their sum).
    """
    logits = logits.double()
    d1, d0 = focal_logit_grads(logits, alpha, gamma)
    p = logits.sigmoid()
    j = cls_dir.double() * cls_weight
    variance = (p * (1 - p) * (d1 - d0).square() * j.square()).sum(-1)
    mean = ((p * d1 + (1 - p) * d0) * j).sum(-1)
    if box_dir is not None:
        q = p.max(-1).values
        variance = variance + q * (box_dir.double() * box_weight).square().sum(-1)
    return variance, mean


def aggregate_esi(variance: Tensor, mean: Tensor, mean_term: bool = False,
                  top_k: Optional[int] = None) -> float:
    """An image's ESI from its anchors: all of them (``top_k=None``: the expectation itself),
    or its ``top_k`` anchors with the largest variance (so one busy region is not outweighed
    by many faint ones). ``mean_term`` adds (Σ m)², the squared expected gradient."""
    if top_k is not None and len(variance) > top_k:
        keep = variance.topk(top_k).indices
        variance, mean = variance[keep], mean[keep]
    total = variance.sum()
    if mean_term:
        total = total + mean.sum().square()
    return float(total)
