"""ISAL: influence selection with UUIC pseudo gradients, and its gradient-similarity
ablation."""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, Hashable, List, Optional, Sequence

import torch

from ...datasets.al_subset import ActiveSubset
from ...detection import DetectionObjective, default_scales, detector_param_groups
from ...detection.losses import check_model_cfg, focal_head
from ...influence import Curvature, build_solver, influence_scores, summed_gradient
from ...influence.curvature import KINDS
from ...influence.dist import broadcast_object, gather_objects
from ...registry import STRATEGIES
from ..data import class_counts
from ..state import sort_ids
from .base import SelectionContext, Strategy, rank_ids
from .coreset import image_features, k_center_greedy

logger = logging.getLogger('isal_mmdet')

DEFAULT_SOLVER = dict(type='woodbury', num_samples=64)
# the Hessian has no low-rank form to solve exactly: CG, as before the exact Fisher solve
DEFAULT_HESSIAN_SOLVER = dict(type='cg', max_iter=30, num_samples=64)


def _check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f'ISAL.{name} must be one of {sorted(choices)}, got {value!r}')


def flag_uninformative(ctx: SelectionContext, counts: Optional[List[int]],
                       score_thr: float) -> None:
    """Warns, and records ``info['uninformative']``, when the scores carry little: most pool
    images have no pseudo box (their score is a background-only loss), or v is zero."""
    reasons = []
    if counts:
        empty = sum(c == 0 for c in counts) / len(counts)
        if empty > 0.5:
            reasons.append(f'{empty:.0%} of pool images have no pseudo box at score >= '
                           f'{score_thr}')
    v_norm = ctx.info.get('v_norm')
    if v_norm is not None and not v_norm > 1e-12:
        reasons.append(f'the reference gradient is {v_norm:.3g}')
    if reasons:
        ctx.info['uninformative'] = reasons
        logger.warning('ISAL selection carries little information: %s. Lower score_thr, '
                       'train the model longer, or use random for this round.',
                       '; '.join(reasons))


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


@STRATEGIES.register_module(name='isal')
@STRATEGIES.register_module()
class ISAL(Strategy):
    """Influence selection: I(z) = −⟨H⁻¹v, g_z⟩ with UUIC pseudo gradients; most negative
    first.

    The defaults (empirical Fisher, solved exactly) are what worked best on BCCD
    (docs/benchmarks.md): the focal loss's Hessian is indefinite, so the paper's LiSSA
    diverges there. The paper's own settings: ``curvature='hessian', solver='lissa'``.

    Args:
        solver: an s_test solver config (``dict(type='woodbury'|'cg'|'lissa'|'exact'|
            'identity', ...)``); default ``woodbury``: the exact Fisher solve on 64 labelled
            images (CG, 30 iterations, when G exceeds 1 GiB); with ``curvature='hessian'``,
            CG, 30 iterations on 64 images. LiSSA without ``scales`` takes
            the detector family's official scales, or, where there are none (RetinaNet),
            scales from a power iteration.
        score_thr, max_per_img, max_per_class: pseudo-label filter (UUIC).
        pseudo: ``'hard'`` (paper): every box above ``score_thr`` is a label. ``'sampled'``:
            I(z) is averaged over ``samples`` draws that keep each box with probability equal
            to its score, the expected gradient over which boxes are real. ``'soft'``: the
            expected loss over each prediction's own class probabilities, no boxes (sigmoid
            focal heads only; for likelihood losses it is zero).
        diversity: ``None``, or ``dict(pool_factor=k)``: k-center greedy on pooled features
            among the ``k × budget`` most helpful images, so near-duplicates are not all taken.
        curvature: ``'fisher'`` (empirical Fisher, PSD) or ``'hessian'`` (paper).
        prefer: ``'helpful'`` (paper): most negative I(z) first. ``'harmful'``: most positive
            first, the images where training on the model's own predictions would raise the
            reference loss most, i.e. where those predictions are most wrong.
        param_groups: ``{group: regex}`` for θ; default: the detector family's preset.
        reference_size: ``None`` (paper): v sums the whole reference set; an integer: a
            seeded subset of that many reference images. v costs about one scoring pass per
            reference image, so a reference set larger than the pool (VOC2007 val: 2,510
            images) would cost more than scoring the pool.
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
            class pulls on v as it counts in mAP, a mean over classes, not by how common it
            is (:func:`class_balance`). Both: RetinaNet-style heads.
    """
    higher_is_better = False

    def __init__(self, solver: Any = None, score_thr: float = 0.1, max_per_img: int = 100,
                 param_groups: Optional[Dict[str, str]] = None,
                 max_per_class: Optional[int] = None, pseudo: str = 'hard', samples: int = 4,
                 diversity: Optional[Dict[str, Any]] = None, curvature: str = 'fisher',
                 prefer: str = 'helpful', normaliser: str = 'image',
                 reference_size: Optional[int] = None, reference_terms: str = 'all'):
        _check_choice('prefer', prefer, ('helpful', 'harmful'))
        _check_choice('reference_terms', reference_terms, ('all', 'foreground', 'balanced'))
        _check_choice('pseudo', pseudo, ('hard', 'sampled', 'soft'))
        _check_choice('curvature', curvature, KINDS)
        _check_choice('normaliser', normaliser, ('image', 'fixed'))
        if reference_size is not None and (not isinstance(reference_size, int) or
                                           isinstance(reference_size, bool) or
                                           reference_size < 1):
            raise ValueError(f'ISAL.reference_size must be a positive integer or None, got '
                             f'{reference_size!r}')
        self.reference_size = reference_size
        self.higher_is_better = prefer == 'harmful'
        if diversity is not None and set(diversity) - {'pool_factor'}:
            raise ValueError(f'ISAL.diversity: unknown field(s) '
                             f'{sorted(set(diversity) - {"pool_factor"})}; known: pool_factor')
        if solver is None:
            solver = DEFAULT_SOLVER if curvature == 'fisher' else DEFAULT_HESSIAN_SOLVER
        self.solver_cfg = {'type': solver} if isinstance(solver, str) else dict(solver)
        try:
            build_solver(self.solver_cfg)  # a typo fails here, before any training
        except TypeError as e:
            raise ValueError(f'ISAL.solver: {e}') from None
        if self.solver_cfg['type'] == 'woodbury' and curvature != 'fisher':
            raise ValueError(f"ISAL.solver: woodbury solves the Fisher exactly; with "
                             f"curvature={curvature!r} use cg or lissa")
        self.score_thr, self.max_per_img = score_thr, max_per_img
        self.max_per_class, self.pseudo, self.samples = max_per_class, pseudo, samples
        self.diversity, self.curvature = diversity, curvature
        self.param_groups, self.normaliser = param_groups, normaliser
        self.reference_terms = reference_terms
        self.avg_factor: Optional[float] = None

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        check_model_cfg(model_cfg, self.normaliser == 'fixed', self.reference_terms)

    def objective(self, ctx: SelectionContext, draw: Optional[int] = None) -> DetectionObjective:
        return DetectionObjective(self.score_thr, self.max_per_img, seed=ctx.seed,
                                  max_per_class=self.max_per_class, draw=draw,
                                  soft=self.pseudo == 'soft', avg_factor=self.avg_factor)

    def reference(self, ctx: SelectionContext):
        """The reference set, or its seeded subset of ``reference_size`` images."""
        ref = ctx.reference
        if self.reference_size is None or len(ref) <= self.reference_size:
            return ref
        g = torch.Generator().manual_seed(ctx.seed)
        keep = sorted(torch.randperm(len(ref), generator=g)[:self.reference_size].tolist())
        ids = [ref.get_data_info(i)['img_id'] for i in keep]
        ctx.info['reference_images'] = len(ids)
        return ActiveSubset(ref, ids=ids)

    def s_test(self, ctx: SelectionContext, objective: DetectionObjective, groups):
        if ctx.reference is None or len(ctx.reference) == 0:
            raise ValueError('ISAL needs a non-empty reference set (active_learning.reference)')
        reference = self.reference(ctx)
        objective.foreground_only = self.reference_terms == 'foreground'  # v only
        if self.reference_terms == 'balanced':
            # heads that cannot take it are refused by per_image_normalisation's check
            counts = class_counts(reference, len(reference.metainfo['classes']))
            objective.class_weights = class_balance(counts)
            ctx.info['reference_class_weights'] = objective.class_weights.tolist()
        if self.normaliser == 'fixed':
            # v from raw per-image sums, then everything divided by one common count
            objective.avg_factor = 1.0
            v = summed_gradient(objective, ctx.model, groups, ctx.loader(reference))
            pos = [c for part in gather_objects(objective.positives) or [] for c in part]
            self.avg_factor = objective.avg_factor = max(sum(pos) / max(len(pos), 1), 1.0)
            v = v.scale(1.0 / self.avg_factor)
            ctx.info['avg_factor'] = self.avg_factor
        else:
            v = summed_gradient(objective, ctx.model, groups, ctx.loader(reference))
        objective.foreground_only, objective.class_weights = False, None
        cfg = dict(self.solver_cfg)
        if cfg['type'] == 'lissa':
            cfg.setdefault('scales', default_scales(ctx.model))
            cfg.setdefault('seed', ctx.seed)
        solver = build_solver(cfg)
        s, info = solver.solve(v, Curvature(objective, ctx.model, groups, ctx.labelled,
                                            kind=self.curvature))
        ctx.info['s_test'] = info.as_dict()
        ctx.info['v_norm'] = v.norm()
        return s

    def score(self, ctx):
        if self.pseudo == 'soft':
            focal_head(ctx.model)  # refuse before the costly solve
        objective = self.objective(ctx)
        groups = detector_param_groups(ctx.model, self.param_groups)
        s = self.s_test(ctx, objective, groups)
        draws = list(range(self.samples)) if self.pseudo == 'sampled' else [None]
        scores: Dict[Hashable, float] = {}
        counts: List[int] = []
        for draw in draws:
            scorer = self.objective(ctx, draw)
            part = influence_scores(scorer, ctx.model, groups, s, ctx.loader(ctx.pool))
            for i, val in part.items():
                scores[i] = scores.get(i, 0.0) + val / len(draws)
            objective.dropped_boxes += scorer.dropped_boxes
            counts += scorer.pseudo_boxes
        ctx.info['dropped_boxes'] = objective.dropped_boxes
        counts = [c for part in gather_objects(counts) or [counts] for c in part]
        if self.pseudo != 'soft':
            ctx.info['pseudo_boxes_per_image'] = dict(
                mean=sum(counts) / max(len(counts), 1), max=max(counts, default=0),
                at_cap=sum(c >= self.max_per_img for c in counts) / max(len(counts), 1))
        flag_uninformative(ctx, counts if self.pseudo != 'soft' else None, self.score_thr)
        if self.diversity is not None:
            self._pool = image_features(ctx, ctx.pool)
            self._labelled = image_features(ctx, ctx.labelled)
        return broadcast_object(scores)

    def select(self, scores, budget, ctx):
        ranked = rank_ids(scores, self.higher_is_better)
        if self.diversity is None:
            return ranked[:budget]
        cand = sort_ids(ranked[:math.ceil(self.diversity.get('pool_factor', 3) * budget)])
        feats = torch.stack([self._pool[i] for i in cand])
        lab = (torch.stack([self._labelled[i] for i in sort_ids(self._labelled)])
               if self._labelled else None)
        return [cand[j] for j in k_center_greedy(feats, lab, budget)]


@STRATEGIES.register_module(name='grad_similarity')
@STRATEGIES.register_module()
class GradSimilarity(ISAL):
    """ISAL without curvature (s = v): the official gradient-similarity ablation."""

    def __init__(self, score_thr: float = 0.1, max_per_img: int = 100,
                 param_groups: Optional[Dict[str, str]] = None):
        super().__init__('identity', score_thr, max_per_img, param_groups)
