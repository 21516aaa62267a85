"""Process-group setup through mmengine, with a gloo path for machines without CUDA.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its Runner gives DDP
``device_ids``; both fail on CPU. Without CUDA we start gloo from torchrun's (or slurm's)
environment and wrap models in a DDP that takes no device ids.
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as tdist
from mmengine.dist import broadcast, init_dist, is_distributed
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMDistributedDataParallel for CPU modules (gloo): drops ``device_ids``."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def init_distributed(launcher: str, port: int = 29500) -> None:
    if launcher == 'none' or is_distributed():
        return
    if torch.cuda.is_available():
        init_dist(launcher, backend='nccl')
        return
    if launcher == 'slurm':
        env = os.environ
        env.setdefault('RANK', env['SLURM_PROCID'])
        env.setdefault('WORLD_SIZE', env['SLURM_NTASKS'])
        env.setdefault('LOCAL_RANK', env['SLURM_LOCALID'])
        env.setdefault('MASTER_PORT', str(port))
        if 'MASTER_ADDR' not in env:
            nodes = subprocess.getoutput(
                f"scontrol show hostname {env['SLURM_NODELIST']} | head -n1")
            env['MASTER_ADDR'] = nodes
    elif launcher != 'pytorch':
        raise ValueError(f"--launcher must be none, pytorch or slurm, got {launcher!r}")
    tdist.init_process_group('gloo')


def end_distributed() -> None:
    """Waits for every rank, then ends the process group. Left to interpreter exit, gloo's
    threads can be torn down out of order and abort a rank that had finished its work
    (SIGABRT, "terminate called without an active exception", seen under load). Only for a
    run that succeeded: after a failure the other ranks may never reach the barrier."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def rank0_model_everywhere(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers copied to every rank after training. DDP keeps the
    parameters in step, but with ``broadcast_buffers=False`` (mmengine's default, and ours)
    each rank's BatchNorm statistics, and a mean teacher's averages of them, are its own
    batches'; rank 0 wrote the checkpoint, so every rank tests and selects with its model."""
    if is_distributed():
        for tensor in getattr(model, 'module', model).state_dict().values():
            broadcast(tensor, 0)


def cpu_wrapper_cfg() -> dict:
    return dict(type='CPUDistributedDataParallel', broadcast_buffers=False)
