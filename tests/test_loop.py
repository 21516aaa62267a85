"""The round loop end to end: layout, resume after SIGKILL, bad input, the pause for annotation."""
import csv
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

DEMO = osp.join(ROOT, 'configs', 'isal_retinanet_demo.py')


def tiny_options(data_root, **extra):
    opts = {
        'data_root': data_root,
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': 4,
        'train_cfg.max_iters': 4,
        'active_learning.initial_size': 6,
        'active_learning.budget': 3,
        'active_learning.rounds': 3,
        'active_learning.strategy.solver.num_samples': 6,
    }
    opts.update(extra)
    return [f'{k}={v}' for k, v in opts.items()]


def al_train(work_dir, data_root, *args, wait=True, config=DEMO, **extra):
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), config, '--work-dir',
           str(work_dir), '--cfg-options', *tiny_options(data_root, **extra), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


ROUND_FILES = ('labeled.json', 'metrics.json', 'selection.json')


@pytest.fixture(scope='module')
def finished(synthetic_voc, tmp_path_factory):
    work = tmp_path_factory.mktemp('al') / 'w'
    res = al_train(work, synthetic_voc)
    assert res.returncode == 0, res.stderr[-3000:]
    return work, res


def test_demo_loop_writes_the_whole_layout(finished):
    work, res = finished
    for k in range(3):
        assert json.load(open(work / f'round_{k}' / 'labeled.json'))
        assert 'pascal_voc/mAP' in json.load(open(work / f'round_{k}' / 'metrics.json'))
    for k in range(2):
        sel = json.load(open(work / f'round_{k}' / 'selection.json'))
        assert sel['strategy'] == 'ISAL' and len(sel['selected']) == 3
        nxt = json.load(open(work / f'round_{k + 1}' / 'labeled.json'))
        assert set(nxt) == set(json.load(open(work / f'round_{k}' / 'labeled.json'))) | set(
            sel['selected'])
    rows = list(csv.DictReader(open(work / 'summary.csv')))
    assert [int(r['num_labelled']) for r in rows] == [6, 9, 12]
    assert all(int(r['num_boxes']) > 0 for r in rows)
    assert json.load(open(work / 'summary.json'))[2]['num_labelled'] == 12
    assert open(work / 'curve.png', 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    assert 'round 2: 12 labelled images' in res.stdout + res.stderr


def _kill_when(proc, path, delay=0.0, timeout=300):
    start = time.time()
    while not osp.exists(path):
        if proc.poll() is not None or time.time() - start > timeout:
            pytest.fail(f'process ended before {path} appeared')
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_anywhere_then_rerun_matches_uninterrupted(finished, synthetic_voc, tmp_path):
    ref, _ = finished
    work = tmp_path / 'w'
    # in selection: round 0 has metrics but selection is still running
    _kill_when(al_train(work, synthetic_voc, wait=False), work / 'round_0' / 'metrics.json')
    before = {n: digest(work / 'round_0' / n) for n in ('labeled.json', 'metrics.json')}
    # between rounds: right after round 0's selection is written
    _kill_when(al_train(work, synthetic_voc, wait=False), work / 'round_0' / 'selection.json')
    assert {n: digest(work / 'round_0' / n) for n in before} == before
    # in training of round 1
    _kill_when(al_train(work, synthetic_voc, wait=False), work / 'round_1' / 'train', delay=3)
    res = al_train(work, synthetic_voc)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {n: digest(work / 'round_0' / n) for n in before} == before
    for k in range(2):
        got = json.load(open(work / f'round_{k}' / 'selection.json'))
        want = json.load(open(ref / f'round_{k}' / 'selection.json'))
        assert got['selected'] == want['selected']
        for img_id, score in want['scores'].items():
            assert got['scores'][img_id] == pytest.approx(score, rel=1e-4, abs=1e-6)
    # a finished experiment is left alone
    snapshot = {p: digest(p) for k in range(3) for p in
                [work / f'round_{k}' / n for n in ROUND_FILES] if osp.exists(p)}
    assert al_train(work, synthetic_voc).returncode == 0
    assert {p: digest(p) for p in snapshot} == snapshot


def test_bad_input_gives_one_line_errors(synthetic_voc, tmp_path):
    res = al_train(tmp_path / 'a', str(tmp_path / 'nowhere'))
    assert res.returncode == 2 and 'data_root: folder not found' in res.stderr
    res = al_train(tmp_path / 'b', synthetic_voc, **{'active_learning.initial_size': 10_000})
    assert res.returncode == 2 and 'initial_size=10000 is larger than the pool' in res.stderr
    res = al_train(tmp_path / 'c', synthetic_voc, **{'active_learning.budget': 0})
    assert res.returncode == 2 and 'active_learning.budget must be a positive integer' in \
        res.stderr


@pytest.mark.parametrize('field,value,message', [
    ('strategy', 'isall', "active_learning.strategy: unknown strategy 'isall'; choose one of"),
    ('reference', 'eval', "active_learning.reference must be one of ['val', 'labelled', "
                          "'test']"),
    ('oracle', 'human', "active_learning.oracle must be one of ['gt', 'none']"),
    ('strategy.solver.type', 'lisa', "active_learning.strategy: unknown s_test solver"),
    ('warm_start_iters', 5, 'active_learning.warm_start_iters needs warm_start=True'),
    ('metric', 3, 'active_learning.metric must be a metric name'),
    ('batch_size', 0, 'active_learning.batch_size must be a positive integer'),
    ('budget_unit', 'boxez', "active_learning.budget_unit must be one of ['images', 'boxes', "
                             "'seconds'], got 'boxez'"),
    ('cost.per_bbox', 3, "active_learning.cost has unknown field(s) ['per_bbox']"),
])
def test_invalid_fields_fail_before_any_training(field, value, message, synthetic_voc,
                                                 tmp_path):
    start = time.time()
    res = al_train(tmp_path / 'w', synthetic_voc, **{f'active_learning.{field}': value})
    assert res.returncode == 2, res.stdout[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0], res.stderr[-3000:]
    assert 'Traceback' not in res.stderr
    assert time.time() - start < 60
    assert not osp.exists(tmp_path / 'w' / 'round_0' / 'train')


def test_warm_start_fine_tunes_from_previous_round(synthetic_voc, tmp_path):
    res = al_train(tmp_path / 'w', synthetic_voc, **{
        'active_learning.rounds': 2, 'active_learning.warm_start': True,
        'active_learning.warm_start_iters': 2, 'active_learning.strategy': 'random'})
    assert res.returncode == 0, res.stderr[-3000:]
    train = tmp_path / 'w' / 'round_1' / 'train'
    assert (train / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')
    logs = ''.join(p.read_text() for p in train.glob('*/*.log'))
    assert 'Load checkpoint from' in logs and 'round_0' in logs
    assert 'Advance dataloader' not in logs


def test_fine_tuning_rounds_and_extending_an_experiment():
    from mmengine.config import Config
    from isal_mmdet.al.loop import al_settings, fingerprint, shorten_schedule
    cfg = Config.fromfile(DEMO)
    short = Config(cfg.to_dict())
    shorten_schedule(short, cfg.train_cfg.max_iters // 2)
    assert short.train_cfg.max_iters == cfg.train_cfg.max_iters // 2
    for a, b in zip(cfg.param_scheduler, short.param_scheduler):
        assert b.get('end') == (None if 'end' not in a else round(a['end'] / 2))
        assert b.get('milestones') == (None if 'milestones' not in a else
                                       [round(m / 2) for m in a['milestones']])
    longer = Config(cfg.to_dict())
    longer.active_learning.rounds += 2
    assert fingerprint(longer) == fingerprint(cfg)
    longer.active_learning.budget += 1
    assert fingerprint(longer) != fingerprint(cfg)
    cfg.active_learning.warm_start_iters = 0
    with pytest.raises(ValueError, match='warm_start_iters must be a positive integer'):
        al_settings(cfg)


def test_work_dir_from_another_config_is_refused(finished, synthetic_voc):
    work, _ = finished
    res = al_train(work, synthetic_voc, **{'active_learning.budget': 4})
    assert res.returncode == 2 and 'different config' in res.stderr


@pytest.fixture
def data_copy(synthetic_voc, tmp_path):
    import shutil
    root = tmp_path / 'data'
    shutil.copytree(synthetic_voc, root)
    return root


def _train_stems(root):
    return (root / 'ImageSets' / 'Main' / 'train.txt').read_text().split()


def test_unknown_class_name_is_an_error_naming_the_file(data_copy, tmp_path):
    xml = data_copy / 'Annotations' / (_train_stems(data_copy)[0] + '.xml')
    text = xml.read_text()
    xml.write_text(text.replace('<name>', '<name>hexagon', 1) if '<name>' in text else
                   text.replace('</annotation>', '<object><name>hexagon</name><bndbox><xmin>1'
                                '</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>'
                                '</object></annotation>'))
    res = al_train(tmp_path / 'w', str(data_copy))
    assert res.returncode == 2
    assert f'{xml.name}: object[0].name' in res.stderr and 'metainfo.classes' in res.stderr


def test_corrupt_image_is_skipped_and_logged(data_copy, tmp_path):
    stems = _train_stems(data_copy)
    for stem in stems[:12]:  # some of them land in the labelled set, the rest in the pool
        (data_copy / 'JPEGImages' / f'{stem}.jpg').write_bytes(b'not a jpeg')
    res = al_train(tmp_path / 'w', str(data_copy), **{'active_learning.rounds': 2})
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'skipping unreadable image' in res.stdout + res.stderr
    sel = json.load(open(tmp_path / 'w' / 'round_0' / 'selection.json'))
    assert not set(sel['scores']) & set(stems[:12])  # never scored, never selected


def test_oracle_none_pauses_until_annotations_exist(data_copy, tmp_path):
    work = tmp_path / 'w'
    res = al_train(work, str(data_copy), '--oracle', 'none', **{'active_learning.rounds': 2})
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'round 1 waits for annotations: 3 of 3' in res.stdout
    assert not osp.exists(work / 'round_1' / 'labeled.json')
    selected = json.load(open(work / 'round_0' / 'selection.json'))['selected']
    for stem in selected[:2]:
        os.utime(data_copy / 'Annotations' / f'{stem}.xml')
    res = al_train(work, str(data_copy), '--oracle', 'none', **{'active_learning.rounds': 2})
    assert 'round 1 waits for annotations: 1 of 3' in res.stdout
    os.utime(data_copy / 'Annotations' / f'{selected[2]}.xml')
    res = al_train(work, str(data_copy), '--oracle', 'none', **{'active_learning.rounds': 2})
    assert res.returncode == 0 and osp.exists(work / 'round_1' / 'metrics.json')


STUDY_STRATEGIES = {
    'research': ("custom_imports = dict(imports=['isal_mmdet.study'])\n",
                 "dict(_delete_=True, type='ISALResearch', diversity=dict(pool_factor=2), "
                 "solver=dict(type='cg', max_iter=2))"),
    'research, not imported': ('', "dict(_delete_=True, type='ISALResearch')"),
    'box queries': ("custom_imports = dict(imports=['isal_mmdet.study'])\n",
                    "dict(_delete_=True, type='isal_box', score_thr=0.005), budget_unit='boxes', "
                    "preannotation_thr=0.9"),
    'box queries, not imported': ('', "dict(_delete_=True, type='isal_box'), budget_unit='boxes'"),
}


@pytest.mark.parametrize('case', list(STUDY_STRATEGIES))
def test_a_study_config_runs_through_al_train(case, synthetic_voc, tmp_path):
    """A study's config (a research strategy registered by custom_imports) takes the path a
    user's config takes; without the import, one line says what to add. (More box queries
    through it in test_box_queries.py.)"""
    imports, strategy = STUDY_STRATEGIES[case]
    cfg = tmp_path / 'study.py'
    cfg.write_text(f'_base_ = {DEMO!r}\n{imports}active_learning = dict(strategy={strategy})\n')
    options = [o for o in tiny_options(synthetic_voc, **{'active_learning.rounds': 2})
               if not o.startswith('active_learning.strategy.')]
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), str(cfg),
                          '--work-dir', str(tmp_path / 'w'), '--cfg-options', *options],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    if case.endswith('not imported'):
        assert res.returncode == 2 and "add custom_imports=dict(imports=['isal_mmdet.study'])" \
            in res.stderr and not (tmp_path / 'w' / 'round_0').exists()
        return
    assert res.returncode == 0, res.stderr[-3000:]
    sel = json.load(open(tmp_path / 'w' / 'round_0' / 'selection.json'))
    assert sel['strategy'] == ('ISALBox' if case == 'box queries' else 'ISALResearch')
    if case == 'box queries':  # round 1 trained on round 0's answered queries
        assert sel['query'] == 'boxes' and osp.exists(tmp_path / 'w' / 'round_1' /
                                                       'box_labels.json')
    assert osp.exists(tmp_path / 'w' / 'round_1' / 'metrics.json')
