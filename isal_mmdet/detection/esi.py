"""ESI's detector side: each image's logits and their directional derivatives along s.

θ is the layers that output a dense head's class logits and box deltas, so the derivative
of those outputs along s is the same layer run with s as its weights on the input it saw:
one extra conv per θ layer, no pseudo boxes, no target assignment, no backward.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors import SingleStageDetector
from torch import Tensor, nn

from ..influence import GroupVector, ParamGroups
from ..influence.expected import esi_terms
from .batching import same_shape_groups


def _check_head(head_type: Any, loss_cls: Dict, loss_bbox: Dict, box_term: bool) -> None:
    if not (isinstance(head_type, type) and issubclass(head_type, AnchorHead)):
        name = getattr(head_type, '__name__', head_type)
        raise ValueError(f'ESI needs a single-stage anchor head (RetinaNet), not {name}')
    if loss_cls.get('type') not in ('FocalLoss', 'mmdet.FocalLoss') or \
            not loss_cls.get('use_sigmoid', False):
        raise ValueError(f"ESI needs a sigmoid FocalLoss classification loss, not "
                         f"{loss_cls.get('type')!r}")
    if box_term and loss_bbox.get('type') not in ('L1Loss', 'mmdet.L1Loss'):
        raise ValueError(f"ESI's box term assumes an L1 box loss, not "
                         f"{loss_bbox.get('type')!r}; set box_term=False")


def check_esi_model_cfg(model_cfg: Dict, box_term: bool) -> None:
    """Refuses, from the config alone, a detector ESI cannot score."""
    from mmdet.registry import MODELS
    head = model_cfg.get('bbox_head')
    if 'rpn_head' in model_cfg or head is None:
        raise ValueError(f"ESI needs a single-stage detector, not {model_cfg.get('type')!r}")
    head_type = MODELS.get(head['type']) if isinstance(head['type'], str) else head['type']
    _check_head(head_type, dict(head.get('loss_cls', {})), dict(head.get('loss_bbox', {})),
                box_term)


def _loss_cfg(loss: nn.Module) -> Dict:
    return dict(type=type(loss).__name__, use_sigmoid=getattr(loss, 'use_sigmoid', False))


def check_esi_model(model: nn.Module, box_term: bool) -> None:
    """Refuses a built detector ESI cannot score (see :func:`check_esi_model_cfg`)."""
    if not isinstance(model, SingleStageDetector):
        raise ValueError(f'ESI needs a single-stage detector, not {type(model).__name__}')
    head = model.bbox_head
    _check_head(type(head), _loss_cfg(head.loss_cls), _loss_cfg(head.loss_bbox), box_term)


@contextmanager
def _captured(modules: List[nn.Module]) -> Iterator[Dict[int, List[Tuple[Tensor, Tensor]]]]:
    """``{id(module): [(input, output) per call]}`` while the head runs."""
    seen: Dict[int, List[Tuple[Tensor, Tensor]]] = {id(m): [] for m in modules}
    handles = [m.register_forward_hook(
        lambda mod, inp, out: seen[id(mod)].append((inp[0], out))) for m in modules]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def _run_with_weight(module: nn.Module, inp: Tensor, weight: Tensor) -> Tensor:
    weight = weight.to(inp.dtype)
    if isinstance(module, nn.Conv2d):
        return F.conv2d(inp, weight, None, module.stride, module.padding, module.dilation,
                        module.groups)
    if isinstance(module, nn.Linear):
        return F.linear(inp, weight)
    raise ValueError(f'ESI: θ layer {type(module).__name__} is neither Conv2d nor Linear')


class DirectionalHead:
    """Runs a RetinaNet-style head and, for each image, returns its per-anchor ESI terms.

    Args:
        model: a single-stage detector with an anchor head and a sigmoid focal loss.
        groups, s: θ (the head's output layers, weights only) and s = H⁻¹v over it.
        box_term: add the box term (L1 loss: Σ_a q_a Σ_coords j²).
    """

    def __init__(self, model: nn.Module, groups: ParamGroups, s: GroupVector,
                 box_term: bool = True):
        check_esi_model(model, box_term)
        self.model, self.head, self.box_term = model, model.bbox_head, box_term
        self.layers: List[Tuple[nn.Module, Tensor]] = []
        for g in groups.names():
            for (name, _), direction in zip(groups.groups[g], s[g]):
                owner, attr = name.rsplit('.', 1)
                if attr != 'weight':
                    raise ValueError(f'ESI: θ parameter {name} is not a layer weight')
                self.layers.append((model.get_submodule(owner), direction.detach()))

    @torch.no_grad()
    def _group_terms(self, inputs: Tensor, samples: list) -> List[Tuple[Tensor, Tensor]]:
        head = self.head
        x = self.model.extract_feat(inputs)
        with _captured([m for m, _ in self.layers]) as seen:
            cls_scores, bbox_preds = head(x)[:2]
        cls_dir = [torch.zeros_like(c) for c in cls_scores]
        box_dir = [torch.zeros_like(b) for b in bbox_preds]
        for module, weight in self.layers:
            for inp, out in seen[id(module)]:
                targets = [(lvl, d) for lvl, d in ((cls_scores, cls_dir), (bbox_preds, box_dir))
                           if any(out is t for t in lvl)]
                if not targets:
                    raise ValueError(f'ESI: θ layer {type(module).__name__} does not output '
                                     'the class logits or box deltas; θ must be those layers')
                lvl, d = targets[0]
                k = next(i for i, t in enumerate(lvl) if out is t)
                d[k] = d[k] + _run_with_weight(module, inp, weight)
        k_cls = head.cls_out_channels
        per_anchor_box = bbox_preds[0].shape[1] // head.num_base_priors
        sizes = [c.shape[-2:] for c in cls_scores]
        loss_cls, loss_box = head.loss_cls, head.loss_bbox

        def flat(levels: List[Tensor], i: int, width: int) -> Tensor:
            return torch.cat([lvl[i].permute(1, 2, 0).reshape(-1, width) for lvl in levels])

        out = []
        for i, ds in enumerate(samples):
            valid = torch.cat(head.prior_generator.valid_flags(
                sizes, ds.metainfo['pad_shape'], cls_scores[0].device))
            out.append(esi_terms(
                flat(cls_scores, i, k_cls)[valid], flat(cls_dir, i, k_cls)[valid],
                flat(box_dir, i, per_anchor_box)[valid] if self.box_term else None,
                alpha=loss_cls.alpha, gamma=loss_cls.gamma, cls_weight=loss_cls.loss_weight,
                box_weight=loss_box.loss_weight))
        return out

    def terms(self, batch: Any) -> List[Tuple[Tensor, Tensor]]:
        """``[(variance [A], mean [A])]`` per image of ``batch`` (see ``esi_terms``); each
        image is preprocessed alone, so its terms do not depend on the batch."""
        self.model.eval()
        out: List[Optional[Tuple[Tensor, Tensor]]] = [None] * len(batch['inputs'])
        for idx, inputs, samples in same_shape_groups(self.model, batch):
            for i, t in zip(idx, self._group_terms(inputs, samples)):
                out[i] = t
        return out
