"""The ``active_learning`` config block: defaults and validation of every field.

Everything here runs before any training, so a typo costs seconds, not a round.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from .arguments import PreannotationThr, check_value
from .budget import Budget
from .cost import AnnotationCost
from .semi import semi_settings
from .strategies import Strategy, build_strategy

AL_DEFAULTS = dict(initial_size=100, budget=100, budget_unit='images', cost=None, rounds=3,
                   strategy='isal', reference='val', allow_split_overlap=False,
                   seed=0, warm_start=False, warm_start_iters=None, oracle='gt', metric=None,
                   batch_size=4, num_workers=0, export_coco=True,
                   preannotation_thr='auto', labelstudio_image_root=None, semi=None)
# 'test': the official protocol's v on the evaluation split itself, a leakage diagnostic
REFERENCES = ('val', 'labelled', 'test')
ORACLES = ('gt', 'none')


def _fail(key: str, msg: str) -> None:
    raise ValueError(f'active_learning.{key} {msg}')


def checked_strategy(spec: Any, field: str = 'active_learning.strategy',
                     images_only: bool = False) -> Strategy:
    """The strategy built from ``spec``; a bad name or argument is one line naming ``field``.

    Args:
        spec (str | dict | Strategy): a strategy name, ``dict(type=name, ...)`` or a built
            strategy.
        field (str): what an error names. Defaults to ``'active_learning.strategy'``.
        images_only (bool): refuse a strategy that changes the round loop's rounds
            (:meth:`Strategy.round_extension`, e.g. box queries), which only the loop runs.
            Defaults to False.

    Returns:
        Strategy: the built strategy.
    """
    try:
        strategy = build_strategy(spec)
    except (ValueError, TypeError) as e:
        raise ValueError(f'{field}: {e}') from None
    if images_only and strategy.round_extension() is not None:
        raise ValueError(f'{field}: {type(strategy).__name__} runs only in the round loop '
                         '(tools/al_train.py, tools/al_study.py)')
    return strategy


def budget_of(al: Dict[str, Any]) -> Budget:
    """The settings' budget, unit and cost; a bad field is one line naming it.

    Args:
        al (dict): the ``active_learning`` settings (``budget``; ``budget_unit`` and
            ``cost`` optional).

    Returns:
        Budget: the amount, its unit and the annotation cost it is priced with.
    """
    cost = al.get('cost')
    if cost is not None and not isinstance(cost, dict):
        _fail('cost', f'must be dict(per_image=seconds, per_box=seconds) or None, got {cost!r}')
    known = [f.name for f in dataclasses.fields(AnnotationCost)]
    unknown = sorted(set(cost or {}) - set(known))
    if unknown:
        _fail('cost', f'has unknown field(s) {unknown}; known: {", ".join(known)}')
    return Budget(al['budget'], al.get('budget_unit', 'images'), AnnotationCost(**(cost or {})))


def validate(al: Dict[str, Any], train_loop: Optional[str] = None,
             model: Optional[Dict[str, Any]] = None) -> None:
    """Checks every field of a complete settings dict, and the strategy against the model;
    the first bad field raises ``ValueError`` naming it.

    Args:
        al (dict): the ``active_learning`` settings, defaults merged in.
        train_loop (str, optional): ``train_cfg.type``, which ``warm_start_iters`` needs to
            be ``IterBasedTrainLoop``. Defaults to None (not checked).
        model (dict, optional): the config's ``model``, checked against the strategy.
            Defaults to None (not checked).
    """
    budget_of(al)
    for key in ('initial_size', 'rounds', 'batch_size'):
        if not isinstance(al[key], int) or isinstance(al[key], bool) or al[key] <= 0:
            _fail(key, f'must be a positive integer, got {al[key]!r}')
    for key in ('seed', 'num_workers'):
        if not isinstance(al[key], int) or isinstance(al[key], bool) or al[key] < 0:
            _fail(key, f'must be a non-negative integer, got {al[key]!r}')
    for key in ('warm_start', 'export_coco', 'allow_split_overlap'):
        if not isinstance(al[key], bool):
            _fail(key, f'must be True or False, got {al[key]!r}')
    check_value(PreannotationThr, al['preannotation_thr'], 'active_learning.preannotation_thr')
    root = al['labelstudio_image_root']
    if root is not None and not isinstance(root, str):
        _fail('labelstudio_image_root', f'must be a URL prefix string or None, got {root!r}')
    if al['reference'] not in REFERENCES:
        _fail('reference', f'must be one of {list(REFERENCES)}, got {al["reference"]!r}')
    check_oracle(al['oracle'])
    semi_settings(al['semi'])
    if al['metric'] is not None and not isinstance(al['metric'], str):
        _fail('metric', f'must be a metric name (e.g. "pascal_voc/mAP") or None, '
                        f'got {al["metric"]!r}')
    iters = al['warm_start_iters']
    if iters is not None:
        if not isinstance(iters, int) or isinstance(iters, bool) or iters <= 0:
            _fail('warm_start_iters', f'must be a positive integer or None, got {iters!r}')
        if not al['warm_start']:
            _fail('warm_start_iters', 'needs warm_start=True')
        if train_loop is not None and train_loop != 'IterBasedTrainLoop':
            _fail('warm_start_iters', f'needs train_cfg.type=IterBasedTrainLoop, got '
                                      f'{train_loop!r}')
    strategy = checked_strategy(al['strategy'])
    strategy.check_settings(al)
    if model:
        try:
            strategy.check_model(model)
        except ValueError as e:
            raise ValueError(f'active_learning.strategy: {e}') from None


def check_oracle(oracle: Any) -> None:
    """Fails in one line unless ``oracle`` is one of :data:`ORACLES`.

    Args:
        oracle (str): the config's oracle, or ``--oracle``'s that replaces it.
    """
    if oracle not in ORACLES:
        _fail('oracle', f'must be one of {list(ORACLES)}, got {oracle!r}')


def al_settings(cfg: Any) -> Dict[str, Any]:
    """The config's ``active_learning`` block with defaults, every field validated.

    Args:
        cfg (Config | dict): the whole config (its ``train_cfg`` and ``model`` are checked
            against the block too).

    Returns:
        dict: every field of :data:`AL_DEFAULTS`, the block's values over the defaults.
    """
    if 'active_learning' not in cfg:
        raise ValueError('config has no `active_learning = dict(...)` block')
    block = cfg.active_learning
    block = block.to_dict() if hasattr(block, 'to_dict') else dict(block)
    unknown = set(block) - set(AL_DEFAULTS)
    if unknown:
        raise ValueError(f'active_learning: unknown field(s) {sorted(unknown)}; known: '
                         f'{sorted(AL_DEFAULTS)}')
    al = dict(AL_DEFAULTS, **block)
    train_cfg = cfg.get('train_cfg') or {}
    model = cfg.get('model') or {}
    validate(al, train_cfg.get('type'), model.to_dict() if hasattr(model, 'to_dict') else model)
    return al


def strategy_for_tool(config_strategy: Any, requested: Optional[str]) -> Tuple[Any, str]:
    """The strategy a tool runs on a config: the config's own strategy when none is
    requested, or when the requested name is the config strategy's type (its arguments are
    kept); otherwise the requested name with default arguments.

    Args:
        config_strategy (str | dict): the config's ``active_learning.strategy``.
        requested (str, optional): the tool's ``--strategy``, or None.

    Returns:
        tuple: ``(strategy spec, how it was chosen)``, the latter for the tool's log.
    """
    if requested is None:
        return config_strategy, 'from the config'
    if isinstance(config_strategy, dict):
        ours = type(checked_strategy(config_strategy))
        if type(checked_strategy(requested, '--strategy')) is ours:
            return config_strategy, f'{requested!r} with the config\'s arguments'
    return requested, f'{requested!r} with default arguments'
