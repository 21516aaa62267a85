"""The mmdet adapter: UUIC pseudo labels, per-image and per-box losses (and the answer
distribution of a box query) and θ presets for detectors."""
from .assigners import IgnoringMaxIoUAssigner
from .box_answers import answer_distribution
from .box_losses import box_loss_head, box_losses
from .losses import per_image_losses, per_image_normalisation, sum_losses
from .objective import DetectionObjective, detection_candidates
from .presets import (DEFAULT_SCALES, PRESETS, default_scales, detector_family,
                      detector_param_groups)
from .pseudo_labels import box_records, drop_degenerate, to_pseudo_gt

__all__ = [
    'DEFAULT_SCALES', 'DetectionObjective', 'PRESETS', 'answer_distribution', 'box_loss_head',
    'box_losses', 'box_records', 'default_scales', 'detection_candidates', 'detector_family',
    'detector_param_groups', 'drop_degenerate', 'per_image_losses', 'per_image_normalisation',
    'sum_losses', 'to_pseudo_gt'
]
