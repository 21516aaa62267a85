"""The round loop as the Label Studio backend drives it (``--oracle none``, open-ended)."""
from __future__ import annotations

import copy
import os.path as osp
from typing import Hashable, List, Optional

from mmengine.config import Config

from ..al.loop import ActiveLearningLoop
from ..al.state import LabelState
from ..labelling.annotations import EXPORT_FILE

OPEN_ENDED = 10 ** 6  # rounds: the annotators decide when to stop


class ServedLoop(ActiveLearningLoop):
    """A human oracle in Label Studio. Annotators follow the ranking, not the budget, so the
    export of round k may label any pool image: every one it labels is imported, and the
    rest stay in the pool (``allow_missing``)."""

    def __init__(self, cfg: Config, work_dir: str):
        cfg = copy.deepcopy(cfg)
        cfg.active_learning = dict(cfg.get('active_learning') or {}, rounds=OPEN_ENDED)
        super().__init__(cfg, work_dir, oracle='none', allow_missing=True)

    def import_coco(self, k: int, selected: List[Hashable]) -> Optional[str]:
        pool = LabelState.load(self.path(k, 'labeled.json'), self.all_ids).unlabelled
        return super().import_coco(k, pool)

    def finished_round(self) -> Optional[int]:
        """The newest round whose model is trained and whose pool is scored (its
        ``selection.json``, written last, is there), or None."""
        k = 0
        while all(osp.exists(self.path(k, f)) for f in ('metrics.json', 'selection.json')):
            k += 1
        return k - 1 if k else None

    def export_file(self, k: int) -> str:
        """Where the export that round k+1 imports is saved (the loop's fixed place)."""
        return self.path(k, EXPORT_FILE)
