"""Score a pool and select from a trained checkpoint, without training.

    python tools/al_select.py CONFIG CHECKPOINT [--strategy NAME] [--budget N]
        [--budget-unit images|boxes|seconds] --out DIR
        [--labelled IDS_JSON] [--reference val|labelled|test] [--batch-size B]
        [--launcher none|pytorch|slurm] [--cfg-options k=v ...] [--unsafe-load]

The labelled set (defines the Hessian, and the pool is everything else) is ``--labelled``,
or the config's ``ActiveSubset`` ids, or else the whole training set with ``--pool``.
"""
import argparse
import sys

from tool_args import add_run_arguments


def strategy_names():
    """The registered product strategies, so that the help cannot drift from the registry
    (research strategies register only with isal_mmdet.study)."""
    from isal_mmdet.al.strategies import STRATEGIES
    return sorted(k for k in STRATEGIES.module_dict if k.islower())


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help='a .pth file, or a name mmengine loads (https://, s3://, '
                                      'open-mmlab://, ...); loaded as data either way')
    p.add_argument('--strategy',
                   help=f"{', '.join(strategy_names())}; "
                        "default: the config's active_learning.strategy, whose arguments are "
                        "also kept when this names its type")
    p.add_argument('--budget', type=lambda v: int(v) if v.lstrip('-').isdigit() else float(v),
                   help="how much to select, in --budget-unit; default: the config's")
    p.add_argument('--budget-unit', choices=['images', 'boxes', 'seconds'],
                   help="default: the config's active_learning.budget_unit (images)")
    p.add_argument('--out', required=True)
    p.add_argument('--labelled', help='JSON list of labelled image ids')
    p.add_argument('--reference', help="val, labelled or test (checked with the config's "
                   "active_learning block); default: the config's")
    p.add_argument('--batch-size', type=int)
    p.add_argument('--seed', type=int)
    add_run_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import isal_mmdet  # noqa: F401
    from isal_mmdet.al.launch import end_distributed
    from isal_mmdet.checkpoints import allow_unpickling
    from isal_mmdet.fileio import load_config
    from isal_mmdet.tools_api import TOOL_OVERRIDES, select_from_checkpoint

    if args.unsafe_load:
        allow_unpickling()

    try:
        cfg = load_config(args.config, args.cfg_options)
        overrides = {k: getattr(args, k) for k in TOOL_OVERRIDES}
        result = select_from_checkpoint(cfg, args.checkpoint, args.out, overrides,
                                        labelled_file=args.labelled, launcher=args.launcher)
    except (ValueError, OSError) as e:  # input errors: one line, no traceback
        print(f'error: {e}', file=sys.stderr)
        return 2
    end_distributed()
    if result.paths:
        print(f"selected {len(result.selected)} images in {result.seconds:.1f}s: "
              f"{result.paths['selection']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
