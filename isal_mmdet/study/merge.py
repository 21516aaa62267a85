"""Growing a study across machines: an earlier report's seeds folded into this run's."""
from __future__ import annotations

from typing import Any, Dict, List


def check_prior(prior: Dict[str, Any], setup: Dict[str, Any]) -> None:
    """One line naming the field when an earlier report cannot be merged into this run."""
    old = prior['setup']
    for key in ('config', 'rounds', 'initial', 'budget', 'cfg_options'):
        if old.get(key) != setup[key]:
            raise ValueError(f"--merge: its setup.{key} is {old.get(key)!r}, this run's is "
                             f"{setup[key]!r}")
    both = sorted(set(old['seeds']) & set(setup['seeds']))
    if both:
        raise ValueError(f'--merge: seeds {both} are in both')
    missing = [s for s in setup['strategies'] if s not in prior['curves']]
    if missing:
        raise ValueError(f'--merge: strategies {missing} are not in its curves')


def merge_prior(prior: Dict[str, Any], setup: Dict[str, Any], curves: Dict[str, Any],
                box_curves: Dict[str, Any], composition_: Dict[str, Any],
                selections: Dict[str, Any]) -> List[int]:
    """Fold an earlier report's seeds into this run's: curves and per-seed rows are joined;
    the class mix is a seed-weighted mean (every seed selects the same number of images
    from pools of the same sizes). Returns the joined seed list; ``check_prior`` has passed."""
    seeds, old_seeds = setup['seeds'], prior['setup']['seeds']
    for s in curves:
        for mine, theirs in ((curves, prior['curves']), (box_curves, prior['box_curves'])):
            mine[s].update({int(k): [tuple(p) for p in v] for k, v in theirs[s].items()})
    w_new, w_old = len(seeds), len(old_seeds)
    for s, classes in (prior.get('selected_composition') or {}).items():
        if s not in curves:
            continue
        mine = composition_.setdefault(s, {})
        for name, c in classes.items():
            m = mine.get(name, dict(selected=0.0, pool=0.0))
            wn = w_new if name in mine else 0
            mine[name] = {k: (m[k] * wn + c[k] * w_old) / (wn + w_old) for k in c}
    for s, rows in (prior.get('selections') or {}).items():
        if s in curves:
            selections[s] = rows + selections.get(s, [])
    return sorted(old_seeds + list(seeds))
