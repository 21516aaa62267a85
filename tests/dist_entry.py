"""torchrun entry for the distributed tests: runs a tool's ``main`` and, on every rank,
records every file it opens for writing under RECORD_DIR, where the outputs go (the test
asserts there is none; mmengine's own temporary config files elsewhere are not outputs), and
whether the tool left its process group open.

    torchrun --nproc_per_node=2 tests/dist_entry.py RECORD_DIR TOOL [tool args...]

TOOL is a script in tools/, or a path to another script (a user's own training script).

``ISAL_TEST_FAIL_RANK=k`` makes rank k raise inside ISAL scoring.
"""
import builtins
import json
import os
import os.path as osp
import runpy
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main():
    record_dir, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    tool = osp.basename(script)
    if not osp.isabs(script):
        script = osp.join(ROOT, 'tools', script)
    rank = int(os.environ.get('RANK', 0))
    writes = []
    real_open, real_replace = builtins.open, os.replace

    def ours(path):
        return osp.abspath(str(path)).startswith(osp.abspath(record_dir))

    def open_(file, mode='r', *a, **k):
        if any(c in mode for c in 'wax+') and ours(file):
            writes.append(str(file))
        return real_open(file, mode, *a, **k)

    def replace_(src, dst, *a, **k):
        if ours(dst):
            writes.append(str(dst))
        return real_replace(src, dst, *a, **k)

    builtins.open, os.replace = open_, replace_
    if os.environ.get('ISAL_TEST_FAIL_RANK') == str(rank):
        from isal_mmdet.al import strategies

        def fail(self, ctx):
            raise RuntimeError(f'injected failure on rank {rank}')

        strategies.ISAL.score = fail
    sys.argv = [tool] + args
    sys.path.insert(0, osp.join(ROOT, 'tools'))  # as `python tools/<tool>` puts it first
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        builtins.open, os.replace = real_open, real_replace
        with open(osp.join(record_dir, f'writes_{tool}_rank{rank}.json'), 'w') as f:
            json.dump(writes, f)
        with open(osp.join(record_dir, f'group_open_{tool}_rank{rank}.json'), 'w') as f:
            json.dump(torch.distributed.is_initialized(), f)


if __name__ == '__main__':
    main()
