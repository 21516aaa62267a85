"""A study's report: markdown tables and the curves plot."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..al.summary import COST_AXES, plot_curve


def fmt(ms: Tuple[Optional[float], Optional[float]], digits: int = 3) -> str:
    m, s = ms
    return '-' if m is None else f'{m:.{digits}f} ± {s:.{digits}f}'


def _reduction_cell(cr: Optional[Dict[str, Any]]) -> str:
    if cr is None:
        return '-'
    return fmt(cr['mean_std'], 3) + (f" ({cr['not_reached']} seed(s) not reached)"
                                     if cr['not_reached'] else '')


def _paired_lines(title: str, table: Dict[str, Dict[str, Any]]) -> List[str]:
    lines = ['', f'| paired {title} difference | mean | std | stderr | mean > stderr |',
             '| --- | --- | --- | --- | --- |']
    for s, bases in table.items():
        for b, d in bases.items():
            lines.append(f"| {s} − {b} | {d['mean']:+.4f} | {d['std']:.4f} | "
                         f"{d['stderr']:.4f} | {d['mean_exceeds_stderr']} |")
    return lines


def _shared_lines(unit: str, part: Dict[str, Any], strategies: Sequence[str]) -> List[str]:
    units = dict(box='boxes', second='seconds')[unit]
    lines = ['', f'| per {unit} | AUC on the shared {unit} range | {units} to reach random '
             '(reduction) |', '| --- | --- | --- |']
    for s in strategies:
        lines.append(f"| {s} | {fmt(part['auc'][s]['mean_std'])} | "
                     f"{_reduction_cell(part['cost_reduction'].get(s))} |")
    return lines + _paired_lines(f'AUC per {unit}', part['paired_auc_vs'])


def solver_lines(summary: Dict[str, List[Dict[str, Any]]]) -> List[str]:
    lines = ['', '| ISAL selections | solver | pseudo boxes/img | seconds | LiSSA scales '
             '(1.5 λ_max) | NaN resets | diverged | CG residual |', '|' + ' --- |' * 8]
    for s, rows in summary.items():
        def span(key, f='{:.3g}'):
            vals = [r[key] for r in rows if r[key] is not None]
            return '-' if not vals else (f.format(min(vals)) + '–' + f.format(max(vals)))
        groups = sorted({g for r in rows for g in r['scales']})
        scales = [f"{g} {min(r['scales'][g] for r in rows if g in r['scales']):.3g}–"
                  f"{max(r['scales'][g] for r in rows if g in r['scales']):.3g}"
                  for g in groups]
        lines.append(f"| {s} ({len(rows)}) | {rows[0]['method']} | {span('pseudo_boxes')} | "
                     f"{span('seconds', '{:.0f}')} | {', '.join(scales) or '-'} | "
                     f"{sum(r['nan_resets'] for r in rows)} | "
                     f"{sum(bool(r['diverged']) for r in rows)} of {len(rows)} | "
                     f"{span('relative_residual', '{:.1e}')} |")
    return lines


def cpu_lines(cpu: Dict[str, Dict[str, list]]) -> List[str]:
    """Training and selection seconds per round, mean over seeds; nothing when no run
    recorded them (reports of older runs)."""
    if not any(v is not None for c in cpu.values() for vals in c.values() for v in vals):
        return []
    cell = (lambda v: '-' if v is None else f'{v:.0f}')
    lines = ['', '| CPU seconds per round, mean over seeds (training / selection) | ' +
             ' | '.join(f'round {k}' for k in range(max(len(c['training_s'])
                                                      for c in cpu.values()))) + ' |']
    lines.append('|' + ' --- |' * (len(lines[-1].split('|')) - 2))
    for s, c in cpu.items():
        lines.append(f'| {s} | ' + ' | '.join(f'{cell(t)} / {cell(x)}' for t, x in zip(
            c['training_s'], c['selection_s'])) + ' |')
    return lines


def report(res: Dict[str, Any], strategies: Sequence[str]) -> str:
    """The markdown report: mAP per round, then paired differences per image, box, second."""
    rounds = res['per_round'][strategies[0]]
    shared = 'shared_image_range' in res  # a budget in boxes or seconds: images differ
    lines = ['| strategy | ' + ' | '.join(f'round {k}' if shared else f"{r['num_labelled']} imgs"
                                          for k, r in enumerate(rounds)) +
             f" | AUC{' on the shared image range' if shared else ''} | cost reduction vs "
             'random |', '|' + ' --- |' * (len(rounds) + 3)]
    for s in strategies:
        cells = [fmt(r['mAP']) + (f" ({r['num_labelled']} imgs)" if shared else '')
                 for r in res['per_round'][s]]
        lines.append(f'| {s} | ' + ' | '.join(cells) + f" | {fmt(res['auc'][s]['mean_std'])} | "
                     f"{_reduction_cell(res['cost_reduction'].get(s))} |")
    lines += _paired_lines('AUC', res['paired_auc_vs'])
    lines += _paired_lines('last-round mAP', res['paired_final_vs'])
    if res.get('per_box'):
        lines += _shared_lines('box', res['per_box'], strategies)
    if res.get('per_second'):
        cost = res['cost']
        lines += ['', f"Seconds of annotation: {cost['per_image']} per image + "
                      f"{cost['per_box']} per box."]
        lines += _shared_lines('second', res['per_second'], strategies)
    comp = res.get('selected_composition') or {}
    if comp:
        names = sorted({n for c in comp.values() for n in c})
        lines += ['', '| boxes per selected image (pool) | ' + ' | '.join(names) + ' |',
                  '|' + ' --- |' * (len(names) + 1)]
        for s, c in comp.items():
            lines.append(f'| {s} | ' + ' | '.join(
                f"{c[n]['selected']:.2f} ({c[n]['pool']:.2f})" if n in c else '-'
                for n in names) + ' |')
    busy = res.get('busyness_correlation') or {}
    if busy:
        lines += ['', f"| rank correlation of selection priority with real boxes per pool "
                  f"image (seeds {res['busyness_seeds']}) | mean | per selection |",
                  '| --- | --- | --- |']
        for s, b in busy.items():
            lines.append(f"| {s} | {b['mean']:+.2f} | "
                         f"{', '.join(f'{r:+.2f}' for r in b['values'])} |")
    noise = res.get('training_noise')
    if noise:
        lines += ['', f"Training noise (seed {noise['image_seed']}'s round-"
                      f"{noise.get('round', 0)} images, training "
                      f"seeds {noise['train_seeds']}): test mAP std {noise['std']:.4f} "
                      f"(values {', '.join(f'{m:.4f}' for m in noise['mAP'])})."]
    lines += cpu_lines(res.get('cpu_per_round') or {})
    if res.get('selections'):
        lines += solver_lines(res['selections'])
    if res.get('box_answers'):
        lines += box_answer_lines(res['box_answers'])
    if res.get('check_prices'):
        lines += check_price_lines(res['check_prices'], res['cost']['per_box'])
    return '\n'.join(lines) + '\n'


def box_answer_lines(answers: Dict[str, List[Dict[str, Any]]]) -> List[str]:
    keys = ('queries', 'images', 'objects', 'no_object', 'pseudo', 'ignore')
    lines = ['', '| box queries (mean over seeds) | queries | images opened | objects found | '
                 '"no object" | pseudo boxes trained on | ignore regions |',
             '|' + ' --- |' * 7]
    for s, rows in answers.items():
        lines.append(f'| {s} ({len(rows)}) | ' + ' | '.join(
            f'{sum(r[k] for r in rows) / len(rows):.0f}' for k in keys) + ' |')
    return lines


def check_price_lines(prices: Dict[str, Dict[str, Any]], per_box: float) -> List[str]:
    lines = ['', f'| price of a "no object" answer at which box queries match random '
                 f'(drawn box = 1 = {per_box} s) | boxes | seconds | per seed | mAP − random '
                 'with free checks |', '|' + ' --- |' * 5]
    for s, p in prices.items():
        seeds = ', '.join('never' if v is None else f'{v:.2f}' for v in p['per_seed'])
        gap = p['free_check_gap']
        gap_cell = '-' if gap['mean'] is None else \
            f"{gap['mean']:+.4f} ± {gap['stderr'] or 0:.4f}"
        lines.append(f"| {s} | {fmt(p['boxes'], 2)} | {fmt(p['seconds'], 1)} | {seeds} | "
                     f'{gap_cell} |')
    return lines


def plot(path: str, res: Dict[str, Any], strategies: Sequence[str]) -> None:
    """Mean mAP over seeds against images, boxes and seconds, with the loop's own plot."""
    curves = {}
    for s in strategies:
        seeds = sorted(res['curves'][s])
        rows = list(zip(*(res['curves'][s][k] for k in seeds)))
        boxes = list(zip(*(res['box_curves'][s][k] for k in seeds)))
        cost = res['cost']
        curves[s] = []
        for r, bs in zip(rows, boxes):
            mean_boxes = sum(b[0] for b in bs) / len(bs)
            curves[s].append((r[0][0], mean_boxes, cost['per_image'] * r[0][0] +
                              cost['per_box'] * mean_boxes, sum(p[1] for p in r) / len(r)))
    plot_curve(path, curves, title=f"{len(res['setup']['seeds'])} seeds, mean",
               xlabels=COST_AXES)
