"""Compare strategies on your data: strategies × seeds through the round loop, paired.

    python tools/al_study.py CONFIG --work-dir W [--strategies random entropy dcus isal]
        [--seeds 0 1 2] [--rounds 3] [--initial 40] [--budget 40] [--noise-seeds 100 101]
        [--seconds-per-image 7.8] [--seconds-per-box 7.0] [--cfg-options k=v ...]
        [--analyse-only] [--merge EARLIER.json] [--report NAME]

A strategy is a registered name (random, entropy, dcus, isal, ...), ``isal`` (the config's
ISAL settings), a research variant of ISAL or ESI (``isal-cg-thr0.5``, ``esi-mean``), or a box
strategy with levers (``entropy_box-image``; isal_mmdet/study/variants.py; ``--help`` lists
them all); ``+semi`` after any of them trains semi-supervised rounds (``random+semi``).
Each seed's strategies start from one shared round 0 (one for the supervised strategies, one
for the semi-supervised ones).
Rerun the same command to resume; more ``--rounds`` or ``--seeds`` extend a study.

Writes W/<report>.json, .md and .png: mAP per round, AUC and the cost to reach random's final
mAP, and paired differences (mean, std, standard error over seeds) against random and
entropy, per labelled image, per box annotated and per second of annotation; with
``--noise-seeds``, the training noise of one round-0 model beside them.
"""
import argparse
import sys


def strategies_help() -> str:
    """Every name --strategies takes, from the registry and the lever tables, so the help
    cannot drift from them."""
    from isal_mmdet.al.strategies import STRATEGIES
    from isal_mmdet.registry import BATCH_STAGES
    from isal_mmdet.study.variants import BOX_LEVERS, ESI_LEVERS, LEVERS, SEMI_LEVER
    names = sorted(k for k in STRATEGIES.module_dict if k.islower())
    stages = sorted(k for k in BATCH_STAGES.module_dict if k.islower())
    return (f"registered: {', '.join(names)}; ISAL variants isal-LEVER[-LEVER...], levers: "
            f"{', '.join(LEVERS)}; ESI variants esi-LEVER..., levers: {', '.join(ESI_LEVERS)}; "
            f"box strategies NAME_box-LEVER..., levers: {', '.join(BOX_LEVERS)}; "
            f"any of them with a batch stage NAME+STAGE, stages: {', '.join(stages)}; "
            f"and any of them +{SEMI_LEVER} (random+semi, dcus+clusters+semi): semi-supervised "
            "rounds, active_learning.semi; default: random entropy dcus isal")


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--strategies', nargs='+', default=['random', 'entropy', 'dcus', 'isal'],
                   help=strategies_help())
    p.add_argument('--seeds', nargs='*', type=int, default=[0, 1, 2],
                   help='none with --merge: re-analyse the earlier report alone')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--initial', type=int, default=40)
    p.add_argument('--budget', type=int, default=40)
    p.add_argument('--noise-seeds', nargs='+', type=int, default=[],
                   help="training seeds for the noise floor of the first seed's round 0")
    p.add_argument('--noise-round', type=int, default=0,
                   help="the round whose training noise --noise-seeds measures (default 0; "
                        "later rounds start from the first strategy's run of the first seed)")
    p.add_argument('--seconds-per-image', type=float, help='default 7.8 (isal_mmdet/al/cost.py)')
    p.add_argument('--seconds-per-box', type=float, help='default 7.0 (isal_mmdet/al/cost.py)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    p.add_argument('--report', default='results',
                   help='names W/<report>.json, W/<report>.md and W/<report>.png')
    p.add_argument('--analyse-only', action='store_true',
                   help='read the finished runs in --work-dir, train nothing')
    p.add_argument('--merge', metavar='EARLIER.json',
                   help='add the seeds of an earlier report of the same setup')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import isal_mmdet  # noqa: F401
    from isal_mmdet.al.cost import AnnotationCost
    from isal_mmdet.study import StudySetup, run_study
    from isal_mmdet.study.report import report
    try:
        cost = AnnotationCost(**{k: v for k, v in (('per_image', args.seconds_per_image),
                                                   ('per_box', args.seconds_per_box))
                                 if v is not None})
        if not args.seeds and not args.merge:
            raise ValueError('--seeds: give at least one seed (or --merge an earlier report)')
        setup = StudySetup(config=args.config, strategies=args.strategies, seeds=args.seeds,
                           rounds=args.rounds, initial=args.initial, budget=args.budget,
                           cfg_options=dict(args.cfg_options))
        res = run_study(setup, args.work_dir, args.report, analyse_only=args.analyse_only,
                        merge=args.merge, cost=cost, noise_seeds=args.noise_seeds,
                        noise_round=args.noise_round)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(report(res, args.strategies))
    return 0


if __name__ == '__main__':
    sys.exit(main())
