"""Box queries through the round loop: what is asked, what it costs, what the next round
trains on."""
import json
import logging
import os.path as osp
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from isal_mmdet.al.budget import Budget
from isal_mmdet.al.cost import AnnotationCost
from isal_mmdet.al.strategies import SelectionContext
from isal_mmdet.study.box.oracle import Annotator
from isal_mmdet.study.box.selection import (band_of, check_band, image_order, select_boxes,
                                            spend_queries)
from isal_mmdet.study.box.strategies import RandomBox
from isal_mmdet.study.box.band import band_floor
from test_loop import DEMO, al_train as demo_train

def al_train(work_dir, data_root, *args, **extra):
    """tools/al_train.py on the demo config with the research package imported, where the
    box strategies register."""
    config = osp.join(osp.dirname(str(work_dir)), 'box_demo.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = {DEMO!r}\ncustom_imports = dict(imports=['isal_mmdet', "
                "'isal_mmdet.study'], allow_failed_imports=False)\n")
    return demo_train(work_dir, data_root, *args, config=config, **extra)


BOX = {'active_learning.strategy.type': 'ISALBox', 'active_learning.strategy.score_thr': 0.005,
       'active_learning.budget_unit': 'boxes', 'active_learning.budget': 5,
       'active_learning.rounds': 3, 'active_learning.preannotation_thr': 0.9}


def real_boxes(data_root, img_id):
    root = ET.parse(osp.join(data_root, 'Annotations', f'{img_id}.xml')).getroot()
    return [[float(o.find('bndbox').find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            for o in root.iter('object')]


@pytest.fixture(scope='module')
def box_run(synthetic_voc, tmp_path_factory):
    work = tmp_path_factory.mktemp('box') / 'w'
    res = al_train(work, synthetic_voc, **BOX)
    assert res.returncode == 0, res.stderr[-3000:]
    return work


def test_queries_spend_the_box_budget_and_the_next_round_is_charged_them(box_run):
    work = box_run
    queries = json.load(open(work / 'round_0' / 'box_queries.json'))
    asked = [d for d in queries['detections'] if d['queried']]
    assert queries['queries'] == len(asked) == 5
    assert all(d['band'] == 'uncertain' and 0.005 <= d['score'] < 0.9 for d in asked)
    sel = json.load(open(work / 'round_0' / 'selection.json'))
    assert sel['query'] == 'boxes'
    assert set(sel['selected']) == {d['img_id'] for d in asked}
    # each image's priority is its best candidate's (most negative influence for isal_box)
    for d in asked:
        assert sel['scores'][str(d['img_id'])] <= d['query_score']
    rows = json.load(open(work / 'summary.json'))
    charged = rows[1]['selection_cost']['charged']
    assert charged['boxes'] == 5 and charged['images'] == len(sel['selected'])
    assert rows[1]['selection_cost']['planned']['boxes'] == 5


def test_answers_are_the_real_boxes_and_every_query_is_counted(box_run, synthetic_voc):
    work = box_run
    labels = json.load(open(work / 'round_1' / 'box_labels.json'))
    queries = json.load(open(work / 'round_0' / 'box_queries.json'))
    assert sum(e['queries'] for e in labels['images']) == queries['queries']
    for entry in labels['images']:
        real = real_boxes(synthetic_voc, entry['img_id'])
        for inst in entry['instances']:
            if inst['source'] == 'human':
                assert any(max(abs(a - b) for a, b in zip(inst['bbox'], r)) < 1.01
                           for r in real), (entry['img_id'], inst)
                assert inst['ignore_flag'] == 0
    labelled = json.load(open(work / 'round_1' / 'labeled.json'))
    assert {e['img_id'] for e in labels['images']} <= set(labelled)


def test_a_later_round_asks_only_about_unopened_images_and_keeps_earlier_answers(box_run):
    first = json.load(open(box_run / 'round_1' / 'box_labels.json'))['images']
    second = json.load(open(box_run / 'round_2' / 'box_labels.json'))['images']
    opened = {e['img_id'] for e in first}
    asked = json.load(open(box_run / 'round_1' / 'box_queries.json'))['detections']
    assert asked and not opened & {d['img_id'] for d in asked}
    assert second[:len(first)] == first
    assert sum(e['queries'] for e in second) == 10
    rows = json.load(open(box_run / 'summary.json'))
    assert rows[2]['num_boxes'] - rows[1]['num_boxes'] == 5


def test_the_study_counts_what_the_queries_found(box_run, tmp_path):
    from isal_mmdet.study.picks import box_answers
    (tmp_path / 'isal_box').mkdir()
    (tmp_path / 'isal_box' / 'seed0').symlink_to(box_run)
    row, = box_answers(str(tmp_path), ['isal_box', 'random'], [0, 1], 3)['isal_box']
    labels = json.load(open(box_run / 'round_2' / 'box_labels.json'))['images']
    charged = json.load(open(box_run / 'summary.json'))
    assert row['queries'] == 10 == charged[2]['num_boxes'] - charged[0]['num_boxes']
    assert row['images'] == len(labels) and row['objects'] + row['no_object'] <= 10
    assert row['ignore'] == sum(i['ignore_flag'] for e in labels for i in e['instances'])


def test_the_next_round_trains_on_the_partly_labelled_images_with_ignore_regions(box_run):
    dumped = {k: open(next((box_run / f'round_{k}' / 'train').glob('*.py'))).read()
              for k in (0, 1)}
    for name in ('PartialLabels', 'IgnoringMaxIoUAssigner', 'box_labels.json'):
        assert name not in dumped[0] and name in dumped[1]


def test_asking_by_image_leaves_no_ignore_region_in_a_fully_asked_image(synthetic_voc,
                                                                         tmp_path):
    opts = dict(BOX, **{'active_learning.rounds': 2, 'active_learning.strategy.ask': 'image',
                        'active_learning.strategy.max_per_img': 3,
                        'active_learning.budget': 8})
    res = al_train(tmp_path / 'w', synthetic_voc, **opts)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.load(open(tmp_path / 'w' / 'round_0' / 'box_queries.json'))['detections']
    opened = list(dict.fromkeys(d['img_id'] for d in rows if d['queried']))
    whole = [i for i in opened if all(d['queried'] for d in rows
                                      if d['img_id'] == i and d['band'] == 'uncertain')]
    assert whole and set(opened) - set(whole) <= {opened[-1]}  # only the last part-asked
    labels = json.load(open(tmp_path / 'w' / 'round_1' / 'box_labels.json'))['images']
    for entry in labels:
        if entry['img_id'] in whole:
            assert not [x for x in entry['instances'] if x['source'] == 'ignore']
    info = json.load(open(tmp_path / 'w' / 'round_0' / 'selection.json'))['info']
    assert info['ask'] == 'image' and info['budget']['planned']['boxes'] == 8


def test_a_box_strategy_with_an_image_budget_fails_before_training(synthetic_voc, tmp_path):
    res = al_train(tmp_path / 'w', synthetic_voc,
                   **dict(BOX, **{'active_learning.budget_unit': 'images'}))
    assert res.returncode != 0
    assert 'active_learning.budget_unit must be boxes or seconds' in res.stderr
    assert not (tmp_path / 'w' / 'round_0').exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9)), unique=True, max_size=40),
       st.integers(1, 30), st.sampled_from(['boxes', 'seconds']))
def test_a_query_budget_is_never_overspent_by_more_than_one_query(keys, amount, unit):
    cost = AnnotationCost(per_image=7.8, per_box=7.0)
    budget = Budget(amount if unit == 'boxes' else float(amount * 7), unit, cost)
    chosen, spent = spend_queries(keys, budget)
    assert chosen == keys[:len(chosen)]
    assert spent['boxes'] == len(chosen)
    assert spent['images'] == len({k[0] for k in chosen})
    total = spent['boxes'] if unit == 'boxes' else spent['seconds']
    last = 0 if not chosen else (1 if unit == 'boxes' else 7.8 + 7.0)
    if len(chosen) < len(keys):
        assert total >= budget.amount
    assert total - last < budget.amount or not chosen


def test_free_checks_spend_the_budget_on_found_objects(synthetic_voc, tmp_path):
    opts = dict(BOX, **{'active_learning.rounds': 2, 'active_learning.budget': 3,
                        'active_learning.cost.per_check': 0.0})
    res = al_train(tmp_path / 'w', synthetic_voc, **opts)
    assert res.returncode == 0, res.stderr[-3000:]
    labels = json.load(open(tmp_path / 'w' / 'round_1' / 'box_labels.json'))['images']
    found = sum(i['source'] == 'human' for e in labels for i in e['instances'])
    queries = sum(e['queries'] for e in labels)
    rows = json.load(open(tmp_path / 'w' / 'summary.json'))
    charged = rows[1]['num_boxes'] - rows[0]['num_boxes']
    assert charged == found == sum(e['charged'] for e in labels)
    assert rows[1]['selection_cost']['planned']['objects'] == found
    asked = json.load(open(tmp_path / 'w' / 'round_0' / 'box_queries.json'))['detections']
    candidates = [d for d in asked if d['band'] == 'uncertain']
    # the person stops once 3 objects are found, or when the candidates run out
    assert found == 3 or all(d['queried'] for d in candidates)
    assert queries >= found and sum(d['queried'] for d in asked) == queries


def reference_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


box_st = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 30),
                   st.integers(1, 30)).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=100, deadline=None)
@given(st.lists(box_st, max_size=6), st.lists(box_st, max_size=12))
def test_the_simulated_person_finds_each_real_box_once(real, queries):
    person = Annotator({0: [dict(bbox=b, bbox_label=0) for b in real]})
    found = set()
    for q in queries:
        ious = [reference_iou(q, r) for r in real]
        best = max(range(len(real)), key=lambda j: (ious[j], -j)) if real else None
        new = best is not None and ious[best] >= 0.5 and best not in found
        if new:
            found.add(best)
        assert person.is_object(0, dict(bbox=q)) == new


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9)), unique=True, max_size=40),
       st.sets(st.tuples(st.integers(0, 6), st.integers(0, 9))), st.integers(1, 30),
       st.sampled_from(['boxes', 'seconds']), st.sampled_from([0.0, 1.75, 3.5, 7.0]))
def test_checks_priced_apart_are_charged_as_answered(keys, objects, amount, unit, per_check):
    cost = AnnotationCost(per_image=7.8, per_box=7.0, per_check=per_check)
    budget = Budget(amount if unit == 'boxes' else float(amount * 7), unit, cost)
    asked = []

    def is_object(key):
        asked.append(key)
        return key in objects
    chosen, spent = spend_queries(keys, budget, is_object)
    assert asked == chosen == keys[:len(chosen)]  # asked in order, never ahead of the spend
    n_obj = sum(k in objects for k in chosen)
    assert spent['objects'] == n_obj and spent['queries'] == len(chosen)
    assert spent['boxes'] == pytest.approx(n_obj + per_check / 7.0 * (len(chosen) - n_obj))
    opened = len({k[0] for k in chosen})
    assert spent['seconds'] == pytest.approx(7.8 * opened + 7.0 * spent['boxes'])

    def total(n):  # what the first n queries cost in the budget's unit
        head = chosen[:n]
        boxes = sum(1.0 if k in objects else per_check / 7.0 for k in head)
        return boxes if unit == 'boxes' else 7.8 * len({k[0] for k in head}) + 7.0 * boxes
    assert not chosen or total(len(chosen) - 1) < budget.amount  # only the last query crosses
    if len(chosen) < len(keys):
        assert total(len(chosen)) >= budget.amount
    if per_check == 7.0:  # a check priced as a box: the plain spend
        assert chosen == spend_queries(keys, Budget(budget.amount, unit, AnnotationCost(
            per_image=7.8, per_box=7.0)))[0]


def test_a_priced_check_needs_someone_to_answer_and_a_box_price():
    with pytest.raises(ValueError, match='only the simulated oracle answers'):
        spend_queries([(0, 0)], Budget(3, 'boxes', AnnotationCost(per_check=1.0)))
    with pytest.raises(ValueError, match='per_box must be above 0'):
        AnnotationCost(per_box=0, per_check=1.0)
    with pytest.raises(ValueError, match='cost.per_check must be a non-negative'):
        AnnotationCost(per_check=-1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9)), unique=True, max_size=40),
       st.integers(1, 30))
def test_asking_image_by_image_labels_every_opened_image_but_the_last_whole(keys, amount):
    chosen, spent = spend_queries(image_order(keys), Budget(amount, 'boxes', AnnotationCost()))
    opened = list(dict.fromkeys(k[0] for k in chosen))
    best_first = list(dict.fromkeys(k[0] for k in keys))
    assert opened == best_first[:len(opened)]  # images in the order of their best candidate
    for img in opened[:-1]:
        assert [k for k in chosen if k[0] == img] == [k for k in keys if k[0] == img]
    assert len(chosen) == min(amount, len(keys)) and spent['images'] == len(opened)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6]), st.booleans()),
                max_size=30),
       st.sampled_from([0.3, 0.45, 0.7]), st.sampled_from([0.2, 0.3, 0.5]))
def test_the_band_floor_is_the_lowest_score_whose_band_is_right_often_enough(preds, ceiling,
                                                                            precision):
    scores, tp = [p[0] for p in preds], [p[1] for p in preds]

    def right_often_enough(lo):
        inside = [t for sc, t in preds if lo <= sc < ceiling]
        return bool(inside) and sum(inside) >= precision * len(inside)

    floors = [sc for sc in set(scores) if sc < ceiling and right_often_enough(sc)]
    assert band_floor(scores, tp, ceiling, precision) == min(floors, default=ceiling)


def test_a_detection_is_asked_about_only_inside_its_class_band():
    thr = dict(per_class={'a': 0.5, 'b': 0.4}, band_low={'a': 0.3, 'b': 0.05})
    classes = ('a', 'b')
    assert band_of(dict(score=0.5, label=0), thr, classes, 0.1) == 'confident'
    assert band_of(dict(score=0.3, label=0), thr, classes, 0.1) == 'uncertain'
    assert band_of(dict(score=0.29, label=0), thr, classes, 0.1) == 'below'
    # the strategy's score_thr is a floor under the fitted one
    assert band_of(dict(score=0.08, label=1), thr, classes, 0.1) == 'below'
    assert band_of(dict(score=0.1, label=1), thr, classes, 0.1) == 'uncertain'
    assert band_of(dict(score=0.2, label=1), dict(per_class=thr['per_class']), classes,
                   0.1) == 'uncertain'


def test_an_empty_band_fails_in_one_line_and_one_class_band_is_enough():
    classes = ('a', 'b')
    fitted = dict(per_class={'a': 0.3, 'b': 0.2}, band_low={'a': 0.3, 'b': 0.2})
    with pytest.raises(ValueError, match=r'band_precision=0.1: .* right 0.1 of the time'):
        check_band(fitted, classes, 0.1, 0.1)
    # the strategy's score_thr is a floor: a fixed threshold at it leaves no band either
    with pytest.raises(ValueError, match='at or below score_thr 0.2'):
        check_band(dict(per_class={'a': 0.2, 'b': 0.15}), classes, 0.2, 0.1)
    check_band(dict(fitted, band_low={'a': 0.3, 'b': 0.19}), classes, 0.1, 0.1)
    check_band(dict(per_class={'a': 0.2, 'b': 0.25}), classes, 0.2, 0.1)


def test_a_round_with_nothing_to_ask_fails_before_the_next_round_trains(synthetic_voc,
                                                                       tmp_path):
    res = al_train(tmp_path / 'w', synthetic_voc,
                   **dict(BOX, **{'active_learning.preannotation_thr': 0.001}))
    assert res.returncode != 0
    assert 'the uncertainty band is empty' in res.stderr.strip().splitlines()[-1]
    assert (tmp_path / 'w' / 'round_0' / 'metrics.json').exists()
    assert not (tmp_path / 'w' / 'round_0' / 'box_queries.json').exists()
    assert not (tmp_path / 'w' / 'round_1').exists()


class _FixedDetections(RandomBox):
    """Random per box over a fixed pool of detections (no model)."""

    def __init__(self, dets, **kw):
        super().__init__(**kw)
        self.dets = dets

    def detections(self, ctx):
        return self.dets


def test_a_band_smaller_than_the_budget_is_spent_to_its_end_with_a_warning(tmp_path, caplog):
    dets = {'x': [dict(bbox=[0, 0, 9, 9], label=0, score=sc) for sc in (0.95, 0.5, 0.4, 0.05)],
            'y': [dict(bbox=[0, 0, 9, 9], label=0, score=0.3)]}
    ctx = SelectionContext(model=None, pool=SimpleNamespace(metainfo={'classes': ('a',)}),
                           labelled=None)
    thr = dict(per_class={'a': 0.9}, band_low={'a': 0.2})
    budget = Budget(10, 'boxes', AnnotationCost())
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        out = select_boxes(_FixedDetections(dets), ctx, budget, thr, str(tmp_path))
    assert sorted(out['queries']) == [('x', 1), ('x', 2), ('y', 0)]
    assert 'band held 3 candidates, so 3 of the budget of 10 boxes were spent' in caplog.text
    # a pool with detections but none in the band asks nothing: one line, nothing written
    with pytest.raises(ValueError, match="none of the pool's 2 detections lies in the"):
        select_boxes(_FixedDetections({'x': dets['x'][:1], 'y': dets['x'][3:]}), ctx, budget,
                     thr, str(tmp_path / 'none'))
    assert not (tmp_path / 'none').exists()


def test_only_research_strategies_change_the_rounds_and_box_ones_need_the_loop():
    """The round loop's one seam: every product strategy leaves the rounds as they are, a box
    strategy brings its rounds, and is refused where no round loop answers its queries."""
    from isal_mmdet.al.settings import checked_strategy
    from isal_mmdet.al.strategies import STRATEGIES, build_strategy
    from isal_mmdet.study.box import BoxRounds
    names = [k for k, cls in STRATEGIES.module_dict.items() if k.islower()]
    product = [k for k in names if not STRATEGIES.module_dict[k].__module__.startswith(
        'isal_mmdet.study')]
    assert 'dcus' in product and 'isal_box' not in product
    assert all(build_strategy(k).round_extension() is None for k in product)
    for k in sorted(set(names) - set(product)):
        assert isinstance(build_strategy(k).round_extension(), BoxRounds), k
        with pytest.raises(ValueError, match=r'--strategy: \w+Box runs only in the round loop'):
            checked_strategy(k, '--strategy', images_only=True)
