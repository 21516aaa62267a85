"""Which parameters influence is measured over (θ), grouped as LiSSA scales them."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .vector import GroupVector


class ParamGroups:
    """Named groups of parameters, each a list of ``(name, parameter)``."""

    def __init__(self, groups: Mapping[str, Sequence[Tuple[str, nn.Parameter]]]):
        self.groups: Dict[str, List[Tuple[str, nn.Parameter]]] = {
            g: list(ps) for g, ps in groups.items()}
        empty = [g for g, ps in self.groups.items() if not ps]
        if empty:
            raise ValueError(f'parameter groups {empty} match no parameter')

    @classmethod
    def from_patterns(cls, model: nn.Module,
                      patterns: Union[Mapping[str, str], Sequence[str]],
                      min_ndim: int = 2) -> 'ParamGroups':
        """Groups from regexes searched in parameter names.

        ``min_ndim=2`` keeps only weights, as the paper does: no biases, no norm layers.
        A sequence of patterns names each group after its pattern. A parameter joins the first
        group whose pattern matches.
        """
        if not isinstance(patterns, Mapping):
            patterns = {p: p for p in patterns}
        compiled = {g: re.compile(p) for g, p in patterns.items()}
        groups: Dict[str, List[Tuple[str, nn.Parameter]]] = {g: [] for g in patterns}
        for name, p in model.named_parameters():
            if p.ndim < min_ndim:
                continue
            for g, rx in compiled.items():
                if rx.search(name):
                    groups[g].append((name, p))
                    break
        empty = [g for g, ps in groups.items() if not ps]
        if empty:
            raise ValueError(f'parameter pattern(s) {[patterns[g] for g in empty]} match no '
                             f'parameter with ndim >= {min_ndim} in {type(model).__name__}')
        return cls(groups)

    def names(self) -> List[str]:
        return list(self.groups)

    def params(self) -> List[nn.Parameter]:
        return [p for ps in self.groups.values() for _, p in ps]

    def param_names(self) -> Dict[str, List[str]]:
        return {g: [n for n, _ in ps] for g, ps in self.groups.items()}

    def numel(self) -> int:
        return sum(p.numel() for p in self.params())

    def wrap(self, tensors: Sequence[Tensor]) -> GroupVector:
        """Tensors aligned with :meth:`params` as a :class:`GroupVector`."""
        out, i = {}, 0
        for g, ps in self.groups.items():
            out[g] = list(tensors[i:i + len(ps)])
            i += len(ps)
        return GroupVector(out)

    def zeros(self) -> GroupVector:
        return self.wrap([torch.zeros_like(p) for p in self.params()])

    @contextmanager
    def only_these_require_grad(self, model: nn.Module) -> Iterator[None]:
        """Autograd builds graph only towards θ; restores every flag on exit."""
        saved = {n: p.requires_grad for n, p in model.named_parameters()}
        ours = {id(p) for p in self.params()}
        try:
            for p in model.parameters():
                p.requires_grad_(id(p) in ours)
            yield
        finally:
            for n, p in model.named_parameters():
                p.requires_grad_(saved[n])

    def __repr__(self) -> str:
        return f'ParamGroups({self.param_names()})'
