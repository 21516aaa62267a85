"""A contact sheet of one selection: what the annotators will get, best image first, with the
pre-annotation boxes in class colours and a legend, so a selection can be judged at a glance.
Pictures are optional artefacts: :func:`optional_artefact` logs their failures and goes on."""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

from ..fileio import atomic_write

logger = logging.getLogger('isal_mmdet')
BACKGROUND = (40, 40, 40)


def optional_artefact(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or None with a warning naming ``what`` if it raises: a
    picture or report is never worth ending an experiment for."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure of an optional artefact
        logger.warning('could not write %s (skipped): %s: %s', what, type(e).__name__, e)
        return None


def fit(image: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, float]:
    """``image`` scaled to fit inside ``size`` (w, h) whatever its orientation or size, and
    the scale used."""
    h, w = image.shape[:2]
    scale = min(size[0] / w, size[1] / h)
    out_w, out_h = max(1, min(size[0], round(w * scale))), max(1, min(size[1], round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    return cv2.resize(image, (out_w, out_h), interpolation=interp), scale


def class_colours(classes: Sequence[str], palette: Optional[Sequence] = None) -> List[tuple]:
    """The dataset's palette where it has one, else mmdet's default palette."""
    from mmdet.visualization.palette import get_palette
    colours = list(palette or [])[:len(classes)]
    if len(colours) < len(classes):
        colours += get_palette('random', len(classes))[len(colours):]
    return [tuple(int(c) for c in col[:3]) for col in colours]


def draw_tile(visualizer: Any, img_path: str, boxes: Sequence[dict], title: str,
              size: Tuple[int, int], colours: Sequence[tuple]) -> np.ndarray:
    """One image fitted to ``size`` (w, h) and centred on a dark tile, its boxes outlined in
    their class colour (no per-box text: dozens of labels would hide the image), its title
    on top."""
    image = mmcv.imread(img_path, channel_order='rgb')
    if image is None:
        raise ValueError('unreadable image')
    image, scale = fit(image, size)
    visualizer.set_image(image)
    if boxes:
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (b['bbox'] for b in boxes)],
                        dtype=np.float32) * scale
        width = max(1, min(2, round(min(image.shape[:2]) / 60)))
        visualizer.draw_bboxes(xyxy, edge_colors=[colours[b['category_id'] - 1] for b in boxes],
                               line_widths=width)
    drawn = visualizer.get_image()
    tile = np.full((size[1], size[0], 3), BACKGROUND, np.uint8)
    top, left = (size[1] - drawn.shape[0]) // 2, (size[0] - drawn.shape[1]) // 2
    tile[top:top + drawn.shape[0], left:left + drawn.shape[1]] = drawn
    cv2.rectangle(tile, (0, 0), (size[0], 18), (0, 0, 0), -1)
    cv2.putText(tile, title, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def legend(width: int, classes: Sequence[str], colours: Sequence[tuple], note: str) -> np.ndarray:
    """A strip naming each class in its colour, then ``note``."""
    strip = np.zeros((24, width, 3), np.uint8)
    x = 6
    for name, colour in zip(classes, colours):
        cv2.rectangle(strip, (x, 6), (x + 12, 18), colour, -1)
        cv2.putText(strip, name, (x + 16, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        x += 16 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] + 14
    cv2.putText(strip, note, (x + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1,
                cv2.LINE_AA)
    return strip


def contact_sheet(path: str, preannotations: dict, dataset: Any, order: Sequence[Hashable],
                  pool_ranking: Sequence[Hashable], max_tiles: int = 16,
                  tile_size: Tuple[int, int] = (320, 240), columns: int = 4,
                  note: str = '') -> int:
    """Writes ``path`` (JPEG, atomically): the first ``max_tiles`` images of ``order`` (ids
    of ``dataset``) on a grid under a class legend, each with its pre-annotation boxes
    (``preannotations``, as :func:`~isal_mmdet.labelling.export.coco_preannotations` writes them)
    and ``#rank  top p%  id`` as title, p its place in ``pool_ranking``. A tile that cannot be
    drawn is logged with its image named and left blank. Returns the number of tiles.
    Nine arguments: what is drawn (five) and the grid's layout (four, with defaults)."""
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
    classes = tuple(dataset.metainfo.get('classes', ()))
    colours = class_colours(classes, dataset.metainfo.get('palette'))
    visualizer = DetLocalVisualizer(name='isal_contact_sheet')
    place = {i: r for r, i in enumerate(pool_ranking)}
    tiles = []
    for r, i in enumerate(shown):
        title = f'#{r + 1}  top {100 * (place[i] + 1) / len(place):.1f}%  {i}'
        try:
            tiles.append(draw_tile(visualizer, img_paths[i], boxes.get(by_image[i], []),
                                   title, tile_size, colours))
        except Exception as e:  # noqa: BLE001 - one bad image never costs the sheet
            logger.warning('contact sheet %s: could not draw %s (tile left blank): %s: %s',
                           path, img_paths[i], type(e).__name__, e)
            tiles.append(np.full((tile_size[1], tile_size[0], 3), BACKGROUND, np.uint8))
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    tiles += [np.full_like(tiles[0], BACKGROUND[0])] * (rows * cols - len(tiles))
    grid = np.concatenate([np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1)
                           for r in range(rows)], axis=0)
    sheet = np.concatenate([legend(grid.shape[1], classes, colours, note), grid], axis=0)
    ok, data = cv2.imencode('.jpg', sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f'{path}: JPEG encoding failed')
    atomic_write(path, lambda f: f.write(data.tobytes()), mode='wb')
    return len(shown)
