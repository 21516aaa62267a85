"""Labelled / unlabelled bookkeeping over stable image ids."""
from __future__ import annotations

import random
from typing import Hashable, Iterable, List, Sequence

from ..fileio import write_json
from ..labelling.validate import read_ids  # the id files' one reader, for datasets/ too


def sort_ids(ids: Iterable[Hashable]) -> List[Hashable]:
    """A total order over ids of one kind (VOC stems or COCO ints), for stable output."""
    return sorted(ids, key=lambda i: (isinstance(i, str), i))


def initial_split(all_ids: Sequence[Hashable], size: int, seed: int) -> List[Hashable]:
    """A seeded random labelled set, independent of the order ``all_ids`` come in."""
    if size <= 0:
        raise ValueError(f'active_learning.initial_size must be > 0, got {size}')
    pool = sort_ids(set(all_ids))
    if size > len(pool):
        raise ValueError(f'active_learning.initial_size={size} is larger than the pool '
                         f'({len(pool)} images)')
    return sort_ids(random.Random(seed).sample(pool, size))


class LabelState:
    """The labelled set L and the pool U = all − L."""

    def __init__(self, all_ids: Iterable[Hashable], labelled: Iterable[Hashable] = ()):
        self.all_ids = sort_ids(set(all_ids))
        known = set(self.all_ids)
        labelled = list(labelled)
        if len(set(labelled)) != len(labelled):
            raise ValueError('labelled ids contain duplicates')
        unknown = [i for i in labelled if i not in known]
        if unknown:
            raise ValueError(f'{len(unknown)} labelled id(s) are not in the dataset, e.g. '
                             f'{unknown[:3]}')
        self.labelled = sort_ids(labelled)

    @property
    def unlabelled(self) -> List[Hashable]:
        done = set(self.labelled)
        return [i for i in self.all_ids if i not in done]

    def add(self, selected: Iterable[Hashable]) -> 'LabelState':
        selected = list(selected)
        pool = set(self.unlabelled)
        bad = [i for i in selected if i not in pool]
        if bad:
            raise ValueError(f'selected id(s) not in the unlabelled pool: {bad[:3]}')
        if len(set(selected)) != len(selected):
            raise ValueError('selection contains duplicate ids')
        return LabelState(self.all_ids, self.labelled + selected)

    def save(self, path: str) -> None:
        write_json(path, self.labelled)

    @classmethod
    def load(cls, path: str, all_ids: Iterable[Hashable]) -> 'LabelState':
        ids = read_ids(path)
        try:
            return cls(all_ids, ids)
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from None
