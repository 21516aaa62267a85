"""s_test = inverse_hvp ∘ test_loss_grad, composed as torch-influence does: every option is an
argument (which objective gives v, which gives the curvature, which solver), so nothing is
switched on a shared objective and back."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from torch import nn

from .autograd_ops import summed_gradient
from .curvature import Curvature
from .objective import Objective
from .params import ParamGroups
from .solvers import InverseHVP, SolveInfo, build_solver
from .vector import GroupVector

SolverSpec = Union[str, Mapping[str, Any], InverseHVP]


class STest(NamedTuple):
    """s = H⁻¹v, with the solve's record and ‖v‖ (a zero v makes every score zero)."""
    s: GroupVector
    info: SolveInfo
    v_norm: float


def inverse_hvp(v: GroupVector, objective: Objective, model: nn.Module, groups: ParamGroups,
                labelled: Sequence[Any], solver: SolverSpec,
                curvature: str = 'fisher') -> Tuple[GroupVector, SolveInfo]:
    """``(s, info)``: ``solver`` applied to v with the ``curvature`` of ``objective`` on
    ``labelled``."""
    return build_solver(solver).solve(v, Curvature(objective, model, groups, labelled,
                                                   kind=curvature))


def stest(objective: Objective, model: nn.Module, groups: ParamGroups,
          reference: Iterable[Any], labelled: Sequence[Any], solver: SolverSpec,
          curvature: str = 'fisher', curvature_objective: Optional[Objective] = None) -> STest:
    """s = H⁻¹v, v the summed loss gradient of ``objective`` over the ``reference`` batches,
    H the curvature of ``curvature_objective`` (default: ``objective``) on ``labelled``.
    Eight arguments: the two compositions' (v and H⁻¹) inputs, kept flat as torch-influence's."""
    v = summed_gradient(objective, model, groups, reference)
    s, info = inverse_hvp(v, curvature_objective or objective, model, groups, labelled, solver,
                          curvature)
    return STest(s, info, v.norm())
