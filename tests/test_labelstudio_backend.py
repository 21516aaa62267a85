"""tools/labelstudio_backend.py against a real Label Studio server: a project with our config
and Local Storage of the pool connects the backend; the Data Manager's order by prediction
score is the strategy's ranking; annotations made through the API trigger (by webhook) a
round that a kill -9 interrupts and a restart finishes, and the new model_version predicts
differently, switching the project only once it has scored every task; the project is made
and the backend started by docs/labelstudio_backend.md's own commands. Rounds on a VOCMetric
config never hang; deleted and edited annotations apply in the next round; a pull while Label
Studio is stopped is tried again, shown by /health, and succeeds once it is back. And,
without Label Studio, a bad request is one log line, an error and an entry of /health."""
import argparse
import csv
import json
import logging
import os
import os.path as osp
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT
from test_annotation_roundtrip import CLASSES, coco_config  # noqa: F401 (fixture)
from test_labelstudio_server import (DOCS, TOKEN, _port, docs_blocks,  # noqa: F401
                                     label_studio)
from test_loop import tiny_options

# boxes at any score (the tiny model is barely trained), ten per image at most
OPTS = ('active_learning.preannotation_thr=0.0', 'model.test_cfg.score_thr=0.0',
        'model.test_cfg.max_per_img=10')
RETRAIN_EVERY = 3


def call(url, method='GET', body=None, token=None):
    """``(status, JSON)`` of a request; an HTTP error is an answer too."""
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    headers = {'Content-Type': 'application/json'}
    if token:
        headers['Authorization'] = f'Token {token}'
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read() or b'null')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'null')


def wait_for(what, check, timeout=240, every=0.2):
    deadline = time.time() + timeout
    while True:
        try:
            got = check()
        except (urllib.error.URLError, ConnectionError, OSError):
            got = None
        if got:
            return got
        if time.time() > deadline:
            pytest.fail(f'timed out waiting for {what}')
        time.sleep(every)


class BackendProcess:
    """tools/labelstudio_backend.py on 127.0.0.1, Label Studio's URL and token in its
    environment; started again on the same port after a kill."""

    def __init__(self, config, work, ls_url, log):
        path, root = config
        self.port, self.log = _port(), log
        self.url = f'http://127.0.0.1:{self.port}'
        self.cmd = [sys.executable, osp.join(ROOT, 'tools', 'labelstudio_backend.py'), path,
                    '--work-dir', str(work), '--port', str(self.port), '--retrain-every',
                    str(RETRAIN_EVERY), '--cfg-options', *tiny_options(root), *OPTS]
        self.env = dict(os.environ, LABEL_STUDIO_URL=ls_url, LABEL_STUDIO_API_KEY=TOKEN)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def health(self):
        if self.proc.poll() is not None:
            pytest.fail(f'the backend exited with {self.proc.returncode}')
        return call(self.url + '/health')[1]

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def docs_backend_command():
    """The docs' block that starts the backend (step 4), verbatim."""
    blocks = [b for b in docs_blocks() if 'tools/labelstudio_backend.py' in b]
    assert len(blocks) == 1, f'{DOCS} should have one bash block that starts the backend'
    return blocks[0].strip()


def docs_labelling_config(classes):
    """The labelling config from the docs' command (step 3), run with ``classes``."""
    command = re.search(r'`python -c "(from isal_mmdet[^"]*)"`', open(DOCS).read()).group(1)
    assert "['cat', 'dog']" in command
    res = subprocess.run([sys.executable, '-c', command.replace("['cat', 'dog']",
                                                                repr(list(classes)))],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope='module')
def backend(label_studio, coco_config, tmp_path_factory):
    """docs/labelstudio_backend.md from step 3 on, as written: the project with the docs'
    labelling config and Local Storage of the training images (the API calls behind the
    steps' clicks), then the backend started by the docs' own command, its placeholders
    filled (Label Studio's URL and token, the config, the work dir, the project), a free
    --port and the tests' tiny --cfg-options appended."""
    path, root = coco_config
    work = tmp_path_factory.mktemp('backend') / 'w'
    project = label_studio.call('POST', '/api/projects', dict(
        title='isal backend', label_config=docs_labelling_config(CLASSES)))['id']
    storage = label_studio.call('POST', '/api/storages/localfiles', dict(
        project=project, path=osp.join(root, 'images'), use_blob_urls=True,
        regex_filter=r'.*\.jpg', title='pool'))
    label_studio.call('POST', f"/api/storages/localfiles/{storage['id']}/sync")
    log = open(work.parent / 'backend.log', 'w')
    proc = BackendProcess(coco_config, work, label_studio.url, log)
    command = docs_backend_command()
    for placeholder, value in (('http://localhost:8080', label_studio.url), ('<token>', TOKEN),
                               ('CONFIG', path), (' W ', f' {work} '), ('<id>', str(project)),
                               ('python ', f'{sys.executable} ')):
        assert placeholder in command, placeholder
        command = command.replace(placeholder, value, 1)
    proc.cmd = ['bash', '-c', ' '.join([command, '--port', str(proc.port), '--cfg-options',
                                        *map(shlex.quote, [*tiny_options(root), *OPTS])])]
    proc.retrain_every = int(re.search(r'--retrain-every (\d+)', command).group(1))
    proc.start()
    try:
        yield proc, work, project
    finally:
        proc.stop()
        log.close()


def ranking(work, k, root):
    """Round k's ranking of the pool as file names, best first."""
    ann = json.load(open(osp.join(root, 'annotations', 'instances_train.json')))
    names = {str(img['id']): img['file_name'] for img in ann['images']}
    with open(work / f'round_{k}' / 'scores.csv', newline='') as f:
        return [names[r['img_id']] for r in sorted(csv.DictReader(f),
                                                   key=lambda r: int(r['rank']))]


def predict_all(studio, project, version):
    """The Data Manager's "Retrieve predictions" on every task, its seconds; then waits for
    the backend to make ``version`` the project's model version."""
    start = time.perf_counter()
    studio.call('POST', f'/api/dm/actions?id=retrieve_tasks_predictions&project={project}',
                dict(selectedItems=dict(all=True, excluded=[])))
    seconds = time.perf_counter() - start
    wait_for(f'project model version {version}', lambda: studio.call(
        'GET', f'/api/projects/{project}')['model_version'] == version, timeout=60)
    return seconds


def by_score(studio, project):
    """The project's tasks as the Data Manager orders them by prediction score, best first."""
    query = urllib.parse.quote(json.dumps(dict(ordering=['-tasks:predictions_score'])))
    got = studio.call('GET', f'/api/tasks?project={project}&page_size=100&fields=all'
                             f'&query={query}')
    return got['tasks'] if isinstance(got, dict) else got


def page_seconds(proc, project, tasks, work, coco_config):
    """Seconds of the backend's ``/predict`` for ``tasks`` (one page) and of plain inference
    of round 0's model on the same images."""
    from mmdet.apis import init_detector
    from mmengine.config import Config
    from isal_mmdet.labelling.export import coco_preannotations
    from conftest import coco_dataset
    start = time.perf_counter()
    status, got = call(proc.url + '/predict', 'POST', dict(project=f'{project}.0', tasks=[
        dict(id=t['id'], data=t['data']) for t in tasks]))
    direct = time.perf_counter() - start
    assert status == 200 and len(got['results']) == len(tasks)
    cfg = Config.fromfile(coco_config[0])
    cfg.merge_from_dict({k: json.loads(v) for k, v in (o.split('=', 1) for o in OPTS)})
    model = init_detector(cfg, str(next((work / 'round_0' / 'train').glob('iter_*.pth'))),
                          device='cpu')
    pool = coco_dataset(coco_config[1])
    ids = [pool.get_data_info(i)['img_id'] for i in range(len(pool))]
    start = time.perf_counter()
    coco_preannotations(model, pool, ids, CLASSES, 0.0)
    return direct, time.perf_counter() - start


def predictions(studio, tasks, version):
    """File name → the result of the task's prediction by ``version``."""
    out = {}
    for task in tasks:
        full = studio.call('GET', f"/api/tasks/{task['id']}")
        preds = [p for p in full['predictions'] if p['model_version'] == version]
        assert len(preds) == 1, (task['id'], version, full['predictions'])
        out[osp.basename(task['data']['image'])] = (preds[0]['score'], preds[0]['result'])
    return out


def test_active_learning_inside_label_studio(label_studio, backend, coco_config):
    """The docs' steps, from a project to a ranked one and the next round (the backend
    fixture: steps 3 and 4)."""
    proc, work, project = backend
    root = coco_config[1]
    wait_for('round 0', lambda: proc.health()['model_version'] == 'round_0')
    tasks = by_score(label_studio, project)
    assert len(tasks) == len(os.listdir(osp.join(root, 'images')))
    label_studio.call('POST', '/api/ml', dict(project=project, url=proc.url, title='isal'))
    assert proc.health()['project'] == project

    seconds = predict_all(label_studio, project, 'round_0')
    ordered = by_score(label_studio, project)
    pool = ranking(work, 0, root)
    assert [osp.basename(t['data']['image']) for t in ordered[:len(pool)]] == pool
    before = predictions(label_studio, ordered, 'round_0')
    assert all(before[name][1] for name in pool), 'every pool task has pre-annotations'
    direct, plain = page_seconds(proc, project, ordered, work, coco_config)
    print(f'\na page of {len(ordered)} tasks: {seconds:.2f}s through Label Studio, '
          f'{direct:.2f}s from the backend, {plain:.2f}s plain inference '
          f'(ratio {direct / plain:.2f})')

    # the annotator takes the top tasks: accepts two predicted boxes each
    for task in ordered[:proc.retrain_every]:
        result = [dict(r) for r in before[osp.basename(task['data']['image'])][1][:2]]
        for r in result:
            r.pop('score', None)
        label_studio.call('POST', f"/api/tasks/{task['id']}/annotations", dict(result=result))
    wait_for('the webhook-triggered round', lambda: proc.health()['training'], every=0.05)
    proc.stop(signal.SIGKILL)
    state = json.load(open(work / 'labelstudio_backend.json'))
    assert (state['requested'], state['finished']) == (1, 0)
    assert not (work / 'round_1' / 'selection.json').exists(), 'killed during the round'

    proc.start()
    first = wait_for('the restarted backend', proc.health)
    assert first['model_version'] in ('round_0', 'round_1')
    wait_for('round 1', lambda: (lambda h: h['model_version'] == 'round_1' and
                                 not h['training'])(proc.health()))
    labelled = json.load(open(work / 'round_1' / 'labeled.json'))
    assert len(labelled) == len(json.load(open(work / 'round_0' / 'labeled.json'))) + \
        proc.retrain_every
    assert json.load(open(work / 'labelstudio_backend.json'))['finished'] == 1

    # predictions for a few tasks only: the project keeps round_0, or it would sort the tasks
    # round_1 has not scored below every scored one
    label_studio.call('POST', f'/api/dm/actions?id=retrieve_tasks_predictions&project='
                              f'{project}', dict(selectedItems=dict(
                                  all=False, included=[t['id'] for t in ordered[:5]])))
    wait_for('the partial count', lambda: proc.health()['switching'] ==
             f'round_1 predicts 5 of the {len(ordered)} tasks', timeout=60)
    assert label_studio.call('GET', f'/api/projects/{project}')['model_version'] == 'round_0'
    predict_all(label_studio, project, 'round_1')
    ordered = by_score(label_studio, project)
    pool = ranking(work, 1, root)
    assert [osp.basename(t['data']['image']) for t in ordered[:len(pool)]] == pool
    after = predictions(label_studio, ordered, 'round_1')
    assert any(after[n][1] != before[n][1] for n in pool), 'the new model predicts anew'
    assert 'database is locked' not in label_studio.log.read_text(), 'a PATCH raced a write'


def test_bad_request_is_one_line_and_the_server_lives(coco_config, tmp_path, caplog):
    import uvicorn

    import isal_mmdet  # noqa: F401
    from mmengine.config import Config
    from isal_mmdet.serve.app import create_app
    from isal_mmdet.serve.backend import Backend

    backend = Backend(Config.fromfile(coco_config[0]), str(tmp_path / 'w'))  # not started
    port = _port()
    server = uvicorn.Server(uvicorn.Config(create_app(backend), host='127.0.0.1', port=port,
                                           log_level='warning'))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f'http://127.0.0.1:{port}'
    try:
        wait_for('the server', lambda: server.started, timeout=60, every=0.05)
        caplog.set_level(logging.WARNING, logger='isal_mmdet.serve')
        bad = [('/predict', b'{"tasks": [', 400), ('/webhook', {'action': 'X'}, 400),
               ('/predict', b'[' * 100_000 + b']' * 100_000, 400),
               ('/predict', {'project': '2.1', 'tasks': []}, 403),  # nothing connected yet
               ('/setup', {'project': 'two'}, 400)]
        for route, body, status in bad:
            got = call(url + route, 'POST', body)
            assert got[0] == status and '\n' not in got[1]['error'], (route, got)
        assert call(url + '/setup', 'POST', {'project': '2.1'}) == (200, {'model_version': None})
        assert call(url + '/predict', 'POST', {'project': '3.1', 'tasks': []})[0] == 403
        assert call(url + '/predict', 'POST', {'project': '2.1', 'tasks': 'x'})[0] == 400
        got = call(url + '/predict', 'POST', {'project': '2.1', 'tasks': [{'data': ['x']}]})
        assert got == (400, {'error': 'tasks[0].data is not an object'})
        assert call(url + '/predict', 'POST', {'project': '2.1', 'tasks': []})[0] == 503
        lines = [r.getMessage() for r in caplog.records if r.name == 'isal_mmdet.serve'
                 and r.levelno >= logging.WARNING]
        assert len(lines) == len(bad) + 4 and all('\n' not in m for m in lines), lines
        status, health = call(url + '/health')
        assert status == 200 and [(e['where'], e['status']) for e in health['errors']] == [
            ('POST ' + route, status) for route, _, status in bad] + [
            ('POST /predict', 403), ('POST /predict', 400), ('POST /predict', 400),
            ('POST /predict', 503)]
        assert 'project 3 refused: this backend serves project 2' in health['errors'][-4]['error']
    finally:
        server.should_exit = True
        thread.join(timeout=30)


VOC_CONFIG = """
_base_ = {base!r}
train_cfg = dict(val_interval=1)  # an evaluation at every iteration: the race, often
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP')
test_evaluator = val_evaluator
"""


def annotation_results(root):
    """Image id → a Label Studio annotation result of its true boxes (instances_train.json)."""
    from isal_mmdet.labelling.labelstudio import tasks_from_coco
    ann = json.load(open(osp.join(root, 'annotations', 'instances_train.json')))
    images = [dict(img, isal_img_id=img['id']) for img in ann['images']]
    ids = [img['id'] for img in images]
    tasks = tasks_from_coco(dict(ann, images=images, annotations=[
        dict(a, score=1.0) for a in ann['annotations']]), {i: str(i) for i in ids}, ids,
        {i: 0.0 for i in ids}, 'truth')
    return {int(t['data']['isal_img_id']): [{k: v for k, v in r.items() if k != 'score'}
                                            for r in t['predictions'][0]['result']]
            for t in tasks}


@pytest.fixture(scope='module')
def voc_backend(label_studio, coco_config, tmp_path_factory):
    """A backend whose config evaluates with VOCMetric (a process pool per evaluation), on a
    project of the pool's tasks that it serves from the start (--project), without webhooks:
    the test asks for each round (/train)."""
    from isal_mmdet.labelling.labelstudio import labelling_config
    path, root = coco_config
    folder = tmp_path_factory.mktemp('voc_backend')
    (folder / 'voc.py').write_text(VOC_CONFIG.format(base=path))
    project = label_studio.call('POST', '/api/projects', dict(
        title='isal voc', label_config=labelling_config(CLASSES)))['id']
    ann = json.load(open(osp.join(root, 'annotations', 'instances_train.json')))
    label_studio.call('POST', f'/api/projects/{project}/import', [dict(data=dict(
        image=f"/data/local-files/?d={root}/images/{img['file_name']}")) for img in ann['images']])
    listed = label_studio.call('GET', f'/api/tasks?project={project}&page_size=100')
    tasks = {osp.basename(t['data']['image']): t['id'] for t in (
        listed['tasks'] if isinstance(listed, dict) else listed)}
    log = open(folder / 'backend.log', 'w')
    proc = BackendProcess((str(folder / 'voc.py'), root), folder / 'w', label_studio.url, log)
    proc.cmd += ['--project', str(project)]
    proc.start()
    try:
        yield proc, folder / 'w', project, {i: tasks[img['file_name']] for i, img in
                                            ((img['id'], img) for img in ann['images'])}
    finally:
        proc.stop()
        log.close()


def next_round(proc, project, k, timeout=240):
    """Asks for round k (after round k-1) and waits for it; a hung evaluation times out."""
    assert call(proc.url + '/train', 'POST', dict(project=project))[0] == 200
    wait_for(f'round {k} (an evaluation hung?)', lambda: (lambda h: h['model_version'] ==
             f'round_{k}' and not h['training'])(proc.health()), timeout=timeout)


def test_voc_metric_rounds_never_hang(label_studio, voc_backend, coco_config):
    """Under uvicorn, mmdet's eval_map pool hung rounds for ever: forked from the threaded
    server, its workers kept uvicorn's SIGTERM handler, and under load round 1 once waited on
    one for ever. Its processes now come from a fork server."""
    proc, work, project, tasks = voc_backend
    wait_for('round 0 (an evaluation hung?)', lambda: proc.health()['model_version'] ==
             'round_0')
    truth = annotation_results(coco_config[1])
    pool = [i for i in sorted(tasks) if i not in json.load(open(work / 'round_0' /
                                                               'labeled.json'))]
    for k in (1, 2):
        for i in pool[2 * k - 2:2 * k]:
            label_studio.call('POST', f'/api/tasks/{tasks[i]}/annotations', dict(result=truth[i]))
        next_round(proc, project, k)
        assert len(json.load(open(work / f'round_{k}' / 'labeled.json'))) == \
            len(json.load(open(work / 'round_0' / 'labeled.json'))) + 2 * k
        done = proc.health()['round']
        assert (done['number'], done['stage'], done['error']) == (k, 'finished', None), done
        assert done['started'] <= done['ended']


def test_served_rounds_start_their_processes_from_a_fork_server(coco_config, tmp_path):
    """A process forked from the threaded server (eval_map's pool, DataLoader workers) may
    inherit a lock another thread held and wait for ever, as round 1 of the test above once
    did. Every Runner sets the start method from env_cfg: the served loop's config names the
    fork server over mmdet's default 'fork' and keeps the rest of the user's env_cfg."""
    from mmengine.config import Config
    from isal_mmdet.serve.rounds import ServedLoop
    cfg = Config.fromfile(coco_config[0])
    cfg.env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork',
                                                         opencv_num_threads=2))
    loop = ServedLoop(cfg, str(tmp_path / 'w'))
    assert loop.cfg.env_cfg == dict(cudnn_benchmark=True, mp_cfg=dict(
        mp_start_method='forkserver', opencv_num_threads=2))
    assert cfg.env_cfg.mp_cfg.mp_start_method == 'fork'  # the caller's config is untouched


def test_a_failed_pull_is_tried_again_and_shown(label_studio, voc_backend, coco_config,
                                                monkeypatch, tmp_path, caplog):
    """Label Studio stopped (by its PID) when a round pulls the export: each failed try is
    logged and shown by /health (the round pulling, its error, the tries) rather than
    "training: false"; started again on the same port and data, the next try gets the
    export and the round trains, as docs/labelstudio_backend.md says."""
    from mmengine.config import DictAction
    from isal_mmdet.fileio import load_config
    from isal_mmdet.serve.backend import Backend
    proc, work, project, _ = voc_backend
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(['--cfg-options', *tiny_options(coco_config[1]), *OPTS])
    copy = tmp_path / 'w'
    shutil.copytree(work, copy)
    monkeypatch.setenv('LABEL_STUDIO_URL', label_studio.url)
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', TOKEN)
    # waits of 2, 4, ... 64 s: over two minutes for Label Studio to start again
    cfg = load_config(str(work.parent / 'voc.py'), options.cfg_options)  # as the tool's
    backend = Backend(cfg, str(copy), project, pull_tries=7, pull_wait=2.0)
    caplog.set_level(logging.WARNING, logger='isal_mmdet.serve')
    label_studio.stop()
    assert label_studio.proc.poll() is not None
    backend.request_round()
    wait_for('a failed pull', lambda: backend.health()['round'].get('failed_pulls'),
             timeout=60, every=0.05)
    health = backend.health()
    assert health['training'] and health['round']['stage'] == 'pulling', health
    assert 'Connection refused' in health['round']['error'] and TOKEN not in str(health)
    label_studio.start()
    wait_for('the round after the pull', lambda: backend.health()['round']['stage'] in (
        'finished', 'failed'), timeout=400, every=0.2)
    health = backend.health()
    done = health['round']
    assert (done['number'], done['stage'], done['error']) == (3, 'finished', None), health
    assert 1 <= done['failed_pulls'] < 7 and not health['training']
    tries = [r.getMessage() for r in caplog.records if 'failed, again in' in r.getMessage()]
    assert tries and tries[0].startswith('round 3: try 1 of 7 failed, again in 2s'), tries
    assert osp.exists(copy / 'round_3' / 'selection.json')


def test_deleted_and_edited_annotations_apply(label_studio, voc_backend, coco_config):
    """The next round imports the whole project again: an image whose annotation was deleted
    leaves the training set, an edited annotation replaces its image's boxes."""
    proc, work, project, tasks = voc_backend
    truth = annotation_results(coco_config[1])
    initial = json.load(open(work / 'round_0' / 'labeled.json'))
    pool = [i for i in sorted(tasks) if i not in initial]
    deleted, edited, new = pool[0], pool[1], pool[4]
    annotation = {i: label_studio.call('GET', f'/api/tasks/{tasks[i]}')['annotations'][0]['id']
                  for i in (deleted, edited)}
    label_studio.call('DELETE', f'/api/annotations/{annotation[deleted]}/')
    moved = dict(truth[edited][0])
    moved['value'] = dict(moved['value'], x=moved['value']['x'] / 2, y=moved['value']['y'] / 2)
    label_studio.call('PATCH', f'/api/annotations/{annotation[edited]}/', dict(result=[moved]))
    label_studio.call('POST', f'/api/tasks/{tasks[new]}/annotations',
                      dict(result=truth[new]))
    next_round(proc, project, 3)
    assert json.load(open(work / 'round_3' / 'labeled.json')) == sorted(initial + pool[1:5])
    merged = json.load(open(work / 'round_3' / 'train_annotations.json'))
    boxes = [a['bbox'] for a in merged['annotations'] if a['image_id'] == edited]
    v, w, h = moved['value'], moved['original_width'], moved['original_height']
    want = [v['x'] * w / 100, v['y'] * h / 100, v['width'] * w / 100, v['height'] * h / 100]
    assert len(boxes) == 1 and max(abs(a - b) for a, b in zip(boxes[0], want)) < 0.01, boxes
    proc.log.flush()
    assert f'1 left the training set, their annotations deleted: [{deleted}]' in \
        open(work.parent / 'backend.log').read()
    # annotated again, it is back: a fifth VOCMetric round
    label_studio.call('POST', f'/api/tasks/{tasks[deleted]}/annotations',
                      dict(result=truth[deleted]))
    next_round(proc, project, 4)
    assert json.load(open(work / 'round_4' / 'labeled.json')) == sorted(initial + pool[:5])


def test_backend_log_never_holds_the_token(backend):
    """After every request, round and restart above, the backend's own log has no token."""
    proc, work, _ = backend
    proc.log.flush()
    text = open(work.parent / 'backend.log').read()
    assert text and TOKEN not in text


def test_backend_rounds_with_semi_train_a_mean_teacher_and_serve_the_teacher(coco_config,
                                                                             tmp_path):
    """Without Label Studio: the backend's round code on a config with active_learning.semi
    trains a mean teacher in round 0 and serves its teacher; round 1 imports an export (as a
    pull saves it) and trains on the rest of the pool unlabelled."""
    import torch
    from mmengine.config import DictAction
    from isal_mmdet.fileio import load_config
    from isal_mmdet.serve.backend import Backend
    from test_annotation_roundtrip import tool_export, write
    path, root = coco_config
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    options = [*tiny_options(root), *OPTS, 'active_learning.semi.momentum=0.25',
               'active_learning.semi.burn_in=0.3']
    backend = Backend(load_config(path, parser.parse_args(['--options', *options]).options),
                      str(tmp_path / 'w'))
    loop = backend.loop
    backend._round(pull=False)
    assert backend.round['stage'] == 'finished', backend.round
    assert backend.version() == 'round_0' and loop.last_checkpoint(0).endswith('teacher.pth')
    # the served weights are the mean teacher's of the last training checkpoint
    last = torch.load(max((tmp_path / 'w' / 'round_0' / 'train').glob('iter_*.pth'),
                          key=osp.getmtime), map_location='cpu', weights_only=False)
    teacher = {k[len('teacher.'):]: v for k, v in last['state_dict'].items()
               if k.startswith('teacher.')}
    served = backend.predictor.model.state_dict()
    assert sorted(served) == sorted(teacher)
    for k, v in teacher.items():
        assert torch.equal(served[k].cpu(), v), k
    assert any(not torch.equal(v, last['state_dict'][f'student.{k}'])
               for k, v in teacher.items() if v.dtype.is_floating_point)
    image = next(iter(backend.names))
    got = backend.predictor.predict([dict(data=dict(image=f'/data/upload/1/{image}'))])
    assert got[0]['model_version'] == 'round_0' and got[0]['result']

    ann_file = osp.join(root, 'annotations', 'instances_train.json')
    selected = json.load(open(loop.path(0, 'selection.json')))['selected']
    write(loop.export_file(0), tool_export(ann_file, selected))
    backend._round(pull=False)
    assert backend.round['stage'] == 'finished' and backend.version() == 'round_1', backend.round
    labelled = json.load(open(loop.path(1, 'labeled.json')))
    assert set(selected) <= set(labelled)
    unlabelled = json.load(open(loop.path(1, 'unlabelled.json')))
    assert sorted(labelled + unlabelled) == sorted(loop.all_ids)
    logs = ''.join(p.read_text() for p in (tmp_path / 'w' / 'round_1' / 'train').glob('*/*.log'))
    assert 'unsup_loss_cls' in logs and loop.last_checkpoint(1).endswith('teacher.pth')
