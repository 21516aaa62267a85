"""A contact sheet of one selection: what the annotators will get, best image first, with the
model's pre-annotation boxes, so a selection can be judged at a glance."""
from __future__ import annotations

import math
from typing import Any, Dict, Hashable, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.structures import InstanceData

from .io import atomic_write


def draw_tile(visualizer: Any, img_path: str, boxes: Sequence[dict], title: str,
              size: Tuple[int, int]) -> np.ndarray:
    """One image scaled to fit ``size`` (w, h) and padded, its boxes and title drawn."""
    from mmdet.structures import DetDataSample
    image = mmcv.imread(img_path, channel_order='rgb')
    image, scale = mmcv.imrescale(image, size, return_scale=True)
    pred = InstanceData()
    xyxy = [[x, y, x + w, y + h] for x, y, w, h in (b['bbox'] for b in boxes)]
    pred.bboxes = torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4) * scale
    pred.labels = torch.tensor([b['category_id'] - 1 for b in boxes], dtype=torch.long)
    pred.scores = torch.tensor([b.get('score', 1.0) for b in boxes], dtype=torch.float32)
    sample = DetDataSample(pred_instances=pred)
    visualizer.add_datasample('tile', image, sample, draw_gt=False, pred_score_thr=0.0)
    visualizer.draw_texts(title, np.array([[3, 3]]), colors='white', font_sizes=9,
                          vertical_alignments='top',
                          bboxes=dict(facecolor='black', alpha=0.7, pad=1, edgecolor='none'))
    drawn = visualizer.get_image()
    tile = np.zeros((size[1], size[0], 3), np.uint8)
    tile[:drawn.shape[0], :drawn.shape[1]] = drawn
    return tile


def contact_sheet(path: str, preannotations: dict, dataset: Any, order: Sequence[Hashable],
                  scores: Dict[Hashable, float], max_tiles: int = 16,
                  tile_size: Tuple[int, int] = (320, 240), columns: int = 4) -> int:
    """Writes ``path`` (JPEG, atomically): the first ``max_tiles`` images of ``order`` (ids
    of ``dataset``) on a grid, each with its pre-annotation boxes (``preannotations``, as
    :func:`~isal_mmdet.al.export.coco_preannotations` writes them) and ``#rank id score`` as
    title. Returns the number of tiles."""
    from mmdet.visualization import DetLocalVisualizer
    by_image = {img['isal_img_id']: img['id'] for img in preannotations['images']}
    shown = [i for i in order if i in by_image][:max_tiles]  # images it could not read: none
    if not shown:
        return 0
    wanted = set(shown)
    img_paths = {info['img_id']: info['img_path'] for info in map(
        dataset.get_data_info, range(len(dataset))) if info['img_id'] in wanted}
    boxes: Dict[int, list] = {}
    for ann in preannotations['annotations']:
        boxes.setdefault(ann['image_id'], []).append(ann)
    visualizer = DetLocalVisualizer(name='isal_contact_sheet', line_width=2)
    visualizer.dataset_meta = dict(classes=tuple(dataset.metainfo.get('classes', ())))
    tiles = [draw_tile(visualizer, img_paths[i], boxes.get(by_image[i], []),
                       f'#{r + 1}  id {i}  score {scores[i]:.3g}', tile_size)
             for r, i in enumerate(shown)]
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    tiles += [np.zeros_like(tiles[0])] * (rows * cols - len(tiles))
    sheet = np.concatenate([np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1)
                            for r in range(rows)], axis=0)
    ok, data = cv2.imencode('.jpg', sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f'{path}: JPEG encoding failed')
    atomic_write(path, lambda f: f.write(data.tobytes()), mode='wb')
    return len(shown)
