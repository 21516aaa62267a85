"""Per-box losses of single-stage anchor heads: how much each box adds to its image's loss.

For an image z with boxes b_1..b_m, anchors assigned once with all m boxes present and z's
normaliser N_z (its own positive count clamped to >= 1, see :func:`per_image_normalisation`)
held fixed, box b's loss is

    L_b = (1/N_z) · Σ over anchors a assigned to b of [cls loss of a with target class(b)
                                                       + box loss of a towards b],

exactly the image loss minus the image loss with b's anchors ignored (label and box weight
0, assignments unchanged). In partial-label training an un-queried detection is an ignored
region, neither positive nor negative; checking box b turns its anchors from ignored into
labelled, which is this difference. The image loss is Σ_b L_b plus the terms of the
background anchors.

A person checking b answers "class c" or "no object": L_b(c) labels b's anchors class c
(box target b's own coordinates), L_b(bg) makes them negatives (background target, no box
term), the anchors, assignments and normaliser unchanged (``every_answer``).

The terms are mmdet's own loss modules with ``reduction='none'`` on the positive anchors,
under the same patched, twice differentiable focal and L1 losses as the image loss.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from torch import Tensor, nn

from ...detection.losses import image_seeded_rng, per_image_normalisation

# The AnchorHead methods whose targets and loss this module reproduces per box.
_ANCHOR_LOSS = ('loss_by_feat', 'loss_by_feat_single', 'get_targets', '_get_targets_single')


def box_loss_head(model: nn.Module) -> AnchorHead:
    """The dense head of ``model`` when its loss is mmdet's ``AnchorHead`` loss (RetinaNet);
    any other head (two-stage, anchor-free, its own targets or loss) is refused."""
    if isinstance(model, TwoStageDetector):
        name = f'{type(model.rpn_head).__name__} + {type(model.roi_head.bbox_head).__name__}'
    else:
        head = getattr(model, 'bbox_head', None)
        if isinstance(model, SingleStageDetector) and isinstance(head, AnchorHead) and all(
                getattr(type(head), m) is getattr(AnchorHead, m) for m in _ANCHOR_LOSS):
            return head
        name = type(head).__name__
    raise ValueError(f"per-box losses need a single-stage head with mmdet's AnchorHead "
                     f"targets and loss (RetinaNet), not {name}")


def _owners(head: AnchorHead, anchors: List[Tensor], valid: List[Tensor], meta: dict,
            sampling) -> Tensor:
    """``[A]``: the box each anchor is assigned to, -1 for none. Sampling results index the
    anchors inside the image, which ``_get_targets_single`` picks as done here."""
    flat = cat_boxes(anchors)
    inside = anchor_inside_flags(flat, torch.cat(valid), meta['img_shape'][:2],
                                 head.train_cfg['allowed_border'])
    owner = torch.full((len(inside),), -1, dtype=torch.long, device=inside.device)
    owner[torch.nonzero(inside).squeeze(1)[sampling.pos_inds]] = sampling.pos_assigned_gt_inds
    return owner


def _per_row(loss: Tensor, n: int) -> Tensor:
    """Sum of each anchor's terms; mmdet's box losses return a 0-d zero when every weight is 0."""
    return loss.reshape(n, -1).sum(1) if loss.dim() else loss.expand(n)


def answer_head(model: nn.Module) -> AnchorHead:
    """:func:`box_loss_head`, with a sigmoid classifier: each class's term its own logit
    against its own bit, which losses and probabilities per answer rely on."""
    head = box_loss_head(model)
    if not head.use_sigmoid_cls:
        raise ValueError('per-answer box losses need a sigmoid classifier (RetinaNet), not '
                         f'{type(head.loss_cls).__name__} with use_sigmoid=False')
    return head


def _image_box_losses(head: AnchorHead, cls_scores: Sequence[Tensor],
                      bbox_preds: Sequence[Tensor], data_sample,
                      every_answer: bool = False) -> Tensor:
    """``[m]`` per-box losses of one image, from its slice of the head outputs; with
    ``every_answer``, ``[m, K + 1]``: column c < K the box labelled class c, column K the box
    answered "no object" (its anchors negatives: background class target, no box term)."""
    gt, gt_ignore, metas = unpack_gt_instances([data_sample])
    anchors, valid = head.get_anchors([c.shape[-2:] for c in cls_scores], metas,
                                      device=cls_scores[0].device)
    labels, label_w, box_t, box_w, avg_factor, sampling = head.get_targets(
        anchors, valid, gt, metas, gt_ignore, return_sampling_results=True)
    owner = _owners(head, anchors[0], valid[0], metas[0], sampling[0])
    pos = torch.nonzero(owner >= 0).squeeze(1)
    m = len(gt[0])
    if not len(pos):
        return cls_scores[0].new_zeros((m, head.num_classes + 1) if every_answer else m)

    def flat(levels: Sequence[Tensor], width: int) -> Tensor:
        return torch.cat([lvl[0].permute(1, 2, 0).reshape(-1, width) for lvl in levels])[pos]

    logits = flat(cls_scores, head.cls_out_channels)
    deltas = flat(bbox_preds, head.bbox_coder.encode_size)
    if head.reg_decoded_bbox:
        deltas = get_box_tensor(head.bbox_coder.decode(cat_boxes(anchors[0])[pos], deltas))
    label_w = torch.cat(label_w, 1)[0][pos]
    box = _per_row(head.loss_bbox(deltas, torch.cat(box_t, 1)[0][pos],
                                  torch.cat(box_w, 1)[0][pos], reduction_override='none'),
                   len(pos))
    if every_answer:
        # a sigmoid loss sums one term per class column, its logit against its own bit:
        # answer c turns column c's bit on, "no object" leaves every bit off
        off, on = (head.loss_cls(logits, torch.full_like(logits, bit), label_w,
                                 reduction_override='none') for bit in (0.0, 1.0))
        background = off.sum(1, keepdim=True)
        per_anchor = torch.cat([background + on - off + box[:, None], background], 1)
    else:
        per_anchor = _per_row(head.loss_cls(logits, torch.cat(labels, 1)[0][pos], label_w,
                                            reduction_override='none'), len(pos)) + box
    # mmdet's weight_reduce_loss divides by avg_factor + eps: the same normaliser exactly
    norm = avg_factor + torch.finfo(torch.float32).eps
    return per_anchor.new_zeros((m,) + per_anchor.shape[1:]).index_add(
        0, owner[pos], per_anchor) / norm


def box_losses(model: nn.Module, outs: tuple, data_samples: list, seed: int = 0,
               every_answer: bool = False, **norm) -> List[Tensor]:
    """Per image, ``[m_i]`` losses of its ``gt_instances`` boxes in their order (see module
    doc), from the batched head outputs ``outs``; with ``every_answer``, ``[m_i, K + 1]``,
    each box's loss under every answer to "what is here?" (K classes, then "no object";
    the same anchors, assignments, normaliser and box target). ``norm``: see
    :func:`per_image_normalisation`."""
    head = answer_head(model) if every_answer else box_loss_head(model)
    cls_scores, bbox_preds = outs
    out = []
    with per_image_normalisation(head, **norm):
        for i, ds in enumerate(data_samples):
            with image_seeded_rng(ds.metainfo.get('img_id', i), seed):
                out.append(_image_box_losses(head, [c[i:i + 1] for c in cls_scores],
                                             [b[i:i + 1] for b in bbox_preds], ds,
                                             every_answer))
    return out
