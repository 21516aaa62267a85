"""The training-loss Hessian on a labelled set, seen only through HVPs."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import torch
from torch import nn

from .autograd_ops import fisher_vp, hvp, per_sample_grads
from .dist import all_reduce_sum_, all_reduce_tensor_, rank_and_world
from .objective import Objective
from .params import ParamGroups
from .vector import GroupVector


KINDS = {'hessian': hvp, 'fisher': fisher_vp}


class Curvature:
    """H = mean over samples of ∇²θ L_i on ``data`` (an indexable set of samples), or, with
    ``kind='fisher'``, the empirical Fisher mean g_i g_iᵀ (PSD: use it when the loss is not
    convex in θ and the Hessian is indefinite).

    ``num_hvps`` counts sample-level products (a batch of 8 counts 8), the unit used when
    solvers are compared; ``num_grads`` counts per-sample gradients (:meth:`gradient_rows`).
    """

    def __init__(self, objective: Objective, model: nn.Module, groups: ParamGroups,
                 data: Sequence[Any], collate: Optional[Callable[[List[Any]], Any]] = None,
                 kind: str = 'hessian'):
        if len(data) == 0:
            raise ValueError('the Hessian set is empty: no labelled sample to take curvature on')
        if kind not in KINDS:
            raise ValueError(f'curvature kind must be one of {sorted(KINDS)}, got {kind!r}')
        self.kind = kind
        self.product = KINDS[kind]
        self.objective = objective
        self.model = model
        self.groups = groups
        self.data = data
        self.collate = collate or objective.collate
        self.num_hvps = 0
        self.num_grads = 0

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices: Sequence[int]) -> Any:
        """The samples as one batch; a sample the dataset could not load (None) is left out,
        and None is returned when none is left."""
        items = [x for x in (self.data[int(i)] for i in indices) if x is not None]
        return self.collate(items) if items else None

    def hvp(self, vec: GroupVector, indices: Sequence[int]) -> GroupVector:
        """Mean-Hessian HVP on the given samples, on this rank only (a LiSSA step)."""
        self.num_hvps += len(indices)
        batch = self.batch(indices)
        if batch is None:
            return self.groups.zeros()
        return self.product(self.objective, self.model, self.groups, batch, vec, 'mean')

    def mean_hvp(self, vec: GroupVector, indices: Sequence[int], batch_size: int) -> GroupVector:
        """Mean-Hessian HVP over a fixed subset: fixed batches spread over ranks, summed in
        float64, so the result does not depend on the number of ranks (CG would amplify
        float32 summation-order differences)."""
        rank, world = rank_and_world()
        indices = list(indices)
        chunks = [indices[k:k + batch_size] for k in range(0, len(indices), batch_size)]
        total = self.groups.zeros().map(torch.Tensor.double)
        for chunk in chunks[rank::world]:
            self.num_hvps += len(chunk)
            batch = self.batch(chunk)
            if batch is not None:
                total = total + self.product(self.objective, self.model, self.groups, batch,
                                             vec, 'sum').map(torch.Tensor.double)
        all_reduce_sum_(total)
        dtypes = [p.dtype for p in self.groups.params()]
        mean = total.scale(1.0 / max(len(indices), 1))
        return self.groups.wrap([t.to(d) for t, d in zip(mean.tensors(), dtypes)])

    def gradient_rows(self, indices: Sequence[int], batch_size: int) -> torch.Tensor:
        """``[len(indices), |θ|]`` float64 per-sample gradients ∇θ L_i, so that the empirical
        Fisher on ``indices`` is ``GᵀG / len(indices)``.

        Each rank fills the rows of its share of fixed batches and the rest stay zero; the sum
        over ranks then adds only zeros to each row, so every rank gets the same matrix, bit
        for bit, whatever the number of ranks. A sample the dataset could not load keeps a
        zero row, as it adds nothing to :meth:`mean_hvp` either.
        """
        rank, world = rank_and_world()
        indices = list(indices)
        rows = torch.zeros(len(indices), self.groups.numel(), dtype=torch.float64,
                           device=self.groups.params()[0].device)
        for start in range(rank * batch_size, len(indices), world * batch_size):
            items = [self.data[int(i)] for i in indices[start:start + batch_size]]
            keep = [start + k for k, x in enumerate(items) if x is not None]
            self.num_grads += len(keep)
            if keep:
                batch = self.collate([x for x in items if x is not None])
                rows[keep] = per_sample_grads(self.objective, self.model, self.groups, batch)
        return all_reduce_tensor_(rows)

    def subset(self, num_samples: Optional[int], seed: int) -> List[int]:
        """A fixed, seeded subset of sample indices (all of them when ``num_samples`` is None)."""
        n = len(self.data)
        if num_samples is None or num_samples >= n:
            return list(range(n))
        g = torch.Generator().manual_seed(seed)
        return sorted(torch.randperm(n, generator=g)[:num_samples].tolist())
