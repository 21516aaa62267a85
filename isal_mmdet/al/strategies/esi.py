"""ESI: the expected squared influence of an image's label (see ``influence.expected``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from ...detection import detector_param_groups
from ...detection.esi import DirectionalHead, check_esi_model, check_esi_model_cfg
from ...influence.expected import aggregate_esi
from ...registry import STRATEGIES
from .base import Strategy
from .isal import ISAL, flag_uninformative


@STRATEGIES.register_module(name='esi')
@STRATEGIES.register_module()
class ESI(ISAL):
    """ISAL's s = H⁻¹v, scored by E_y⟨s, g_z(y)⟩² over the model's own label distribution;
    largest first. No pseudo boxes, no threshold, no backward per pool image.

    Args:
        solver, curvature, param_groups, reference_size, normaliser, reference_terms: as
            ISAL, for v and s.
        mean_term: add (Σ m)², the squared expected gradient (for the focal loss it is not
            zero; off by default, see the README).
        box_term: add the L1 box term Σ_a q_a Σ_coords j² (q_a: the anchor's best class
            probability).
        top_k: ``None``: sum over every anchor (the expectation itself); an integer: over the
            ``top_k`` anchors with the largest terms.
    """
    higher_is_better = True

    def __init__(self, solver: Any = None, curvature: str = 'fisher',
                 param_groups: Optional[Dict[str, str]] = None,
                 reference_size: Optional[int] = None, normaliser: str = 'image',
                 reference_terms: str = 'all', mean_term: bool = False,
                 box_term: bool = True, top_k: Optional[int] = None):
        super().__init__(solver=solver, param_groups=param_groups, curvature=curvature,
                         reference_size=reference_size, normaliser=normaliser,
                         reference_terms=reference_terms)
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f'ESI.top_k must be a positive integer or None, got {top_k!r}')
        self.higher_is_better = True
        self.mean_term, self.box_term, self.top_k = bool(mean_term), bool(box_term), top_k
        self._head: Optional[DirectionalHead] = None

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        super().check_model(model_cfg)
        check_esi_model_cfg(model_cfg, self.box_term)

    def score(self, ctx):
        groups = detector_param_groups(ctx.model, self.param_groups)
        check_esi_model(ctx.model, self.box_term)  # refuse before the costly v and s
        s = self.s_test(ctx, self.objective(ctx), groups)
        flag_uninformative(ctx, None, self.score_thr)
        self._head = DirectionalHead(ctx.model, groups, s, self.box_term)
        ctx.info['esi'] = dict(mean_term=self.mean_term, box_term=self.box_term,
                               top_k=self.top_k)
        try:
            return Strategy.score(self, ctx)
        finally:
            self._head = None

    def score_batch(self, ctx, batch):
        return [aggregate_esi(var, mean, self.mean_term, self.top_k)
                for var, mean in self._head.terms(batch)]
