"""Selection exports: ids JSON, VOC txt, COCO pre-annotations and a score table."""
from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, Hashable, List, Optional, Sequence, Union

import torch
from mmengine.dataset import pseudo_collate

from ..dataset_index import id_index
from ..fileio import write_json, write_text
from .labelstudio import labelling_config


def selection_record(strategy: str, selected: Sequence[Hashable],
                     scores: Dict[Hashable, float], **extra: Any) -> dict:
    return dict(strategy=strategy, selected=list(selected),
                scores={str(k): v for k, v in scores.items()}, **extra)


def write_scores_csv(path: str, scores: Dict[Hashable, float], selected: Sequence[Hashable],
                     ranking: Sequence[Hashable]) -> None:
    chosen = set(selected)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(['rank', 'img_id', 'score', 'selected'])
    for r, i in enumerate(ranking):
        w.writerow([r, i, repr(scores[i]), int(i in chosen)])
    write_text(path, buf.getvalue())


@torch.no_grad()
def coco_preannotations(model: torch.nn.Module, dataset: Any, ids: Sequence[Hashable],
                        classes: Sequence[str],
                        score_thr: Union[float, Dict[str, float]] = 0.1,
                        batch_size: int = 4) -> dict:
    """COCO json of the ``ids`` images with the model's boxes (original image coordinates)
    as pre-annotations carrying a ``score``, for CVAT import (and, as tasks, for Label
    Studio: :mod:`.labelstudio`). ``score_thr``: one threshold, or one per class name. CVAT's
    "COCO 1.0" importer needs ``segmentation`` in every annotation (``[]``: a box) and
    ``iscrowd``. An image the dataset cannot load (None, logged by the dataset) is left
    out."""
    thr = [score_thr[c] if isinstance(score_thr, dict) else score_thr for c in classes]
    index = id_index(dataset)
    images, anns = [], []
    model.eval()
    for start in range(0, len(ids), batch_size):
        loaded = [(i, dataset[index[i]]) for i in ids[start:start + batch_size]]
        loaded = [(i, sample) for i, sample in loaded if sample is not None]
        if not loaded:
            continue
        chunk = [i for i, _ in loaded]
        batch = pseudo_collate([sample for _, sample in loaded])
        for img_id, result in zip(chunk, model.test_step(batch)):
            coco_id = len(images) + 1
            info = dataset.get_data_info(index[img_id])
            h, w = result.ori_shape
            images.append(dict(id=coco_id, file_name=os.path.basename(info['img_path']),
                               width=int(w), height=int(h), isal_img_id=img_id))
            pred = result.pred_instances
            keep = pred.scores >= pred.scores.new_tensor(thr)[pred.labels]
            for box, label, score in zip(pred.bboxes[keep].tolist(), pred.labels[keep].tolist(),
                                         pred.scores[keep].tolist()):
                x1, y1, x2, y2 = box
                anns.append(dict(id=len(anns) + 1, image_id=coco_id, category_id=label + 1,
                                 bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                                 iscrowd=0, segmentation=[], score=score))
    cats = [dict(id=k + 1, name=name) for k, name in enumerate(classes)]
    return dict(images=images, annotations=anns, categories=cats)


def export_selection(out_dir: str, strategy: str, selected: List[Hashable],
                     scores: Dict[Hashable, float], ranking: Sequence[Hashable],
                     preannotations: dict = None, tasks: Optional[List[dict]] = None,
                     classes: Sequence[str] = (), palette: Optional[Sequence] = None,
                     **extra: Any) -> Dict[str, str]:
    """Writes every export atomically (Label Studio's ``tasks`` with their labelling config
    when given); returns ``{kind: path}``. One argument per export's content, hence nine."""
    paths = dict(selection=os.path.join(out_dir, 'selection.json'),
                 ids=os.path.join(out_dir, 'selected_ids.json'),
                 voc_txt=os.path.join(out_dir, 'selected.txt'),
                 scores=os.path.join(out_dir, 'scores.csv'))
    write_json(paths['ids'], list(selected))
    write_text(paths['voc_txt'], ''.join(f'{i}\n' for i in selected))
    write_scores_csv(paths['scores'], scores, selected, ranking)
    if preannotations is not None:
        paths['coco'] = os.path.join(out_dir, 'preannotations_coco.json')
        write_json(paths['coco'], preannotations)
    if tasks is not None:
        paths['labelstudio'] = os.path.join(out_dir, 'preannotations_labelstudio.json')
        paths['labelstudio_config'] = os.path.join(out_dir, 'labelstudio_config.xml')
        write_json(paths['labelstudio'], tasks)
        write_text(paths['labelstudio_config'], labelling_config(classes, palette))
    # Written last: its presence means the whole export is there.
    write_json(paths['selection'], selection_record(strategy, selected, scores, **extra))
    return paths
