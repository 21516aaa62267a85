"""The seam through which a strategy changes the round loop's rounds (box queries in
:mod:`isal_mmdet.study.box` do: answers become partly labelled images). The loop calls an
extension at four points and never asks what kind of strategy it runs; this one, which every
product strategy gets, changes nothing."""
from __future__ import annotations

from typing import Any, Dict, Hashable, Optional


class RoundExtension:
    """Four calls the round loop makes in every round ``k``; each takes the loop (its
    ``path(k, name)``, ``round_dir(k)``, ``source`` dataset and ``al`` settings)."""

    def before_training(self, loop: Any, k: int) -> None:
        """On rank 0, before round ``k`` builds its training data, e.g. to answer round
        ``k - 1``'s queries."""

    def train_dataset(self, loop: Any, k: int, dataset: dict, cfg: Any) -> dict:
        """Round ``k``'s training data source (the config inside ``ActiveSubset``);
        ``cfg`` (round ``k``'s runner config) may be changed in place to train on it."""
        return dataset

    def select(self, loop: Any, k: int, ctx: Any) -> Optional[float]:
        """Round ``k``'s selection and its seconds, or None: the loop's own
        (:func:`isal_mmdet.al.selection.select`)."""
        return None

    def charged(self, loop: Any, k: int) -> Dict[Hashable, float]:
        """The boxes charged so far for images labelled otherwise than whole (partly
        labelled images), by id; every other labelled image costs its real boxes."""
        return {}
