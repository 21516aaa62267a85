"""Batch images only with images of the same padded shape.

Padding depends on the batch and changes an image's features and anchors; preprocessing
each image alone and grouping equal shapes keeps every per-image result independent of
batch size and rank.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Iterator, List, Tuple

import torch
from torch import Tensor, nn


def same_shape_groups(model: nn.Module, batch: Any) -> Iterator[Tuple[List[int], Tensor, list]]:
    """Yields ``(positions in batch, stacked inputs, data samples)`` per padded shape."""
    prepared = []
    by_shape: Dict[tuple, List[int]] = defaultdict(list)
    for i in range(len(batch['inputs'])):
        one = model.data_preprocessor(
            {'inputs': [batch['inputs'][i]], 'data_samples': [batch['data_samples'][i]]}, False)
        prepared.append(one)
        by_shape[tuple(one['inputs'].shape[-2:])].append(i)
    for idx in by_shape.values():
        yield (idx, torch.cat([prepared[i]['inputs'] for i in idx]),
               [prepared[i]['data_samples'][0] for i in idx])
