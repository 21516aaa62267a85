"""ISAL: influence selection with UUIC pseudo gradients, and its gradient-similarity
ablation."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from ...detection import DetectionObjective, detector_param_groups
from ...influence import influence_scores
from ...influence.dist import broadcast_object, gather_objects
from ...registry import STRATEGIES
from ..arguments import Count, Curvature, ParamGroupsSpec, Score, SolverSpec
from .base import SelectionContext
from .influence_base import InfluenceStrategy, flag_uninformative


def record_pseudo_boxes(ctx: SelectionContext, counts: Sequence[int], max_per_img: int,
                        score_thr: float) -> List[str]:
    """Records the pseudo boxes per image over every rank's ``counts``, and returns why the
    scores carry little, if they do: most pool images have no pseudo box, so their score is
    a background-only loss."""
    counts = [c for part in gather_objects(list(counts)) or [counts] for c in part]
    n = max(len(counts), 1)
    ctx.info['pseudo_boxes_per_image'] = dict(
        mean=sum(counts) / n, max=max(counts, default=0),
        at_cap=sum(c >= max_per_img for c in counts) / n)
    empty = sum(c == 0 for c in counts) / n
    if counts and empty > 0.5:
        return [f'{empty:.0%} of pool images have no pseudo box at score >= {score_thr} '
                '(lower score_thr)']
    return []


@STRATEGIES.register_module(name='isal')
@STRATEGIES.register_module()
class ISAL(InfluenceStrategy):
    """Influence selection: I(z) = −⟨H⁻¹v, g_z⟩ with UUIC pseudo gradients; most negative
    first.

    The defaults (empirical Fisher, solved exactly) are what worked best on BCCD
    (docs/design.md): the focal loss's Hessian is indefinite, so the paper's LiSSA diverges
    there. The paper's own settings: ``curvature='hessian', solver='lissa'``.

    Args:
        solver, curvature, param_groups, reference_size: s = H⁻¹v (:class:`InfluenceStrategy`).
        score_thr, max_per_img: the pseudo boxes of g_z (UUIC): every predicted box at
            ``score_thr`` or above, at most ``max_per_img`` per image.
    """
    higher_is_better = False

    def __init__(self, solver: SolverSpec = None, score_thr: Score = 0.1,
                 max_per_img: Count = 100, param_groups: ParamGroupsSpec = None,
                 curvature: Curvature = 'fisher', reference_size: Optional[Count] = None):
        super().__init__(solver, curvature, param_groups, reference_size)
        self.score_thr, self.max_per_img = score_thr, max_per_img

    def objective(self, ctx: SelectionContext, **options: Any) -> DetectionObjective:
        return self.objective_type(self.score_thr, self.max_per_img, seed=ctx.seed, **options)

    def score(self, ctx):
        groups = detector_param_groups(ctx.model, self.param_groups)
        objective = self.objective(ctx)
        s = self.s_test(ctx, objective, groups)
        scorer = self.objective(ctx)
        scores = influence_scores(scorer, ctx.model, groups, s, ctx.loader(ctx.pool))
        ctx.info['dropped_boxes'] = objective.dropped_boxes + scorer.dropped_boxes
        reasons = record_pseudo_boxes(ctx, scorer.pseudo_boxes, self.max_per_img,
                                      self.score_thr)
        flag_uninformative(ctx, type(self).__name__, reasons)
        return broadcast_object(scores)


@STRATEGIES.register_module(name='grad_similarity')
@STRATEGIES.register_module()
class GradSimilarity(ISAL):
    """ISAL without curvature (s = v): the official gradient-similarity ablation."""

    def __init__(self, score_thr: Score = 0.1, max_per_img: Count = 100,
                 param_groups: ParamGroupsSpec = None):
        super().__init__('identity', score_thr, max_per_img, param_groups)
