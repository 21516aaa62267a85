"""The mmdet adapter: UUIC pseudo labels, per-image losses and θ presets for detectors."""
from .losses import per_image_losses, per_image_normalisation, sum_losses
from .objective import DetectionObjective
from .presets import (DEFAULT_SCALES, PRESETS, default_scales, detector_family,
                      detector_param_groups)
from .pseudo_labels import drop_degenerate, to_pseudo_gt

__all__ = [
    'DEFAULT_SCALES', 'DetectionObjective', 'PRESETS', 'default_scales',
    'detector_family', 'detector_param_groups', 'drop_degenerate', 'per_image_losses',
    'per_image_normalisation', 'sum_losses', 'to_pseudo_gt'
]
