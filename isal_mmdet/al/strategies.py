"""Selection strategies behind one interface: score the pool, then pick ``budget`` ids."""
from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional

import torch
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar
from torch import Tensor, nn

from ..detection import (DetectionObjective, default_scales, detector_param_groups)
from ..detection.losses import focal_head
from ..detection.uncertainty import box_class_probs, pooled_features
from ..influence import (Curvature, build_solver, influence_scores, summed_gradient)
from ..influence.dist import broadcast_object, gather_objects, rank_and_world
from ..registry import STRATEGIES
from .state import sort_ids

logger = logging.getLogger('isal_mmdet')


@dataclass
class SelectionContext:
    """What a strategy may look at. Datasets yield mmdet samples with ``img_id`` metainfo."""
    model: nn.Module
    pool: Any
    labelled: Any
    reference: Any = None
    batch_size: int = 4
    num_workers: int = 0
    seed: int = 0
    progress: bool = True
    info: Dict[str, Any] = field(default_factory=dict)

    def loader(self, dataset: Any, shard: bool = True) -> Iterator[Any]:
        """This rank's share of ``dataset`` in batches, in a fixed order."""
        rank, world = rank_and_world() if shard else (0, 1)
        indices = list(range(len(dataset)))[rank::world]
        subset = torch.utils.data.Subset(dataset, indices)
        dl = torch.utils.data.DataLoader(subset, batch_size=self.batch_size, shuffle=False,
                                         num_workers=self.num_workers,
                                         collate_fn=collate_readable)
        bar = ProgressBar(len(indices)) if self.progress and rank == 0 and indices else None
        for batch, n in dl:
            if batch is not None:
                yield batch
            if bar is not None:
                for _ in range(n):
                    bar.update()
        if bar is not None:
            print(flush=True)


def collate_readable(samples: List[Any]) -> Any:
    """``(batch of the readable samples or None, number of samples)``: unreadable images
    (None, logged by ActiveSubset) are left out of scoring."""
    ok = [s for s in samples if s is not None]
    return (pseudo_collate(ok) if ok else None), len(samples)


def rank_ids(scores: Dict[Hashable, float], higher_is_better: bool) -> List[Hashable]:
    """Best first; ties broken by id so equal scores select the same images every time."""
    ordered = sort_ids(scores)
    sign = -1.0 if higher_is_better else 1.0
    return sorted(ordered, key=lambda i: sign * scores[i])


class Strategy:
    """Base class. ``score`` runs on every rank over its shard; ``select`` on the merged
    scores. Subclasses set ``higher_is_better``."""
    higher_is_better = True

    def score(self, ctx: SelectionContext) -> Dict[Hashable, float]:
        local = {}
        for batch in ctx.loader(ctx.pool):
            ids = [ds.metainfo['img_id'] for ds in batch['data_samples']]
            local.update(zip(ids, self.score_batch(ctx, batch)))
        merged: Dict[Hashable, float] = {}
        for part in gather_objects(local) or []:
            merged.update(part)
        return broadcast_object(merged)

    def score_batch(self, ctx: SelectionContext, batch: Any) -> List[float]:
        raise NotImplementedError

    def select(self, scores: Dict[Hashable, float], budget: int,
               ctx: SelectionContext) -> List[Hashable]:
        return rank_ids(scores, self.higher_is_better)[:budget]


@STRATEGIES.register_module(name='random')
@STRATEGIES.register_module()
class Random(Strategy):
    """A seeded random draw. Each id's score is a hash of (seed, id), so the draw does not
    depend on pool order, batch size or rank."""

    def score(self, ctx):
        ids = [ctx.pool.get_data_info(i)['img_id'] for i in range(len(ctx.pool))]
        return {i: zlib.crc32(f'{ctx.seed}:{i}'.encode()) / 2 ** 32 for i in ids}


def entropy_of_boxes(probs: Tensor) -> float:
    """Image entropy: the highest class entropy among its boxes (0 with no box).

    Each box's class probabilities are normalised to sum to 1 first (sigmoid heads score
    classes independently).
    """
    if len(probs) == 0:
        return 0.0
    q = probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
    ent = -(q * q.clamp_min(1e-12).log()).sum(-1)
    return float(ent.max())


def least_confidence_of_boxes(probs: Tensor) -> float:
    """1 − the image's best box confidence (1 when no box passes the threshold)."""
    if len(probs) == 0:
        return 1.0
    return float(1.0 - probs.max())


@STRATEGIES.register_module(name='entropy')
@STRATEGIES.register_module()
class Entropy(Strategy):
    """Most uncertain first: see :func:`entropy_of_boxes`."""
    aggregate: Callable[[Tensor], float] = staticmethod(entropy_of_boxes)

    def __init__(self, score_thr: float = 0.1, max_boxes: int = 100):
        self.score_thr, self.max_boxes = score_thr, max_boxes

    def score_batch(self, ctx, batch):
        ctx.model.eval()
        probs = box_class_probs(ctx.model, batch, self.score_thr, self.max_boxes)
        return [self.aggregate(p) for p in probs]


@STRATEGIES.register_module(name='least_confidence')
@STRATEGIES.register_module()
class LeastConfidence(Entropy):
    """Least confident first: see :func:`least_confidence_of_boxes`."""
    aggregate = staticmethod(least_confidence_of_boxes)


def k_center_greedy(pool: Tensor, labelled: Optional[Tensor], budget: int,
                    min_dist: Optional[Tensor] = None) -> List[int]:
    """Indices of ``pool`` picked greedily farthest from everything chosen so far.

    Keeps one distance per pool point (O(pool × dim) memory, no N×N matrix). Ties go to the
    lowest index, so a pool sorted by id breaks ties by id.
    """
    if min_dist is None:
        min_dist = torch.full((len(pool),), math.inf)
        if labelled is not None:
            for chunk in labelled.split(1024):
                min_dist = torch.minimum(min_dist, torch.cdist(pool, chunk).min(1).values)
    picked: List[int] = []
    for _ in range(min(budget, len(pool))):
        j = int(torch.argmax(min_dist))
        picked.append(j)
        min_dist = torch.minimum(min_dist, torch.cdist(pool, pool[j:j + 1]).squeeze(1))
        min_dist[j] = -1.0
    return picked


def image_features(ctx: SelectionContext, dataset: Any) -> Dict[Hashable, Tensor]:
    """Pooled neck features of every image in ``dataset``, merged over ranks."""
    ctx.model.eval()
    local = {}
    for batch in ctx.loader(dataset):
        ids = [ds.metainfo['img_id'] for ds in batch['data_samples']]
        local.update(zip(ids, pooled_features(ctx.model, batch)))
    merged: Dict[Hashable, Tensor] = {}
    for part in gather_objects(local) or []:
        merged.update(part)
    return merged


@STRATEGIES.register_module(name='coreset')
@STRATEGIES.register_module()
class CoreSet(Strategy):
    """k-center greedy on pooled neck features (Sener & Savarese)."""

    def score(self, ctx):
        self._pool = image_features(ctx, ctx.pool)
        self._labelled = image_features(ctx, ctx.labelled)
        ids = sort_ids(self._pool)
        feats = torch.stack([self._pool[i] for i in ids]) if ids else torch.zeros(0, 1)
        lab = torch.stack(list(self._labelled.values())) if self._labelled else None
        dist = torch.full((len(ids),), math.inf)
        if lab is not None:
            for chunk in lab.split(1024):
                dist = torch.minimum(dist, torch.cdist(feats, chunk).min(1).values)
        return {i: float(d) for i, d in zip(ids, dist)}

    def select(self, scores, budget, ctx):
        ids = sort_ids(self._pool)
        feats = torch.stack([self._pool[i] for i in ids])
        dist = torch.tensor([scores[i] for i in ids])
        return [ids[j] for j in k_center_greedy(feats, None, budget, min_dist=dist)]


DEFAULT_SOLVER = dict(type='woodbury', num_samples=64)


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
            images (CG, 30 iterations, when G exceeds 1 GiB). LiSSA without ``scales`` takes
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
    """
    higher_is_better = False

    def __init__(self, solver: Any = None, score_thr: float = 0.1, max_per_img: int = 100,
                 param_groups: Optional[Dict[str, str]] = None,
                 max_per_class: Optional[int] = None, pseudo: str = 'hard', samples: int = 4,
                 diversity: Optional[Dict[str, Any]] = None, curvature: str = 'fisher',
                 prefer: str = 'helpful'):
        if prefer not in ('helpful', 'harmful'):
            raise ValueError(f"ISAL.prefer must be 'helpful' or 'harmful', got {prefer!r}")
        self.higher_is_better = prefer == 'harmful'
        if pseudo not in ('hard', 'sampled', 'soft'):
            raise ValueError(f"ISAL.pseudo must be 'hard', 'sampled' or 'soft', got {pseudo!r}")
        if diversity is not None and set(diversity) - {'pool_factor'}:
            raise ValueError(f'ISAL.diversity: unknown field(s) '
                             f'{sorted(set(diversity) - {"pool_factor"})}; known: pool_factor')
        solver = DEFAULT_SOLVER if solver is None else solver
        self.solver_cfg = {'type': solver} if isinstance(solver, str) else dict(solver)
        self.score_thr, self.max_per_img = score_thr, max_per_img
        self.max_per_class, self.pseudo, self.samples = max_per_class, pseudo, samples
        self.diversity, self.curvature = diversity, curvature
        self.param_groups = param_groups

    def objective(self, ctx: SelectionContext, draw: Optional[int] = None) -> DetectionObjective:
        return DetectionObjective(self.score_thr, self.max_per_img, seed=ctx.seed,
                                  max_per_class=self.max_per_class, draw=draw,
                                  soft=self.pseudo == 'soft')

    def s_test(self, ctx: SelectionContext, objective: DetectionObjective, groups):
        if ctx.reference is None or len(ctx.reference) == 0:
            raise ValueError('ISAL needs a non-empty reference set (active_learning.reference)')
        v = summed_gradient(objective, ctx.model, groups, ctx.loader(ctx.reference))
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


def build_strategy(cfg: Any) -> Strategy:
    """``'isal'`` or ``dict(type='ISAL', solver=...)`` → a strategy, with a one-line error."""
    if isinstance(cfg, Strategy):
        return cfg
    cfg = {'type': cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop('type', None)
    cls = STRATEGIES.module_dict.get(name)
    if cls is None:
        names = sorted(k for k in STRATEGIES.module_dict if k.islower())
        raise ValueError(f'unknown strategy {name!r}; choose one of {names}')
    return cls(**cfg)
