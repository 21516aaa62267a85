"""UUIC-compatible detection losses: a batch loss that is the sum of per-image losses.

mmdet normalises a batch by one ``avg_factor`` for all images (and ``reduce_mean`` across
ranks for FCOS/ATSS). Here each image's loss comes from mmdet's own ``loss_by_feat`` /
``roi_head.loss`` called on that image's slice of the batched head outputs, so it equals
mmdet's loss on the image alone, with two deliberate changes:

* ``reduce_mean`` is the identity while scoring (no cross-rank mixing, no deadlock);
* the anchor heads' ``avg_factor`` is clamped to >= 1, since mmdet divides by
  ``avg_factor + eps`` and an image with no positive would weigh ~1e7x;
* focal loss uses mmdet's pure-torch form on GPU too: mmcv's CUDA kernel has no double
  backward, which Hessian-vector products need;
* L1 box loss has a dead zone of ``L1_DEADZONE`` around a zero residual. A pseudo box is the
  decoded prediction of one anchor, so that anchor's residual is pure rounding error and the
  L1 gradient sign(residual) would be noise that changes with batch size; the dead zone gives
  it the subgradient 0.
"""
from __future__ import annotations

import copy
import importlib
import sys
import zlib
from contextlib import ExitStack, contextmanager
from typing import Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.models.losses.utils import weighted_loss
from mmdet.models.utils import unpack_gt_instances
from torch import Tensor, nn

# The package re-exports functions under these names, so take the modules themselves.
focal_loss_module = importlib.import_module('mmdet.models.losses.focal_loss')
smooth_l1_module = importlib.import_module('mmdet.models.losses.smooth_l1_loss')


def sum_losses(losses: Dict[str, object]) -> Tensor:
    """mmdet's total: every entry whose key contains 'loss' (tensors or lists of them)."""
    total = []
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        if isinstance(value, Tensor):
            total.append(value.sum())
        else:
            total.extend(v.sum() for v in value)
    return torch.stack(total).sum()


def _identity_reduce_mean(tensor: Tensor) -> Tensor:
    return tensor


L1_DEADZONE = 1e-4


@weighted_loss
def _deadzone_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    if target.numel() == 0:
        return pred.sum() * 0
    diff = pred - target
    return torch.where(diff.abs() < L1_DEADZONE, diff * 0, diff.abs())


def _py_sigmoid_focal_loss(pred, target, weight=None, gamma=2.0, alpha=0.25, reduction='mean',
                           avg_factor=None):
    """Drop-in for mmdet's CUDA ``sigmoid_focal_loss`` (label targets), twice differentiable."""
    k = pred.size(1)
    one_hot = F.one_hot(target, num_classes=k + 1)[:, :k].type_as(pred)
    return focal_loss_module.py_sigmoid_focal_loss(pred, one_hot, weight, gamma, alpha,
                                                   reduction, avg_factor)


class AnchorTargets:
    """What an anchor head's ``get_targets`` hands its loss while scoring: mmdet's targets,
    the image's positive count (at index 4) clamped to >= 1, since mmdet divides by
    ``avg_factor + eps`` and an image with no positive would weigh ~1e7x. A research
    objective reweights the targets or fixes the count in a subclass."""

    def check(self, heads: Sequence[type]) -> None:
        """Refuses, before any loss, head classes these targets cannot handle: none here.

        Args:
            heads (sequence of type): the detector's head classes.
        """

    def __call__(self, out: tuple, head: nn.Module) -> tuple:
        """The targets the loss takes.

        Args:
            out (tuple): ``head.get_targets``' output (mmdet's ``AnchorHead``).
            head (nn.Module): the head.

        Returns:
            tuple: ``out`` with the count clamped to >= 1.
        """
        return out[:4] + (max(out[4], 1),) + tuple(out[5:])


@contextmanager
def per_image_normalisation(*heads: nn.Module,
                            targets: Optional[AnchorTargets] = None) -> Iterator[None]:
    """Make each head's loss normalise inside the image it is given, so that an image's
    background terms weigh the same whatever its number of boxes.

    Args:
        *heads (nn.Module): the detector's heads; anchor heads take ``targets``.
        targets (AnchorTargets, optional): what an anchor head's targets become. Defaults to
            None (:class:`AnchorTargets`: the image's own positive count, clamped to >= 1).
    """
    targets = AnchorTargets() if targets is None else targets
    targets.check([type(h) for h in heads])
    with ExitStack() as stack:
        stack.enter_context(_patched(focal_loss_module, 'sigmoid_focal_loss',
                                     _py_sigmoid_focal_loss))
        stack.enter_context(_patched(smooth_l1_module, 'l1_loss', _deadzone_l1_loss))
        for head in heads:
            module = sys.modules[type(head).__module__]
            if hasattr(module, 'reduce_mean'):
                stack.enter_context(_patched(module, 'reduce_mean', _identity_reduce_mean))
            if isinstance(head, AnchorHead):
                def patched(*args, _original=head.get_targets, _head=head, **kwargs):
                    return targets(_original(*args, **kwargs), _head)

                stack.enter_context(_patched(head, 'get_targets', patched))
        yield


@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    had = name in vars(owner)
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)


@contextmanager
def image_seeded_rng(img_id: Hashable, seed: int) -> Iterator[None]:
    """RoI/RPN sampling seeded by the image, so its loss is the same in any batch or rank."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed((zlib.crc32(str(img_id).encode()) + 1000003 * seed) % (2 ** 63))
        yield


def _slice_outs(outs: Sequence[Sequence[Tensor]], i: int) -> Tuple[List[Tensor], ...]:
    return tuple([lvl[i:i + 1] for lvl in out] for out in outs)


def single_stage_losses(model: SingleStageDetector, x: Tuple[Tensor, ...], outs: tuple,
                        data_samples: list, seed: int = 0,
                        targets: Optional[AnchorTargets] = None) -> Tensor:
    head = model.bbox_head
    losses = []
    with per_image_normalisation(head, targets=targets):
        for i, ds in enumerate(data_samples):
            gt, gt_ignore, metas = unpack_gt_instances([ds])
            with image_seeded_rng(ds.metainfo.get('img_id', i), seed):
                losses.append(sum_losses(head.loss_by_feat(*_slice_outs(outs, i), gt, metas,
                                                           gt_ignore)))
    return torch.stack(losses)


def two_stage_losses(model: TwoStageDetector, x: Tuple[Tensor, ...], rpn_outs: tuple,
                     data_samples: list, seed: int = 0,
                     targets: Optional[AnchorTargets] = None) -> Tensor:
    rpn_head, roi_head = model.rpn_head, model.roi_head
    proposal_cfg = model.train_cfg.get('rpn_proposal', model.test_cfg.rpn)
    losses = []
    with per_image_normalisation(rpn_head, roi_head.bbox_head, targets=targets):
        for i, ds in enumerate(data_samples):
            rpn_ds = copy.deepcopy(ds)
            rpn_ds.gt_instances.labels = torch.zeros_like(rpn_ds.gt_instances.labels)
            gt, gt_ignore, metas = unpack_gt_instances([rpn_ds])
            outs_i = _slice_outs(rpn_outs, i)
            with image_seeded_rng(ds.metainfo.get('img_id', i), seed):
                rpn_loss = sum_losses(rpn_head.loss_by_feat(*outs_i, gt, metas, gt_ignore))
                proposals = rpn_head.predict_by_feat(*outs_i, batch_img_metas=metas,
                                                     cfg=proposal_cfg)
                roi_loss = sum_losses(roi_head.loss(tuple(lvl[i:i + 1] for lvl in x),
                                                    proposals, [ds]))
            losses.append(rpn_loss + roi_loss)
    return torch.stack(losses)


def head_outputs(model: nn.Module, x: Tuple[Tensor, ...]) -> tuple:
    """The batched dense-head forward whose outputs both losses and predictions slice."""
    if isinstance(model, TwoStageDetector):
        return model.rpn_head(x)
    if isinstance(model, SingleStageDetector):
        return model.bbox_head(x)
    raise TypeError(f'{type(model).__name__} is neither a single- nor a two-stage mmdet '
                    'detector; write an Objective for it')


def per_image_losses(model: nn.Module, x: Tuple[Tensor, ...], outs: tuple, data_samples: list,
                     seed: int = 0, targets: Optional[AnchorTargets] = None) -> Tensor:
    """``[L_1..L_B]``, each image's training loss as if it were alone (see module doc);
    ``targets``: see :func:`per_image_normalisation`."""
    if isinstance(model, TwoStageDetector):
        return two_stage_losses(model, x, outs, data_samples, seed, targets)
    return single_stage_losses(model, x, outs, data_samples, seed, targets)
