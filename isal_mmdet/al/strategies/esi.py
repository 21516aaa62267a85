"""ESI: the expected squared influence of an image's label (see ``influence.expected``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from ...detection import detector_param_groups
from ...detection.esi import DirectionalHead, check_esi_model, check_esi_model_cfg
from ...influence import GroupVector, ParamGroups
from ...influence.expected import aggregate_esi
from ...registry import STRATEGIES
from ..arguments import Count, Curvature, ParamGroupsSpec, SolverSpec
from .base import SelectionContext
from .influence_base import InfluenceStrategy, flag_uninformative


@STRATEGIES.register_module(name='esi')
@STRATEGIES.register_module()
class ESI(InfluenceStrategy):
    """ISAL's s = H⁻¹v, scored by E_y⟨s, g_z(y)⟩² over the model's own label distribution;
    largest first. No pseudo boxes, no threshold, no backward per pool image.

    Args:
        solver, curvature, param_groups, reference_size: s = H⁻¹v, as ISAL's
            (:class:`InfluenceStrategy`).
        box_term: add the L1 box term Σ_a q_a Σ_coords j² (q_a: the anchor's best class
            probability); ``False`` for a box loss other than L1.
    """
    higher_is_better = True
    # the expectation itself: every anchor, no squared mean (research variants change them)
    mean_term: bool = False
    top_k: Optional[int] = None

    def __init__(self, solver: SolverSpec = None, curvature: Curvature = 'fisher',
                 param_groups: ParamGroupsSpec = None, reference_size: Optional[Count] = None,
                 box_term: bool = True):
        super().__init__(solver, curvature, param_groups, reference_size)
        self.box_term = box_term
        self._head: Optional[DirectionalHead] = None

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        check_esi_model_cfg(model_cfg, self.box_term)

    def direction(self, ctx: SelectionContext, groups: ParamGroups) -> GroupVector:
        """s = H⁻¹v, the direction every image's label is measured along."""
        return self.s_test(ctx, self.objective(ctx), groups)

    def score(self, ctx):
        groups = detector_param_groups(ctx.model, self.param_groups)
        check_esi_model(ctx.model, self.box_term)  # refuse before the costly v and s
        s = self.direction(ctx, groups)
        flag_uninformative(ctx, type(self).__name__)
        self._head = DirectionalHead(ctx.model, groups, s, self.box_term)
        ctx.info['esi'] = dict(mean_term=self.mean_term, box_term=self.box_term,
                               top_k=self.top_k)
        try:
            return super().score(ctx)
        finally:
            self._head = None

    def score_batch(self, ctx, batch):
        return [aggregate_esi(var, mean, self.mean_term, self.top_k)
                for var, mean in self._head.terms(batch)]
