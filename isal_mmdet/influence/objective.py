"""The one task-specific piece: how a batch becomes per-sample losses."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Hashable, Iterator, List, Sequence, Tuple

from torch import Tensor, nn


class Objective(ABC):
    """Adapter between a task and the influence core.

    A loss is *UUIC-compatible* when ``per_sample_loss(...).sum()`` is the batch loss and each
    entry depends on its own sample only; then one batched pass yields every sample's
    gradient, whatever the batch size or number of ranks.
    """

    @abstractmethod
    def per_sample_loss(self, model: nn.Module, batch: Any, pseudo: bool = False) -> Tensor:
        """Loss of each sample in ``batch``, shape ``[B]``.

        ``pseudo=True`` asks for the expected loss of unlabelled samples (labels taken from the
        model's own predictions); ``False`` uses the samples' real labels.
        """

    @abstractmethod
    def sample_ids(self, batch: Any) -> List[Hashable]:
        """Stable identifiers of the samples in ``batch``, in order."""

    def per_part_loss(self, model: nn.Module, batch: Any,
                      pseudo: bool = True) -> Tuple[Tensor, List[Hashable]]:
        """Loss of each part of each sample (a detection's boxes), flat ``[P]``, and each
        part's key, for selecting parts rather than whole samples. Each entry must depend on
        its own sample only (UUIC), as in :meth:`per_sample_loss`."""
        raise NotImplementedError(f'{type(self).__name__} has no per-part losses; '
                                  'implement per_part_loss to score parts of samples')

    def per_answer_loss(self, model: nn.Module,
                        batch: Any) -> Tuple[Tensor, Tensor, List[Hashable]]:
        """For each part (as :meth:`per_part_loss` keys them), its loss under each answer a
        person labelling it could give, ``[P, R]``, the model's own probability of each
        answer, ``[P, R]`` (rows sum to 1), and the keys, for the expected squared influence
        of a part's label (:func:`isal_mmdet.study.box.part_scores.part_esi_scores`). UUIC,
        as :meth:`per_sample_loss`."""
        raise NotImplementedError(f'{type(self).__name__} has no per-answer losses; '
                                  'implement per_answer_loss to score parts by ESI')

    def collate(self, samples: Sequence[Any]) -> Any:
        """Batch a list of dataset items (LiSSA draws items one by one)."""
        return list(samples)

    @contextmanager
    def cached(self) -> Iterator[None]:
        """While a solver runs, the labelled samples and every parameter outside θ stay
        fixed, so an objective may keep per-sample work that θ cannot change (features below
        θ) and reuse it in every curvature product. Solvers hold this for a whole solve; the
        default keeps nothing."""
        yield
