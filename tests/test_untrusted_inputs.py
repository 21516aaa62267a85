"""Inputs from outside, through the real entry points: checkpoints load as data (a pickle
payload never runs), input errors end in one ``error:`` line naming the file or field with
nothing half-written, and a work dir resumes and extends after being moved.

One short al_train run (moved after training, so every path it wrote points nowhere) gives
the checkpoint and the work dir the cases start from; the al_select cases run in one
interpreter to pay the imports once.
"""
import argparse
import functools
import hashlib
import http.server
import importlib
import json
import os
import os.path as osp
import shutil
import sys
import threading
from types import SimpleNamespace

import pytest
import torch

from conftest import ROOT
from test_bad_input import AL_SELECT, assert_intact, assert_one_line_error, run
from test_hook_upstream import UPSTREAM_TRAIN
from test_loop import DEMO, al_train, tiny_options

CASES = [
    ('checkpoint-payload-select', 'a checkpoint whose pickle would run code (here: create a '
     'file), given to al_select.py: refused naming the file and the type, nothing runs'),
    ('checkpoint-payload-resume', 'the same payload planted as an unfinished round\'s last '
     'checkpoint: al_train.py refuses to resume from it, nothing runs'),
    ('checkpoint-payload-hook', 'the same payload as `load_from` of a run with '
     'ISALSelectionHook under mmdet\'s train.py: refused, nothing runs'),
    ('checkpoint-real', 'a checkpoint of a real training run (message hub, numpy scalars) loads '
     'as data without any flag'),
    ('checkpoint-extra-type', 'a checkpoint holding a type beyond mmengine\'s and mmdet\'s: '
     'refused naming the type and --unsafe-load'),
    ('unsafe-load-flag', 'with --unsafe-load (ISALSelectionHook: unsafe_load=True) that '
     'checkpoint loads, with a warning naming the file'),
    ('checkpoint-url-payload', 'the same payload at an http:// URL (load_from, a backbone\'s '
     'init_cfg, a torchvision:// name): refused naming the URL and the type, nothing runs'),
    ('checkpoint-url-real', 'a checkpoint at an http:// URL loads as data, downloaded to '
     'torch\'s cache ($TORCH_HOME)'),
    ('checkpoint-url-unsafe', 'with --unsafe-load the payload at a URL loads, as a local file '
     'would'),
    ('checkpoint-url-missing', 'a URL the server answers with 404, or a truncated checkpoint '
     'at a URL: names the URL (and the downloaded copy to delete)'),
    ('checkpoint-url-select', 'al_select.py given a trained checkpoint\'s http:// URL: loads it '
     'as data and selects'),
    ('checkpoint-other-schemes', 'the payload through mmengine\'s other schemes (s3:// and '
     'petrel:// storage, pavi://, an open-mmlab:// name that resolves to a file): refused naming '
     'the name and the type, nothing runs, while a real checkpoint through them loads'),
    ('checkpoint-text', 'a text file as the checkpoint: not a readable checkpoint'),
    ('checkpoint-truncated', 'a truncated checkpoint: not a readable checkpoint'),
    ('checkpoint-truncated-resume', 'a truncated iter_N.pth in an unfinished round: names the '
     'file and says to delete it and run the same command again'),
    ('out-is-a-file', 'al_select.py --out naming an existing file: an error before the '
     'checkpoint is loaded, the file untouched'),
    ('budget-zero', 'al_select.py --budget 0: an error, not the config\'s budget'),
    ('labelled-mixed-ids', '--labelled holding 5 among string ids: names the file and entry'),
    ('labelled-not-a-list', '--labelled holding a JSON object: names the file'),
    ('labelled-not-utf8', '--labelled not UTF-8: names the file and the byte'),
    ('selection-without-selected', 'a round\'s selection.json without "selected": names the '
     'file and the field'),
    ('subset-ids-file-bad-entry', 'an ActiveSubset ids_file holding a nested list, a float or '
     'an id twice: names the file and the entry, before the dataset is read'),
    ('subset-ids-bad-entry', 'the same entries, or a string, as ActiveSubset ids in a config: '
     'names ActiveSubset.ids and the entry, before the dataset is read'),
    ('annotations-directory', 'al_train.py --annotations naming a folder'),
    ('work-dir-is-a-file', 'al_train.py --work-dir naming an existing file'),
    ('work-dir-read-only', 'a work dir that cannot be written'),
    ('data-root-typo', 'a data_root typo: an error that leaves no experiment.json, so the '
     'corrected command runs'),
    ('work-dir-moved-resumes', 'a work dir moved elsewhere resumes its interrupted round from '
     "its own checkpoint (mmengine's pointers hold the old absolute path)"),
    ('work-dir-moved-extends', 'the moved work dir extends the finished experiment by a round, '
     'warm starting from its own checkpoint'),
    ('config-unreadable', 'a config path that does not exist, or a config with a syntax error, '
     'given to al_train.py, al_select.py, al_study.py or labelstudio_backend.py: names the '
     'file, nothing written'),
    ('port-out-of-range', 'labelstudio_backend.py --port 99999: names the flag and the range'),
    ('study-unknown-strategy', 'al_study.py --strategies random dcuss, or an unknown lever: '
     'names the strategy before any trains, nothing written'),
    ('study-seed-twice', 'al_study.py --seeds 0 0 (one seed would enter the paired statistics '
     'twice): names the seed'),
    ('pool-too-small', 'initial_size larger than the pool, or budget × rounds beyond it: an '
     'error before round 0 trains that leaves no experiment.json'),
    ('warm-start-checkpoint-gone', "warm_start=True with the previous round's checkpoint "
     'deleted: names its folder before the round writes a file, not a silent training from '
     'scratch'),
    ('subset-id-forms', 'ActiveSubset ids in another form than the dataset\'s (a COCO id as the '
     'string "3", a VOC id as a file name or path): resolved to the dataset\'s id, or names '
     'the entry and the form expected'),
    ('subset-empty', 'an ActiveSubset of no image (an empty list, or no id of the dataset): an '
     'error when the dataloader is built, not a training loop that waits forever'),
    ('budget-nothing-found', 'a budget in boxes or seconds with a model that finds no box in '
     "the pool: each image priced at the reference set's real boxes per image, recorded as "
     'fallback in selection.json (an error if the reference set has no box either)'),
    ('budget-free-seconds', 'a budget in seconds with per_image and per_box both 0: names '
     'active_learning.cost'),
    ('split-overlap', "with reference='val', a test split sharing images with the val split "
     'or the pool, or a val split sharing images with the pool: names both before round 0, '
     'unless active_learning.allow_split_overlap=True'),
    ('split-overlap-select', "the same overlap in tools/al_select.py (reference 'val') and in "
     "ISALSelectionHook (reference='val'): names both before a model is loaded or training "
     'starts, unless allow_split_overlap=True (the active_learning block; the hook\'s '
     'argument)'),
    ('semi-settings', 'active_learning.semi neither None nor a dict, a field it does not know, or '
     'a value out of its range (momentum outside (0, 1), cls_pseudo_thr outside [0, 1], '
     'unsup_weight below 0, unlabelled_per_labelled below 1): names '
     'active_learning.semi.<field> before round 0 (tests/test_semi.py)'),
]
OPTS = {'train_cfg.max_iters': 2, 'active_learning.rounds': 2,
        'active_learning.strategy': 'random', 'active_learning.warm_start': True}


def digests(folder):
    return {osp.relpath(osp.join(root, name), folder):
            hashlib.sha256(open(osp.join(root, name), 'rb').read()).hexdigest()
            for root, _, files in os.walk(folder) for name in files}


def assert_unchanged(folder, before):
    """Every file there before is still there, byte for byte (but the config copy mmengine
    writes at every start); nothing is half-written."""
    after = digests(folder)
    kept = [k for k in before if not (osp.basename(osp.dirname(k)) == 'train' and
                                      k.endswith('.py'))]
    assert {k: after.get(k) for k in kept} == {k: before[k] for k in kept}
    assert_intact(folder)


def payload_checkpoint(path, marker):
    """A checkpoint whose unpickling would create ``marker``."""
    class Payload:
        def __reduce__(self):
            return open, (str(marker), 'w')

    torch.save({'state_dict': {}, 'meta': {'note': Payload()}}, path)


@pytest.fixture(scope='module')
def finished(synthetic_voc, tmp_path_factory):
    """A 2-round run trained in one folder and moved to another, after a failed start (a
    data_root typo) in that same folder."""
    tmp = tmp_path_factory.mktemp('untrusted')
    typo = al_train(tmp / 'trained', synthetic_voc + '_typo', **OPTS)
    leftovers = sorted(os.listdir(tmp / 'trained')) if osp.exists(tmp / 'trained') else []
    res = al_train(tmp / 'trained', synthetic_voc, **OPTS)
    assert res.returncode == 0, res.stderr[-3000:]
    shutil.move(tmp / 'trained', tmp / 'w')
    work = tmp / 'w'
    return SimpleNamespace(tmp=tmp, work=work, data=synthetic_voc, typo=typo,
                           typo_leftovers=leftovers,
                           checkpoint=work / 'round_0' / 'train' / 'iter_2.pth',
                           labelled=work / 'round_0' / 'labeled.json')


def copy_work(finished, name):
    dest = finished.tmp / name
    shutil.copytree(finished.work, dest)
    return dest


def test_data_root_typo_leaves_nothing_that_refuses_the_corrected_run(finished):
    assert_one_line_error(finished.typo, 'train_dataloader.dataset.data_root: folder not '
                          f'found: {finished.data}_typo')
    assert 'experiment.json' not in finished.typo_leftovers
    assert json.load(open(finished.work / 'summary.json'))[1]['num_labelled'] == 9


# -- al_select: every case in one interpreter --------------------------------------------------

@pytest.fixture(scope='module')
def select_cases(finished):
    """``{case: (rc, stderr)}`` of tools/al_select.py's main() per case, and the files."""
    tmp = finished.tmp / 'select'
    tmp.mkdir()
    f = SimpleNamespace(marker=tmp / 'PAYLOAD_RAN', text=tmp / 'notes.pth',
                        truncated=tmp / 'cut.pth', extra=tmp / 'extra.pth',
                        out_file=tmp / 'taken.txt', payload=tmp / 'payload.pth',
                        mixed=tmp / 'mixed.json', not_list=tmp / 'obj.json',
                        latin=tmp / 'latin.json')
    payload_checkpoint(f.payload, f.marker)
    f.text.write_text('these are not weights\n')
    data = finished.checkpoint.read_bytes()
    f.truncated.write_bytes(data[:len(data) // 2])
    ckpt = torch.load(finished.checkpoint, map_location='cpu', weights_only=False)
    ckpt['meta']['args'] = argparse.Namespace(lr=0.01)
    torch.save(ckpt, f.extra)
    f.out_file.write_text('keep me\n')
    ids = json.load(open(finished.labelled))
    f.mixed.write_text(json.dumps(ids + [5]))
    f.not_list.write_text(json.dumps({'ids': ids}))
    f.latin.write_bytes(json.dumps(ids + ['caf\u00e9'], ensure_ascii=False).encode('latin-1'))
    good = [str(finished.checkpoint), '--labelled', str(finished.labelled)]
    cases = {
        'checkpoint-payload-select': [str(f.payload), '--labelled', str(finished.labelled)],
        'checkpoint-text': [str(f.text), '--labelled', str(finished.labelled)],
        'checkpoint-truncated': [str(f.truncated), '--labelled', str(finished.labelled)],
        'checkpoint-extra-type': [str(f.extra), '--labelled', str(finished.labelled)],
        'out-is-a-file': good + ['--out', str(f.out_file)],
        'budget-zero': good + ['--budget', '0'],
        'labelled-mixed-ids': [str(finished.checkpoint), '--labelled', str(f.mixed)],
        'labelled-not-a-list': [str(finished.checkpoint), '--labelled', str(f.not_list)],
        'labelled-not-utf8': [str(finished.checkpoint), '--labelled', str(f.latin)],
        'checkpoint-real': good,
        'split-overlap-select': good,
    }
    overlap = {'test_dataloader.dataset.ann_file': 'ImageSets/Main/val.txt'}
    argv = {name: [DEMO, *args[:1], *(['--out', str(tmp / name)] if '--out' not in args
                                       else []), *args[1:], '--strategy', 'random',
                   '--cfg-options', *tiny_options(finished.data, **(
                       overlap if name == 'split-overlap-select' else {}))]
            for name, args in cases.items()}
    script = '\n'.join([
        'import io, json, sys, traceback',
        'from contextlib import redirect_stderr',
        f'sys.path.insert(0, {osp.join(ROOT, "tools")!r})',
        'from al_select import main',
        'out = {}',
        'for name, argv in json.loads(sys.argv[1]).items():',
        '    err = io.StringIO()',
        '    with redirect_stderr(err):',
        '        try:',
        '            rc = main(argv)',
        '        except BaseException:',
        '            traceback.print_exc()',
        '            rc = 1',
        '    out[name] = (rc, err.getvalue())',
        'print("RESULT " + json.dumps(out))'])
    res = run('-c', script, json.dumps(argv))
    line = [x for x in res.stdout.splitlines() if x.startswith('RESULT ')]
    assert line, res.stderr[-3000:]
    results = {k: SimpleNamespace(returncode=rc, stderr=err)
               for k, (rc, err) in json.loads(line[0][7:]).items()}
    return SimpleNamespace(files=f, tmp=tmp, res=results)


@pytest.mark.parametrize('case, needles', [
    ('checkpoint-payload-select', ('payload.pth: holds io.open', '--unsafe-load')),
    ('checkpoint-text', ('notes.pth: not a readable checkpoint',)),
    ('checkpoint-truncated', ('cut.pth: not a readable checkpoint',)),
    ('checkpoint-extra-type', ('extra.pth: holds argparse.Namespace', '--unsafe-load')),
    ('out-is-a-file', ('taken.txt: --out must be a folder',)),
    ('budget-zero', ('--budget must be a positive integer, got 0',)),
    ('labelled-mixed-ids', ('mixed.json: entry [6] is 5 (int), the ids before it are str',)),
    ('labelled-not-a-list', ('obj.json: expected a JSON list of image ids, got dict',)),
    ('labelled-not-utf8', ('latin.json: not UTF-8 text (byte 0xe9',)),
    ('split-overlap-select', ('test_dataloader.dataset and val_dataloader.dataset share',
                              'active_learning.allow_split_overlap=True')),
])
def test_al_select_input_error_is_one_line(select_cases, case, needles):
    assert_one_line_error(select_cases.res[case], *needles)
    assert not osp.exists(select_cases.tmp / case)  # no output folder begun


def test_payload_never_runs_and_existing_files_are_untouched(select_cases):
    assert not osp.exists(select_cases.files.marker)
    assert select_cases.files.out_file.read_text() == 'keep me\n'


def test_real_checkpoint_loads_without_any_flag(select_cases):
    res = select_cases.res['checkpoint-real']
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(json.load(open(select_cases.tmp / 'checkpoint-real' / 'selection.json'))[
        'selected']) == 3
    assert_intact(select_cases.tmp / 'checkpoint-real')


def test_unsafe_load_flag_loads_the_refused_checkpoint_with_a_warning(finished, select_cases):
    out = select_cases.tmp / 'unsafe'
    res = run(AL_SELECT, DEMO, select_cases.files.extra, '--out', out, '--unsafe-load',
              '--strategy', 'random', '--labelled', finished.labelled, '--cfg-options',
              *tiny_options(finished.data))
    assert res.returncode == 0, res.stderr[-3000:]
    assert (f'{select_cases.files.extra}: loaded with full unpickling (--unsafe-load)'
            in res.stdout + res.stderr)
    assert osp.exists(out / 'selection.json')


def test_hook_unsafe_load_opts_in_for_the_run(select_cases, monkeypatch):
    from mmengine.runner import CheckpointLoader
    from isal_mmdet import checkpoints
    from isal_mmdet.al.hook import ISALSelectionHook
    monkeypatch.setattr(checkpoints, '_unpickle', False)
    with pytest.raises(ValueError, match='holds argparse.Namespace'):
        CheckpointLoader.load_checkpoint(str(select_cases.files.extra), map_location='cpu')
    ISALSelectionHook(strategy='random', budget=1, unsafe_load=True)
    loaded = CheckpointLoader.load_checkpoint(str(select_cases.files.extra), map_location='cpu')
    assert loaded['meta']['args'].lr == 0.01


# -- checkpoints at a URL ----------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A tmp folder served over HTTP on 127.0.0.1 (no proxy), torch hub's cache in another."""
    root = tmp_path / 'www'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy',
                'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    from isal_mmdet import checkpoints
    monkeypatch.setattr(checkpoints, '_unpickle', False)
    yield SimpleNamespace(root=root, url=f'http://127.0.0.1:{server.server_port}',
                          cache=tmp_path / 'torch_home' / 'hub' / 'checkpoints')
    server.shutdown()
    server.server_close()
    thread.join()


def test_checkpoint_at_a_url_loads_as_data(served):
    import numpy as np
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import CheckpointLoader
    hub = HistoryBuffer()
    hub.update(0.5)
    torch.save({'state_dict': {'w': torch.arange(3.)}, 'meta': {'loss': hub,
                                                                'lr': np.float64(0.01)}},
               served.root / 'good.pth')
    loaded = CheckpointLoader.load_checkpoint(f'{served.url}/good.pth', map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.arange(3.))
    assert loaded['meta']['loss'].mean() == 0.5 and loaded['meta']['lr'] == 0.01
    assert (served.cache / 'good.pth').read_bytes() == (served.root / 'good.pth').read_bytes()


def test_payload_at_a_url_is_refused_naming_the_url_and_never_runs(served, monkeypatch):
    """Through the http:// loader (``load_from``, ``runner.load_checkpoint``) and through a
    ``torchvision://`` name, which mmengine resolves to a URL inside its own module."""
    import mmengine.runner.checkpoint as mmengine_checkpoint
    from mmengine.runner import CheckpointLoader
    marker = served.root.parent / 'PAYLOAD_RAN'
    payload_checkpoint(served.root / 'payload.pth', marker)
    url = f'{served.url}/payload.pth'
    with pytest.raises(ValueError) as e:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert str(e.value).startswith(f'{url}: holds io.open') and '\n' not in str(e.value)
    assert '--unsafe-load' in str(e.value)
    monkeypatch.setattr(mmengine_checkpoint, 'get_torchvision_models',
                        lambda: {'resnet_payload': url})
    with pytest.raises(ValueError, match=f'^{url}: holds io.open'):
        CheckpointLoader.load_checkpoint('torchvision://resnet_payload', map_location='cpu')
    assert not osp.exists(marker)


def test_unsafe_load_loads_the_payload_at_a_url(served):
    from mmengine.runner import CheckpointLoader
    from isal_mmdet.checkpoints import allow_unpickling
    marker = served.root.parent / 'PAYLOAD_RAN'
    payload_checkpoint(served.root / 'payload.pth', marker)
    allow_unpickling()  # the fixture puts the flag back
    loaded = CheckpointLoader.load_checkpoint(f'{served.url}/payload.pth', map_location='cpu')
    loaded['meta']['note'].close()
    assert osp.exists(marker) and loaded['state_dict'] == {}


def test_al_select_takes_a_checkpoint_url(finished, served):
    shutil.copyfile(finished.checkpoint, served.root / 'trained.pth')
    out = finished.tmp / 'from_url'
    res = run(AL_SELECT, DEMO, f'{served.url}/trained.pth', '--out', out, '--strategy', 'random',
              '--labelled', finished.labelled, '--cfg-options', *tiny_options(finished.data))
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(json.load(open(out / 'selection.json'))['selected']) == 3
    assert (served.cache / 'trained.pth').read_bytes() == finished.checkpoint.read_bytes()


def test_payload_through_the_other_schemes_is_refused_and_never_runs(tmp_path, monkeypatch):
    """Object storage, pavi and open-mmlab names that resolve to a file, each fetched through
    a stand-in for its backend (none is reachable here)."""
    import mmengine.runner.checkpoint as mmengine_checkpoint
    from mmengine.runner import CheckpointLoader
    from isal_mmdet import checkpoints
    monkeypatch.setattr(checkpoints, '_unpickle', False)
    marker = tmp_path / 'PAYLOAD_RAN'
    files = {'payload.pth': tmp_path / 'payload.pth', 'good.pth': tmp_path / 'good.pth'}
    payload_checkpoint(files['payload.pth'], marker)
    torch.save({'state_dict': {'w': torch.ones(2)}}, files['good.pth'])

    class Storage:
        def get(self, name):
            return files[osp.basename(name)].read_bytes()

    class Model:
        def __init__(self, name):
            self.name = osp.basename(name)

        def download(self, path):
            shutil.copyfile(files[self.name], path)

    monkeypatch.setattr(checkpoints, 'get_file_backend', lambda name, backend_args: Storage())
    monkeypatch.setitem(sys.modules, 'pavi', SimpleNamespace(
        modelcloud=SimpleNamespace(get=Model)))
    monkeypatch.setattr(mmengine_checkpoint, '_get_mmengine_home', lambda: str(tmp_path))
    monkeypatch.setattr(mmengine_checkpoint, 'get_external_models',
                        lambda: {'payload': 'payload.pth', 'good': 'good.pth'})
    names = ['s3://bucket/{}.pth', 'cluster:s3://bucket/{}.pth', 'petrel://bucket/{}.pth',
             'pavi://models/{}.pth']
    for name in names:
        with pytest.raises(ValueError) as e:
            CheckpointLoader.load_checkpoint(name.format('payload'), map_location='cpu')
        assert str(e.value).startswith(f"{name.format('payload')}: holds io.open")
        assert '\n' not in str(e.value)
        good = CheckpointLoader.load_checkpoint(name.format('good'), map_location='cpu')
        assert torch.equal(good['state_dict']['w'], torch.ones(2))
    with pytest.raises(ValueError, match=f"^{tmp_path / 'payload.pth'}: holds io.open"):
        CheckpointLoader.load_checkpoint('open-mmlab://payload', map_location='cpu')
    good = CheckpointLoader.load_checkpoint('openmmlab://good', map_location='cpu')
    assert torch.equal(good['state_dict']['w'], torch.ones(2))
    assert not osp.exists(marker)


def test_missing_or_truncated_checkpoint_at_a_url_names_the_url(served):
    from mmengine.runner import CheckpointLoader
    from isal_mmdet.checkpoints import UnreadableCheckpoint
    url = f'{served.url}/absent.pth'
    with pytest.raises(OSError, match=f'^{url}: could not be downloaded .*404'):
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert not osp.exists(served.cache / 'absent.pth')
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, served.root / 'cut.pth')
    data = (served.root / 'cut.pth').read_bytes()
    (served.root / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(UnreadableCheckpoint) as e:
        CheckpointLoader.load_checkpoint(f'{served.url}/cut.pth', map_location='cpu')
    assert str(e.value).startswith(f'{served.url}/cut.pth: not a readable checkpoint')
    assert f"downloaded to {served.cache / 'cut.pth'}: delete it" in str(e.value)
    assert '\n' not in str(e.value)


# -- id files a dataset reads ------------------------------------------------------------------

class RecordingDataset:
    """An mmdet-like dataset of images 'a', 'b', 'c' that records whether it was read."""
    metainfo = {}

    def __init__(self):
        self.read = False

    def full_init(self):
        self.read = True

    def __len__(self):
        return 3

    def get_data_info(self, idx):
        return {'img_id': 'abc'[idx]}


@pytest.mark.parametrize('lazy_init', [False, True])
@pytest.mark.parametrize('ids, needle', [
    (['a', ['b']], "entry [1] is ['b'], not an image id"),
    ([1, 2.5], 'entry [1] is 2.5, not an image id'),
    (['a', 'b', 'a'], "entry [2] 'a' is listed twice (entry [0] too)"),
])
def test_active_subset_ids_file_with_a_bad_entry_names_file_and_entry(tmp_path, ids, needle,
                                                                        lazy_init):
    from isal_mmdet.datasets.al_subset import ActiveSubset
    path = tmp_path / 'labeled.json'
    path.write_text(json.dumps(ids))
    inner = RecordingDataset()
    with pytest.raises(ValueError) as e:
        subset = ActiveSubset(inner, ids_file=str(path), lazy_init=lazy_init)
        len(subset)
    assert str(e.value).startswith(f'{path}: {needle}') and '\n' not in str(e.value)
    assert not inner.read
    path.write_text(json.dumps(['c', 'a']))
    assert ActiveSubset(inner, ids_file=str(path)).img_ids() == ['c', 'a']


@pytest.mark.parametrize('ids, needle', [
    (['a', ['b']], "entry [1] is ['b'], not an image id"),
    ([1, 2.5], 'entry [1] is 2.5, not an image id'),
    (('a', 'b', 'a'), "entry [2] 'a' is listed twice (entry [0] too)"),
    ('abc', 'expected a list of image ids, got str'),
    (7, 'expected a list of image ids, got int'),
])
def test_active_subset_ids_with_a_bad_entry_name_the_entry(ids, needle):
    from isal_mmdet.datasets.al_subset import ActiveSubset
    inner = RecordingDataset()
    with pytest.raises(ValueError) as e:
        ActiveSubset(inner, ids=ids)
    assert str(e.value).startswith(f'ActiveSubset.ids: {needle}') and '\n' not in str(e.value)
    assert not inner.read
    assert ActiveSubset(inner, ids=('c', 'a')).img_ids() == ['c', 'a']


# -- al_train and the hook ---------------------------------------------------------------------

def unfinished(finished, name):
    """A copy of the work dir whose last round trained but was not tested."""
    work = copy_work(finished, name)
    os.remove(work / 'round_1' / 'metrics.json')
    return work


def test_payload_as_an_unfinished_rounds_checkpoint_never_runs(finished):
    work = unfinished(finished, 'payload_resume')
    marker = finished.tmp / 'PAYLOAD_RAN_RESUME'
    payload_checkpoint(work / 'round_1' / 'train' / 'iter_2.pth', marker)
    before = digests(work)
    res = al_train(work, finished.data, **OPTS)
    assert_one_line_error(res, f"{work / 'round_1' / 'train' / 'iter_2.pth'}: holds io.open",
                          '--unsafe-load')
    assert not osp.exists(marker)
    assert_unchanged(work, before)


def test_truncated_checkpoint_of_an_unfinished_round_says_what_to_do(finished):
    work = unfinished(finished, 'truncated_resume')
    ckpt = work / 'round_1' / 'train' / 'iter_2.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:4096])
    before = digests(work)
    res = al_train(work, finished.data, **OPTS)
    assert_one_line_error(res, f'{ckpt}: not a readable checkpoint',
                          'delete it and run the same command again')
    assert_unchanged(work, before)


def test_payload_as_load_from_under_the_hook_never_runs(finished):
    tmp = finished.tmp / 'hook'
    tmp.mkdir()
    marker = tmp / 'PAYLOAD_RAN'
    payload_checkpoint(tmp / 'payload.pth', marker)
    cfg = tmp / 'cfg.py'
    cfg.write_text(f"_base_ = {DEMO!r}\nload_from = {str(tmp / 'payload.pth')!r}\n"
                   "custom_hooks = [dict(type='ISALSelectionHook', strategy='random', "
                   "budget=2)]\n")
    res = run(UPSTREAM_TRAIN, cfg, '--work-dir', tmp / 'work', '--cfg-options',
              *tiny_options(finished.data, **OPTS))
    assert res.returncode != 0
    assert f"{tmp / 'payload.pth'}: holds io.open" in res.stderr
    assert not osp.exists(marker)
    assert not list((tmp / 'work').rglob('*.pth'))


def test_selection_without_selected_names_file_and_field(finished):
    work = copy_work(finished, 'no_selected')
    shutil.rmtree(work / 'round_1')
    sel = work / 'round_0' / 'selection.json'
    data = json.load(open(sel))
    del data['selected']
    sel.write_text(json.dumps(data))
    before = digests(work)
    res = al_train(work, finished.data, **OPTS)
    assert_one_line_error(res, f'{sel}: no "selected" field')
    assert_unchanged(work, before)
    assert not osp.exists(work / 'round_1')


def test_annotations_directory_is_an_error(finished, tmp_path):
    res = al_train(tmp_path / 'w', finished.data, '--oracle', 'none', '--annotations', tmp_path,
                   **OPTS)
    assert_one_line_error(res, f'--annotations {tmp_path}: a folder')
    assert not osp.exists(tmp_path / 'w')


def test_work_dir_that_is_a_file_is_an_error(finished, tmp_path):
    taken = tmp_path / 'w'
    taken.write_text('not a folder\n')
    res = al_train(taken, finished.data, **OPTS)
    assert_one_line_error(res, f'{taken}: the work dir must be a folder')
    assert taken.read_text() == 'not a folder\n'


def test_read_only_work_dir_is_an_error(finished, tmp_path):
    """As root a mode-0555 folder stays writable; sysfs refuses a new folder to anyone."""
    if os.geteuid() == 0:
        work = '/sys/isal_untrusted_w'
    else:
        os.chmod(tmp_path, 0o555)
        work = str(tmp_path / 'w')
    res = al_train(work, finished.data, **OPTS)
    assert_one_line_error(res, work)
    assert not osp.exists(work)


@pytest.fixture(scope='module')
def moved(finished):
    """The moved work dir with its last round interrupted before testing, run again with one
    round more."""
    work = unfinished(finished, 'moved')
    ckpts = {k: digests(work / f'round_{k}' / 'train')['iter_2.pth'] for k in (0, 1)}
    res = al_train(work, finished.data, **dict(OPTS, **{'active_learning.rounds': 3}))
    return SimpleNamespace(work=work, res=res, ckpts=ckpts)


def test_moved_work_dir_resumes_its_interrupted_round(moved):
    assert moved.res.returncode == 0, moved.res.stderr[-3000:]
    for k in (0, 1):  # resumed from, not trained again
        assert digests(moved.work / f'round_{k}' / 'train')['iter_2.pth'] == moved.ckpts[k]
    assert osp.exists(moved.work / 'round_1' / 'metrics.json')


def test_moved_work_dir_extends_the_finished_experiment(moved):
    assert moved.res.returncode == 0, moved.res.stderr[-3000:]
    rows = json.load(open(moved.work / 'summary.json'))
    assert [r['num_labelled'] for r in rows] == [6, 9, 12]
    warm = open(moved.work / 'round_2' / 'train' / 'last_checkpoint').read().strip()
    assert warm.startswith(str(moved.work))
    assert f"Load checkpoint from {moved.work / 'round_1' / 'train' / 'iter_2.pth'}" in \
        moved.res.stdout + moved.res.stderr
    assert_intact(moved.work)


# -- checked before anything trains: tools' main() in this process -----------------------------

def tool(name, capsys, *argv):
    """tools/<name>.py's main() here (the imports paid once): its exit code and stderr."""
    if osp.join(ROOT, 'tools') not in sys.path:
        sys.path.insert(0, osp.join(ROOT, 'tools'))
    capsys.readouterr()
    rc = importlib.import_module(name).main([str(a) for a in argv])
    return SimpleNamespace(returncode=rc, stderr=capsys.readouterr().err)


@pytest.mark.parametrize('name, args', [
    ('al_train', ['--work-dir', 'w']), ('al_select', ['x.pth', '--out', 'w']),
    ('al_study', ['--work-dir', 'w']), ('labelstudio_backend', ['--work-dir', 'w'])])
def test_unreadable_config_is_one_line_in_every_tool(tmp_path, monkeypatch, capsys, name, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'broken.py').write_text("model = dict(type='RetinaNet'\n")
    for config, needle in (('absent.py', 'config file not found'),
                           ('broken.py', 'cannot be read as a config (SyntaxError')):
        res = tool(name, capsys, config, *args)
        assert res.returncode == 2
        assert_one_line_error(res, f'{config}: {needle}')
    assert os.listdir(tmp_path) == ['broken.py']


def test_backend_port_out_of_range_is_one_line(tmp_path, capsys):
    res = tool('labelstudio_backend', capsys, DEMO, '--work-dir', tmp_path / 'w', '--port',
               '99999')
    assert res.returncode == 2
    assert_one_line_error(res, '--port 99999: a TCP port is 1 to 65535')
    assert not osp.exists(tmp_path / 'w')


@pytest.mark.parametrize('args, needle', [
    (['--strategies', 'random', 'dcuss'],
     "--strategies dcuss: active_learning.strategy: unknown strategy 'dcuss'"),
    (['--strategies', 'random', 'isal-nolever'],
     "--strategies isal-nolever: unknown ISAL lever 'nolever'"),
    (['--strategies', 'random', '--seeds', '0', '0'], '--seeds: 0 is given twice'),
])
def test_study_checks_every_strategy_and_seed_before_training(tmp_path, capsys, args, needle):
    res = tool('al_study', capsys, DEMO, '--work-dir', tmp_path / 'w', *args)
    assert res.returncode == 2
    assert_one_line_error(res, needle)
    assert not osp.exists(tmp_path / 'w')


def al_train_here(capsys, work, data, **options):
    return tool('al_train', capsys, DEMO, '--work-dir', work, '--cfg-options',
                *tiny_options(data, **options))


@pytest.mark.parametrize('options, needle', [
    ({'active_learning.initial_size': 10_000}, 'initial_size=10000 is larger than the pool'),
    ({'active_learning.rounds': 100}, 'active_learning.rounds=100: initial_size=6 and 99 '
                                      'selection(s) of 3 image(s) need 303 images'),
    ({'test_dataloader.dataset.ann_file': 'ImageSets/Main/val.txt'},
     'test_dataloader.dataset and val_dataloader.dataset share'),
    ({'val_dataloader.dataset.ann_file': 'ImageSets/Main/train.txt'},
     'train_dataloader.dataset and val_dataloader.dataset share'),
])
def test_pool_and_split_errors_come_before_experiment_json(synthetic_voc, tmp_path, capsys,
                                                           options, needle):
    res = al_train_here(capsys, tmp_path / 'w', synthetic_voc, **options)
    assert res.returncode == 2
    assert_one_line_error(res, needle)
    assert not osp.exists(tmp_path / 'w' / 'experiment.json')


def test_split_overlap_runs_when_the_config_allows_it(synthetic_voc, tmp_path):
    from isal_mmdet.al.loop import ActiveLearningLoop
    from isal_mmdet.fileio import load_config
    cfg = load_config(DEMO, {f'{s}_dataloader.dataset.data_root': synthetic_voc
                             for s in ('train', 'val', 'test')})
    cfg.merge_from_dict({'test_dataloader.dataset.ann_file': 'ImageSets/Main/val.txt',
                         'active_learning.initial_size': 6, 'active_learning.budget': 3,
                         'active_learning.allow_split_overlap': True})
    ActiveLearningLoop(cfg, str(tmp_path / 'w')).setup()
    assert osp.exists(tmp_path / 'w' / 'experiment.json')


@pytest.mark.parametrize('allow', [False, True])
def test_hook_checks_the_split_overlap_before_training(synthetic_voc, allow):
    """The hook on a config whose test split is its val split (as many mmdet configs are):
    refused before training naming both, unless its allow_split_overlap says otherwise."""
    from isal_mmdet.al.hook import ISALSelectionHook
    from isal_mmdet.fileio import load_config
    cfg = load_config(DEMO, {f'{s}_dataloader.dataset.data_root': synthetic_voc
                             for s in ('train', 'val', 'test')})
    cfg.merge_from_dict({'test_dataloader.dataset.ann_file': 'ImageSets/Main/val.txt'})
    hook = ISALSelectionHook(strategy='random', budget=2, allow_split_overlap=allow)
    runner = SimpleNamespace(cfg=cfg)
    if allow:
        hook.before_train(runner)
        return
    with pytest.raises(ValueError) as e:
        hook.before_train(runner)
    assert str(e.value).startswith('test_dataloader.dataset and val_dataloader.dataset share')
    assert 'ISALSelectionHook.allow_split_overlap=True' in str(e.value)
    assert '\n' not in str(e.value)
    cfg.merge_from_dict({'test_dataloader.dataset.ann_file': 'ImageSets/Main/test.txt'})
    hook.before_train(runner)  # disjoint splits pass


def test_warm_start_from_a_deleted_checkpoint_names_it(finished, capsys):
    work = copy_work(finished, 'no_warm_start')
    shutil.rmtree(work / 'round_1')
    os.remove(work / 'round_0' / 'train' / 'iter_2.pth')
    before = digests(work)
    res = al_train_here(capsys, work, finished.data, **OPTS)
    assert_one_line_error(res, f"{work / 'round_0' / 'train'}: round 0's checkpoint is missing",
                          'warm_start=True starts round 1 from it')
    assert_unchanged(work, before)
    assert not osp.exists(work / 'round_1')


class NumberedDataset(RecordingDataset):
    """Images 1, 2, 3: integer ids, as COCO's."""
    def get_data_info(self, idx):
        return {'img_id': idx + 1}


@pytest.mark.parametrize('inner, ids, got', [
    (RecordingDataset, ['a.jpg', 'JPEGImages/c.jpg', '/data/voc/b.png'], ['a', 'c', 'b']),
    (NumberedDataset, ['3', '1'], [3, 1]),
])
def test_active_subset_ids_of_another_form_resolve(inner, ids, got):
    from isal_mmdet.datasets.al_subset import ActiveSubset
    assert ActiveSubset(inner(), ids=ids).img_ids() == got


@pytest.mark.parametrize('inner, ids, needle', [
    (RecordingDataset, ['a', 'x.jpg'], "entry [1] 'x.jpg' is no image id of the dataset, whose "
                                       "ids are strs like 'a'"),
    (NumberedDataset, ['x'], "entry [0] 'x' is no image id of the dataset, whose ids are ints "
                             'like 1'),
    (RecordingDataset, ['a', 'a.jpg'], "entry [1] 'a.jpg' is image 'a' again (entry [0])"),
    (RecordingDataset, [], 'no image id: no image to use'),
    (RecordingDataset, ['z'], 'none of its 1 ids is an image of the dataset'),
])
def test_active_subset_of_no_image_or_an_unknown_form_is_one_line(inner, ids, needle):
    from isal_mmdet.datasets.al_subset import ActiveSubset
    with pytest.raises(ValueError) as e:
        ActiveSubset(inner(), ids=ids)
    assert str(e.value).startswith(f'ActiveSubset.ids: {needle}') and '\n' not in str(e.value)


def test_empty_subset_ends_the_dataloader_mmengine_would_wait_on(synthetic_voc, tmp_path):
    """mmengine's InfiniteSampler over no image waits forever for a first batch (the hang
    under mmdet's train.py); the dataloader is not built."""
    import re
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner
    from conftest import TEST_PIPELINE
    register_all_modules(init_default_scope=True)
    ids = tmp_path / 'labelled.json'
    ids.write_text(json.dumps(['nope']))
    with pytest.raises(ValueError, match=f'^{re.escape(str(ids))}: none of its 1 ids is an'):
        Runner.build_dataloader(dict(
            batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler'),
            dataset=dict(type='ActiveSubset', ids_file=str(ids), dataset=dict(
                type='XMLDataset', data_root=synthetic_voc, ann_file='ImageSets/Main/train.txt',
                metainfo=dict(classes=('circle', 'square', 'triangle')),
                data_prefix=dict(sub_data_root=''), pipeline=TEST_PIPELINE))))


def test_box_budget_with_a_model_that_finds_nothing_falls_back(synthetic_voc):
    from conftest import voc_dataset
    from isal_mmdet.al.budget import expected_boxes
    from isal_mmdet.al.settings import budget_of
    from isal_mmdet.al.strategies import SelectionContext
    from isal_mmdet.datasets.al_subset import ActiveSubset
    full = voc_dataset(synthetic_voc)
    first = [full.get_data_info(0)['img_id']]
    ctx = SelectionContext(model=None, pool=ActiveSubset(full, ids=first, invert=True),
                           labelled=ActiveSubset(full, ids=first), progress=False)
    seen = {ctx.pool.get_data_info(i)['img_id']: ([], []) for i in range(len(ctx.pool))}
    classes = ('circle', 'square', 'triangle')
    thr = dict(per_class=dict.fromkeys(classes, 0.5), boxes_per_image=0.0,
               real_boxes_per_image=2.5)
    counts, how = expected_boxes(ctx, seen, thr, classes)
    assert set(counts.values()) == {2.5} and len(counts) == len(ctx.pool)
    assert "reference set's 2.5 real boxes per image" in how['fallback']
    with pytest.raises(ValueError, match='every pool image is expected to cost 0 boxes'):
        expected_boxes(ctx, seen, dict(thr, real_boxes_per_image=0.0), classes)
    with pytest.raises(ValueError, match='^active_learning.cost: per_image and per_box are both'):
        budget_of(dict(budget=60, budget_unit='seconds', cost=dict(per_image=0, per_box=0)))
