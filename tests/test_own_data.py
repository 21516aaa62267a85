"""The README's "Your own data" commands, run as the README writes them, to a first selection.

The commands are read from the README's code blocks, so the test fails when the README drifts
from what works. The test only (a) points the paths at a temporary folder, (b) makes the edit
the README asks for (``data_root`` and ``classes`` at the top of the copied template), and
(c) appends ``--cfg-options`` that shrink the run (2 training iterations, a few images): the
templates keep the schedule a user needs.
"""
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import zipfile

from conftest import ROOT

CLASSES = ('circle', 'square', 'triangle')
SMALL_RUN = ['train_cfg.max_iters=2', 'active_learning.initial_size=8',
             'active_learning.budget=4']


def readme_commands(marker):
    """The commands of the README's bash block that names ``marker``, comments dropped."""
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        blocks = re.findall(r'```bash\n(.*?)```', f.read(), re.S)
    block = next(b for b in blocks if marker in b)
    return [line.split('#')[0].strip() for line in block.splitlines()
            if line.split('#')[0].strip()]


def roboflow_zip(tmp_path):
    """A COCO export as Roboflow zips it: train/valid/test, each ``_annotations.coco.json``
    beside its images, and Roboflow's extra category 0 (the project, supercategory 'none')."""
    from isal_mmdet.demo.synthetic import make_synthetic
    gen = tmp_path / 'generated'
    make_synthetic(str(gen), num_images=40, seed=0, fmt='coco', img_size=(160, 120),
                   splits={'train': 0.6, 'valid': 0.2, 'test': 0.2})
    path = tmp_path / 'export.zip'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('README.roboflow.txt', 'exported from roboflow.com\n')
        for split in ('train', 'valid', 'test'):
            with open(gen / 'annotations' / f'instances_{split}.json') as f:
                data = json.load(f)
            data['categories'] = [{'id': 0, 'name': 'shapes', 'supercategory': 'none'}] + [
                dict(c, supercategory='shapes') for c in data['categories']]
            z.writestr(f'{split}/_annotations.coco.json', json.dumps(data))
            for im in data['images']:
                z.write(gen / 'images' / im['file_name'], f"{split}/{im['file_name']}")
    return path


def run(commands, paths, data_root):
    """Runs the commands with the README's paths replaced by ``paths``; after ``cp``, sets
    ``data_root`` and ``classes`` in the copy, as the README says to."""
    outputs = []
    for command in commands:
        for readme_path, real in paths.items():
            command = command.replace(readme_path, str(real))
        argv = shlex.split(command)
        if argv[0] == 'python':
            argv = [sys.executable] + argv[1:]
        if argv[1:2] == ['tools/al_train.py']:
            argv += ['--cfg-options'] + SMALL_RUN
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, OMP_NUM_THREADS='1'))
        assert done.returncode == 0, f'{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}'
        outputs.append(done.stdout)
        if argv[0] == 'cp':
            edit_template(argv[2], data_root)
    return outputs


def edit_template(path, data_root):
    with open(path) as f:
        text = f.read()
    text, n_root = re.subn(r'^data_root = .*$', f'data_root = {str(data_root) + "/"!r}', text,
                           flags=re.M)
    text, n_cls = re.subn(r'^classes = .*$', f'classes = {CLASSES!r}', text, flags=re.M)
    assert (n_root, n_cls) == (1, 1), 'the template no longer sets data_root and classes once'
    with open(path, 'w') as f:
        f.write(text)


def check_first_selection(work_dir, output):
    assert 'round 1 waits for annotations' in output, output
    labelled = set(json.load(open(osp.join(work_dir, 'round_0', 'labeled.json'))))
    selection = json.load(open(osp.join(work_dir, 'round_0', 'selection.json')))
    assert len(labelled) == 8
    assert len(selection['selected']) == 4 and not labelled & set(selection['selected'])
    assert {str(i) for i in selection['selected']} <= set(selection['scores'])
    for name in ('preannotations_labelstudio.json', 'preannotations_coco.json', 'selected.txt'):
        assert osp.isfile(osp.join(work_dir, 'round_0', name)), name


def test_readme_coco_roboflow_export_to_first_selection(tmp_path):
    tmp = tmp_path
    commands = readme_commands('configs/templates/coco_roboflow.py')
    assert [c.split()[:2] for c in commands] == [['python', '-m'], ['cp', 'configs/templates/coco_roboflow.py'],
                                                 ['python', 'tools/al_train.py']]
    data = tmp / 'data' / 'my_set'
    paths = {'my_export.zip': roboflow_zip(tmp), 'data/my_set': data,
             'configs/my_set.py': tmp / 'my_set.py', 'work_dirs/my_set': tmp / 'work'}
    outputs = run(commands, paths, data)
    assert osp.isfile(data / 'valid' / '_annotations.coco.json')
    check_first_selection(tmp / 'work', outputs[-1])


def test_readme_voc_folder_to_first_selection(tmp_path):
    from isal_mmdet.demo.synthetic import make_synthetic
    tmp = tmp_path
    commands = readme_commands('configs/templates/voc.py')
    assert [c.split()[0] for c in commands] == ['cp', 'python']
    data = tmp / 'data' / 'my_voc'
    make_synthetic(str(data), num_images=40, seed=0, fmt='voc', img_size=(160, 120))
    paths = {'configs/my_voc.py': tmp / 'my_voc.py', 'work_dirs/my_voc': tmp / 'work'}
    outputs = run(commands, paths, data)
    check_first_selection(tmp / 'work', outputs[-1])
