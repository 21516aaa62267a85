"""The round loop as the Label Studio backend drives it (``--oracle none``, open-ended)."""
from __future__ import annotations

import copy
import os.path as osp
from typing import Hashable, List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..al.loop import ActiveLearningLoop
from ..al.state import LabelState, read_ids, sort_ids
from ..fileio import write_json
from ..labelling.annotations import EXPORT_FILE, MERGED_FILE, import_export

OPEN_ENDED = 10 ** 6  # rounds: the annotators decide when to stop
# Rounds run in a thread of the server, beside uvicorn's and the publisher's: a process forked
# from there (mmdet's eval_map pool at every VOCMetric evaluation, DataLoader workers) may
# inherit a lock another thread held and wait for ever. A fork server is a fresh interpreter.
CHILDREN_START = 'forkserver'


class ServedLoop(ActiveLearningLoop):
    """A human oracle in Label Studio. Annotators follow the ranking, not the budget, so the
    export of round k may label any pool image: every one it labels is imported, and the
    rest stay in the pool."""

    def __init__(self, cfg: Config, work_dir: str):
        cfg = copy.deepcopy(cfg)
        cfg.active_learning = dict(cfg.get('active_learning') or {}, rounds=OPEN_ENDED)
        env = dict(cfg.get('env_cfg') or {})  # every Runner sets the start method from here
        env['mp_cfg'] = dict(env.get('mp_cfg') or {}, mp_start_method=CHILDREN_START)
        cfg.env_cfg = env
        super().__init__(cfg, work_dir, oracle='none')

    def setup(self) -> None:
        """The checks of :meth:`ActiveLearningLoop.setup`, the pool's size for round 0 only: it
        counts ``rounds`` selections of ``budget`` images, which open-ended rounds never make."""
        self.al['rounds'] = 1
        try:
            super().setup()
        finally:
            self.al['rounds'] = OPEN_ENDED

    def import_coco(self, k: int, selected: List[Hashable]) -> Optional[str]:
        """Round k+1's labels: round 0's images as the config labels them, every other image
        as its task's newest annotation in the project's whole export (pulled just before).
        The whole export, not only the images labelled since round k: an edited annotation
        replaces its image's boxes, and an image whose annotations were all deleted leaves
        the training set. The strategy's selection (``selected``) is only advice here."""
        merged = self.path(k + 1, MERGED_FILE)
        if osp.exists(merged):
            return None
        export = self.export_file(k)
        if not osp.exists(export):
            return f'round {k + 1} waits for the annotations: no {export} yet'
        initial = LabelState.load(self.path(0, 'labeled.json'), self.all_ids).labelled
        fixed = set(initial)
        result = import_export(export, self.source.ann_file,
                               [i for i in self.all_ids if i not in fixed],
                               self.source.metainfo['classes'])
        before = set(read_ids(self.path(k, 'labeled.json'))) - fixed
        now = set(result.labelled)
        write_json(self.path(k + 1, 'labeled.json'), sort_ids(initial + result.labelled))
        write_json(merged, result.coco)
        print_log(f'{export}: {len(now)} images labelled in Label Studio, {result.boxes} boxes: '
                  f'{len(now - before)} new, {len(now & before)} again as last annotated; '
                  f'{len(before - now)} left the training set, their annotations deleted: '
                  f'{sort_ids(before - now)}; {len(result.ignored)} tasks ignored (round 0\'s '
                  'images keep the config\'s labels; other files are not in the pool)',
                  logger='current')
        return None

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
