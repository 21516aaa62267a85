"""Budgets in images, boxes or seconds: spending never overspends by more than one image,
expected counts come from the detections the strategy made, and the settings are checked."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import build_detector, voc_dataset
from isal_mmdet.al.budget import Budget, expected_boxes, plan, spend
from isal_mmdet.al.cost import AnnotationCost
from isal_mmdet.al.selection import select
from isal_mmdet.al.settings import budget_of
from isal_mmdet.al.strategies import SelectionContext, build_strategy
from isal_mmdet.datasets.al_subset import ActiveSubset
from isal_mmdet.detection.recorder import count_above, recorded_detections


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 50), min_size=1, max_size=30), st.floats(0.5, 400))
def test_spend_crosses_the_budget_by_at_most_the_last_image(costs, amount):
    order = list(range(len(costs)))
    chosen = spend(order, dict(enumerate(costs)), amount)
    assert chosen == order[:len(chosen)]  # the strategy's order, never reshuffled
    assert sum(costs[i] for i in chosen[:-1]) < amount  # all but the last fit
    assert sum(costs[i] for i in chosen) >= amount or chosen == order  # used, or pool out


def test_seconds_price_images_and_boxes():
    cost = AnnotationCost(per_image=2.0, per_box=3.0)
    assert Budget(10, 'images', cost).price(5) == 1.0
    assert Budget(10, 'boxes', cost).price(5) == 5
    assert Budget(10.5, 'seconds', cost).price(5) == 17.0
    assert AnnotationCost().seconds(2, 3) == pytest.approx(2 * 7.8 + 3 * 7.0)


@pytest.mark.parametrize('al,message', [
    (dict(budget=10, budget_unit='boxez'), "active_learning.budget_unit must be one of "
                                           "['images', 'boxes', 'seconds'], got 'boxez'"),
    (dict(budget=2.5, budget_unit='boxes'), 'active_learning.budget must be a positive integer '
                                            'of boxes, got 2.5'),
    (dict(budget=0, budget_unit='seconds'), 'active_learning.budget must be a positive number '
                                            'of seconds, got 0'),
    (dict(budget=10, cost=dict(per_bbox=3)), "active_learning.cost has unknown field(s) "
                                             "['per_bbox']"),
    (dict(budget=10, cost=dict(per_box=-1)), 'active_learning.cost.per_box must be a '
                                             'non-negative number of seconds, got -1'),
    (dict(budget=10, cost=5), 'active_learning.cost must be dict(per_image=seconds, '
                              'per_box=seconds) or None, got 5'),
])
def test_bad_budget_settings_are_one_line(al, message):
    with pytest.raises(ValueError) as e:
        budget_of(al)
    assert str(e.value).startswith(message)
    assert budget_of(dict(budget=300.5, budget_unit='seconds', cost=dict(per_box=1))) == \
        Budget(300.5, 'seconds', AnnotationCost(per_box=1))


def _ctx(synthetic_voc, model, n_labelled=8):
    full = voc_dataset(synthetic_voc, 'train')
    ids = [full.get_data_info(i)['img_id'] for i in range(len(full))]
    return SelectionContext(model=model, pool=ActiveSubset(full, ids=ids[:n_labelled],
                                                           invert=True),
                            labelled=ActiveSubset(full, ids=ids[:n_labelled]),
                            reference=voc_dataset(synthetic_voc, 'val'), batch_size=3,
                            progress=False)


def test_recorded_detections_are_the_models_own(synthetic_voc):
    """What the recorder keeps during scoring equals a plain test_step of each image."""
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    with recorded_detections(model) as seen:
        build_strategy('dcus').score(ctx)
    # every pool image (and the labelled ones DCUS calibrates its difficulty on)
    assert set(seen) >= {ctx.pool.get_data_info(i)['img_id'] for i in range(len(ctx.pool))}
    from mmengine.dataset import pseudo_collate
    item = ctx.pool[0]
    ref = model.test_step(pseudo_collate([item]))[0].pred_instances
    scores, labels = seen[item['data_samples'].metainfo['img_id']]
    assert scores == pytest.approx(ref.scores.tolist(), abs=1e-5)
    assert labels == ref.labels.tolist()
    assert model.bbox_head.predict_by_feat.__func__ is type(model.bbox_head).predict_by_feat
    assert count_above(([0.9, 0.2, 0.5], [0, 1, 1]), {0: 0.95, 1: 0.5}) == 1


def test_box_budget_spends_the_strategys_order_and_records_the_plan(synthetic_voc):
    """random has no inference of its own: one pass infers every pool image; the picks are
    random's own order, cut where the expected boxes reach the budget."""
    model = build_detector('retinanet')
    torch.nn.init.constant_(model.bbox_head.retina_cls.bias, -1.4)  # sigmoid 0.2: detections
    ctx = _ctx(synthetic_voc, model)
    res = select('random', ctx, Budget(12, 'boxes'), preannotation_thr=0.05)
    plan_ = res.info['budget']
    how = plan_['expected_boxes']
    assert how['extra_inference'] == len(ctx.pool) and how['inferred_while_scoring'] == 0
    assert how['calibration']['scale'] == 1.0  # a fixed threshold: nothing fitted
    full = select('random', _ctx(synthetic_voc, model), len(ctx.pool)).selected
    assert res.selected == full[:len(res.selected)]
    assert plan_['planned']['images'] == len(res.selected)
    assert plan_['planned']['seconds'] == pytest.approx(AnnotationCost().seconds(
        len(res.selected), plan_['planned']['boxes']))


def test_expected_boxes_are_scaled_by_the_reference_sets_real_count(synthetic_voc):
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    pid = ctx.pool.get_data_info(0)['img_id']
    seen = {pid: ([0.9, 0.8, 0.1], [0, 1, 2])}
    thr = dict(per_class={'circle': 0.5, 'square': 0.5, 'triangle': 0.5},
               boxes_per_image=2.0, real_boxes_per_image=3.0)
    counts, how = expected_boxes(ctx, seen, thr, ('circle', 'square', 'triangle'))
    assert counts[pid] == pytest.approx(2 * 1.5)
    assert how['calibration']['scale'] == pytest.approx(1.5)
    assert how['extra_inference'] == len(ctx.pool) - 1 and len(counts) == len(ctx.pool)


class _Ordered:
    """A set-based strategy stand-in: its order is fixed, longer requests extend it."""
    higher_is_better = True

    def __init__(self, order):
        self.order, self.asked = order, []

    def select(self, scores, n, ctx):
        self.asked.append(n)
        return self.order[:n]


def test_plan_asks_a_set_based_strategy_for_more_until_the_budget_is_used(synthetic_voc):
    ctx = _ctx(synthetic_voc, None)
    ids = [ctx.pool.get_data_info(i)['img_id'] for i in range(len(ctx.pool))]
    scores = {i: float(k) for k, i in enumerate(ids)}  # ranking: the last id first
    strategy = _Ordered(ids)  # its own order: the first id first
    boxes = {i: (0.0 if k < 10 else 2.0) for k, i in enumerate(ids)}
    chosen, planned = plan(strategy, scores, ctx, Budget(6, 'boxes'), boxes)
    assert chosen == ids[:13] and planned['planned']['boxes'] == 6.0
    assert strategy.asked[0] == 3 and strategy.asked[-1] >= 13


def test_loop_with_a_box_budget_charges_the_real_boxes(synthetic_voc, tmp_path):
    """al_train.py with budget_unit='boxes': each selection plans within one image of the
    budget, and the summary charges exactly the real boxes of the images it selected."""
    import json
    import os.path as osp
    import xml.etree.ElementTree as ET
    from test_loop import al_train
    res = al_train(tmp_path / 'w', synthetic_voc, **{
        'active_learning.budget': 15, 'active_learning.budget_unit': 'boxes',
        'active_learning.rounds': 2, 'active_learning.strategy': 'entropy',
        'active_learning.cost.per_image': 2.0, 'active_learning.cost.per_box': 1.0})
    assert res.returncode == 0, res.stderr[-3000:]
    sel = json.load(open(tmp_path / 'w' / 'round_0' / 'selection.json'))
    planned = sel['info']['budget']['planned']
    picks = sel['selected']
    assert planned['images'] == len(picks) and planned['boxes'] >= 15 or \
        len(picks) == len(sel['scores'])
    real = sum(len(ET.parse(osp.join(synthetic_voc, 'Annotations', f'{i}.xml')).getroot()
                   .findall('object')) for i in picks)
    rows = json.load(open(tmp_path / 'w' / 'summary.json'))
    charged = rows[1]['selection_cost']['charged']
    assert charged == dict(images=len(picks), boxes=real, seconds=2.0 * len(picks) + real)
    assert rows[1]['selection_cost']['planned'] == planned
    assert rows[1]['num_seconds'] == 2.0 * rows[1]['num_labelled'] + rows[1]['num_boxes']
    header = open(tmp_path / 'w' / 'summary.csv').readline()
    assert 'planned_boxes' in header and 'training_seconds' in header
    trained = json.load(open(tmp_path / 'w' / 'round_1' / 'training.json'))
    assert trained['iters'] > 0 and rows[1]['training_seconds'] == trained['seconds'] > 0
