"""A user's own distributed training on CPU, with nothing of ours but the hook in the config:
a gloo process group (mmengine's ``init_dist`` wants CUDA), then mmengine's Runner.

    torchrun --nproc_per_node=2 tests/dist_user_train.py CONFIG WORK_DIR
"""
import sys

import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner


def main():
    dist.init_process_group('gloo')
    cfg = Config.fromfile(sys.argv[1])
    cfg.work_dir, cfg.launcher = sys.argv[2], 'pytorch'
    cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False)
    Runner.from_cfg(cfg).train()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
