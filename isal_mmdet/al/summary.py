"""The experiment's summary (``W/summary.json``, ``summary.csv``, ``curve.png``): one row per
finished round with its cost in images, boxes and seconds, its mAP, and what the previous
selection planned to spend against what it was charged."""
from __future__ import annotations

import csv
import io
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, Hashable, List, Optional, Sequence

from ..fileio import write_json, write_text
from ..labelling.report import optional_artefact
from .cost import AnnotationCost


@dataclass
class FinishedRound:
    """What a tested round left in its folder."""
    ids: List[Hashable]
    metrics: Dict[str, float]
    selection: Dict[str, Any]
    boxes: float
    training_seconds: Optional[float] = None  # None: not recorded (loaded, or older runs)


def primary_metric(metrics: Dict[str, float], key: Optional[str]) -> Optional[float]:
    if key:
        return metrics.get(key)
    for k, v in metrics.items():
        if k.endswith('mAP') or k.endswith('/bbox_mAP'):
            return v
    return None


def summary_rows(rounds: Sequence[FinishedRound], cost: AnnotationCost,
                 metric: Optional[str], strategy: str) -> List[Dict[str, Any]]:
    """A row per round; from round 1 on, ``selection_cost``: the previous selection's plan
    (in its budget unit) and what labelling its picks cost in every unit."""
    rows: List[Dict[str, Any]] = []
    for k, r in enumerate(rounds):
        sel = r.selection
        rows.append(dict(round=k, num_labelled=len(r.ids), num_boxes=r.boxes,
                         num_seconds=cost.seconds(len(r.ids), r.boxes),
                         mAP=primary_metric(r.metrics, metric), strategy=strategy,
                         selection_seconds=sel.get('seconds'),
                         training_seconds=r.training_seconds, metrics=r.metrics))
        if k > 0:
            prev = rows[-2]
            rows[-1]['selection_cost'] = dict(
                planned=prev.pop('planned', None), charged=dict(
                    images=len(r.ids) - prev['num_labelled'],
                    boxes=r.boxes - prev['num_boxes'],
                    seconds=rows[-1]['num_seconds'] - prev['num_seconds']))
        rows[-1]['planned'] = ((sel.get('info') or {}).get('budget') or {}).get(
            'planned') or (dict(images=len(sel['selected'])) if sel.get('selected') else None)
    if rows:
        rows[-1].pop('planned', None)
    return rows


def write_summary(work_dir: str, rows: List[Dict[str, Any]], strategy: str) -> None:
    """``summary.json``, ``summary.csv`` and the curve (optional: it never ends a run)."""
    write_json(osp.join(work_dir, 'summary.json'), rows)
    buf = io.StringIO()
    keys = sorted({m for r in rows for m in r['metrics']})
    w = csv.writer(buf)
    w.writerow(['round', 'num_labelled', 'num_boxes', 'num_seconds', 'mAP', 'strategy',
                'selection_seconds', 'training_seconds', 'planned_boxes',
                'charged_boxes'] + keys)
    for r in rows:
        planned = (r.get('selection_cost') or {}).get('planned') or {}
        charged = (r.get('selection_cost') or {}).get('charged') or {}
        w.writerow([r['round'], r['num_labelled'], r['num_boxes'], r['num_seconds'],
                    r['mAP'], r['strategy'], r['selection_seconds'], r['training_seconds'],
                    planned.get('boxes'), charged.get('boxes')] + [r['metrics'].get(m) for m in keys])
    write_text(osp.join(work_dir, 'summary.csv'), buf.getvalue())
    if rows:
        curve = osp.join(work_dir, 'curve.png')
        optional_artefact(curve, plot_curve, curve, {strategy: [
            (r['num_labelled'], r['num_boxes'], r['num_seconds'], r['mAP']) for r in rows]},
            xlabels=COST_AXES)


COST_AXES = ('labelled images', 'annotated boxes', 'annotation seconds')


def plot_curve(path: str, curves: Dict[str, List[tuple]], title: str = '',
               xlabels: Sequence[str] = ('labelled images', 'annotated boxes')) -> None:
    """mAP against each cost of labelling, one panel per cost and one line per strategy:
    ``curves = {name: [(images, boxes, ..., mAP), ...]}``, the costs in ``xlabels``' order;
    written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..fileio import atomic_write
    fig, axes = plt.subplots(1, len(xlabels), figsize=(4.5 * len(xlabels), 3.5), dpi=100,
                             sharey=True)
    for name, pts in curves.items():
        pts = [p for p in pts if p[-1] is not None]
        if pts:
            *xs, mAP = zip(*pts)
            for ax, x in zip(axes, xs):
                ax.plot(x, mAP, marker='o', label=name)
    for ax, xlabel in zip(axes, xlabels):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('test mAP')
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format='png'), mode='wb')
    plt.close(fig)
