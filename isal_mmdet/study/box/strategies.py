"""Box-level strategies: each detection of the pool is a query a person can answer, scored
on its own (Box-Level Active Detection, Lyu et al. 2023, counts the budget in boxes).

Every strategy here sees the same detections: the UUIC pseudo boxes ISAL scores (score >=
``score_thr``, best first, at most ``max_per_img`` per image), in original image
coordinates. They only score; which detections are candidates (the uncertainty band) and
how many are asked is the same for all of them (:mod:`.selection`); the round loop runs
them through :class:`.rounds.BoxRounds`.
"""
from __future__ import annotations

import zlib
from typing import Any, Dict, Hashable, List, Literal, Optional, Tuple

import torch

from ...al.arguments import Count, Curvature, Fraction, ParamGroupsSpec, Score, SolverSpec
from ...al.extension import RoundExtension
from ...al.strategies.base import SelectionContext, Strategy
from ...al.strategies.influence_base import InfluenceStrategy, flag_uninformative
from ...al.strategies.uncertainty import binary_entropy
from ...detection import detector_param_groups
from ...influence import GroupVector, ParamGroups
from ...influence.dist import merge_over_ranks
from ...registry import STRATEGIES
from ..objective import ResearchObjective, detection_candidates
from .losses import box_loss_head
from .part_scores import part_esi_scores, part_influence_scores

BoxKey = Tuple[Hashable, int]
Detections = Dict[Hashable, List[Dict[str, Any]]]
Pseudo = Literal['confident', 'none']  # see BoxStrategy
Ask = Literal['detection', 'image']


class BoxStrategy(Strategy):
    """Scores detections, not images: :meth:`score_boxes` returns every pool image's
    detections and a score per ``(img_id, j)``, ``j`` the detection's place in its image.

    Args:
        score_thr, max_per_img: the detections: score >= ``score_thr``, at most
            ``max_per_img`` per image.
        pseudo: what an opened image trains on besides its answers: ``'confident'``, its
            unasked confident detections as pseudo boxes (BLAD's complementary pseudo
            labels); ``'none'``, those ignored too.
        band_precision: the uncertainty band's floor: each class's detections below its
            pre-annotation threshold are candidates down to the score where, on the
            reference set, they are right this often (:func:`isal_mmdet.study.box.band.band_floor`);
            0 asks about every detection below the threshold. A round whose band is empty
            fails in one line (:func:`isal_mmdet.study.box.selection.check_band`).
        ask: ``'detection'``: one candidate per query, best first across the pool, so an
            opened image keeps its unasked candidates as ignored regions. ``'image'``: every
            candidate of an opened image is asked, images in the order of their best
            candidate, so an opened image is labelled whole: human answers in the band,
            confident detections above it, background below it.
    """

    query = 'boxes'
    sets_batch = True  # the band and the budget pick the queries, never a batch stage

    def __init__(self, score_thr: Fraction = 0.1, max_per_img: Count = 100,
                 pseudo: Pseudo = 'confident', band_precision: Score = 0.1,
                 ask: Ask = 'detection'):
        self.score_thr, self.max_per_img, self.pseudo = score_thr, max_per_img, pseudo
        self.band_precision, self.ask = band_precision, ask

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        """Partly labelled images need ignore regions, which the loop switches on in a
        single-stage detector's ``MaxIoUAssigner``."""
        assigner = ((model_cfg.get('train_cfg') or {}).get('assigner') or {}).get('type')
        if assigner not in ('MaxIoUAssigner', 'mmdet.MaxIoUAssigner', 'IgnoringMaxIoUAssigner'):
            raise ValueError(f'{type(self).__name__} trains on partly labelled images, which '
                             'needs a single-stage detector with model.train_cfg.assigner of '
                             f'type MaxIoUAssigner, not {assigner!r}')

    def check_settings(self, al: Dict[str, Any]) -> None:
        """A box strategy spends boxes or seconds, and only the simulated oracle answers box
        queries for now."""
        name = al['strategy'] if isinstance(al['strategy'], str) else al['strategy'].get('type')
        if al.get('budget_unit', 'images') == 'images':
            raise ValueError(f'active_learning.budget_unit must be boxes or seconds for the box '
                             f'strategy {name!r}')
        if al.get('oracle', 'gt') != 'gt':
            raise ValueError(f"active_learning.oracle must be 'gt' for the box strategy "
                             f"{name!r}: only the simulated oracle answers box queries")

    def round_extension(self) -> RoundExtension:
        from .rounds import BoxRounds  # rounds reads this module's strategies
        return BoxRounds(self)

    def detections(self, ctx: SelectionContext) -> Detections:
        local: Detections = {}
        ctx.model.eval()
        for batch in ctx.loader(ctx.pool):
            local.update(detection_candidates(ctx.model, batch, self.score_thr,
                                              self.max_per_img))
        return merge_over_ranks(local)

    def score_boxes(self, ctx: SelectionContext) -> Tuple[Detections, Dict[BoxKey, float]]:
        dets = self.detections(ctx)
        return dets, {(i, j): self.box_score(ctx, i, j, d)
                      for i, boxes in dets.items() for j, d in enumerate(boxes)}

    def box_score(self, ctx: SelectionContext, img_id: Hashable, j: int,
                  det: Dict[str, Any]) -> float:
        raise NotImplementedError

    def score(self, ctx):
        raise ValueError(f'{type(self).__name__} queries boxes: it runs in the round loop '
                         '(tools/al_train.py, tools/al_study.py) with budget_unit boxes or '
                         'seconds')


@STRATEGIES.register_module(name='random_box')
@STRATEGIES.register_module()
class RandomBox(BoxStrategy):
    """A seeded random draw of detections (a hash of seed, image and place)."""

    def box_score(self, ctx, img_id, j, det):
        return zlib.crc32(f'{ctx.seed}:{img_id}:{j}'.encode()) / 2 ** 32


@STRATEGIES.register_module(name='entropy_box')
@STRATEGIES.register_module()
class EntropyBox(BoxStrategy):
    """The detection's score read as a Bernoulli probability: its entropy, highest first
    (PPAL's per-box uncertainty, without class weights)."""

    def box_score(self, ctx, img_id, j, det):
        return float(binary_entropy(torch.tensor([det['score']]))[0])


class InfluenceBox(InfluenceStrategy, BoxStrategy):
    """A box strategy scored along ISAL's s = H⁻¹v (one s, whatever the score of a box).

    Args:
        solver, curvature, param_groups, reference_size: s = H⁻¹v (:class:`InfluenceStrategy`).
        score_thr, max_per_img, pseudo, band_precision, ask: see :class:`BoxStrategy`.
    """

    def __init__(self, solver: SolverSpec = None, score_thr: Fraction = 0.1,
                 max_per_img: Count = 100, param_groups: ParamGroupsSpec = None,
                 curvature: Curvature = 'fisher', reference_size: Optional[Count] = None,
                 pseudo: Pseudo = 'confident', band_precision: Score = 0.1,
                 ask: Ask = 'detection'):
        InfluenceStrategy.__init__(self, solver, curvature, param_groups, reference_size)
        BoxStrategy.__init__(self, score_thr, max_per_img, pseudo, band_precision, ask)

    def objective(self, ctx: SelectionContext, **options: Any) -> ResearchObjective:
        return ResearchObjective(self.score_thr, self.max_per_img, seed=ctx.seed, **options)

    def part_scores(self, ctx: SelectionContext, scorer: ResearchObjective,
                    groups: ParamGroups, s: GroupVector) -> Dict[BoxKey, float]:
        """Every pool detection's score along ``s``; ``scorer`` records the detections."""
        raise NotImplementedError

    def score_boxes(self, ctx):
        groups = detector_param_groups(ctx.model, self.param_groups)
        box_loss_head(ctx.model)  # refuse before the costly v and s
        s = self.s_test(ctx, self.objective(ctx), groups)
        scorer = self.objective(ctx)
        scores = self.part_scores(ctx, scorer, groups, s)
        local: Detections = {}
        for (img_id, j), det in sorted(scorer.parts.items(), key=lambda kv: kv[0][1]):
            local.setdefault(img_id, []).append(det)
        flag_uninformative(ctx, type(self).__name__)
        return merge_over_ranks(local), scores


@STRATEGIES.register_module(name='isal_box')
@STRATEGIES.register_module()
class ISALBox(InfluenceBox):
    """ISAL per box: I(b) = −⟨H⁻¹v, ∇θ L_b⟩, L_b the loss terms of the anchors assigned to
    pseudo box b (assignments and the image's normaliser held fixed; see
    :mod:`isal_mmdet.study.box.losses`): what a person checking b changes, since an
    unchecked uncertain detection is an ignored region in training.

    Args:
        solver, curvature, param_groups, reference_size, score_thr, max_per_img, pseudo,
            band_precision, ask: see :class:`InfluenceBox`.
        order: ``'negative'``: most negative influence first (the paper's sign);
            ``'magnitude'``: largest |I(b)| first.
    """

    def __init__(self, solver: SolverSpec = None, score_thr: Fraction = 0.1,
                 max_per_img: Count = 100, param_groups: ParamGroupsSpec = None,
                 curvature: Curvature = 'fisher', reference_size: Optional[Count] = None,
                 order: Literal['negative', 'magnitude'] = 'negative',
                 pseudo: Pseudo = 'confident', band_precision: Score = 0.1,
                 ask: Ask = 'detection'):
        super().__init__(solver, score_thr, max_per_img, param_groups, curvature,
                         reference_size, pseudo, band_precision, ask)
        self.order = order
        self.higher_is_better = order == 'magnitude'

    def part_scores(self, ctx, scorer, groups, s):
        influence = part_influence_scores(scorer, ctx.model, groups, s, ctx.loader(ctx.pool))
        return {k: abs(v) if self.order == 'magnitude' else v for k, v in influence.items()}


@STRATEGIES.register_module(name='esi_box')
@STRATEGIES.register_module()
class ESIBox(InfluenceBox):
    """ESI per box: E_r⟨H⁻¹v, ∇θ L_b(r)⟩² over the answers r a person checking pseudo box b
    can give (class c, or "no object"), weighted by the model's own probability of each
    (:mod:`isal_mmdet.study.box.answers`); largest first. The signed ``isal_box`` score
    takes the model's answer as given; this one values the answer whichever it turns out
    to be. L_b(r): b's anchors labelled r, as ``isal_box`` labels them with the predicted
    class (:mod:`isal_mmdet.study.box.losses`). Arguments: see :class:`InfluenceBox`.
    """

    higher_is_better = True

    def check_model(self, model_cfg: Dict[str, Any]) -> None:
        """The answer distribution reads the head's sigmoid class probabilities."""
        super().check_model(model_cfg)
        loss_cls = (model_cfg.get('bbox_head') or {}).get('loss_cls') or {}
        if not loss_cls.get('use_sigmoid', False):
            raise ValueError(f'{type(self).__name__} needs a sigmoid classification loss '
                             f"(RetinaNet's FocalLoss), not {loss_cls.get('type')!r} with "
                             'use_sigmoid=False')

    def part_scores(self, ctx, scorer, groups, s):
        return part_esi_scores(scorer, ctx.model, groups, s, ctx.loader(ctx.pool))
