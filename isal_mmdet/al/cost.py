"""What labelling costs, in the unit annotators are paid: seconds for each image opened and
each box drawn.

Defaults: 7.0 s per box, extreme clicking on PASCAL VOC (Papadopoulos et al., ICCV 2017;
classic corner drawing took 25.5 s, Su et al., 2012); 7.8 s per image, Su et al.'s check that
no object of the image is left without a box. Set your own where your annotators are timed.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnnotationCost:
    per_image: float = 7.8
    per_box: float = 7.0

    def __post_init__(self) -> None:
        for name in ('per_image', 'per_box'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not \
                    0 <= value < float('inf'):
                raise ValueError(f'active_learning.cost.{name} must be a non-negative number of seconds, '
                                 f'got {value!r}')

    def seconds(self, images: float, boxes: float) -> float:
        return self.per_image * images + self.per_box * boxes
