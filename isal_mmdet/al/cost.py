"""What labelling costs, in the unit annotators are paid: seconds for each image opened and
each box drawn.

Defaults: 7.0 s per box, extreme clicking on PASCAL VOC (Papadopoulos et al., ICCV 2017;
classic corner drawing took 25.5 s, Su et al., 2012); 7.8 s per image, Su et al.'s check that
no object of the image is left without a box. Set your own where your annotators are timed.

``per_check`` prices a box query answered "no object" (a shown box rejected, or a box already
labelled): by default (None) it costs what a drawn box does, the strict accounting; Box-Level
Active Detection's code charges nothing for it (``per_check=0``). We found no published time
for rejecting a shown box measured against a 7.0 s drawn box, so the default stays strict. In
a budget in boxes, a check counts ``per_check / per_box`` of a box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class AnnotationCost:
    per_image: float = 7.8
    per_box: float = 7.0
    per_check: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ('per_image', 'per_box', 'per_check'):
            value = getattr(self, name)
            if name == 'per_check' and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not \
                    0 <= value < float('inf'):
                raise ValueError(f'active_learning.cost.{name} must be a non-negative number of seconds, '
                                 f'got {value!r}')
        if self.per_check is not None and self.per_box == 0:
            raise ValueError('active_learning.cost.per_check is priced against a drawn box: '
                             'per_box must be above 0')

    def seconds(self, images: float, boxes: float) -> float:
        return self.per_image * images + self.per_box * boxes

    @property
    def check_boxes(self) -> float:
        """A "no object" answer's price in drawn boxes."""
        return 1.0 if self.per_check is None else self.per_check / self.per_box
