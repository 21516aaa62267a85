"""The study tool (isal_mmdet.study, tools/al_study.py): its arithmetic on hand-computed
curves, the research variants, and a committed report reproduced from its raw curves."""
import os.path as osp
import sys

import pytest

from conftest import ROOT
from isal_mmdet.study.analysis import analyse, analyse_shared
from isal_mmdet.study.check_price import break_even, check_prices, free_check_gap
from isal_mmdet.study.merge import check_prior, merge_prior
from isal_mmdet.study.metrics import auc, interp, labels_to_reach
from isal_mmdet.study.picks import busyness_correlation, composition
from isal_mmdet.study.report import check_price_lines, cpu_lines, report
from isal_mmdet.study.run import cpu_per_round
from isal_mmdet.study.variants import LEVERS, strategy_cfg

sys.path.insert(0, osp.join(ROOT, 'studies'))
import soft_labels  # noqa: E402


def test_auc_is_trapezoid_over_x_range():
    assert auc([(40, 0.4), (80, 0.6), (120, 0.6)]) == pytest.approx((20 + 24) / 80)


def test_labels_to_reach_interpolates_between_rounds():
    curve = [(40, 0.40), (80, 0.60), (120, 0.70)]
    assert labels_to_reach(curve, 0.50) == pytest.approx(60)
    assert labels_to_reach(curve, 0.35) == 40
    assert labels_to_reach(curve, 0.80) is None


def test_cost_reduction_and_paired_differences():
    curves = {'random': {0: [(40, 0.4), (80, 0.5), (120, 0.6)],
                         1: [(40, 0.4), (80, 0.5), (120, 0.6)]},
              'good': {0: [(40, 0.4), (80, 0.6), (120, 0.7)],
                       1: [(40, 0.4), (80, 0.55), (120, 0.6)]}}
    res = analyse(curves, ['random', 'good'], [0, 1])
    # seed 0 reaches 0.6 at 80 images (1/3 fewer); seed 1 at 120 (none fewer)
    assert res['cost_reduction']['good']['per_seed'] == pytest.approx([1 / 3, 0.0])
    diff = res['paired_auc_vs']['good']['random']
    assert diff['per_seed'] == pytest.approx([0.075, 0.025])
    assert diff['mean'] == pytest.approx(0.05) and diff['mean_exceeds_stderr']
    final = res['paired_final_vs']['good']['random']
    assert final['per_seed'] == pytest.approx([0.1, 0.0]) and not final['mean_exceeds_stderr']
    assert 'good − random | +0.0500' in report(res, ['random', 'good'])


def test_variant_replaces_the_solver_of_a_config(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'isal_retinanet_bccd.py'))
    al = cfg.active_learning
    for key, value in strategy_cfg(al.get('strategy'), 'isal-cg').items():
        al[key] = value
    assert dict(al.strategy.solver) == LEVERS['cg'][0]['solver']


def test_variants_change_only_what_they_name():
    base = dict(type='ISAL', solver=dict(type='lissa', depth=200))
    assert strategy_cfg(base, 'isal') == dict(strategy=base)
    assert strategy_cfg(base, 'entropy') == dict(strategy='entropy')
    thr = strategy_cfg(base, 'isal-thr0.3')['strategy']
    assert thr == dict(base, score_thr=0.3)
    damp = strategy_cfg(base, 'isal-damp0.1')['strategy']
    assert damp['solver']['damp'] == 0.1 and damp['curvature'] == 'hessian'
    assert strategy_cfg(base, 'isal-cg')['strategy']['solver']['type'] == 'cg'
    assert strategy_cfg(base, 'isal-reflab')['reference'] == 'labelled'
    assert strategy_cfg(base, 'isal-evalref')['reference'] == 'test'
    assert strategy_cfg(base, 'esi-balanced')['strategy']['reference_terms'] == 'balanced'
    both = strategy_cfg(base, 'isal-cg-thr0.5')['strategy']
    assert both['solver']['type'] == 'cg' and both['score_thr'] == 0.5
    assert base == dict(type='ISAL', solver=dict(type='lissa', depth=200))
    with pytest.raises(ValueError, match="unknown ISAL lever 'nope'"):
        strategy_cfg(base, 'isal-nope')
    assert strategy_cfg(base, 'isal_box') == dict(strategy='isal_box')
    assert strategy_cfg(base, 'entropy_box-image-nopseudo-band0.3') == dict(
        strategy=dict(type='entropy_box', ask='image', pseudo='none', band_precision=0.3))
    assert strategy_cfg(base, 'random_box-band0') == dict(
        strategy=dict(type='random_box', band_precision=0.0))
    # free checks change the config's cost, not replace it
    assert strategy_cfg(base, 'isal_box-image-free', dict(per_image=3.0)) == dict(
        strategy=dict(type='isal_box', ask='image'), cost=dict(per_image=3.0, per_check=0.0))
    assert strategy_cfg(base, 'random_box-free') == dict(strategy='random_box',
                                                         cost=dict(per_check=0.0))
    with pytest.raises(ValueError, match="unknown box lever 'whole'"):
        strategy_cfg(base, 'random_box-whole')
    # a solver named by a string in the config takes a lever's solver arguments the same way
    named = strategy_cfg(dict(type='ISAL', solver='lissa'), 'isal-damp0.1')['strategy']
    assert named['solver'] == dict(LEVERS['damp0.1'][0]['solver'])


def _selection(tmp_path, strategy, selected, scores):
    import json
    rd = tmp_path / 'w' / strategy / 'seed0' / 'round_0'
    rd.mkdir(parents=True)
    (rd / 'selection.json').write_text(json.dumps(dict(selected=selected, scores=scores)))
    return str(tmp_path / 'w')


def test_composition_counts_classes_of_selected_and_pool(tmp_path):
    boxes = {'a': ['cat', 'cat'], 'b': ['dog'], 'c': []}
    w = _selection(tmp_path, 'isal', ['a'], {'a': -1.0, 'b': 0.0, 'c': 1.0})
    comp = composition(w, ['isal'], [0], 2, boxes)
    assert comp['isal']['cat'] == dict(selected=2.0, pool=pytest.approx(2 / 3))
    assert comp['isal']['dog'] == dict(selected=0.0, pool=pytest.approx(1 / 3))


def test_busyness_correlation_follows_the_direction_of_the_picks(tmp_path):
    """ISAL picks its lowest scores, ESI its highest: both rank the busiest image first here,
    so both correlate +1 with the box count; a ranking unrelated to it is near 0."""
    boxes = {str(i): ['x'] * i for i in range(6)}
    w = _selection(tmp_path, 'isal', [5], {str(i): -float(i) for i in range(6)})
    _selection(tmp_path, 'esi', [5, 4], {str(i): float(i) ** 2 for i in range(6)})
    _selection(tmp_path, 'random', [2], {'0': 3.0, '1': 0.0, '2': 5.0, '3': 4.0, '4': 1.0,
                                         '5': 2.0})
    busy = busyness_correlation(w, ['isal', 'esi', 'random'], [0], 2, boxes)
    assert busy['isal']['mean'] == pytest.approx(1.0)
    assert busy['esi']['values'] == [pytest.approx(1.0)]
    assert abs(busy['random']['mean']) < 0.5


def test_boxes_by_image_reads_voc_and_coco_as_their_files_say(synthetic_voc, synthetic_coco):
    """Counted against the annotation files themselves (XML objects, COCO annotations)."""
    import collections
    import json
    import xml.etree.ElementTree as ET
    from conftest import coco_dataset, voc_dataset
    from isal_mmdet.al.data import boxes_by_image
    voc = boxes_by_image(voc_dataset(synthetic_voc))
    assert voc and sum(map(len, voc.values())) > len(voc)
    for img, labels in voc.items():
        root = ET.parse(osp.join(synthetic_voc, 'Annotations', f'{img}.xml')).getroot()
        names = [o.findtext('name') for o in root.iter('object')]
        assert sorted(labels) == sorted(('circle', 'square', 'triangle').index(n)
                                        for n in names)
    coco = boxes_by_image(coco_dataset(synthetic_coco))
    with open(osp.join(synthetic_coco, 'annotations', 'instances_train.json')) as f:
        ann = json.load(f)
    per_image = collections.Counter(a['image_id'] for a in ann['annotations'])
    assert set(coco) == {str(i['id']) for i in ann['images']}
    assert {i: len(v) for i, v in coco.items()} == {
        str(i['id']): per_image[i['id']] for i in ann['images']}


def test_per_box_analysis_on_the_shared_box_range():
    # 'sparse' picks images with fewer boxes: behind per image, ahead per box
    boxes = {'random': {0: [(100, 0.4), (200, 0.5), (300, 0.6)]},
             'sparse': {0: [(100, 0.4), (150, 0.45), (200, 0.55)]}}
    res = analyse_shared(boxes, ['random', 'sparse'], [0])
    assert res['shared_range']['0'] == (100, 200)
    assert res['auc']['random']['per_seed'] == pytest.approx([0.45])
    assert res['auc']['sparse']['per_seed'] == pytest.approx([0.4625], rel=1e-3)
    assert res['paired_auc_vs']['sparse']['random']['per_seed'] == pytest.approx(
        [0.0125], rel=1e-2)
    assert res['cost_reduction']['sparse']['not_reached'] == 1  # never reaches 0.6
    assert interp([(0, 0.0), (10, 1.0)], 2.5) == pytest.approx(0.25)


def test_break_even_price_of_a_check_matches_a_search_over_prices():
    random = [(500, 0.70), (1000, 0.80)]
    run = [(500, 0.70), (1000, 0.76)]  # 500 queries, 100 objects found
    price = break_even(run, random, queries=500, objects=100)

    def gap(c):  # boxes random needs for 0.76 minus what the run is charged at price c
        return labels_to_reach(random, 0.76) - (500 + 100 + c * 400)
    grid = [k / 10000 for k in range(10001)]
    searched = min(grid, key=lambda c: abs(gap(c)))
    assert price == pytest.approx(searched, abs=1e-4) and price == pytest.approx(0.5)
    # free checks: charged 600 boxes, where random stands at 0.72
    assert free_check_gap(run, random, 500, 100) == pytest.approx(0.04)
    # the same queries charged as found (free checks): the same price and gap
    free = [(500, 0.70), (600, 0.76)]
    assert break_even(free, random, 500, 100, charged=100) == pytest.approx(0.5)
    assert free_check_gap(free, random, 500, 100, charged=100) == pytest.approx(0.04)
    # a run better than random's last round: random never gets there, at any price
    assert break_even([(500, 0.7), (1000, 0.9)], random, 500, 100) is None
    # a run worse than random's first round: even free checks do not pay
    assert break_even([(500, 0.7), (1000, 0.6)], random, 500, 100) < 0


def test_check_prices_pair_each_box_run_with_random_of_its_seed():
    curves = {'random': {0: [(500, 0.7), (1000, 0.8)], 1: [(500, 0.6), (1000, 0.8)]},
              'q': {0: [(500, 0.7), (1000, 0.76)], 1: [(500, 0.6), (1000, 0.7)]}}
    answers = {'q': [dict(seed=0, queries=500, objects=100),
                     dict(seed=1, queries=500, objects=50)]}
    res = check_prices(curves, answers, per_box=7.0, seeds=[0, 1])['q']
    # seed 1: random reaches 0.7 at 750 boxes; charged 550 + 450 c
    assert res['per_seed'] == pytest.approx([0.5, 200 / 450])
    assert res['seconds'][0] == pytest.approx(7.0 * (0.5 + 200 / 450) / 2)
    assert res['free_check_gap']['per_seed'] == pytest.approx([0.04, 0.7 - 0.62])
    assert '| q | 0.47 ± 0.04 | 3.3 ± 0.3 | 0.50, 0.44 |' in '\n'.join(
        check_price_lines({'q': res}, 7.0))


def test_merge_prior_joins_seeds_and_weights_the_class_mix():
    setup = dict(config='c.py', strategies=['random', 'isal'], seeds=[3], rounds=2,
                 initial=40, budget=40, cfg_options={})
    prior = dict(setup=dict(setup, seeds=[0, 1], strategies=['random', 'isal', 'entropy']),
                 curves={s: {'0': [[40, 0.5], [80, 0.6]], '1': [[40, 0.4], [80, 0.5]]}
                         for s in ('random', 'isal', 'entropy')},
                 box_curves={s: {'0': [[400, 0.5], [800, 0.6]], '1': [[400, 0.4], [800, 0.5]]}
                             for s in ('random', 'isal', 'entropy')},
                 selected_composition={'isal': {'cat': dict(selected=1.0, pool=2.0)}},
                 selections={'isal': [dict(seed=0)], 'entropy': [dict(seed=0)]})
    curves = {'random': {3: [(40, 0.3), (80, 0.4)]}, 'isal': {3: [(40, 0.3), (80, 0.5)]}}
    boxes = {s: {3: [(400, 0.3), (800, c[3][1][1])]} for s, c in curves.items()}
    comp = {'isal': {'cat': dict(selected=4.0, pool=2.0)}}
    sel = {'isal': [dict(seed=3)]}
    seeds = merge_prior(prior, setup, curves, boxes, comp, sel)
    assert seeds == [0, 1, 3]
    assert curves['isal'][0] == [(40, 0.5), (80, 0.6)] and curves['isal'][3][1] == (80, 0.5)
    assert comp['isal']['cat'] == dict(selected=pytest.approx(2.0), pool=pytest.approx(2.0))
    assert [r['seed'] for r in sel['isal']] == [0, 3] and 'entropy' not in sel
    res = analyse(curves, ['random', 'isal'], seeds)
    assert res['paired_auc_vs']['isal']['random']['per_seed'] == pytest.approx([0, 0, 0.05])
    for bad, match in ((dict(setup, rounds=3), 'setup.rounds is 2'),
                       (dict(setup, seeds=[1]), r'seeds \[1\] are in both'),
                       (dict(setup, strategies=['coreset']), r"\['coreset'\] are not")):
        with pytest.raises(ValueError, match=match):
            check_prior(prior, bad)


def test_esi_variants_take_the_config_solver():
    base = dict(type='ISAL', solver=dict(type='woodbury', num_samples=16))
    assert strategy_cfg(base, 'esi') == dict(strategy=dict(type='ESI', solver=base['solver']))
    assert strategy_cfg(base, 'esi-mean-top100')['strategy'] == dict(
        type='ESIResearch', solver=base['solver'], mean_term=True, top_k=100)
    with pytest.raises(ValueError, match="unknown ESI lever 'nope'"):
        strategy_cfg(base, 'esi-nope')


def test_study_shares_round_0_and_measures_the_training_noise(tmp_path, synthetic_voc):
    """Two strategies of one seed start from one round 0 (trained once, copied), the report
    reads them per image, box and second; ``--noise-seeds``: round 0's images of the first
    seed, trained with other training seeds."""
    import json
    import subprocess

    import torch
    from test_loop import DEMO, tiny_options
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'al_study.py'), DEMO,
                          '--work-dir', str(tmp_path), '--strategies', 'random', 'entropy',
                          '--seeds', '3', '--rounds', '2', '--initial', '6', '--budget', '3',
                          '--noise-seeds', '5', '6',
                          '--cfg-options', *tiny_options(synthetic_voc)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    noise = json.load(open(tmp_path / 'results.json'))['training_noise']
    assert noise['image_seed'] == 3 and noise['train_seeds'] == [5, 6]
    assert 'Training noise (seed 3' in res.stdout
    assert '| entropy − random |' in res.stdout and '| per second |' in res.stdout
    cpu = json.load(open(tmp_path / 'results.json'))['cpu_per_round']
    assert cpu['random']['training_s'][0] == cpu['entropy']['training_s'][0] > 0  # shared
    assert '| CPU seconds per round' in res.stdout
    rounds0 = [tmp_path / s / 'seed3' / 'round_0' for s in ('random', 'entropy')]
    assert [json.load(open(r / 'metrics.json')) for r in rounds0].count(
        json.load(open(rounds0[0] / 'metrics.json'))) == 2
    runs = [tmp_path / 'noise' / 'seed3' / f'train{t}' / 'round_0' for t in (5, 6)]
    labelled = [json.load(open(r / 'labeled.json')) for r in runs]
    assert labelled[0] == labelled[1] and len(labelled[0]) == 6
    assert labelled[0] == json.load(open(tmp_path / 'random' / 'seed3' / 'round_0' /
                                         'labeled.json'))
    heads = []
    for r in runs:
        ckpt = open(r / 'train' / 'last_checkpoint').read().strip()
        state = torch.load(osp.join(r / 'train', osp.basename(ckpt)), map_location='cpu',
                           weights_only=False)['state_dict']
        heads.append(state['bbox_head.retina_cls.weight'])
    assert not torch.equal(*heads)


def test_soft_label_gradient_vanishes_for_likelihoods_not_for_focal():
    rows = soft_labels.sigmoid_rows()
    assert max(abs(r['soft_bce']) for r in rows) < 1e-12
    assert soft_labels.softmax_ce_max_abs() < 1e-12
    # focal: not zero; a descent step moves every q toward one value between 0.27 and 0.5
    assert all(r['soft_focal'] < 0 for r in rows if r['q'] < 0.27)
    assert all(r['soft_focal'] > 0 for r in rows if r['q'] > 0.5)
    assert strategy_cfg(dict(type='ISAL'), 'isal-soft')['strategy']['pseudo'] == 'soft'


def _close(a, b) -> bool:
    """Equal up to float rounding, through nested dicts and lists."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k])
                                                                     for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            _close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


@pytest.mark.parametrize('name', ['bccd_study_8-12', 'spread_study_0-2'])
def test_committed_study_is_reproduced_from_its_raw_curves(tmp_path, name):
    """``al_study.py --merge REPORT.json --seeds --analyse-only``: the report's seeds alone,
    re-analysed from the curves it holds, give back its paired differences and tables."""
    import json
    import subprocess
    path = osp.join(ROOT, 'studies', 'results', 'label_savings', f'{name}.json')
    old = json.load(open(path))
    setup = old['setup']
    res = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'al_study.py'), setup['config'],
         '--work-dir', str(tmp_path), '--merge', path, '--seeds', '--analyse-only',
         '--strategies', *setup['strategies'], '--rounds', str(setup['rounds']),
         '--initial', str(setup['initial']), '--budget', str(setup['budget'])],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    new = json.load(open(tmp_path / 'results.json'))
    for key in ('per_round', 'auc', 'cost_reduction', 'paired_auc_vs', 'paired_final_vs'):
        assert _close(new[key], old[key]), key
    for key in ('auc', 'cost_reduction', 'paired_auc_vs'):
        assert _close(new['per_box'][key], old['per_box'][key]), key
    assert new['setup']['seeds'] == setup['seeds']
    assert new['per_second']['paired_auc_vs'].keys() == new['paired_auc_vs'].keys()
    old_md = open(path[:-len('.json')] + '.md').read()
    table = old_md.split('\n\n')[0]
    assert table in res.stdout  # the mAP-per-round table, character for character


def test_a_box_budget_study_compares_images_on_the_range_strategies_share():
    """Under a box budget the strategies of a seed label different image counts; the per-image
    AUC is then taken on the shared range, and the table names each round's images."""
    from isal_mmdet.al.cost import AnnotationCost
    from isal_mmdet.study.analysis import analyse_study
    curves = {'random': {0: [(40, 0.5), (80, 0.7)]}, 'dense': {0: [(40, 0.5), (60, 0.6)]}}
    boxes = {'random': {0: [(400, 0.5), (800, 0.7)]}, 'dense': {0: [(400, 0.5), (800, 0.6)]}}
    res = analyse_study(curves, boxes, ['random', 'dense'], [0], AnnotationCost())
    assert res['shared_image_range']['0'] == (40, 60)
    assert res['auc']['random']['per_seed'] == pytest.approx([0.55], rel=1e-3)
    assert res['auc']['dense']['per_seed'] == pytest.approx([0.55], rel=1e-3)
    text = report(dict(res, curves={}, box_curves={}), ['random', 'dense'])
    assert '| round 0 | round 1 | AUC on the shared image range |' in text
    assert '0.600 ± 0.000 (60 imgs)' in text and 'boxes to reach random' in text


def test_the_noise_floor_of_a_later_round_retrains_only_that_round(tmp_path, synthetic_voc):
    """``--noise-round 1``: round 1's images of the first seed (from the first strategy's
    run), warm started from its round-0 model, trained with other training seeds."""
    import json
    import subprocess

    from test_loop import DEMO, tiny_options
    common = [sys.executable, osp.join(ROOT, 'tools', 'al_study.py'), DEMO, '--work-dir',
              str(tmp_path), '--strategies', 'random', '--seeds', '3', '--rounds', '2',
              '--initial', '6', '--budget', '3', '--cfg-options',
              *tiny_options(synthetic_voc, **{'active_learning.warm_start': True})]
    res = subprocess.run(common + ['--noise-seeds', '5', '6', '--noise-round', '1'],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    noise = json.load(open(tmp_path / 'results.json'))['training_noise']
    assert noise['round'] == 1 and noise['train_seeds'] == [5, 6] and len(noise['mAP']) == 2
    assert "seed 3's round-1 images" in res.stdout
    study = tmp_path / 'random' / 'seed3'
    for t in (5, 6):
        run = tmp_path / 'noise' / 'seed3' / f'round1_train{t}'
        # round 0 is the study's own (copied, not retrained); round 1 has the study's images
        assert json.load(open(run / 'round_0' / 'metrics.json')) == json.load(
            open(study / 'round_0' / 'metrics.json'))
        assert json.load(open(run / 'round_1' / 'labeled.json')) == json.load(
            open(study / 'round_1' / 'labeled.json'))
        dumped = open(next((run / 'round_1' / 'train').glob('*.py'))).read()
        assert f'randomness=dict(seed={t})' in dumped.replace(' ', '')
        assert f"load_from='{run / 'round_0' / 'train'}" in dumped.replace(' ', '')


def test_cpu_per_round_is_the_mean_over_the_seeds_that_recorded_it():
    """Seconds per round by hand: a seed without a record (an older run) is left out of the
    mean, a round none recorded is '-', and a report of old runs has no table."""
    cpu = {'random': [[(10.0, None), (20.0, 1.0)], [(30.0, None), (None, 3.0)]],
           'random+semi': [[(50.0, None), (70.0, 5.0)]]}
    got = cpu_per_round(cpu)
    assert got['random'] == dict(training_s=[20.0, 20.0], selection_s=[None, 2.0])
    assert got['random+semi'] == dict(training_s=[50.0, 70.0], selection_s=[None, 5.0])
    lines = cpu_lines(got)
    assert lines[-2:] == ['| random | 20 / - | 20 / 2 |', '| random+semi | 50 / - | 70 / 5 |']
    assert lines[2] == '| --- | --- | --- |'
    assert cpu_lines(cpu_per_round({'random': [[(None, None)]]})) == []
