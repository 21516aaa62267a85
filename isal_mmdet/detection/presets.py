"""θ and LiSSA scales per detector family: the paper's last layers, weights only."""
from __future__ import annotations

from typing import Dict, Mapping, Optional

from torch import nn

from ..influence import ParamGroups

# Group name -> regex on parameter names. ParamGroups keeps ndim > 1 (no biases, no norms).
PRESETS: Dict[str, Dict[str, str]] = {
    'retinanet': {'retina_cls': r'(^|\.)retina_cls\.', 'retina_reg': r'(^|\.)retina_reg\.'},
    'fcos': {'conv_cls': r'(^|\.)conv_cls\.', 'conv_reg': r'(^|\.)conv_reg\.',
             'conv_centerness': r'(^|\.)conv_centerness\.'},
    'faster_rcnn': {'rpn_cls': r'(^|\.)rpn_cls\.', 'rpn_reg': r'(^|\.)rpn_reg\.',
                    'fc_cls': r'(^|\.)bbox_head\.fc_cls\.', 'fc_reg': r'(^|\.)bbox_head\.fc_reg\.'},
}

# The official ISAL scales. RetinaNet has none there: None means "power iteration" (see LiSSA).
DEFAULT_SCALES: Dict[str, Optional[Dict[str, float]]] = {
    'retinanet': None,
    'fcos': {'conv_cls': 100.0, 'conv_reg': 8000.0, 'conv_centerness': 5000.0},
    'faster_rcnn': {'rpn_cls': 1000.0, 'rpn_reg': 1000.0, 'fc_cls': 5000.0, 'fc_reg': 1000.0},
}


def detector_family(model: nn.Module) -> Optional[str]:
    """The preset a detector falls under, judged by the modules it has."""
    names = {n.rsplit('.', 1)[-1] for n, _ in model.named_modules()}
    if {'retina_cls', 'retina_reg'} <= names:
        return 'retinanet'
    if {'conv_cls', 'conv_reg', 'conv_centerness'} <= names:
        return 'fcos'
    if {'rpn_cls', 'rpn_reg', 'fc_cls', 'fc_reg'} <= names:
        return 'faster_rcnn'
    return None


def detector_param_groups(model: nn.Module,
                          patterns: Optional[Mapping[str, str]] = None) -> ParamGroups:
    """θ for ``model``: ``patterns`` if given, else its family's preset."""
    if patterns is None:
        family = detector_family(model)
        if family is None:
            raise ValueError(f'no parameter-group preset for {type(model).__name__}; set '
                             '`param_groups` to {group: regex} naming its last layers')
        patterns = PRESETS[family]
    return ParamGroups.from_patterns(model, dict(patterns))


def default_scales(model: nn.Module) -> Optional[Dict[str, float]]:
    family = detector_family(model)
    return None if family is None else DEFAULT_SCALES[family]
