"""Semi-supervised rounds (``active_learning.semi``): the round's data, the EMA teacher, no
ground truth from unlabelled images, and the plain teacher checkpoint through the loop."""
import argparse
import csv
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from test_loop import DEMO, _kill_when, al_train, data_copy, tiny_options  # noqa: F401

SEMI = dict(momentum=0.25, cls_pseudo_thr=0.5, unsup_weight=1.0, unlabelled_per_labelled=1,
            burn_in=0)


def split_ids(root, name):
    with open(osp.join(root, 'ImageSets', 'Main', f'{name}.txt')) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture(scope='module')
def overlapping_pool(synthetic_voc, tmp_path_factory):
    """A pool that holds every image, the val and test ones too (allow_split_overlap)."""
    pool = tmp_path_factory.mktemp('pool') / 'all.txt'
    ids = [i for s in ('train', 'val', 'test') for i in split_ids(synthetic_voc, s)]
    pool.write_text('\n'.join(ids) + '\n')
    return str(pool)


def round_cfg(synthetic_voc, work_dir, pool=None, **semi):
    """Round 0's training config as the loop builds it, and the loop."""
    from mmengine.config import DictAction
    from isal_mmdet.al.loop import ActiveLearningLoop
    from isal_mmdet.fileio import load_config
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg = load_config(DEMO, parser.parse_args(['--options', *tiny_options(synthetic_voc)]).options)
    cfg.active_learning.semi = dict(SEMI, **semi)
    cfg.active_learning.allow_split_overlap = pool is not None
    if pool is not None:
        cfg.train_dataloader.dataset.ann_file = pool
    loop = ActiveLearningLoop(cfg, str(work_dir))
    loop.setup()
    loop.labelled_for(0)
    return loop.runner_cfg(0), loop


def test_unlabelled_images_are_the_pool_less_labelled_val_and_test(
        synthetic_voc, overlapping_pool, tmp_path):
    from mmengine.runner import Runner
    cfg, loop = round_cfg(synthetic_voc, tmp_path / 'w', pool=overlapping_pool)
    labelled = set(json.load(open(tmp_path / 'w' / 'round_0' / 'labeled.json')))
    held_out = set(split_ids(synthetic_voc, 'val')) | set(split_ids(synthetic_voc, 'test'))
    expected = set(split_ids(synthetic_voc, 'train')) - labelled
    assert held_out and labelled and expected
    assert set(json.load(open(tmp_path / 'w' / 'round_0' / 'unlabelled.json'))) == expected
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    sup, unsup = loader.dataset.datasets
    assert set(sup.img_ids()) == labelled
    assert set(unsup.img_ids()) == expected
    seen = {'sup': set(), 'unsup_teacher': set(), 'unsup_student': set()}
    for _, batch in zip(range(6), loader):
        for branch, samples in batch['data_samples'].items():
            seen[branch] |= {s.img_id for s in samples if s is not None}
    assert seen['sup'] and seen['sup'] <= labelled
    assert seen['unsup_teacher'] and seen['unsup_teacher'] == seen['unsup_student']
    assert seen['unsup_teacher'] <= expected


def batch_and_model(cfg):
    from mmengine.registry import MODELS
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return next(iter(loader)), model


def boxes_reaching_the_student(model, batch, monkeypatch):
    """The boxes of each ``student.loss`` call, the teacher replaced by one that hands every
    box an unlabelled sample carries on as a confident pseudo box."""
    calls = []
    student_loss = model.student.loss

    def spy(inputs, samples):
        calls.append(sum(len(s.gt_instances) for s in samples))
        return student_loss(inputs, samples)

    def identity_teacher(inputs, samples):
        for s in samples:
            s.gt_instances.scores = torch.ones(len(s.gt_instances))
        return samples, {}

    monkeypatch.setattr(model.student, 'loss', spy)
    monkeypatch.setattr(model, 'get_pseudo_instances', identity_teacher)
    data = model.data_preprocessor(batch, True)
    model.loss(data['inputs'], data['data_samples'])
    return calls


def test_unlabelled_images_carry_no_ground_truth_into_the_loss(synthetic_voc, tmp_path,
                                                               monkeypatch):
    cfg, _ = round_cfg(synthetic_voc, tmp_path / 'w')
    batch, model = batch_and_model(cfg)
    sup, unsup = boxes_reaching_the_student(model, batch, monkeypatch)
    assert sup > 0 and unsup == 0
    # the same check sees boxes when the unlabelled pipeline loads the annotations
    leaky = cfg.train_dataloader.dataset.datasets[1].dataset.pipeline
    leaky[1] = dict(type='LoadAnnotations', with_bbox=True)
    batch, model = batch_and_model(cfg)
    assert boxes_reaching_the_student(model, batch, monkeypatch)[1] > 0


def test_teachers_unsure_detections_are_ignore_regions_of_the_student(synthetic_voc, tmp_path,
                                                                      monkeypatch):
    """With ignore_thr, a detection scoring between it and cls_pseudo_thr reaches the
    student's loss as an ignore region, one above as a box, one below as nothing, and the
    student's assigner keeps ignore regions (test_partial_labels: no gradient inside one)."""
    cfg, _ = round_cfg(synthetic_voc, tmp_path / 'w', ignore_thr=0.1)
    batch, model = batch_and_model(cfg)
    assert type(model).__name__ == 'UncertainIgnoringTeacher'
    assigner = model.student.bbox_head.train_cfg['assigner']
    assert assigner['type'] == 'IgnoringMaxIoUAssigner' and assigner['ignore_iof_thr'] == 0.5
    boxes = torch.tensor([[10., 10., 40., 40.], [50., 50., 90., 90.], [5., 60., 30., 95.]])
    seen = []
    student_loss = model.student.loss

    def spy(inputs, samples):
        seen.append([(s.gt_instances.bboxes.tolist(), s.ignored_instances.bboxes.tolist())
                     for s in samples])
        return student_loss(inputs, samples)

    def teacher(inputs, samples):
        from mmengine.structures import InstanceData
        for s in samples:
            s.gt_instances = InstanceData(bboxes=boxes.clone(), labels=torch.tensor([0, 1, 2]),
                                          scores=torch.tensor([0.9, 0.3, 0.05]))
        return samples, {}

    monkeypatch.setattr(model.student, 'loss', spy)
    monkeypatch.setattr(model, 'get_pseudo_instances', teacher)
    monkeypatch.setattr(model, 'project_pseudo_instances', lambda pseudo, samples: pseudo)
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert float(sum(losses['unsup_loss_cls'])) > 0  # one per FPN level
    _, unsup = seen
    assert unsup == [([boxes[0].tolist()], [boxes[1].tolist()])] * len(unsup)
    # off: plain mmdet, no ignore region
    cfg, _ = round_cfg(synthetic_voc, tmp_path / 'off', ignore_thr=None)
    _, model = batch_and_model(cfg)
    assert type(model).__name__ == 'SemiBaseDetector'
    assert model.student.bbox_head.train_cfg['assigner']['type'] == 'MaxIoUAssigner'


def test_teacher_is_the_ema_of_the_student_over_two_steps(synthetic_voc, tmp_path):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg, _ = round_cfg(synthetic_voc, tmp_path / 'w')
    cfg.train_cfg.max_iters = 2
    m = SEMI['momentum']

    class Record(Hook):
        priority = 'LOWEST'  # after MeanTeacherHook's start: teacher = student

        def __init__(self):
            self.student, self.teacher0 = [], None

        def before_train(self, runner):
            self.teacher0 = {k: v.clone() for k, v in runner.model.teacher.state_dict().items()}
            self.student.append(self.state(runner))

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.student.append(self.state(runner))

        @staticmethod
        def state(runner):
            return {k: v.clone() for k, v in runner.model.student.state_dict().items()}

    record = Record()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(record)
    runner.train()
    s0, s1, s2 = record.student
    teacher = runner.model.teacher.state_dict()
    saved = torch.load(osp.join(cfg.work_dir, 'teacher.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    floats = [k for k, v in s0.items() if v.dtype.is_floating_point]
    assert any('running_mean' in k for k in floats)  # BatchNorm statistics are averaged too
    moved = 0
    for k in floats:
        assert torch.equal(record.teacher0[k], s0[k]), k
        want = (1 - m) ** 2 * s0[k] + m * (1 - m) * s1[k] + m * s2[k]
        torch.testing.assert_close(teacher[k], want, rtol=1e-5, atol=1e-6, msg=k)
        assert torch.equal(saved[k], teacher[k]), k
        moved += not torch.allclose(teacher[k], s2[k])
    assert moved > len(floats) // 2


def test_burn_in_trains_on_labelled_images_then_starts_the_mean_teacher(synthetic_voc,
                                                                         tmp_path):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg, _ = round_cfg(synthetic_voc, tmp_path / 'w', burn_in=0.5)
    cfg.train_cfg.max_iters = 4
    m = SEMI['momentum']

    class Record(Hook):
        priority = 'LOWEST'  # after the teacher's update of the step

        def __init__(self):
            self.student, self.teacher, self.unsup = [], [], []

        def before_train(self, runner):
            self.student.append(self.state(runner.model.student))

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.student.append(self.state(runner.model.student))
            self.teacher.append(self.state(runner.model.teacher))
            self.unsup.append(any(k.startswith('unsup_') for k in outputs))

        @staticmethod
        def state(model):
            return {k: v.clone() for k, v in model.state_dict().items()}

    record = Record()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(record)
    runner.train()
    assert type(runner.model).__name__ == 'BurnInTeacher'
    assert record.unsup == [False, False, True, True]
    s, t = record.student, record.teacher
    floats = [k for k, v in s[0].items() if v.dtype.is_floating_point]
    for k in floats:
        assert torch.equal(t[0][k], s[1][k]) and torch.equal(t[1][k], s[2][k]), k
        want = (1 - m) ** 2 * s[2][k] + m * (1 - m) * s[3][k] + m * s[4][k]
        torch.testing.assert_close(t[3][k], want, rtol=1e-5, atol=1e-6, msg=k)
    assert sum(not torch.allclose(t[3][k], s[4][k]) for k in floats) > len(floats) // 2


SEMI_OPTS = {'active_learning.rounds': 2, 'active_learning.warm_start': True,
             'train_cfg.max_iters': 6, 'default_hooks.checkpoint.interval': 2,
             **{f'active_learning.semi.{k}': v for k, v in SEMI.items()},
             'active_learning.semi.burn_in': 0.3}  # 2 of 6 steps: killed at its end, resumed


@pytest.fixture(scope='module')
def semi_run(synthetic_voc, tmp_path_factory):
    work = tmp_path_factory.mktemp('semi') / 'w'
    res = al_train(work, synthetic_voc, **SEMI_OPTS)
    assert res.returncode == 0, res.stderr[-3000:]
    return work


def teacher_weights(work, k):
    folder = work / f'round_{k}' / 'train'
    name = osp.basename((folder / 'last_checkpoint').read_text().strip())
    assert name == 'teacher.pth'
    return torch.load(folder / name, map_location='cpu', weights_only=False)['state_dict']


def test_semi_round_writes_a_plain_teacher_that_scores_and_warm_starts(semi_run, synthetic_voc,
                                                                       tmp_path):
    from conftest import build_detector
    plain = build_detector('retinanet').state_dict()
    weights = teacher_weights(semi_run, 0)
    assert sorted(weights) == sorted(plain)
    logs = ''.join(p.read_text() for p in (semi_run / 'round_1' / 'train').glob('*/*.log'))
    assert 'Load checkpoint from' in logs and osp.join('round_0', 'train', 'teacher.pth') in logs
    assert 'unsup_loss_cls' in logs
    # the loop's selection scored the teacher: the same as al_select.py on teacher.pth
    out = tmp_path / 'sel'
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_select.py'), DEMO,
           str(semi_run / 'round_0' / 'train' / 'teacher.pth'), '--out', str(out),
           '--labelled', str(semi_run / 'round_0' / 'labeled.json'), '--budget', '3',
           '--cfg-options', *tiny_options(synthetic_voc)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    def scores(folder):
        with open(folder / 'scores.csv', newline='') as f:
            return {r['img_id']: float(r['score']) for r in csv.DictReader(f)}

    want, got = scores(semi_run / 'round_0'), scores(out)
    assert sorted(got) == sorted(want)
    for img_id, score in want.items():
        assert got[img_id] == pytest.approx(score, rel=1e-4, abs=1e-6)


def test_semi_round_resumes_after_sigkill_to_the_same_weights(semi_run, synthetic_voc,
                                                              tmp_path):
    work = tmp_path / 'w'
    # killed in round 0's training, once its iteration-2 checkpoint is written
    _kill_when(al_train(work, synthetic_voc, wait=False, **SEMI_OPTS),
               work / 'round_0' / 'train' / 'last_checkpoint')
    assert not osp.exists(work / 'round_0' / 'train' / 'teacher.pth')
    res = al_train(work, synthetic_voc, **SEMI_OPTS)
    assert res.returncode == 0, res.stderr[-3000:]
    logs = ''.join(p.read_text() for p in (work / 'round_0' / 'train').glob('*/*.log'))
    assert 'Resumed' in logs or 'resumed' in logs.lower()
    for k in range(2):
        want, got = teacher_weights(semi_run, k), teacher_weights(work, k)
        for name, value in want.items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # killed after teacher.pth, before the test: resumed from teacher.pth, nothing trained
    metrics = work / 'round_1' / 'metrics.json'
    tested = json.loads(metrics.read_text())
    metrics.unlink()
    assert al_train(work, synthetic_voc, **SEMI_OPTS).returncode == 0
    assert json.loads(metrics.read_text()) == pytest.approx(tested)
    newest = max((work / 'round_1' / 'train').glob('*/*.log'), key=os.path.getmtime)
    assert 'teacher.pth' in newest.read_text() and 'Iter(train)' not in newest.read_text()
    assert teacher_weights(work, 1).keys() == want.keys()
    for name, value in teacher_weights(semi_run, 1).items():
        torch.testing.assert_close(teacher_weights(work, 1)[name], value, rtol=1e-5, atol=1e-6)


def test_semi_lever_of_the_study_tool():
    from isal_mmdet.study.variants import strategy_cfg
    assert strategy_cfg('isal', 'random+semi') == dict(strategy='random', semi={})
    assert strategy_cfg('isal', 'dcus+clusters+semi', None, dict(momentum=0.1)) == dict(
        strategy=dict(type='dcus', batch=dict(type='clusters')), semi=dict(momentum=0.1))
    assert 'semi' not in strategy_cfg('isal', 'dcus+clusters')
    with pytest.raises(ValueError, match="or 'semi'"):
        strategy_cfg('isal', 'dcus+semo')


def test_study_shares_round_0_within_a_training_regime_only(tmp_path):
    from isal_mmdet.study.run import shared_rounds0
    for name, semi in (('dcus+semi', {}), ('random', None), ('random+semi', {})):
        run = tmp_path / name / 'seed0'
        (run / 'round_0').mkdir(parents=True)
        (run / 'round_0' / 'metrics.json').write_text('{}')
        (run / 'experiment.json').write_text(json.dumps(dict(active_learning=dict(semi=semi))))
    assert shared_rounds0(str(tmp_path), 0) == {
        True: str(tmp_path / 'dcus+semi' / 'seed0' / 'round_0'),
        False: str(tmp_path / 'random' / 'seed0' / 'round_0')}
    assert shared_rounds0(str(tmp_path), 1) == {}


@pytest.mark.parametrize('semi, message', [
    (0.5, 'active_learning.semi must be None or dict('),
    (dict(momentum=1.0), 'active_learning.semi.momentum must be a number in (0, 1), got 1.0'),
    (dict(cls_pseudo_thr=1.5), 'active_learning.semi.cls_pseudo_thr must be a number in [0, 1]'),
    (dict(unsup_weight=-1), 'active_learning.semi.unsup_weight must be a number >= 0'),
    (dict(unlabelled_per_labelled=0), 'active_learning.semi.unlabelled_per_labelled must be '
                                      'an integer >= 1'),
    (dict(ignore_thr=2), 'active_learning.semi.ignore_thr must be a number in [0, 1] or None'),
    (dict(burn_in=1.5), 'active_learning.semi.burn_in must be a number in [0, 1], got 1.5'),
    (dict(ratio=2), "active_learning.semi has no field 'ratio'"),
])
def test_bad_semi_settings_are_one_line_naming_the_field(semi, message):
    from mmengine.config import Config
    from isal_mmdet.al.settings import al_settings
    cfg = Config.fromfile(DEMO)
    cfg.active_learning.semi = semi
    with pytest.raises(ValueError) as e:
        al_settings(cfg)
    assert str(e.value).startswith(message) and '\n' not in str(e.value)


def test_hook_in_a_mean_teacher_config_selects_with_the_teacher(synthetic_voc, tmp_path):
    """A mean-teacher config (as the loop writes one) with ISALSelectionHook: the labelled
    images are the first dataset's, and the scores are those of teacher.pth as a plain
    detector."""
    from mmengine.runner import Runner
    from isal_mmdet.tools_api import select_from_checkpoint
    cfg, loop = round_cfg(synthetic_voc, tmp_path / 'w')
    cfg.train_cfg.max_iters = 2
    hook = dict(type='ISALSelectionHook', strategy='entropy', budget=3,
                out_dir=str(tmp_path / 'hook'))
    cfg.custom_hooks = list(cfg.custom_hooks) + [hook]
    Runner.from_cfg(cfg).train()
    labelled = tmp_path / 'w' / 'round_0' / 'labeled.json'
    select_from_checkpoint(loop.with_ann_file(None), osp.join(cfg.work_dir, 'teacher.pth'),
                           str(tmp_path / 'plain'), dict(strategy='entropy', budget=3),
                           labelled_file=str(labelled))

    def scores(folder):
        with open(folder / 'scores.csv', newline='') as f:
            return {r['img_id']: float(r['score']) for r in csv.DictReader(f)}

    want, got = scores(tmp_path / 'plain'), scores(tmp_path / 'hook')
    assert len(got) == len(split_ids(synthetic_voc, 'train')) - len(json.load(open(labelled)))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize('family', ['fcos', 'faster_rcnn'])
def test_other_detector_families_train_on_the_teachers_boxes(family, synthetic_voc, tmp_path):
    """RetinaNet runs through the tests above; FCOS and Faster R-CNN (whose RPN takes the
    pseudo boxes too) as a mean teacher: with every detection a pseudo box, the unlabelled
    images give every loss the labelled ones give."""
    from mmengine.config import Config
    from conftest import TINY
    cfg, _ = round_cfg(synthetic_voc, tmp_path / 'w')
    detector = Config.fromfile(osp.join(ROOT, TINY[family])).model.to_dict()
    cfg.model.detector = detector
    cfg.model.data_preprocessor.data_preprocessor = detector['data_preprocessor']
    cfg.model.semi_train_cfg.cls_pseudo_thr = 0.0
    batch, model = batch_and_model(cfg)
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    sup = {k[len('sup_'):] for k in losses if k.startswith('sup_loss')}
    assert sup and {k[len('unsup_'):] for k in losses if k.startswith('unsup_loss')} == sup
    for k in sup:  # the RPN's losses are lists, one per feature level
        value = losses[f'unsup_{k}']
        assert float(sum(value) if isinstance(value, list) else value) > 0, k


def test_semi_rounds_with_a_human_oracle(data_copy, tmp_path):
    """--oracle none: round 0 trains a mean teacher and pauses; once the selected images'
    XMLs are saved, round 1 trains on its labelled images and the rest of the pool."""
    work = tmp_path / 'w'
    opts = {'active_learning.rounds': 2, 'active_learning.semi.momentum': 0.25}
    res = al_train(work, str(data_copy), '--oracle', 'none', **opts)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'round 1 waits for annotations: 3 of 3' in res.stdout
    assert not osp.exists(work / 'round_1')
    for stem in json.load(open(work / 'round_0' / 'selection.json'))['selected']:
        os.utime(data_copy / 'Annotations' / f'{stem}.xml')
    res = al_train(work, str(data_copy), '--oracle', 'none', **opts)
    assert res.returncode == 0, res.stderr[-3000:]
    pool = split_ids(data_copy, 'train')
    for k in range(2):
        labelled = json.load(open(work / f'round_{k}' / 'labeled.json'))
        assert sorted(json.load(open(work / f'round_{k}' / 'unlabelled.json'))) == sorted(
            set(pool) - set(labelled))
        assert teacher_weights(work, k)
    assert len(labelled) == 9 and osp.exists(work / 'round_1' / 'metrics.json')
