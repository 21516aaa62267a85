"""Typed arguments of the strategies and the hook: every construction is checked against the
``__init__`` annotations, so a bad value in a config is one line before any training."""
import math

import pytest
from hypothesis import given, settings, strategies as st

import isal_mmdet.study.research_strategies  # noqa: F401  (registers the research variants)
from isal_mmdet.al.settings import AL_DEFAULTS, validate
from isal_mmdet.al.strategies import ISAL, build_strategy
from isal_mmdet.al.arguments import arguments, check_arguments
from isal_mmdet.registry import STRATEGIES

CLASSES = sorted(set(STRATEGIES.module_dict.values()), key=lambda c: c.__name__)


@pytest.mark.parametrize('cls', CLASSES, ids=lambda c: c.__name__)
def test_every_default_fits_its_own_annotation(cls):
    defaults = {name: default for name, _, default in arguments(cls)}
    check_arguments(cls, (), defaults)
    assert isinstance(cls(**defaults), cls)


def _one_line(exc):
    assert '\n' not in str(exc.value)
    return str(exc.value)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.floats(allow_nan=True), st.integers(-3, 3), st.booleans(), st.text(max_size=3),
                 st.none()))
def test_a_score_is_a_finite_number_in_the_unit_interval(value):
    fits = not isinstance(value, (bool, str)) and value is not None and \
        math.isfinite(value) and 0 <= value <= 1
    if fits:
        assert ISAL(score_thr=value).score_thr == value
    else:
        with pytest.raises(ValueError) as e:
            ISAL(score_thr=value)
        assert _one_line(e) == f'ISAL.score_thr must be a number in [0, 1], got {value!r}'


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(-5, 5), st.floats(0, 5), st.booleans()))
def test_a_count_is_positive_a_box_score_threshold_excludes_the_ends_a_band_does_not(value):
    count_ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    spec = dict(type='entropy', max_boxes=value)
    if count_ok:
        assert build_strategy(spec).max_boxes == value
    else:
        with pytest.raises(ValueError, match=r'^Entropy\.max_boxes must be an integer >= 1'):
            build_strategy(spec)
    open_ok = not isinstance(value, bool) and 0 < value < 1
    spec = dict(type='isal_box', score_thr=value)
    if open_ok:
        assert build_strategy(spec).score_thr == value
    else:
        with pytest.raises(ValueError, match=r'^ISALBox\.score_thr must be a number in '
                                             r'\(0, 1\)'):
            build_strategy(spec)
    # the band's precision may be 0 (every detection below the threshold) or 1
    closed_ok = not isinstance(value, bool) and 0 <= value <= 1
    spec = dict(type='isal_box', band_precision=value)
    if closed_ok:
        assert build_strategy(spec).band_precision == value
    else:
        with pytest.raises(ValueError, match=r'^ISALBox\.band_precision must be a number in '
                                             r'\[0, 1\]'):
            build_strategy(spec)


@pytest.mark.parametrize('spec, message', [
    (dict(type='dcus', bogus=1), "DCUS has no argument 'bogus'; its arguments: score_thr, "
                                 'class_weight_ub, class_weight_alpha, quality_xi, iou_thr'),
    (dict(type='isal_box', order='largest'), "ISALBox.order must be one of 'negative', "
                                             "'magnitude', got 'largest'"),
    (dict(type='isal', curvature='Fisher'), "ISAL.curvature must be one of"),
    (dict(type='isal', param_groups={'cls': 3}), 'ISAL.param_groups must be a dict of strings '
                                                 'to strings or None, got'),
    (dict(type='esi', reference_size=True), 'ESI.reference_size must be an integer >= 1 or '
                                            'None, got True'),
    (dict(type='badge', dim=2048), 'BADGE.dim must be an integer in [1, 1024], got 2048'),
    (dict(type='ISALResearch', diversity=dict(pool=2)), "ISALResearch.diversity must be a dict "
                                                        "of 'pool_factor' to integers >= 1"),
    (dict(type='random', seed=1), "Random has no argument 'seed'; its arguments: none"),
])
def test_a_bad_argument_in_the_config_is_one_line_before_any_training(spec, message):
    al = dict(AL_DEFAULTS, strategy=spec)
    with pytest.raises(ValueError) as e:
        validate(al)
    assert _one_line(e).startswith(f'active_learning.strategy: {message}')


def test_positional_arguments_are_checked_too():
    with pytest.raises(ValueError, match=r"^ISAL\.score_thr must be a number in \[0, 1\], "
                                         r"got 'high'"):
        ISAL(None, 'high')
    with pytest.raises(ValueError, match='ISAL takes 6 arguments, got 7'):
        ISAL(None, 0.1, 100, None, 'fisher', None, 'extra')


@pytest.mark.parametrize('args, message', [
    (dict(batch_size=0), 'ISALSelectionHook.batch_size must be an integer >= 1, got 0'),
    (dict(reference='train'), "ISALSelectionHook.reference must be one of 'val', 'labelled', "
                              "'test', got 'train'"),
    (dict(preannotation_thr=1.5), "ISALSelectionHook.preannotation_thr must be 'auto' or a "
                                  'number in [0, 1], got 1.5'),
    (dict(export_coco='yes'), "ISALSelectionHook.export_coco must be True or False, got 'yes'"),
    (dict(seeds=[0]), "ISALSelectionHook has no argument 'seeds'"),
])
def test_a_bad_hook_argument_is_one_line_when_the_runner_builds_it(args, message):
    from mmdet.registry import HOOKS
    with pytest.raises(ValueError) as e:
        HOOKS.build(dict(type='ISALSelectionHook', strategy='random', **args))
    assert _one_line(e).startswith(message)
    assert HOOKS.build(dict(type='ISALSelectionHook', strategy='random', preannotation_thr=0.5))
