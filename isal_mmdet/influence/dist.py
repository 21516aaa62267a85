"""Collective helpers that degrade to no-ops without a process group."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as tdist

from .vector import GroupVector


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank_and_world() -> Tuple[int, int]:
    if is_distributed():
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


def all_reduce_tensor_(t: torch.Tensor) -> torch.Tensor:
    """Sums ``t`` over ranks in place, in float64 so the order of ranks barely matters."""
    if is_distributed():
        buf = t.detach().double()
        tdist.all_reduce(buf)
        t.copy_(buf)
    return t


def all_reduce_sum_(vec: GroupVector) -> GroupVector:
    """Sums every tensor of ``vec`` over ranks in place (see :func:`all_reduce_tensor_`)."""
    for t in vec.tensors():
        all_reduce_tensor_(t)
    return vec


def all_reduce_scalar(x: float) -> float:
    if not is_distributed():
        return x
    t = torch.tensor([x], dtype=torch.float64)
    tdist.all_reduce(t)
    return float(t.item())


def gather_objects(obj: Any) -> Optional[List[Any]]:
    """Every rank's ``obj`` on rank 0 (None elsewhere); ``[obj]`` without a process group."""
    if not is_distributed():
        return [obj]
    out: List[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out if tdist.get_rank() == 0 else None


def merge_over_ranks(local: Dict[Any, Any]) -> Dict[Any, Any]:
    """Every rank's ``local`` dict (disjoint keys: each rank's shard), merged, on every rank."""
    merged: Dict[Any, Any] = {}
    for part in gather_objects(local) or []:
        merged.update(part)
    return broadcast_object(merged)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if is_distributed():
        tdist.barrier()
