"""Task-agnostic influence core: pure torch, no mmdet.

Pieces: :class:`ParamGroups` choose θ, an :class:`Objective` turns batches into per-sample
losses, :class:`Curvature` exposes the training Hessian through HVPs, solvers turn the
reference gradient v into ``s = H⁻¹v`` (:func:`stest` composes the two), and
:func:`influence_scores` projects samples on s (an objective's
:meth:`~Objective.per_part_loss` lets research score parts of samples, such as a detection's
boxes: :mod:`isal_mmdet.study.box.part_scores`).
"""
from .autograd_ops import (directional_derivatives, fisher_vp, hvp, influence_mode, loss_grad,
                           loss_projections, per_sample_grads, summed_gradient)
from .curvature import Curvature
from .objective import Objective
from .params import ParamGroups
from .scores import influence_scores, iter_influence
from .solvers import (CG, SOLVERS, Exact, Identity, InverseHVP, LiSSA, SolveInfo, Woodbury,
                      block_spectrum, build_solver, power_iteration)
from .stest import STest, inverse_hvp, stest
from .vector import GroupVector

__all__ = [
    'CG', 'Curvature', 'Exact', 'GroupVector', 'Identity', 'InverseHVP', 'LiSSA', 'Objective',
    'ParamGroups', 'SOLVERS', 'STest', 'SolveInfo', 'Woodbury', 'block_spectrum',
    'build_solver', 'directional_derivatives', 'fisher_vp', 'hvp', 'influence_mode',
    'influence_scores', 'inverse_hvp', 'iter_influence', 'loss_grad', 'loss_projections',
    'per_sample_grads', 'power_iteration', 'stest', 'summed_gradient'
]
