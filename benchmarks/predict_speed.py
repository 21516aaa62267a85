"""Label Studio's ``/predict`` against plain inference on the same images, side by side.

    python benchmarks/predict_speed.py [--images 60] [--page 30] [--repeats 7]
        [--train-iters 20] [--data-root DIR] [--out studies/results/predict_speed_cpu.json]

(m) The backend (``isal_mmdet.serve``) under its real uvicorn server, round 0 trained on
synthetic COCO with the demo's tiny RetinaNet (320x240), answers one page of ``--page``
tasks POSTed to ``/predict`` as Label Studio sends them: HTTP and JSON, each task's image
matched by file name, batched inference at the round's fitted thresholds, task scores, Label
Studio's result format. Plain inference is mmdet's ``inference_detector`` with the same
checkpoint on the same image files. The two alternate (which goes first swaps each repeat)
after one warm-up of each; the JSON has every pair's seconds, each ratio, and their median,
min and max, with the machine's load average beside them. No Label Studio is needed: the
page is what it would send, and switching the project's model version is left out.
"""
import argparse
import json
import os
import os.path as osp
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from typing import List

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'isal_retinanet_demo.py')
sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
from selection_speed import spread  # noqa: E402


def coco_config(root: str, train_iters: int):
    """The demo config on the synthetic COCO set at ``root``: a COCO dataset, as the backend
    wants; round 0 labels 6 images and ranks the rest at random (the ranking is precomputed,
    so the strategy does not change what /predict costs)."""
    from isal_mmdet.fileio import load_config
    cfg = load_config(DEMO, {'train_cfg.max_iters': train_iters,
                             'active_learning.initial_size': 6, 'active_learning.budget': 3,
                             'active_learning.strategy': 'random'})
    classes = ('circle', 'square', 'triangle')

    def split(name: str, test: bool) -> dict:
        return dict(type='CocoDataset', data_root=root, metainfo=dict(classes=classes),
                    ann_file=f'annotations/instances_{name}.json',
                    data_prefix=dict(img='images/'), test_mode=test,
                    pipeline=cfg.test_pipeline if test else cfg.train_pipeline)
    cfg.train_dataloader.dataset = split('train', False)
    for name in ('val', 'test'):
        cfg[f'{name}_dataloader'].dataset = split(name, True)
        cfg[f'{name}_evaluator'] = dict(type='CocoMetric', metric='bbox', ann_file=osp.join(
            root, 'annotations', f'instances_{name}.json'))
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def serve(cfg, work: str):
    """A backend whose round 0 is trained, served by uvicorn in a thread: ``(url, backend)``."""
    import uvicorn
    from isal_mmdet.serve.app import create_app
    from isal_mmdet.serve.backend import Backend
    backend = Backend(cfg, work, project=1)
    backend.start()
    backend.training.join()
    if backend.version() != 'round_0':
        sys.exit(f'round 0 did not finish: {backend.health()["round"]}')
    backend.state['published'] = backend.version()  # no Label Studio to switch
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(backend), host='127.0.0.1', port=port,
                                           log_level='warning'))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f'http://127.0.0.1:{port}', backend


def predict_page(url: str, paths: List[str]) -> float:
    """Seconds of one POST /predict of the page, checked to answer every task."""
    body = json.dumps(dict(project='1.0', tasks=[
        dict(id=n + 1, data=dict(image='/data/local-files/?d=' + p.lstrip('/')))
        for n, p in enumerate(paths)])).encode()
    req = urllib.request.Request(url + '/predict', data=body, method='POST',
                                 headers={'Content-Type': 'application/json'})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        got = json.loads(r.read())
    seconds = time.perf_counter() - start
    assert len(got['results']) == len(paths), got
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=60, help='synthetic images (60 %% train)')
    p.add_argument('--page', type=int, default=30, help='tasks per /predict page')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--train-iters', type=int, default=20)
    p.add_argument('--data-root', help='default: a new synthetic COCO set in a temp folder')
    p.add_argument('--out')
    args = p.parse_args()

    import isal_mmdet  # noqa: F401
    from mmdet.apis import inference_detector, init_detector
    from isal_mmdet.demo.synthetic import make_synthetic
    tmp = tempfile.mkdtemp(prefix='predict_speed_')
    root = args.data_root or osp.join(tmp, 'coco')
    if not args.data_root:
        make_synthetic(root, num_images=args.images, seed=0, fmt='coco')
    cfg = coco_config(root, args.train_iters)
    url, backend = serve(cfg, osp.join(tmp, 'w'))
    pool = backend.pool
    paths = [pool.get_data_info(i)['img_path'] for i in range(min(args.page, len(pool)))]
    model = init_detector(cfg, backend.loop.last_checkpoint(0), device='cpu').eval()

    def plain() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            inference_detector(model, paths)
        return time.perf_counter() - start

    predict_page(url, paths), plain()  # warm-up: first calls build caches
    pairs = []
    for r in range(args.repeats):
        if r % 2:
            inference = plain()
            predict = predict_page(url, paths)
        else:
            predict = predict_page(url, paths)
            inference = plain()
        pairs.append(dict(predict_s=predict, inference_s=inference, ratio=predict / inference))
        print(f'repeat {r}: /predict {predict:.2f} s, inference_detector {inference:.2f} s, '
              f'ratio {predict / inference:.2f}', flush=True)
    result = dict(
        page=len(paths), repeats=args.repeats, train_iters=args.train_iters,
        torch_threads=torch.get_num_threads(), cpus=os.cpu_count(),
        load_average_after=os.getloadavg(), pairs=pairs,
        ratio_predict_over_inference=spread([x['ratio'] for x in pairs]),
        predict_s=spread([x['predict_s'] for x in pairs]),
        inference_s=spread([x['inference_s'] for x in pairs]),
        config='configs/isal_retinanet_demo.py on synthetic COCO (tiny RetinaNet, 320x240)')
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
