"""A real Label Studio server (installed by `make test` in its own venv, started on 127.0.0.1,
stopped by PID) and datumaro's COCO writer: our tasks and config go in through the REST API,
an annotator's edits are made through it (accept, move, resize, delete, add), and both of its
exports, JSON and COCO, come back through tools/al_train.py --annotations to the pixel."""
import io
import json
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from conftest import ROOT
from test_annotation_roundtrip import CLASSES, al_train, coco_config  # noqa: F401 (fixture)

TOOLS = osp.join(ROOT, '.venv-tools')
TOKEN = 'isal-test-token-0123456789'
# pre-annotations at any score (the tiny model is barely trained), so every task has boxes
# to accept, move and delete
OPTS = ('active_learning.preannotation_thr=0.0', 'model.test_cfg.score_thr=0.0')


def tool_python(name):
    """The tool venv's python, or a skip with the reason `make test` recorded."""
    python = osp.join(TOOLS, name, 'bin', 'python')
    if not osp.exists(python):
        why = osp.join(TOOLS, f'{name}.skipped')
        reason = open(why).read().strip() if osp.exists(why) else 'not installed'
        pytest.skip(f'{name} is not installed in {TOOLS}/{name}: {reason}')
    return python


def _port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            'Authorization': f'Token {TOKEN}', 'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=120) as r:
            payload = r.read()
        return payload if raw else json.loads(payload or b'null')


@pytest.fixture(scope='module')
def label_studio(tmp_path_factory):
    python = tool_python('labelstudio')
    data_dir = tmp_path_factory.mktemp('ls_data')
    port = _port()
    env = dict(os.environ, LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED='true',
               LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT='/', DJANGO_DEBUG='false')
    log = open(data_dir / 'server.log', 'w')
    proc = subprocess.Popen(
        [osp.join(osp.dirname(python), 'label-studio'), 'start', '--no-browser', '--port',
         str(port), '--internal-host', '127.0.0.1', '--username', 'annotator@example.com',
         '--password', 'isal-test-pw', '--user-token', TOKEN, '--enable-legacy-api-token',
         '--data-dir', str(data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    server = Server(f'http://127.0.0.1:{port}')
    try:
        deadline = time.time() + 300
        while True:
            try:
                server.call('GET', '/api/projects')
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    tail = open(data_dir / 'server.log').read()[-3000:]
                    pytest.fail(f'Label Studio did not start:\n{tail}')
                time.sleep(2)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope='module')
def waiting(coco_config, tmp_path_factory):
    """A COCO experiment stopped after round 0's selection, its boxes pre-annotated."""
    work = tmp_path_factory.mktemp('ls') / 'w'
    res = al_train(coco_config, work, *OPTS, '--oracle', 'none')
    assert res.returncode == 0, res.stderr[-3000:]
    return work


def _px(r):
    """(label, [x, y, w, h] in pixels) of a Label Studio rectangle."""
    v, w, h = r['value'], r['original_width'], r['original_height']
    return (v['rectanglelabels'][0], [v['x'] * w / 100, v['y'] * h / 100,
                                      v['width'] * w / 100, v['height'] * h / 100])


def _edits(tasks):
    """What the annotator does, task by task: accept the first, move and resize the second's
    boxes, delete the third's and draw two new ones. Returns ({file name: [(label, box)]},
    {task id: result})."""
    want, results = {}, {}
    for n, task in enumerate(sorted(tasks, key=lambda t: t['data']['isal_rank'])):
        pred = [r for p in task.get('predictions', []) for r in p['result']][:5]
        if not pred:
            pytest.fail('a task came back without its predictions')
        w, h = pred[0]['original_width'], pred[0]['original_height']
        if n % 3 == 1:
            for r in pred:
                v = r['value']
                v['x'], v['y'] = min(v['x'] + 3.0, 50.0), min(v['y'] + 2.0, 50.0)
                v['width'], v['height'] = max(v['width'] * 0.8, 2.0), v['height'] + 1.5
        elif n % 3 == 2:
            pred = [dict(pred[0], id=f'new{k}', value=dict(
                x=10.0 + 30 * k, y=20.0, width=15.0, height=12.5, rotation=0,
                rectanglelabels=[CLASSES[k]])) for k in range(2)]
        for r in pred:
            r.pop('score', None)
        name = osp.basename(task['data']['image'])
        want[name] = sorted(_px(r) for r in pred)
        results[task['id']] = pred
        assert (w, h) == (pred[0]['original_width'], pred[0]['original_height'])
    return want, results


def _merged_boxes(work, names):
    merged = json.load(open(work / 'round_1' / 'train_annotations.json'))
    cats = {c['id']: c['name'] for c in merged['categories']}
    by_name = {img['file_name']: img['id'] for img in merged['images']}
    return {n: sorted((cats[a['category_id']], a['bbox']) for a in merged['annotations']
                      if a['image_id'] == by_name[n]) for n in names}


def _close(got, want):
    assert set(got) == set(want)
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for (la, a), (lb, b) in zip(got[name], want[name]):
            assert la == lb and max(abs(x - y) for x, y in zip(a, b)) <= 1.0, (name, a, b)


def _rerun(waiting, tmp_path, coco_config, export, want):
    work = tmp_path / 'w'
    shutil.copytree(waiting, work)
    path = tmp_path / 'export.json'
    path.write_bytes(export)
    res = al_train(coco_config, work, *OPTS, '--oracle', 'none', '--annotations', str(path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'imported 3 images' in res.stdout + res.stderr
    _close(_merged_boxes(work, want), want)


@pytest.fixture(scope='module')
def annotated(label_studio, waiting):
    """Our config and tasks imported into a project, the annotator's edits made."""
    config = (waiting / 'round_0' / 'labelstudio_config.xml').read_text()
    project = label_studio.call('POST', '/api/projects', dict(title='isal', label_config=config))
    images = {osp.dirname(t['data']['image'].split('?d=', 1)[1]) for t in json.load(
        open(waiting / 'round_0' / 'preannotations_labelstudio.json'))}
    for folder in images:
        label_studio.call('POST', '/api/storages/localfiles', dict(
            project=project['id'], path='/' + folder, use_blob_urls=False, title=folder))
    tasks = json.load(open(waiting / 'round_0' / 'preannotations_labelstudio.json'))
    label_studio.call('POST', f"/api/projects/{project['id']}/import", tasks)
    listed = label_studio.call('GET', f"/api/tasks?project={project['id']}")
    listed = listed['tasks'] if isinstance(listed, dict) else listed
    got = [label_studio.call('GET', f"/api/tasks/{t['id']}") for t in listed]
    assert len(got) == 3
    image = label_studio.call('GET', got[0]['data']['image'], raw=True)
    assert image[:2] == b'\xff\xd8'  # the local-files URL serves the JPEG itself
    for task in got:
        assert task['predictions'] and task['data']['isal_rank'] >= 1
    want, results = _edits(got)
    for task_id, result in results.items():
        label_studio.call('POST', f'/api/tasks/{task_id}/annotations', dict(result=result))
    return project['id'], want


def test_labelstudio_json_export_imports_to_the_pixel(label_studio, annotated, waiting,
                                                      tmp_path, coco_config):
    project, want = annotated
    export = label_studio.call('GET', f'/api/projects/{project}/export?exportType=JSON',
                               raw=True)
    assert isinstance(json.loads(export), list)
    _rerun(waiting, tmp_path, coco_config, export, want)


def test_labelstudio_coco_export_imports_to_the_pixel(label_studio, annotated, waiting,
                                                      tmp_path, coco_config):
    project, want = annotated
    export = label_studio.call('GET', f'/api/projects/{project}/export?exportType=COCO',
                               raw=True)
    with zipfile.ZipFile(io.BytesIO(export)) as z:
        result = z.read('result.json')
    _rerun(waiting, tmp_path, coco_config, result, want)


DATUMARO = r'''
import json, sys
import datumaro as dm
spec = json.load(open(sys.argv[1]))
items = []
for name, boxes in spec['boxes'].items():
    w, h = spec['sizes'][name]
    items.append(dm.DatasetItem(id=name.rsplit('.', 1)[0], media=dm.Image.from_file(
        path=spec['paths'][name], size=(h, w)), annotations=[
        dm.Bbox(*box, label=spec['classes'].index(label)) for label, box in boxes]))
ds = dm.Dataset.from_iterable(items, categories=spec['classes'])
ds.export(sys.argv[2], 'coco_instances', save_media=False)
'''


def test_datumaro_coco_export_imports_to_the_pixel(waiting, tmp_path, coco_config):
    python = tool_python('datumaro')
    pre = json.load(open(waiting / 'round_0' / 'preannotations_coco.json'))
    root = coco_config[1]
    want = {}
    for k, img in enumerate(pre['images']):
        want[img['file_name']] = [(CLASSES[k % 3], [5.25 + k, 7.5, 40.0 + 3 * k, 22.75]),
                                  (CLASSES[(k + 1) % 3], [60.0, 30.0 + k, 18.5, 25.0])]
    spec = dict(classes=list(CLASSES), boxes=want,
                paths={i['file_name']: osp.join(root, 'images', i['file_name'])
                       for i in pre['images']},
                sizes={i['file_name']: (i['width'], i['height']) for i in pre['images']})
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    res = subprocess.run([python, '-c', DATUMARO, str(tmp_path / 'spec.json'),
                          str(tmp_path / 'dm')], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    export = (tmp_path / 'dm' / 'annotations' / 'instances_default.json').read_bytes()
    _rerun(waiting, tmp_path, coco_config, export, {n: sorted(b) for n, b in want.items()})


def test_tool_venvs_are_not_the_projects():
    """The tools live in their own venvs: the project's has neither."""
    res = subprocess.run([sys.executable, '-c', 'import label_studio'], capture_output=True)
    assert res.returncode != 0
