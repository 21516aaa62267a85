"""One finished round, answering Label Studio's ``/predict``: the round's model's boxes at
its fitted pre-annotation thresholds, and a task score whose descending order is the
strategy's ranking of the pool."""
from __future__ import annotations

import copy
import csv
from typing import Any, Dict, Hashable, List, Optional

import torch
from mmdet.apis import init_detector
from mmengine.config import Config

from ..al.state import read_ids
from ..fileio import read_json
from ..labelling.annotations import base_name, match_name
from ..labelling.export import coco_preannotations
from ..labelling.labelstudio import tasks_from_coco
from .rounds import ServedLoop


def model_version(k: int) -> str:
    return f'round_{k}'


def pool_names(pool: Any) -> Dict[str, Hashable]:
    """File name → image id of the pool, for matching a task's image URL; two images with one
    name could not be told apart in Label Studio."""
    names: Dict[str, Hashable] = {}
    for i in range(len(pool)):
        info = pool.get_data_info(i)
        name = base_name(info['img_path'])
        if name in names:
            raise ValueError(f'images {names[name]!r} and {info["img_id"]!r} share the file '
                             f'name {name!r}: Label Studio tasks cannot tell them apart')
        names[name] = info['img_id']
    return names


def task_scores(loop: ServedLoop, k: int, ids: Dict[str, Hashable]) -> Dict[Hashable, float]:
    """``1 - rank / n`` for the n images round k ranked (best first: 1.0), 0.0 for the images
    it trained on; read from round k's ``scores.csv``, the strategy's own order."""
    with open(loop.path(k, 'scores.csv'), newline='') as f:
        ranked = [ids[row['img_id']] for row in sorted(csv.DictReader(f),
                                                      key=lambda r: int(r['rank']))]
    scores = {i: 0.0 for i in read_ids(loop.path(k, 'labeled.json'))}
    scores.update({i: 1 - r / len(ranked) for r, i in enumerate(ranked)})
    return scores


class Predictor:
    """Round ``k``'s model, thresholds and ranking over ``pool`` (the test-pipeline dataset
    of every training image)."""

    def __init__(self, cfg: Config, loop: ServedLoop, k: int, pool: Any,
                 names: Dict[str, Hashable], batch_size: int):
        checkpoint = loop.last_checkpoint(k)
        if checkpoint is None:
            raise ValueError(f'{loop.path(k, "train")}: round {k} has no checkpoint')
        device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
        self.model = init_detector(copy.deepcopy(cfg), checkpoint, device=device).eval()
        self.version = model_version(k)
        self.pool, self.names, self.batch_size = pool, names, batch_size
        self.classes = tuple(pool.metainfo['classes'])
        fitted = read_json(loop.path(k, 'selection.json')).get('preannotation') or {}
        self.thr = fitted.get('per_class') or loop.al['preannotation_thr']
        if self.thr == 'auto':  # the selection exported no pre-annotations to fit them on
            self.thr = 0.5
        self.scores = task_scores(loop, k, {str(i): i for i in names.values()})

    def image_id(self, task: Any, t: int) -> Optional[Hashable]:
        """The pool image of task ``t`` (matched by file name), or None when not in the pool."""
        image = task.get('data', {}).get('image') if isinstance(task, dict) else None
        if not isinstance(image, str):
            raise ValueError(f'tasks[{t}].data.image is missing or not a string')
        try:
            hit = match_name(base_name(image), self.names)
        except ValueError as e:
            raise ValueError(f'tasks[{t}].data.image {base_name(image)!r} {e}') from None
        return None if hit is None else self.names[hit]

    @torch.no_grad()
    def predict(self, tasks: List[Any]) -> List[dict]:
        """One prediction per task, in order; the page's images go through the model in
        batches. A task whose image is not in the pool gets no box and score 0."""
        ids = [self.image_id(task, t) for t, task in enumerate(tasks)]
        wanted = list(dict.fromkeys(i for i in ids if i is not None))
        pre = coco_preannotations(self.model, self.pool, wanted, self.classes, self.thr,
                                  self.batch_size)
        order = sorted(self.scores, key=lambda i: -self.scores[i])
        done = {task['data']['isal_img_id']: task['predictions'][0]['result'] for task in
                tasks_from_coco(pre, {i: '' for i in wanted}, order, self.scores, self.version,
                                image_root='')}
        return [dict(result=done.get(str(i), []), score=self.scores.get(i, 0.0),
                     model_version=self.version) for i in ids]
