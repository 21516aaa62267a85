"""Typed arguments: a strategy's (and ``ISALSelectionHook``'s) ``__init__`` annotations are
its settings.

Every construction is checked against them (``__new__``), so a bad value in a config is one
line naming the class and argument before any training, and the README's list of strategy
arguments is written from the same annotations (:func:`describe_arguments`), so neither can
drift.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import (Annotated, Any, Dict, List, Literal, Optional, Tuple, Union, get_args,
                    get_origin, get_type_hints)

from ..influence.curvature import KINDS


@dataclass(frozen=True)
class Interval:
    """A number's range; ``open``: the ends themselves are out."""
    low: float = -math.inf
    high: float = math.inf
    open: bool = False

    def holds(self, value: float) -> bool:
        if self.open:
            return self.low < value < self.high
        return self.low <= value <= self.high

    def __str__(self) -> str:
        if self.high == math.inf:
            return f'> {self.low:g}' if self.open else f'>= {self.low:g}'
        left, right = '()' if self.open else '[]'
        return f'in {left}{self.low:g}, {self.high:g}{right}'


@dataclass(frozen=True)
class Described:
    """The words for a type whose own description would say little."""
    text: str


Score = Annotated[float, Interval(0, 1)]
Fraction = Annotated[float, Interval(0, 1, open=True)]
NonNegative = Annotated[float, Interval(0)]
Count = Annotated[int, Interval(1)]
NonNegativeInt = Annotated[int, Interval(0)]
PreannotationThr = Union[Literal['auto'], Score]
Curvature = Literal[tuple(KINDS)]
# checked in full by the influence layer's builder
SolverSpec = Annotated[Union[str, Dict[str, Any], None],
                       Described("None or an s_test solver: a name or dict(type=name, ...)")]
ParamGroupsSpec = Optional[Dict[str, str]]

_NAMES = {float: 'a number', int: 'an integer', bool: 'True or False', str: 'a string'}


def _fits(hint: Any, value: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is Annotated:
        return _fits(args[0], value) and all(m.holds(value) for m in args[1:]
                                             if isinstance(m, Interval))
    if origin is Union:
        return any(_fits(a, value) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (dict, Dict):
        key, item = args or (Any, Any)
        return isinstance(value, dict) and all(_fits(key, k) and _fits(item, v)
                                               for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value)
    if hint in (int, str):
        return isinstance(value, hint) and not isinstance(value, bool)
    return isinstance(value, hint)


def describe(hint: Any) -> str:
    """``hint`` in words, as an error message or the README says it."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return 'any value'
    if hint is type(None):
        return 'None'
    if origin is Annotated:
        text = next((m.text for m in args[1:] if isinstance(m, Described)), None)
        if text is not None:
            return text
        ranges = ' '.join(str(m) for m in args[1:] if isinstance(m, Interval))
        return f'{describe(args[0])} {ranges}'.strip()
    if origin is Union:
        return ' or '.join(describe(a) for a in args)
    if origin is Literal:
        return repr(args[0]) if len(args) == 1 else 'one of ' + ', '.join(map(repr, args))
    if origin in (dict, Dict):
        key, item = args or (Any, Any)
        return 'a dict' if item is Any else f'a dict of {_plural(key)} to {_plural(item)}'
    return _NAMES.get(hint, getattr(hint, '__name__', str(hint)))


def _plural(hint: Any) -> str:
    """A dict's key or value type in words: strings, integers >= 1, 'pool_factor'."""
    if get_origin(hint) is Literal:
        return ' or '.join(repr(a) for a in get_args(hint))
    text = describe(hint)
    for one, many in (('a number', 'numbers'), ('an integer', 'integers'),
                      ('a string', 'strings')):
        text = text.replace(one, many)
    return text


@lru_cache(maxsize=None)
def arguments(cls: type) -> Tuple[Tuple[str, Any, Any], ...]:
    """``(name, type hint, default)`` of every argument of ``cls.__init__``, in order."""
    hints = get_type_hints(cls.__init__, include_extras=True)
    out = []
    for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((name, hints.get(name, Any), p.default))
    return tuple(out)


def check_arguments(cls: type, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    """Raises ValueError naming ``cls.argument`` for an unknown argument or a value its
    annotation does not allow."""
    known = arguments(cls)
    names = [n for n, _, _ in known]
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise ValueError(f'{cls.__name__} has no argument {unknown[0]!r}; its arguments: '
                         f'{", ".join(names) or "none"}')
    if len(args) > len(known):
        raise ValueError(f'{cls.__name__} takes {len(known)} arguments, got {len(args)}')
    given = dict(zip(names, args), **kwargs)
    for name, hint, _ in known:
        if name in given:
            check_value(hint, given[name], f'{cls.__name__}.{name}')


def check_value(hint: Any, value: Any, field: str) -> None:
    """Raises ValueError naming ``field`` when ``hint`` does not allow ``value``."""
    if not _fits(hint, value):
        raise ValueError(f'{field} must be {describe(hint)}, got {value!r}')


class TypedArguments:
    """Checks every construction against the ``__init__`` annotations, before ``__init__``
    runs (mmengine's registries build with keyword arguments, which ``__new__`` sees too)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        check_arguments(cls, args, kwargs)
        return super().__new__(cls)


def describe_arguments(classes: Dict[str, type]) -> List[str]:
    """One markdown line per strategy name: its arguments, their types and defaults."""
    lines = []
    for name, cls in sorted(classes.items()):
        parts = [f'`{a}`: {describe(h)} (default `{d!r}`)' for a, h, d in arguments(cls)]
        lines.append(f'- `{name}`: ' + ('; '.join(parts) if parts else 'no arguments') + '.')
    return lines
