"""Vectors in parameter space, kept per parameter group (never one flat copy of the model)."""
from __future__ import annotations

import math
from typing import Callable, Dict, Iterator, List, Mapping, Union

import torch
from torch import Tensor

Scalar = Union[float, int]


class GroupVector:
    """An ordered mapping ``group name -> list of tensors`` with the algebra solvers need.

    Scalars act on every group; a ``{group: scalar}`` mapping acts per group, which is how
    LiSSA applies its per-group scales.
    """

    def __init__(self, data: Mapping[str, List[Tensor]]):
        self.data: Dict[str, List[Tensor]] = {k: list(v) for k, v in data.items()}

    # -- container ---------------------------------------------------------------------------
    def keys(self) -> List[str]:
        return list(self.data)

    def __getitem__(self, group: str) -> List[Tensor]:
        return self.data[group]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def tensors(self) -> List[Tensor]:
        return [t for ts in self.data.values() for t in ts]

    def map(self, fn: Callable[[Tensor], Tensor]) -> 'GroupVector':
        return GroupVector({k: [fn(t) for t in ts] for k, ts in self.data.items()})

    def zip_map(self, other: 'GroupVector',
                fn: Callable[[Tensor, Tensor], Tensor]) -> 'GroupVector':
        return GroupVector({k: [fn(a, b) for a, b in zip(ts, other.data[k])]
                            for k, ts in self.data.items()})

    def clone(self) -> 'GroupVector':
        return self.map(lambda t: t.detach().clone())

    def zeros_like(self) -> 'GroupVector':
        return self.map(torch.zeros_like)

    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors())

    # -- algebra -----------------------------------------------------------------------------
    def _scalar_for(self, c: Union[Scalar, Mapping[str, Scalar]], group: str) -> float:
        return float(c[group]) if isinstance(c, Mapping) else float(c)

    def scale(self, c: Union[Scalar, Mapping[str, Scalar]]) -> 'GroupVector':
        return GroupVector({k: [t * self._scalar_for(c, k) for t in ts]
                            for k, ts in self.data.items()})

    def __add__(self, other: 'GroupVector') -> 'GroupVector':
        return self.zip_map(other, torch.add)

    def __sub__(self, other: 'GroupVector') -> 'GroupVector':
        return self.zip_map(other, torch.sub)

    def __mul__(self, c: Union[Scalar, Mapping[str, Scalar]]) -> 'GroupVector':
        return self.scale(c)

    __rmul__ = __mul__

    def group_dot(self, other: 'GroupVector') -> Dict[str, float]:
        return {k: float(sum((a.double() * b.double()).sum() for a, b in zip(ts, other.data[k])))
                for k, ts in self.data.items()}

    def dot(self, other: 'GroupVector') -> float:
        return sum(self.group_dot(other).values())

    def group_norm(self) -> Dict[str, float]:
        return {k: math.sqrt(max(v, 0.0)) for k, v in self.group_dot(self).items()}

    def norm(self) -> float:
        return math.sqrt(max(self.dot(self), 0.0))

    def group_isfinite(self) -> Dict[str, bool]:
        return {k: all(bool(torch.isfinite(t).all()) for t in ts) for k, ts in self.data.items()}

    def flatten(self) -> Tensor:
        return torch.cat([t.reshape(-1) for t in self.tensors()])

    def unflatten(self, flat: Tensor) -> 'GroupVector':
        """A vector shaped like ``self`` filled from ``flat`` (tests and the exact solver)."""
        out, i = {}, 0
        for k, ts in self.data.items():
            out[k] = []
            for t in ts:
                out[k].append(flat[i:i + t.numel()].view_as(t).to(t.dtype))
                i += t.numel()
        return GroupVector(out)

    def __repr__(self) -> str:
        return f'GroupVector({ {k: [tuple(t.shape) for t in ts] for k, ts in self.data.items()} })'
