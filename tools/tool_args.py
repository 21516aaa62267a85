"""The arguments every tool that runs a config takes: config overrides, the launcher,
checkpoint trust and the rank torchrun passes. Imported before isal_mmdet, so ``--help``
stays fast."""
import argparse

from mmengine.config import DictAction


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Adds ``--cfg-options``, ``--launcher``, ``--unsafe-load`` and ``--local-rank`` to ``p``."""
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config fields, e.g. active_learning.budget=50')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--unsafe-load', action='store_true',
                   help='load checkpoints with full unpickling, which runs any code in them; '
                        'only for files you trust (default: as data, see '
                        'isal_mmdet/checkpoints.py)')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
