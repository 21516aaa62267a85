"""A real Label Studio server (installed by `make test` in its own venv, started on 127.0.0.1
by the command docs/labelstudio_backend.md gives, stopped by PID) and datumaro's COCO writer:
our tasks and config go in through the REST API, an annotator's edits are made through it
(accept, move, resize, delete, add), and both of its exports, JSON and COCO, come back through
tools/al_train.py --annotations to the pixel."""
import contextlib
import io
import json
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from conftest import ROOT
from test_annotation_roundtrip import CLASSES, al_train, coco_config  # noqa: F401 (fixture)

TOOLS = osp.join(ROOT, '.venv-tools')
DOCS = osp.join(ROOT, 'docs', 'labelstudio_backend.md')
START = 'tools/labelstudio_start.sh'
USER, TOKEN = 'annotator@example.com', 'isal-test-token-0123456789'
# the login the docs have the user choose before the start command
LOGIN = dict(LABEL_STUDIO_USERNAME=USER, LABEL_STUDIO_PASSWORD='isal-test-pw',
             LABEL_STUDIO_USER_TOKEN=TOKEN)
# pre-annotations at any score (the tiny model is barely trained), so every task has boxes
# to accept, move and delete
OPTS = ('active_learning.preannotation_thr=0.0', 'model.test_cfg.score_thr=0.0')


def tool_python(name):
    """The tool venv's python. A skip only where `make tools` recorded that it could not
    install the tool: one that installed must work, or the tests fail."""
    why = osp.join(TOOLS, f'{name}.skipped')
    if osp.exists(why):
        pytest.skip(f'{name} could not be installed in {TOOLS}/{name}: '
                    f'{open(why).read().strip()}')
    python = osp.join(TOOLS, name, 'bin', 'python')
    if not osp.exists(python):
        pytest.fail(f'{name} is not installed in {TOOLS}/{name}: run make tools', pytrace=False)
    return python


def _port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url, log, token=TOKEN):
        self.url, self.log, self.token = url, log, token
        self.proc = None

    def call(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            'Authorization': f'Token {self.token}', 'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=120) as r:
            payload = r.read()
        return payload if raw else json.loads(payload or b'null')


def docs_blocks():
    return [textwrap.dedent(b) for b in re.findall(r'^ *```bash\n(.*?)^ *```', open(DOCS).read(),
                                                   re.M | re.S)]


def docs_start_command():
    """The docs' block that starts Label Studio, verbatim: the tests run what users run."""
    starts = [b for b in docs_blocks() if b.startswith(START)]
    assert len(starts) == 1, f'{DOCS} should have one bash block that runs {START}'
    return starts[0]


def _failed(what, log):
    """Fails naming the reason from the server's log (its last error line), with its tail."""
    lines = [line for line in log.read_text(errors='replace').replace(TOKEN, '<token>')
             .splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r'^[\w.]*(Error|Exception)\b|\berror:', line)]
    reason = (errors or lines or ['its log is empty'])[-1]
    pytest.fail(f'Label Studio {what}: {reason}\n--- the end of {log} ---\n' +
                '\n'.join(lines[-40:]), pytrace=False)


def start_label_studio(data_dir, command, timeout=300):
    """Runs ``command`` (shell) in the repository root with the docs' login in its environment,
    on a free port and data folder of its own; yields the server once the API takes the token.
    Label Studio dying or not answering is an error naming why (from its log), not a bare
    "Connection refused" in the first test that calls it. ``server.stop()`` ends it by its
    process group's id, ``server.start()`` starts it again on the same port and data."""
    tool_python('labelstudio')
    port = _port()
    server = Server(f'http://127.0.0.1:{port}', data_dir / 'server.log')
    env = dict(os.environ, **LOGIN, LABEL_STUDIO_PORT=str(port),
               LABEL_STUDIO_BASE_DATA_DIR=str(data_dir))

    def start():
        with open(server.log, 'a') as log:
            server.proc = subprocess.Popen(['bash', '-c', command], cwd=ROOT, env=env,
                                           stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        deadline = time.time() + timeout
        while True:
            try:
                server.call('GET', '/api/current-user/whoami')
                return
            except urllib.error.HTTPError as e:
                _failed(f'refused the token: {e.code} {e.reason}', server.log)
            except (urllib.error.URLError, OSError):
                if server.proc.poll() is not None:
                    _failed(f'exited with {server.proc.returncode} before it answered',
                            server.log)
                if time.time() > deadline:
                    _failed(f'did not answer on port {port} in {timeout} s', server.log)
                time.sleep(1)

    def stop():
        with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
            os.killpg(server.proc.pid, signal.SIGTERM)
            try:
                server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait()

    server.start, server.stop = start, stop
    try:
        start()
        yield server
    finally:
        if server.proc is not None:
            stop()


@pytest.fixture(scope='module')
def label_studio(tmp_path_factory):
    """Label Studio started exactly as docs/labelstudio_backend.md says."""
    yield from start_label_studio(tmp_path_factory.mktemp('ls_data'), docs_start_command())


def test_label_studio_starts_as_the_docs_say(label_studio):
    """The docs' command creates the user and its legacy token, no browser: the API takes that
    token and refuses another; the server's log never holds the token. The docs' block before
    it sets the same login variables as the tests."""
    blocks = docs_blocks()
    login = blocks[blocks.index(docs_start_command()) - 1]
    assert set(re.findall(r'\b(LABEL_STUDIO_\w+)=', login)) == set(LOGIN)
    assert label_studio.call('GET', '/api/current-user/whoami')['email'] == USER
    with pytest.raises(urllib.error.HTTPError) as refused:
        Server(label_studio.url, None, token='not-' + TOKEN).call('GET', '/api/projects')
    assert refused.value.code == 401
    assert TOKEN not in label_studio.log.read_text()


def test_a_failed_start_names_its_reason(tmp_path):
    """A Label Studio that cannot start fails the test with the reason from its log."""
    with pytest.raises(pytest.fail.Exception, match="exited with 2 .*invalid int value"):
        next(start_label_studio(tmp_path, f'{START} --port not-a-port', timeout=120))


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
