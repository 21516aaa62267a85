"""What ISAL and ESI share: s = H⁻¹v, v on the reference set and H on the labelled set, and
the warning when the scores built on it carry little."""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Optional, Sequence

import torch

from ...datasets.al_subset import ActiveSubset
from ...detection import DetectionObjective, default_scales
from ...influence import GroupVector, ParamGroups, SolveInfo, build_solver, stest
from ..arguments import Count, Curvature, ParamGroupsSpec, SolverSpec
from .base import SelectionContext, Strategy

logger = logging.getLogger('isal_mmdet')

DEFAULT_SOLVER = dict(type='woodbury', num_samples=64)
# the Hessian has no low-rank form to solve exactly: CG, as before the exact Fisher solve
DEFAULT_HESSIAN_SOLVER = dict(type='cg', max_iter=30, num_samples=64)


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """A one-line error naming ``owner.name`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f'{owner}.{name} must be one of {sorted(choices)}, got {value!r}')


def flag_uninformative(ctx: SelectionContext, name: str, reasons: Sequence[str] = ()) -> None:
    """Warns, and records ``info['uninformative']``, when the scores carry little: for the
    strategy's own ``reasons``, or because v is zero."""
    reasons = list(reasons)
    v_norm = ctx.info.get('v_norm')
    if v_norm is not None and not v_norm > 1e-12:
        reasons.append(f'the reference gradient is {v_norm:.3g}')
    if reasons:
        ctx.info['uninformative'] = reasons
        logger.warning('%s selection carries little information: %s. Train the model longer, '
                       'or use random for this round.', name, '; '.join(reasons))


class InfluenceStrategy(Strategy):
    """A strategy scored along s = H⁻¹v.

    Args:
        solver: an s_test solver config (``dict(type='woodbury'|'cg'|'lissa'|'exact'|
            'identity', ...)``); default ``woodbury``: the exact Fisher solve on 64 labelled
            images (CG, 30 iterations, when G exceeds 1 GiB); with ``curvature='hessian'``,
            CG, 30 iterations on 64 images. LiSSA without ``scales`` takes the detector
            family's official scales, or, where there are none (RetinaNet), scales from a
            power iteration.
        curvature: ``'fisher'`` (empirical Fisher, PSD) or ``'hessian'`` (paper).
        param_groups: ``{group: regex}`` for θ; default: the detector family's preset.
        reference_size: ``None`` (paper): v sums the whole reference set; an integer: a
            seeded subset of that many reference images. v costs about one scoring pass per
            reference image, so a reference set larger than the pool (VOC2007 val: 2,510
            images) would cost more than scoring the pool.

    ``objective_type``: the losses v, H and the scores are taken of (the studies' variants
    use one with more options).
    """
    objective_type = DetectionObjective

    def __init__(self, solver: SolverSpec = None, curvature: Curvature = 'fisher',
                 param_groups: ParamGroupsSpec = None, reference_size: Optional[Count] = None):
        name = type(self).__name__
        if solver is None:
            solver = DEFAULT_SOLVER if curvature == 'fisher' else DEFAULT_HESSIAN_SOLVER
        self.solver_cfg = {'type': solver} if isinstance(solver, str) else dict(solver)
        try:
            build_solver(self.solver_cfg)  # a typo fails here, before any training
        except TypeError as e:
            raise ValueError(f'{name}.solver: {e}') from None
        if self.solver_cfg['type'] == 'woodbury' and curvature != 'fisher':
            raise ValueError(f"{name}.solver: woodbury solves the Fisher exactly; with "
                             f"curvature={curvature!r} use cg or lissa")
        self.curvature, self.param_groups = curvature, param_groups
        self.reference_size = reference_size

    def objective(self, ctx: SelectionContext, **options: Any) -> DetectionObjective:
        """The detection losses for v and H (``options``: :attr:`objective_type`'s)."""
        return self.objective_type(seed=ctx.seed, **options)

    def reference(self, ctx: SelectionContext) -> Any:
        """The reference set, or its seeded subset of ``reference_size`` images."""
        ref = ctx.reference
        if ref is None or len(ref) == 0:
            raise ValueError(f'{type(self).__name__} needs a non-empty reference set '
                             '(active_learning.reference)')
        if self.reference_size is None or len(ref) <= self.reference_size:
            return ref
        g = torch.Generator().manual_seed(ctx.seed)
        keep = sorted(torch.randperm(len(ref), generator=g)[:self.reference_size].tolist())
        ids = [ref.get_data_info(i)['img_id'] for i in keep]
        ctx.info['reference_images'] = len(ids)
        return ActiveSubset(ref, ids=ids)

    def solver(self, ctx: SelectionContext) -> Dict[str, Any]:
        """The solver config for this model and seed: LiSSA takes the detector family's
        scales and the selection's seed unless given."""
        cfg = dict(self.solver_cfg)
        if cfg['type'] == 'lissa':
            cfg.setdefault('scales', default_scales(ctx.model))
            cfg.setdefault('seed', ctx.seed)
        return cfg

    def record_solve(self, ctx: SelectionContext, info: SolveInfo, v_norm: float) -> None:
        """The solve and ‖v‖ in ``selection.json``'s info: check them before trusting s."""
        ctx.info['s_test'] = info.as_dict()
        ctx.info['v_norm'] = v_norm

    def s_test(self, ctx: SelectionContext, objective: DetectionObjective,
               groups: ParamGroups) -> GroupVector:
        """s = H⁻¹v with ``objective``'s losses for both v and H; recorded in ``ctx.info``."""
        reference = self.reference(ctx)
        s, info, v_norm = stest(objective, ctx.model, groups, ctx.loader(reference),
                                ctx.labelled, self.solver(ctx), self.curvature)
        self.record_solve(ctx, info, v_norm)
        return s
