"""Inverse-HVP solvers s ≈ H⁻¹v behind one interface: lissa, cg, woodbury, exact, identity."""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Type, Union

import torch

from .autograd_ops import influence_mode
from .curvature import Curvature
from .dist import all_reduce_scalar, all_reduce_sum_, rank_and_world
from .vector import GroupVector

logger = logging.getLogger(__name__)


@dataclass
class SolveInfo:
    """What a solve cost and whether it can be trusted."""
    method: str
    num_hvps: int = 0
    scales: Dict[str, float] = field(default_factory=dict)
    nan_resets: Dict[str, int] = field(default_factory=dict)
    diverged: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return dict(method=self.method, num_hvps=self.num_hvps, scales=self.scales,
                    nan_resets=self.nan_resets, diverged=self.diverged, **self.extra)


class InverseHVP:
    """``solve(v, curvature) -> (s, info)``; every rank returns the same s.

    ``repeats_samples``: the solver evaluates the curvature on the same samples again and
    again, so the objective may cache per-sample work for the solve (:meth:`Objective.cached`).
    """
    name = 'base'
    repeats_samples = True

    def solve(self, v: GroupVector, curv: Curvature) -> 'tuple[GroupVector, SolveInfo]':
        cache = curv.objective.cached() if self.repeats_samples else nullcontext()
        with influence_mode(curv.model, curv.groups), cache:
            start = curv.num_hvps
            s, info = self._solve(v, curv)
            info.num_hvps = curv.num_hvps - start
        return s, info

    def _solve(self, v: GroupVector, curv: Curvature) -> 'tuple[GroupVector, SolveInfo]':
        raise NotImplementedError


class Identity(InverseHVP):
    """s = v: the gradient-similarity ablation (no curvature)."""
    name = 'identity'
    repeats_samples = False

    def _solve(self, v, curv):
        return v.clone(), SolveInfo(self.name)


def _dominant(curv: Curvature, group: str, indices: List[int], batch_size: int, iters: int,
              seed: int, shift: float = 0.0) -> float:
    """Rayleigh quotient of the dominant (largest-magnitude) eigenvalue of ``H_g − shift·I``,
    H_g the mean curvature's diagonal block for ``group``, after ``iters`` power steps."""
    g = torch.Generator().manual_seed(seed)
    x = curv.groups.zeros()
    x.data[group] = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in x[group]]
    lam = 0.0
    for _ in range(iters):
        norm = GroupVector({group: x[group]}).norm()
        if norm == 0.0:
            return 0.0
        x = x.scale(1.0 / norm)
        hx = curv.mean_hvp(x, indices, batch_size)
        block = [h - shift * t for h, t in zip(hx[group], x[group])]
        lam = GroupVector({group: x[group]}).dot(GroupVector({group: block}))
        x = curv.groups.zeros()
        x.data[group] = block
    return lam


def power_iteration(curv: Curvature, group: str, indices: List[int], batch_size: int,
                    iters: int, seed: int) -> float:
    """Largest eigenvalue of the mean Hessian's diagonal block for ``group`` (0 when the
    dominant one is negative: LiSSA's scale needs only the positive side)."""
    return max(_dominant(curv, group, indices, batch_size, iters, seed), 0.0)


def block_spectrum(curv: Curvature, group: str, indices: List[int], batch_size: int = 8,
                   iters: int = 20, seed: int = 0) -> Dict[str, float]:
    """λ_max and λ_min of the block for ``group``: the dominant eigenvalue first, then the
    dominant one of the block shifted by it, which is the other end of the spectrum. A
    negative λ_min means the block is indefinite there, where LiSSA and CG need not converge."""
    first = _dominant(curv, group, indices, batch_size, iters, seed)
    other = first + _dominant(curv, group, indices, batch_size, iters, seed + 1, shift=first)
    return dict(lambda_max=max(first, other), lambda_min=min(first, other))


class LiSSA(InverseHVP):
    """Stochastic Neumann recursion, as in ISAL's official code.

    ``h ← v + (1−damp)·h − (H_t·h)/scale_g`` with H_t the Hessian of a random batch, per-group
    scales, and chains averaged. The fixed point is ``(H/scale + damp)⁻¹ v`` per group, i.e.
    ``scale·(H + damp·scale)⁻¹ v``: the paper does not divide by the scale afterwards
    (``divide_by_scale=False``); ``True`` gives ``(H + damp·scale)⁻¹ v``.

    It converges only when every scale exceeds λ_max/2 of its block. ``scales=None`` derives
    them by power iteration (``scale = margin·λ_max``); a block with zero curvature (an L1 box
    loss) gets scale 1 and converges to ``v/damp``. A block that turns NaN/inf is reset to v
    (paper behaviour) and counted; a block that ends above ``2·‖v‖/damp``, the bound for a PSD
    Hessian, is reported as diverged.
    """
    name = 'lissa'

    def __init__(self, scales: Optional[Mapping[str, float]] = None, damp: float = 0.01,
                 depth: int = 1000, num_chains: int = 1, batch_size: int = 1, seed: int = 0,
                 divide_by_scale: bool = False, margin: float = 1.5,
                 power_iters: int = 20, power_samples: int = 64):
        """The paper's knobs and the power iteration's, each settable from a config dict."""
        if depth < 1 or num_chains < 1 or batch_size < 1:
            raise ValueError('lissa: depth, num_chains and batch_size must be >= 1')
        if not 0.0 <= damp < 1.0:
            raise ValueError(f'lissa: damp must be in [0, 1), got {damp}')
        self.scales = dict(scales) if scales is not None else None
        self.damp, self.depth, self.num_chains = damp, depth, num_chains
        self.batch_size, self.seed = batch_size, seed
        self.divide_by_scale, self.margin = divide_by_scale, margin
        self.power_iters, self.power_samples = power_iters, power_samples

    def estimate_scales(self, curv: Curvature) -> Dict[str, float]:
        idx = curv.subset(self.power_samples, self.seed)
        scales = {}
        for k, group in enumerate(curv.groups.names()):
            lam = power_iteration(curv, group, idx, max(self.batch_size, 8), self.power_iters,
                                  self.seed + k)
            scales[group] = self.margin * lam if lam > 1e-12 else 1.0
        return scales

    def _solve(self, v, curv):
        groups = curv.groups.names()
        if self.scales is None:
            scales = self.estimate_scales(curv)
        else:
            missing = set(groups) - set(self.scales)
            if missing:
                raise ValueError(f'lissa: scales has no entry for group(s) {sorted(missing)}')
            scales = {g: float(self.scales[g]) for g in groups}
        inv_scale = {g: 1.0 / scales[g] for g in groups}
        rank, world = rank_and_world()
        resets = {g: 0 for g in groups}
        total = curv.groups.zeros()
        n = len(curv)
        for chain in range(rank, self.num_chains, world):
            gen = torch.Generator().manual_seed(self.seed * 100003 + chain)
            h = v.clone()
            for _ in range(self.depth):
                idx = torch.randperm(n, generator=gen)[:self.batch_size].tolist()
                hv = curv.hvp(h, idx)
                h = v + h.scale(1.0 - self.damp) - hv.scale(inv_scale)
                for g, ok in h.group_isfinite().items():
                    if not ok:
                        h.data[g] = [t.clone() for t in v[g]]
                        resets[g] += 1
            total = total + h
        all_reduce_sum_(total)
        s = total.scale(1.0 / self.num_chains)
        for g in groups:
            resets[g] = int(all_reduce_scalar(resets[g]))
        bound = {g: 2.0 * nv / self.damp for g, nv in v.group_norm().items()}
        diverged = [g for g, ns in s.group_norm().items()
                    if resets[g] > 0 or ns > bound[g] * (1 + 1e-6)]
        if diverged:
            logger.warning('LiSSA diverged in group(s) %s (scales %s, NaN resets %s): raise '
                           'their scale above λ_max/2 or let scales=None estimate them',
                           diverged, {g: scales[g] for g in diverged}, resets)
        if self.divide_by_scale:
            s = s.scale(inv_scale)
        return s, SolveInfo(self.name, scales=scales, nan_resets=resets, diverged=diverged)


class CG(InverseHVP):
    """Conjugate gradient on ``(H + damp·I) s = v`` with H the mean Hessian of a fixed subset."""
    name = 'cg'

    def __init__(self, damp: float = 0.01, max_iter: int = 100, tol: float = 1e-6,
                 num_samples: Optional[int] = None, batch_size: int = 8, seed: int = 0):
        self.damp, self.max_iter, self.tol = damp, max_iter, tol
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed

    def _solve(self, v, curv):
        idx = curv.subset(self.num_samples, self.seed)

        def op(x: GroupVector) -> GroupVector:
            return curv.mean_hvp(x, idx, self.batch_size) + x.scale(self.damp)

        x = v.zeros_like()
        r = v.clone()
        p = r.clone()
        rr = r.dot(r)
        v_norm = v.norm()
        iters = 0
        for iters in range(1, self.max_iter + 1):
            if rr ** 0.5 <= self.tol * v_norm:
                iters -= 1
                break
            ap = op(p)
            pap = p.dot(ap)
            if pap <= 0:
                logger.warning('CG met non-positive curvature (pᵀ(H+λ)p = %.3g); stopping at '
                               'iteration %d: raise damp', pap, iters)
                break
            alpha = rr / pap
            x = x + p.scale(alpha)
            r = r - ap.scale(alpha)
            rr_new = r.dot(r)
            p = r + p.scale(rr_new / rr)
            rr = rr_new
        rel = rr ** 0.5 / v_norm if v_norm > 0 else 0.0
        return x, SolveInfo(self.name, extra=dict(iterations=iters, relative_residual=rel,
                                                  num_samples=len(idx)))


class Exact(InverseHVP):
    """Explicit Hessian and ``torch.linalg.solve``; for small θ (tests, tiny models)."""
    name = 'exact'

    def __init__(self, damp: float = 0.01, num_samples: Optional[int] = None,
                 batch_size: int = 8, seed: int = 0, max_params: int = 20000):
        self.damp, self.num_samples, self.batch_size = damp, num_samples, batch_size
        self.seed, self.max_params = seed, max_params

    def hessian(self, curv: Curvature) -> torch.Tensor:
        n = curv.groups.numel()
        if n > self.max_params:
            raise ValueError(f'exact: θ has {n} parameters (> max_params={self.max_params}); '
                             'use cg or lissa')
        idx = curv.subset(self.num_samples, self.seed)
        template = curv.groups.zeros()
        cols = []
        for j in range(n):
            e = torch.zeros(n, dtype=torch.float64)
            e[j] = 1.0
            cols.append(curv.mean_hvp(template.unflatten(e), idx, self.batch_size)
                        .flatten().double())
        h = torch.stack(cols, dim=1)
        return 0.5 * (h + h.T)

    def _solve(self, v, curv):
        h = self.hessian(curv)
        a = h + self.damp * torch.eye(h.shape[0], dtype=torch.float64)
        s = torch.linalg.solve(a, v.flatten().double())
        return v.unflatten(s), SolveInfo(self.name)


class Woodbury(InverseHVP):
    """Exact ``(F + damp·I)⁻¹v`` for the empirical Fisher ``F = GᵀG/n`` of n labelled samples
    (rows of G: per-sample gradients), by the Woodbury identity

        (F + λI)⁻¹v = (v − Gᵀ(nλI + GGᵀ)⁻¹Gv) / λ

    n per-sample gradients (a forward and a backward each) and an n×n Cholesky solve in
    float64, with no iteration: CG needs a Fisher product (a forward and three backward
    passes over the whole subset) per iteration. Same subset (``num_samples``, ``seed``) and
    damping as :class:`CG`, so both solve the same system.

    Every rank holds all of G, n·|θ|·8 bytes; above ``max_bytes`` the solve falls back to CG
    (``fallback_iters`` iterations) with a warning. Fisher only: the Hessian has no such
    low-rank form. ``batch_size`` 1 by default: each per-sample backward through a batched
    head costs as much as the whole batch's, and batch 1 measured faster and smaller on CPU
    (docs/benchmarks.md).
    """
    name = 'woodbury'
    repeats_samples = False

    def __init__(self, damp: float = 0.01, num_samples: Optional[int] = 64,
                 batch_size: int = 1, seed: int = 0, max_bytes: int = 2 ** 30,
                 fallback_iters: int = 30):
        if damp <= 0:
            raise ValueError(f'woodbury: damp must be > 0, got {damp}')
        self.damp, self.num_samples, self.batch_size = damp, num_samples, batch_size
        self.seed, self.max_bytes, self.fallback_iters = seed, max_bytes, fallback_iters

    def _solve(self, v, curv):
        if curv.kind != 'fisher':
            raise ValueError(f"the woodbury solver needs curvature='fisher', got "
                             f"{curv.kind!r}: use cg or lissa for the Hessian")
        idx = curv.subset(self.num_samples, self.seed)
        n, numel = len(idx), curv.groups.numel()
        extra = dict(n=n, params=numel, bytes=8 * n * numel, max_bytes=self.max_bytes,
                     fell_back=False)
        if extra['bytes'] > self.max_bytes:
            logger.warning('woodbury: G would take %.3g GiB (%d samples × %d parameters × 8 '
                           'bytes) > max_bytes %.3g GiB; solving by CG, %d iterations',
                           extra['bytes'] / 2 ** 30, n, numel, self.max_bytes / 2 ** 30,
                           self.fallback_iters)
            with curv.objective.cached():
                s, info = CG(self.damp, self.fallback_iters, num_samples=self.num_samples,
                             seed=self.seed)._solve(v, curv)
            info.extra.update(extra, fell_back=True)
            return s, info
        start = curv.num_grads
        g = curv.gradient_rows(idx, self.batch_size)
        vf = v.flatten().to(g)
        system = g @ g.T
        system.diagonal().add_(n * self.damp)
        c = torch.cholesky_solve((g @ vf)[:, None], torch.linalg.cholesky(system))[:, 0]
        s = (vf - g.T @ c) / self.damp
        extra['per_sample_grads'] = curv.num_grads - start
        return v.unflatten(s), SolveInfo(self.name, extra=extra)


SOLVERS: Dict[str, Type[InverseHVP]] = {
    c.name: c for c in (LiSSA, CG, Woodbury, Exact, Identity)}


def build_solver(cfg: Union[str, Mapping[str, Any], InverseHVP]) -> InverseHVP:
    """``'cg'`` or ``dict(type='lissa', depth=...)`` → a solver."""
    if isinstance(cfg, InverseHVP):
        return cfg
    cfg = {'type': cfg} if isinstance(cfg, str) else dict(cfg)
    kind = cfg.pop('type', None)
    if kind not in SOLVERS:
        raise ValueError(f'unknown s_test solver {kind!r}; choose one of {sorted(SOLVERS)}')
    return SOLVERS[kind](**cfg)
