"""Research variants of ISAL and ESI: the options our studies tried, none of which beat random
(docs/studies.md). They live with the studies, not in the product's strategies, and are
registered under their class names only, so no list of user strategies shows them;
:mod:`.variants` builds their configs from lever names (``isal-fixed``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Hashable, List, Literal, Optional, Sequence, Tuple

import torch

from ..al.data import class_counts
from ..al.state import sort_ids
from ..al.arguments import Count, Curvature, ParamGroupsSpec, Score, SolverSpec
from ..al.strategies.base import SelectionContext, rank_ids
from ..al.batch.geometry import k_center_greedy
from ..al.strategies.coreset import image_features
from ..al.strategies.esi import ESI
from ..al.strategies.influence_base import InfluenceStrategy, check_choice, flag_uninformative
from ..al.strategies.isal import ISAL, record_pseudo_boxes
from ..detection import detector_param_groups
from ..influence import (GroupVector, ParamGroups, influence_scores, inverse_hvp, stest,
                         summed_gradient)
from ..influence.dist import broadcast_object, gather_objects
from ..registry import STRATEGIES
from .losses import check_model_cfg, focal_head
from .objective import ResearchObjective


def class_balance(counts: Sequence[int]) -> torch.Tensor:
    """``[K]`` weights (mean count over the classes present) / (class k's count), so every
    class present weighs the same in total; 1 for a class with no box (its terms are
    background only, as in the plain loss)."""
    counts_t = torch.tensor([float(c) for c in counts], dtype=torch.float64)
    present = counts_t > 0
    if not present.any():
        return torch.ones_like(counts_t)
    mean = counts_t[present].mean()
    return torch.where(present, mean / counts_t.clamp_min(1), torch.ones_like(counts_t))


@dataclass(frozen=True)
class ReferenceOptions:
    """How v and the losses are taken, for both research variants.

    Args:
        normaliser: ``'image'``: each image's loss is divided by its own positive count
            (clamped to >= 1). ``'fixed'``: every image's loss (reference, curvature and
            pseudo) is divided by one count, the mean positives per reference image, so the
            background terms of an image with few boxes do not outweigh those of a busy one
            (anchor heads: RetinaNet, Faster R-CNN's RPN).
        reference_terms: ``'all'`` (paper): v is the gradient of the whole training loss on
            the reference set. ``'foreground'``: of the terms of anchors assigned to a real
            box only (no background classification), so v says what the labelled objects
            need, not what the background does. ``'balanced'``: every term, class k's
            weighted by (mean count) / (class k's box count in the reference set), so each
            class pulls on v as it counts in mAP (:func:`class_balance`). Both: RetinaNet-style
            heads.
    """
    normaliser: str = 'image'
    reference_terms: str = 'all'

    def __post_init__(self) -> None:
        check_choice('ISAL', 'reference_terms', self.reference_terms,
                     ('all', 'foreground', 'balanced'))
        check_choice('ISAL', 'normaliser', self.normaliser, ('image', 'fixed'))

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        check_model_cfg(model_cfg, self.normaliser == 'fixed', self.reference_terms)

    def s_test(self, strategy: InfluenceStrategy, ctx: SelectionContext,
               groups: ParamGroups) -> Tuple[GroupVector, Optional[float], int]:
        """``(s, the fixed count or None, boxes dropped)``: v with these terms, H on the plain
        loss, both over the fixed count with ``normaliser='fixed'``; recorded in ``ctx.info``."""
        reference = strategy.reference(ctx)
        v_options: Dict[str, Any] = {}
        if self.reference_terms == 'foreground':
            v_options['foreground_only'] = True
        elif self.reference_terms == 'balanced':
            # heads that cannot take it are refused by per_image_normalisation's check
            weights = class_balance(class_counts(reference, len(reference.metainfo['classes'])))
            ctx.info['reference_class_weights'] = weights.tolist()
            v_options['class_weights'] = weights
        batches, solver = ctx.loader(reference), strategy.solver(ctx)
        avg_factor = None
        if self.normaliser == 'image':
            v_obj = strategy.objective(ctx, **v_options)
            h_obj = strategy.objective(ctx) if v_options else v_obj
            s, info, v_norm = stest(v_obj, ctx.model, groups, batches, ctx.labelled, solver,
                                    strategy.curvature, h_obj)
        else:
            # v from raw per-image sums, then everything divided by one common count
            v_obj = strategy.objective(ctx, avg_factor=1.0, **v_options)
            v = summed_gradient(v_obj, ctx.model, groups, batches)
            pos = [c for part in gather_objects(v_obj.positives) or [] for c in part]
            avg_factor = max(sum(pos) / max(len(pos), 1), 1.0)
            ctx.info['avg_factor'] = avg_factor
            v = v.scale(1.0 / avg_factor)
            h_obj = strategy.objective(ctx, avg_factor=avg_factor)
            s, info = inverse_hvp(v, h_obj, ctx.model, groups, ctx.labelled, solver,
                                  strategy.curvature)
            v_norm = v.norm()
        strategy.record_solve(ctx, info, v_norm)
        dropped = v_obj.dropped_boxes + (h_obj.dropped_boxes if h_obj is not v_obj else 0)
        return s, avg_factor, dropped


@STRATEGIES.register_module()
class ISALResearch(ISAL):
    """ISAL with the levers our studies tried.

    Args:
        solver, score_thr, max_per_img, param_groups, curvature, reference_size: as ISAL.
        max_per_class: at most this many pseudo boxes per class and image.
        pseudo: ``'hard'`` (paper): every box above ``score_thr`` is a label. ``'sampled'``:
            I(z) is averaged over ``samples`` draws that keep each box with probability equal
            to its score, the expected gradient over which boxes are real. ``'soft'``: the
            expected loss over each prediction's own class probabilities, no boxes (sigmoid
            focal heads only; for likelihood losses it is zero).
        diversity: ``None``, or ``dict(pool_factor=k)``: k-center greedy on pooled features
            among the ``k × budget`` most helpful images, so near-duplicates are not all taken.
        prefer: ``'helpful'`` (paper): most negative I(z) first. ``'harmful'``: most positive
            first, the images where training on the model's own predictions would raise the
            reference loss most, i.e. where those predictions are most wrong.
        normaliser, reference_terms: see :class:`ReferenceOptions`.
    """
    objective_type = ResearchObjective

    def __init__(self, solver: SolverSpec = None, score_thr: Score = 0.1,
                 max_per_img: Count = 100, param_groups: ParamGroupsSpec = None,
                 curvature: Curvature = 'fisher', reference_size: Optional[Count] = None,
                 max_per_class: Optional[Count] = None,
                 pseudo: Literal['hard', 'sampled', 'soft'] = 'hard', samples: Count = 4,
                 diversity: Optional[Dict[Literal['pool_factor'], Count]] = None,
                 prefer: Literal['helpful', 'harmful'] = 'helpful',
                 normaliser: Literal['image', 'fixed'] = 'image',
                 reference_terms: Literal['all', 'foreground', 'balanced'] = 'all'):
        super().__init__(solver, score_thr, max_per_img, param_groups, curvature,
                         reference_size)
        self.options = ReferenceOptions(normaliser, reference_terms)
        self.higher_is_better = prefer == 'harmful'
        self.max_per_class, self.pseudo, self.samples = max_per_class, pseudo, samples
        self.diversity = diversity

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        self.options.check_model(model_cfg)

    def score(self, ctx):
        soft = self.pseudo == 'soft'
        if soft:
            focal_head(ctx.model)  # refuse before the costly solve
        groups = detector_param_groups(ctx.model, self.param_groups)
        s, avg_factor, dropped = self.options.s_test(self, ctx, groups)
        draws = list(range(self.samples)) if self.pseudo == 'sampled' else [None]
        scores: Dict[Hashable, float] = {}
        counts: List[int] = []
        for draw in draws:
            scorer = self.objective(ctx, max_per_class=self.max_per_class, draw=draw, soft=soft,
                                    avg_factor=avg_factor)
            part = influence_scores(scorer, ctx.model, groups, s, ctx.loader(ctx.pool))
            for i, val in part.items():
                scores[i] = scores.get(i, 0.0) + val / len(draws)
            dropped += scorer.dropped_boxes
            counts += scorer.pseudo_boxes
        ctx.info['dropped_boxes'] = dropped
        reasons = [] if soft else record_pseudo_boxes(ctx, counts, self.max_per_img,
                                                      self.score_thr)
        flag_uninformative(ctx, type(self).__name__, reasons)
        if self.diversity is not None:
            self._pool = image_features(ctx, ctx.pool)
            self._labelled = image_features(ctx, ctx.labelled)
        return broadcast_object(scores)

    @property
    def sets_batch(self) -> bool:
        return self.diversity is not None

    def select(self, scores, budget, ctx):
        if self.diversity is None:
            return super().select(scores, budget, ctx)
        ranked = rank_ids(scores, self.higher_is_better)
        cand = sort_ids(ranked[:math.ceil(self.diversity.get('pool_factor', 3) * budget)])
        feats = torch.stack([self._pool[i] for i in cand])
        lab = (torch.stack([self._labelled[i] for i in sort_ids(self._labelled)])
               if self._labelled else None)
        return [cand[j] for j in k_center_greedy(feats, lab, budget)]


@STRATEGIES.register_module()
class ESIResearch(ESI):
    """ESI with the levers our studies tried.

    Args:
        solver, curvature, param_groups, reference_size, box_term: as ESI.
        normaliser, reference_terms: for v and s, see :class:`ReferenceOptions`.
        mean_term: add (Σ m)², the squared expected gradient (for the focal loss it is not
            zero).
        top_k: ``None``: sum over every anchor (the expectation itself); an integer: over the
            ``top_k`` anchors with the largest terms.
    """
    objective_type = ResearchObjective

    def __init__(self, solver: SolverSpec = None, curvature: Curvature = 'fisher',
                 param_groups: ParamGroupsSpec = None, reference_size: Optional[Count] = None,
                 box_term: bool = True, normaliser: Literal['image', 'fixed'] = 'image',
                 reference_terms: Literal['all', 'foreground', 'balanced'] = 'all',
                 mean_term: bool = False, top_k: Optional[Count] = None):
        super().__init__(solver, curvature, param_groups, reference_size, box_term)
        self.options = ReferenceOptions(normaliser, reference_terms)
        self.mean_term, self.top_k = mean_term, top_k

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        self.options.check_model(model_cfg)
        super().check_model(model_cfg)

    def direction(self, ctx: SelectionContext, groups: ParamGroups) -> GroupVector:
        return self.options.s_test(self, ctx, groups)[0]
