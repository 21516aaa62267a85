"""How far one selection's scores move with the CPU thread count (float32 sums in another
order), side by side in one process: the tolerance the tests and the README state.

    python benchmarks/thread_spread.py CONFIG --work-dir W [--round 0] [--budget 40]
        [--threads 1 2] [--out studies/results/thread_spread.json]

W is a finished ``tools/al_train.py`` work dir; the round's checkpoint and labelled ids are
used with the config's strategy.
"""
import argparse
import json
import os.path as osp
import sys
import tempfile


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--round', type=int, default=0)
    p.add_argument('--budget', type=int, default=40)
    p.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    p.add_argument('--out')
    args = p.parse_args()

    import torch
    from mmengine.config import Config
    import isal_mmdet  # noqa: F401
    from isal_mmdet.fileio import write_json
    from isal_mmdet.tools_api import select_from_checkpoint

    cfg = Config.fromfile(args.config)
    rd = osp.join(args.work_dir, f'round_{args.round}')
    ckpt = open(osp.join(rd, 'train', 'last_checkpoint')).read().strip()
    runs = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            runs[threads] = select_from_checkpoint(cfg, ckpt, tmp, dict(budget=args.budget),
                                                   labelled_file=osp.join(rd, 'labeled.json'))
    base = runs[args.threads[0]]
    out = dict(config=args.config, round=args.round, pool=len(base.scores), rows=[])
    for threads, run in runs.items():
        absd = max(abs(run.scores[k] - v) for k, v in base.scores.items())
        scale = max(abs(v) for v in base.scores.values())
        rel = max(abs(run.scores[k] - v) / abs(v) for k, v in base.scores.items() if v)
        out['rows'].append(dict(threads=threads, max_abs_diff=absd,
                                max_abs_diff_over_largest_score=absd / scale,
                                max_rel_diff=rel,
                                same_selection=run.selected == base.selected,
                                seconds=run.seconds))
    print(json.dumps(out, indent=1))
    if args.out:
        write_json(args.out, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
