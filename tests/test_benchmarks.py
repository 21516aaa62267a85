"""The label-savings arithmetic of benchmarks/al_quality.py, on hand-computed curves."""
import os.path as osp
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
import al_quality as q  # noqa: E402
import selection_speed  # noqa: E402
import soft_labels  # noqa: E402


def test_auc_is_trapezoid_over_x_range():
    assert q.auc([(40, 0.4), (80, 0.6), (120, 0.6)]) == pytest.approx((20 + 24) / 80)


def test_labels_to_reach_interpolates_between_rounds():
    curve = [(40, 0.40), (80, 0.60), (120, 0.70)]
    assert q.labels_to_reach(curve, 0.50) == pytest.approx(60)
    assert q.labels_to_reach(curve, 0.35) == 40
    assert q.labels_to_reach(curve, 0.80) is None


def test_cost_reduction_and_paired_differences():
    curves = {'random': {0: [(40, 0.4), (80, 0.5), (120, 0.6)],
                         1: [(40, 0.4), (80, 0.5), (120, 0.6)]},
              'good': {0: [(40, 0.4), (80, 0.6), (120, 0.7)],
                       1: [(40, 0.4), (80, 0.55), (120, 0.6)]}}
    res = q.analyse(curves, ['random', 'good'], [0, 1])
    # seed 0 reaches 0.6 at 80 images (1/3 fewer); seed 1 at 120 (none fewer)
    assert res['cost_reduction']['good']['per_seed'] == pytest.approx([1 / 3, 0.0])
    diff = res['paired_auc_vs']['good']['random']
    assert diff['per_seed'] == pytest.approx([0.075, 0.025])
    assert diff['mean'] == pytest.approx(0.05) and diff['mean_exceeds_stderr']
    final = res['paired_final_vs']['good']['random']
    assert final['per_seed'] == pytest.approx([0.1, 0.0]) and not final['mean_exceeds_stderr']
    assert 'good − random | +0.0500' in q.report(res, ['random', 'good'])


def test_variant_replaces_the_solver_of_a_config(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'isal_retinanet_bccd.py'))
    al = cfg.active_learning
    for key, value in q.strategy_cfg(al.get('strategy'), 'isal-cg').items():
        al[key] = value
    assert dict(al.strategy.solver) == q.LEVERS['cg'][0]['solver']


def test_variants_change_only_what_they_name():
    base = dict(type='ISAL', solver=dict(type='lissa', depth=200))
    assert q.strategy_cfg(base, 'isal') == dict(strategy=base)
    assert q.strategy_cfg(base, 'entropy') == dict(strategy='entropy')
    thr = q.strategy_cfg(base, 'isal-thr0.3')['strategy']
    assert thr == dict(base, score_thr=0.3)
    damp = q.strategy_cfg(base, 'isal-damp0.1')['strategy']
    assert damp['solver']['damp'] == 0.1 and damp['curvature'] == 'hessian'
    assert q.strategy_cfg(base, 'isal-cg')['strategy']['solver']['type'] == 'cg'
    assert q.strategy_cfg(base, 'isal-reflab')['reference'] == 'labelled'
    assert q.strategy_cfg(base, 'isal-evalref')['reference'] == 'test'
    assert q.strategy_cfg(base, 'esi-balanced')['strategy']['reference_terms'] == 'balanced'
    both = q.strategy_cfg(base, 'isal-cg-thr0.5')['strategy']
    assert both['solver']['type'] == 'cg' and both['score_thr'] == 0.5
    assert base == dict(type='ISAL', solver=dict(type='lissa', depth=200))
    with pytest.raises(ValueError, match="unknown ISAL lever 'nope'"):
        q.strategy_cfg(base, 'isal-nope')


def _selection(tmp_path, strategy, selected, scores):
    import json
    rd = tmp_path / 'w' / strategy / 'seed0' / 'round_0'
    rd.mkdir(parents=True)
    (rd / 'selection.json').write_text(json.dumps(dict(selected=selected, scores=scores)))
    return str(tmp_path / 'w')


def test_composition_counts_classes_of_selected_and_pool(tmp_path):
    boxes = {'a': ['cat', 'cat'], 'b': ['dog'], 'c': []}
    w = _selection(tmp_path, 'isal', ['a'], {'a': -1.0, 'b': 0.0, 'c': 1.0})
    comp = q.composition(w, ['isal'], [0], 2, boxes)
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
    busy = q.busyness_correlation(w, ['isal', 'esi', 'random'], [0], 2, boxes)
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


def test_soft_label_gradient_vanishes_for_likelihoods_not_for_focal():
    rows = soft_labels.sigmoid_rows()
    assert max(abs(r['soft_bce']) for r in rows) < 1e-12
    assert soft_labels.softmax_ce_max_abs() < 1e-12
    # focal: not zero; a descent step moves every q toward one value between 0.27 and 0.5
    assert all(r['soft_focal'] < 0 for r in rows if r['q'] < 0.27)
    assert all(r['soft_focal'] > 0 for r in rows if r['q'] > 0.5)
    assert q.strategy_cfg(dict(type='ISAL'), 'isal-soft')['strategy']['pseudo'] == 'soft'


def test_per_box_analysis_on_the_shared_box_range():
    # 'sparse' picks images with fewer boxes: behind per image, ahead per box
    boxes = {'random': {0: [(100, 0.4), (200, 0.5), (300, 0.6)]},
             'sparse': {0: [(100, 0.4), (150, 0.45), (200, 0.55)]}}
    res = q.analyse_boxes(boxes, ['random', 'sparse'], [0])
    assert res['shared_box_range']['0'] == (100, 200)
    assert res['auc']['random']['per_seed'] == pytest.approx([0.45])
    assert res['auc']['sparse']['per_seed'] == pytest.approx([0.4625], rel=1e-3)
    assert res['paired_auc_vs']['sparse']['random']['per_seed'] == pytest.approx(
        [0.0125], rel=1e-2)
    assert res['cost_reduction']['sparse']['not_reached'] == 1  # never reaches 0.6
    assert q.interp([(0, 0.0), (10, 1.0)], 2.5) == pytest.approx(0.25)


def test_realsize_rows_extrapolate_from_fixed_cost_and_fitted_rates():
    fixed = dict(v_s=10.0, s_test_s=30.0)
    # per image: inference 1.0 then 1.2 s, scoring 2.0 s; least squares through the origin
    measured = {10: dict(inference_s=10.0, scoring_s=20.0),
                20: dict(inference_s=24.0, scoring_s=40.0)}
    res = selection_speed.pool_rows(fixed, measured, [20, 100])
    rate = (10 * 10 + 20 * 24) / (10 ** 2 + 20 ** 2)
    assert res['rates_per_image_s'] == pytest.approx(dict(inference_s=rate, scoring_s=2.0))
    assert res['linearity'][20] == pytest.approx(dict(inference_per_image_s=1.2,
                                                      scoring_per_image_s=2.0))
    rows = {r['pool']: r for r in res['rows']}
    assert sorted(rows) == [10, 20, 100]
    assert not rows[20]['extrapolated'] and rows[20]['inference_s'] == 24.0
    big = rows[100]
    assert big['extrapolated'] and big['inference_s'] == pytest.approx(100 * rate)
    assert big['end_to_end_s'] == pytest.approx(10 + 30 + 200)
    assert big['ratio_end_to_end_over_inference'] == pytest.approx(240 / (100 * rate))
    assert big['s_test_share'] == pytest.approx(30 / 240)
    assert big['scoring_over_inference_per_image'] == pytest.approx(2.0 / rate)


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
    seeds = q.merge_prior(prior, setup, curves, boxes, comp, sel)
    assert seeds == [0, 1, 3]
    assert curves['isal'][0] == [(40, 0.5), (80, 0.6)] and curves['isal'][3][1] == (80, 0.5)
    assert comp['isal']['cat'] == dict(selected=pytest.approx(2.0), pool=pytest.approx(2.0))
    assert [r['seed'] for r in sel['isal']] == [0, 3] and 'entropy' not in sel
    res = q.analyse(curves, ['random', 'isal'], seeds)
    assert res['paired_auc_vs']['isal']['random']['per_seed'] == pytest.approx([0, 0, 0.05])
    for bad, match in ((dict(setup, rounds=3), 'setup.rounds is 2'),
                       (dict(setup, seeds=[1]), r'seeds \[1\] are in both'),
                       (dict(setup, strategies=['coreset']), r"\['coreset'\] are not")):
        with pytest.raises(ValueError, match=match):
            q.check_prior(prior, bad)


def test_gpu_check_core_stage_runs_on_torch_alone(tmp_path):
    """benchmarks/gpu_core.py, the GPU check's first stage, on the CPU with mmcv, mmengine and
    mmdet made unimportable: the influence core must not need them."""
    import json
    import subprocess
    out = tmp_path / 'core.json'
    script = ('import runpy, sys\n'
              'for m in ("mmdet", "mmcv", "mmengine"):\n'
              '    sys.modules[m] = None\n'
              f'sys.argv = ["gpu_core.py", "--device", "cpu", "--speed-samples", "256", '
              f'"--out", {str(out)!r}]\n'
              f'runpy.run_path({osp.join(ROOT, "benchmarks", "gpu_core.py")!r}, '
              'run_name="__main__")\n')
    res = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    got = json.load(open(out))
    assert got['ok'] and got['device'] == 'cpu'
    assert set(got['solver_rel_err']) == {'exact', 'cg', 'lissa', 'woodbury_fisher',
                                          'cg_fisher', 'identity'}
    assert got['fisher_rows']['dtype'] == 'torch.float64'
    assert got['speed']['ratio'] > 1 and got['speed']['max_rel_diff'] < 1e-3


def test_esi_variants_take_the_config_solver():
    base = dict(type='ISAL', solver=dict(type='woodbury', num_samples=16))
    assert q.strategy_cfg(base, 'esi') == dict(strategy=dict(type='ESI', solver=base['solver']))
    assert q.strategy_cfg(base, 'esi-mean-top100')['strategy'] == dict(
        type='ESI', solver=base['solver'], mean_term=True, top_k=100)
    with pytest.raises(ValueError, match="unknown ESI lever 'nope'"):
        q.strategy_cfg(base, 'esi-nope')


def test_training_noise_keeps_the_images_and_changes_the_training_seed(tmp_path, synthetic_voc):
    import json
    import os
    import subprocess

    import torch
    from test_loop import DEMO, tiny_options
    opts = ' '.join(tiny_options(synthetic_voc))
    res = subprocess.run(['bash', osp.join(ROOT, 'benchmarks', 'training_noise.sh'), DEMO,
                          str(tmp_path), '3', '5', '6'], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, PYTHON=sys.executable, INITIAL='6',
                                               CFG_OPTIONS=opts))
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'test mAP per training seed: 5: ' in res.stdout and ', 6: ' in res.stdout
    runs = [tmp_path / f'train_seed{t}' / 'round_0' for t in (5, 6)]
    labelled = [json.load(open(r / 'labeled.json')) for r in runs]
    assert labelled[0] == labelled[1] and len(labelled[0]) == 6
    heads = []
    for r in runs:
        ckpt = open(r / 'train' / 'last_checkpoint').read().strip()
        state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
        heads.append(state['bbox_head.retina_cls.weight'])
    assert not torch.equal(*heads)
