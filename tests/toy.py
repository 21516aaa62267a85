"""Small convex and non-convex models with explicit references, shared by core tests."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from isal_mmdet.influence import Objective


class TensorObjective(Objective):
    """Samples are ``(id, x, y)``; the loss is per-sample cross-entropy (or BCE)."""

    def __init__(self, binary: bool = False):
        self.binary = binary

    def collate(self, samples):
        ids = [s[0] for s in samples]
        return ids, torch.stack([s[1] for s in samples]), torch.stack([s[2] for s in samples])

    def per_sample_loss(self, model, batch, pseudo=False):
        _, x, y = batch
        out = model(x)
        if pseudo:  # expected loss under the model's own hard prediction
            y = (out.squeeze(-1) > 0).to(out.dtype) if self.binary else out.argmax(-1)
        if self.binary:
            return F.binary_cross_entropy_with_logits(out.squeeze(-1), y.to(out.dtype),
                                                      reduction='none')
        return F.cross_entropy(out, y, reduction='none')

    def sample_ids(self, batch):
        return batch[0]


def make_data(n: int, d: int = 5, classes: int = 3, seed: int = 0, binary: bool = False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, 1 if binary else classes, generator=g, dtype=torch.float64)
    logits = x @ w + 0.5 * torch.randn(n, w.shape[1], generator=g, dtype=torch.float64)
    y = (logits.squeeze(-1) > 0).double() if binary else logits.argmax(-1)
    return [(i, x[i], y[i]) for i in range(n)]


def mlp(d: int = 5, hidden: int = 6, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, classes)).double()


def linear(d: int = 5, classes: int = 3, seed: int = 0, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(d, classes, bias=bias).double()


def fit(model: nn.Module, objective: Objective, data, weight_decay: float = 0.0,
        steps: int = 200) -> nn.Module:
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=steps, tolerance_grad=1e-12,
                            tolerance_change=1e-14, line_search_fn='strong_wolfe')
    batch = objective.collate(data)

    def closure():
        opt.zero_grad()
        loss = objective.per_sample_loss(model, batch).mean()
        loss = loss + 0.5 * weight_decay * sum((p ** 2).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    return model


def explicit_hessian(model: nn.Module, objective: Objective, data, params) -> torch.Tensor:
    """Mean-loss Hessian over the flattened ``params`` via torch.func."""
    names = {id(p): n for n, p in model.named_parameters()}
    keys = [names[id(p)] for p in params]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    fixed = {n: p.detach() for n, p in model.named_parameters()}
    batch = objective.collate(data)

    def f(flat):
        ps = dict(fixed)
        for k, chunk, shape in zip(keys, flat.split(sizes), shapes):
            ps[k] = chunk.view(shape)
        wrapper = _Functional(model, ps)
        return objective.per_sample_loss(wrapper, batch).mean()

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    return torch.func.hessian(f)(flat)


class _Functional(nn.Module):
    def __init__(self, model, params):
        super().__init__()
        self.model, self.params = model, params

    def forward(self, x):
        return torch.func.functional_call(self.model, self.params, (x,))
