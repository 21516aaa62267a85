"""Research variants of ISAL and ESI for studies, named by levers: ``isal-cg-thr0.5`` is the
config's ISAL with the ``cg`` and ``thr0.5`` changes applied in order. They live here, with
the studies, and not among the product's strategies: none of them beat random in our studies
(docs/studies.md), and ``reference='test'`` (``evalref``) is a leakage diagnostic. A variant
that uses an option the product strategy does not take is built as its research class
(``isal-fixed``: ``ISALResearch``), so earlier studies stay reproducible. Box strategies take
levers the same way: ``entropy_box-image`` asks image by image, ``-nopseudo`` ignores the
confident detections of opened images instead of training on them as pseudo boxes, ``-free``
charges nothing for a "no object" answer (Box-Level Active Detection's accounting),
``-band0`` asks about every detection below the threshold (for a model too weak for the
default band)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..al.arguments import arguments
from ..registry import BATCH_STAGES
from .research_strategies import ESIResearch, ISALResearch

# lever -> (changes to the config's ISAL strategy, changes to active_learning)
LEVERS = {
    'paper': (dict(curvature='hessian', solver=dict(type='lissa', depth=200, power_iters=10,
                                                    power_samples=16)), {}),
    'cg': (dict(curvature='hessian', solver=dict(type='cg', max_iter=30, num_samples=16)), {}),
    'identity': (dict(solver=dict(type='identity')), {}),
    'fisher': (dict(curvature='fisher', solver=dict(type='cg', max_iter=30, num_samples=16)),
               {}),
    'damp0.1': (dict(curvature='hessian', solver=dict(type='lissa', depth=200, power_iters=10,
                                                      power_samples=16, damp=0.1)), {}),
    'thr0.3': (dict(score_thr=0.3), {}),
    'thr0.5': (dict(score_thr=0.5), {}),
    'cap10': (dict(max_per_class=10), {}),
    'sampled': (dict(pseudo='sampled', samples=4, score_thr=0.05), {}),
    'soft': (dict(pseudo='soft'), {}),
    'div': (dict(diversity=dict(pool_factor=3)), {}),
    'reflab': ({}, dict(reference='labelled')),
    'harmful': (dict(prefer='harmful'), {}),
    'fixed': (dict(normaliser='fixed'), {}),
    'fgref': (dict(reference_terms='foreground'), {}),
    'balanced': (dict(reference_terms='balanced'), {}),
    'evalref': ({}, dict(reference='test')),
}
# box-query variants: a box strategy's name + levers joined by '-' (``entropy_box-image``);
# lever -> (changes to the strategy, changes to active_learning.cost)
BOX_LEVERS = {
    'image': (dict(ask='image'), {}),
    'nopseudo': (dict(pseudo='none'), {}),
    'band0.3': (dict(band_precision=0.3), {}),  # a narrower band: fewer candidates per image
    'band0': (dict(band_precision=0.0), {}),  # every detection below the threshold
    'free': ({}, dict(per_check=0.0)),
}
# '+semi' after any name: the round loop's semi-supervised rounds (mean teacher)
SEMI_LEVER = 'semi'
# ESI variants: 'esi' (the config's ISAL solver, defaults otherwise) + levers joined by '-'
ESI_LEVERS = {
    'mean': dict(mean_term=True),
    'nobox': dict(box_term=False),
    'top100': dict(top_k=100),
    'top1000': dict(top_k=1000),
    'balanced': dict(reference_terms='balanced'),
}


def research_options(research: type) -> frozenset:
    """The arguments ``research`` takes beyond its product class's (its base)."""
    product = research.__mro__[1]
    return frozenset(a for a, _, _ in arguments(research)) - \
        frozenset(a for a, _, _ in arguments(product))


def as_research(strategy: Dict[str, Any], research: type) -> Dict[str, Any]:
    """``strategy``, typed as ``research`` when it uses one of the research options."""
    if research_options(research) & set(strategy):
        return dict(strategy, type=research.__name__)
    return strategy


def esi_cfg(config_strategy: Any, name: str) -> Dict[str, Any]:
    """``esi`` / ``esi-mean-top100``: ESI with the s of the config's ISAL solver."""
    base = dict(type='ESI')
    if isinstance(config_strategy, dict) and 'solver' in config_strategy:
        base['solver'] = config_strategy['solver']
    for lever in [x for x in name.split('-')[1:] if x]:
        if lever not in ESI_LEVERS:
            raise ValueError(f'unknown ESI lever {lever!r} in {name!r}; known: '
                             f'{sorted(ESI_LEVERS)}')
        base.update(ESI_LEVERS[lever])
    return dict(strategy=as_research(base, ESIResearch))


def box_cfg(name: str, config_cost: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``isal_box-image-nopseudo``: the box strategy with those levers' arguments, and the
    config's cost (``config_cost``) with theirs."""
    base, *levers = name.split('-')
    strategy: Dict[str, Any] = dict(type=base)
    cost: Dict[str, Any] = {}
    for lever in levers:
        if lever not in BOX_LEVERS:
            raise ValueError(f'unknown box lever {lever!r} in {name!r}; known: '
                             f'{sorted(BOX_LEVERS)}')
        strategy.update(BOX_LEVERS[lever][0])
        cost.update(BOX_LEVERS[lever][1])
    out: Dict[str, Any] = dict(strategy=strategy if len(strategy) > 1 else base)
    if cost:
        out['cost'] = dict(config_cost or {}, **cost)
    return out


def strategy_cfg(config_strategy: Any, name: str,
                 config_cost: Optional[Dict[str, Any]] = None,
                 config_semi: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``active_learning`` changes that make ``name`` the experiment's strategy: a
    registered name, ``isal`` (the config's ISAL settings), or a variant of ISAL, ESI or a box
    strategy (``config_cost``: the config's cost, which a box lever may change), each with an
    optional batch stage after a ``+`` (``dcus+clusters``: DCUS, batch by clusters) and
    ``+semi``: semi-supervised rounds (the config's ``active_learning.semi``,
    ``config_semi``, or its defaults)."""
    scored, *rest = name.split('+')
    stages = [s for s in rest if s != SEMI_LEVER]
    out = scored_cfg(config_strategy, scored, config_cost)
    if len(stages) < len(rest):
        out['semi'] = dict(config_semi or {})
    if not stages:
        return out
    known = sorted(k for k in BATCH_STAGES.module_dict if k.islower())
    if len(stages) > 1 or stages[0] not in known:
        raise ValueError(f'unknown batch stage {"+".join(stages)!r} in {name!r}; one of {known} '
                         f'(or {SEMI_LEVER!r}: semi-supervised rounds)')
    spec = out['strategy']
    spec = dict(type=spec) if isinstance(spec, str) else dict(spec)
    return dict(out, strategy=dict(spec, batch=dict(type=stages[0])))


def scored_cfg(config_strategy: Any, name: str,
               config_cost: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """:func:`strategy_cfg` for a name without a batch stage."""
    if name == 'isal' and isinstance(config_strategy, dict):
        return dict(strategy=config_strategy)
    if name == 'esi' or name.startswith('esi-'):
        return esi_cfg(config_strategy, name)
    if name.split('-')[0].endswith('_box'):
        return box_cfg(name, config_cost)
    if not name.startswith('isal-'):
        return dict(strategy=name)
    base = dict(config_strategy) if isinstance(config_strategy, dict) else dict(type='ISAL')
    al_change: Dict[str, Any] = {}
    for lever in name[len('isal-'):].split('-'):
        if lever not in LEVERS:
            raise ValueError(f'unknown ISAL lever {lever!r} in {name!r}; known: {sorted(LEVERS)}')
        change, al_more = LEVERS[lever]
        al_change.update(al_more)
        for key, value in change.items():
            solver = base.get('solver') or {}
            solver = {'type': solver} if isinstance(solver, str) else solver
            if key == 'solver' and value.get('type', solver.get('type')) == solver.get('type'):
                base['solver'] = dict(solver, **value)
            else:
                base[key] = value
    return dict(al_change, strategy=as_research(base, ISALResearch))
