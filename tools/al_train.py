"""Run (or resume) an active-learning experiment: train, test, select, repeat.

    python tools/al_train.py CONFIG [--work-dir W] [--cfg-options k=v ...]
                             [--launcher none|pytorch|slurm] [--oracle gt|none] [--force]
                             [--annotations FILE] [--allow-missing] [--unsafe-load]
"""
import argparse
import os.path as osp
import sys

from tool_args import add_run_arguments


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--work-dir', help='default: work_dirs/<config name>')
    p.add_argument('--oracle', choices=['gt', 'none'],
                   help="'gt': simulate labelling with the dataset's boxes (default); "
                        "'none': stop after each selection for real annotation")
    p.add_argument('--annotations', metavar='FILE',
                   help='with --oracle none and a COCO dataset: the labelling tool\'s COCO '
                        'export of the waiting round (default: W/round_<k>/annotations_coco.json)')
    p.add_argument('--allow-missing', action='store_true',
                   help='with --oracle none: selected images missing from the export stay '
                        'unlabelled instead of the round waiting for them')
    p.add_argument('--force', action='store_true',
                   help='continue a work dir written with a different config')
    add_run_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import isal_mmdet  # noqa: F401  (registers components)
    from isal_mmdet.al.launch import end_distributed
    from isal_mmdet.checkpoints import allow_unpickling
    from isal_mmdet.fileio import load_config
    from isal_mmdet.al.loop import ActiveLearningLoop

    if args.unsafe_load:
        allow_unpickling()

    try:
        cfg = load_config(args.config, args.cfg_options)
        work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
            'work_dirs', osp.splitext(osp.basename(args.config))[0])
        loop = ActiveLearningLoop(cfg, work_dir, args.launcher, args.force, args.oracle,
                                  args.annotations, args.allow_missing)
        paused = loop.run()
    except (ValueError, OSError) as e:  # input errors: one line, no traceback
        print(f'error: {e}', file=sys.stderr)
        return 2
    end_distributed()
    if paused:
        print(paused)
        return 0
    print(f'done: {osp.join(loop.work_dir, "summary.csv")}, {osp.join(loop.work_dir, "curve.png")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
