"""Serve the active-learning loop to Label Studio as its ML backend.

    LABEL_STUDIO_URL=http://localhost:8080 LABEL_STUDIO_API_KEY=... \\
    python tools/labelstudio_backend.py CONFIG --work-dir W [--host 127.0.0.1] [--port 9090]
        [--project ID] [--retrain-every N] [--cfg-options k=v ...]

See docs/labelstudio_backend.md.
"""
import argparse
import logging
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--work-dir', required=True,
                   help='the experiment (rounds, checkpoints, the backend\'s state)')
    p.add_argument('--host', default='127.0.0.1',
                   help='address to bind (default: this machine only)')
    p.add_argument('--port', type=int, default=9090)
    p.add_argument('--project', type=int,
                   help='the Label Studio project to serve (default: the first to connect); '
                        'requests for any other are refused')
    p.add_argument('--retrain-every', type=int, default=10, metavar='N',
                   help='train the next round after N new, changed or deleted annotations '
                        '(and on "Start training")')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config fields, e.g. active_learning.batch_size=8')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    import uvicorn

    import isal_mmdet  # noqa: F401  (registers components)
    from isal_mmdet.fileio import load_config
    from isal_mmdet.serve.app import create_app
    from isal_mmdet.serve.backend import Backend

    try:
        if not 0 < args.port < 65536:
            raise ValueError(f'--port {args.port}: a TCP port is 1 to 65535')
        cfg = load_config(args.config, args.cfg_options)
        backend = Backend(cfg, args.work_dir, args.project, args.retrain_every)
        backend.start()
    except (ValueError, OSError) as e:  # input errors: one line, no traceback
        print(f'error: {e}', file=sys.stderr)
        return 2
    uvicorn.run(create_app(backend), host=args.host, port=args.port, log_level='warning',
                access_log=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
