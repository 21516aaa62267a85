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
from mmdet.models.dense_heads import AnchorFreeHead, AnchorHead
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


def check_heads(heads: Sequence[type], fixed: bool, reference_terms: str = 'all') -> None:
    """Refuses normaliser='fixed' / reference terms that reweight targets ('foreground',
    'balanced') for head classes that cannot take them: anchor-free heads normalise inside
    their own loss, and other heads order their targets differently from mmdet's
    ``AnchorHead``."""
    free = [h.__name__ for h in heads if issubclass(h, AnchorFreeHead)]
    if fixed and free:
        raise ValueError(f"ISAL normaliser='fixed' needs anchor heads (RetinaNet, RPN); "
                         f"{free[0]} normalises inside its own loss")
    if reference_terms != 'all' and (
            len(heads) > 1 or getattr(heads[0], 'get_targets', None) is not
            AnchorHead.get_targets):
        raise ValueError(f"ISAL reference_terms='{reference_terms}' needs a single-stage head "
                         f"with mmdet's AnchorHead targets (RetinaNet), not "
                         f"{' + '.join(h.__name__ for h in heads)}")


@contextmanager
def per_image_normalisation(*heads: nn.Module, avg_factor: Optional[float] = None,
                            positives: Optional[List[float]] = None,
                            foreground_only: bool = False,
                            class_weights: Optional[Tensor] = None) -> Iterator[None]:
    """Make each head's loss normalise inside the image it is given: by the image's own
    positive count (clamped to >= 1), or by ``avg_factor``, one fixed count for every image
    (anchor heads only), so that an image's background terms weigh the same whatever its
    number of boxes. ``positives`` collects each anchor head call's own count.
    ``foreground_only``: the anchor heads' background anchors get classification weight 0,
    so the loss keeps only the terms of anchors assigned to a box. ``class_weights`` ``[K]``:
    see :func:`class_weighted_targets`."""
    check_heads([type(h) for h in heads], avg_factor is not None,
                'foreground' if foreground_only else
                'balanced' if class_weights is not None else 'all')
    with ExitStack() as stack:
        stack.enter_context(_patched(focal_loss_module, 'sigmoid_focal_loss',
                                     _py_sigmoid_focal_loss))
        stack.enter_context(_patched(smooth_l1_module, 'l1_loss', _deadzone_l1_loss))
        for head in heads:
            module = sys.modules[type(head).__module__]
            if hasattr(module, 'reduce_mean'):
                stack.enter_context(_patched(module, 'reduce_mean', _identity_reduce_mean))
            if isinstance(head, AnchorHead):
                original = head.get_targets

                def clamped(*args, _original=original, _head=head, **kwargs):
                    out = _original(*args, **kwargs)  # the count at [4], then extras
                    if positives is not None:
                        positives.append(float(out[4]))
                    if foreground_only:  # background label: num_classes (mmdet's AnchorHead)
                        weights = [w * (lab != _head.num_classes).to(w.dtype)
                                   for lab, w in zip(out[0], out[1])]
                        out = (out[0], weights) + tuple(out[2:])
                    if class_weights is not None:
                        out = class_weighted_targets(out, class_weights, _head.num_classes)
                    return out[:4] + (avg_factor or max(out[4], 1),) + tuple(out[5:])

                stack.enter_context(_patched(head, 'get_targets', clamped))
        yield


def class_weighted_targets(targets: tuple, weights: Tensor, num_classes: int) -> tuple:
    """mmdet ``AnchorHead.get_targets`` output with column k of the classification loss
    (every anchor's class-k logit) and the box terms of class-k positives weighted by
    ``weights[k]``. mAP averages over classes, and each class's AP depends only on its own
    scores and boxes, so this loss weighs the classes as mAP does when ``weights[k]`` is
    inversely proportional to class k's box count. The per-class label weights reach
    mmdet's focal loss as ``[A, K]`` (it reshapes a weight of the loss's size)."""
    labels, label_weights, bbox_targets, bbox_weights = targets[:4]
    w = weights.to(label_weights[0].dtype)
    if len(w) != num_classes:
        raise ValueError(f'class weights for {len(w)} classes, the head has {num_classes}')
    per_label = torch.cat([w, w.new_ones(1)])  # the background label: its box weight is 0
    label_weights = [lw.unsqueeze(-1) * w.to(lw.device) for lw in label_weights]
    bbox_weights = [bw * per_label.to(bw.device)[lab].unsqueeze(-1).to(bw.dtype)
                    for lab, bw in zip(labels, bbox_weights)]
    return (labels, label_weights, bbox_targets, bbox_weights) + tuple(targets[4:])


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
                        data_samples: list, seed: int = 0, **norm) -> Tensor:
    head = model.bbox_head
    losses = []
    with per_image_normalisation(head, **norm):
        for i, ds in enumerate(data_samples):
            gt, gt_ignore, metas = unpack_gt_instances([ds])
            with image_seeded_rng(ds.metainfo.get('img_id', i), seed):
                losses.append(sum_losses(head.loss_by_feat(*_slice_outs(outs, i), gt, metas,
                                                           gt_ignore)))
    return torch.stack(losses)


def two_stage_losses(model: TwoStageDetector, x: Tuple[Tensor, ...], rpn_outs: tuple,
                     data_samples: list, seed: int = 0, **norm) -> Tensor:
    rpn_head, roi_head = model.rpn_head, model.roi_head
    proposal_cfg = model.train_cfg.get('rpn_proposal', model.test_cfg.rpn)
    losses = []
    with per_image_normalisation(rpn_head, roi_head.bbox_head, **norm):
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
                     seed: int = 0, avg_factor: Optional[float] = None,
                     positives: Optional[List[float]] = None,
                     foreground_only: bool = False,
                     class_weights: Optional[Tensor] = None) -> Tensor:
    """``[L_1..L_B]``, each image's training loss as if it were alone (see module doc);
    ``avg_factor``/``positives``/``foreground_only``/``class_weights``: see
    :func:`per_image_normalisation`. Nine arguments: mmdet's ``loss_by_feat`` inputs, a seed and
    the normaliser's four, passed through unchanged."""
    norm = dict(avg_factor=avg_factor, positives=positives, foreground_only=foreground_only,
                class_weights=class_weights)
    if isinstance(model, TwoStageDetector):
        return two_stage_losses(model, x, outs, data_samples, seed, **norm)
    return single_stage_losses(model, x, outs, data_samples, seed, **norm)
