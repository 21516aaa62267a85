"""Task-agnostic influence core: pure torch, no mmdet.

Pieces: :class:`ParamGroups` choose θ, an :class:`Objective` turns batches into per-sample
losses, :class:`Curvature` exposes the training Hessian through HVPs, solvers turn the
reference gradient v into ``s = H⁻¹v`` (:func:`stest` composes the two), and
:func:`influence_scores` projects samples on s (:func:`part_influence_scores`: parts of
samples, such as a detection's boxes; :func:`part_esi_scores`: their expected squared
influence over the answers to them).
"""
from .autograd_ops import (directional_derivatives, fisher_vp, hvp, influence_mode, loss_grad,
                           loss_projections, per_sample_grads, summed_gradient)
from .curvature import Curvature
from .objective import Objective
from .params import ParamGroups
from .scores import influence_scores, iter_influence, part_esi_scores, part_influence_scores
from .solvers import (CG, SOLVERS, Exact, Identity, InverseHVP, LiSSA, SolveInfo, Woodbury,
                      block_spectrum, build_solver, power_iteration)
from .stest import STest, inverse_hvp, stest
from .vector import GroupVector

__all__ = [
    'CG', 'Curvature', 'Exact', 'GroupVector', 'Identity', 'InverseHVP', 'LiSSA', 'Objective',
    'ParamGroups', 'SOLVERS', 'STest', 'SolveInfo', 'Woodbury', 'block_spectrum',
    'build_solver', 'directional_derivatives', 'fisher_vp', 'hvp', 'influence_mode',
    'influence_scores', 'inverse_hvp', 'iter_influence', 'loss_grad', 'loss_projections',
    'part_esi_scores', 'part_influence_scores', 'per_sample_grads', 'power_iteration', 'stest',
    'summed_gradient'
]
