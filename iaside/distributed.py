"""torchrun: joining the process group, and combining every rank's state by the state's own merge rules."""

from __future__ import annotations

import os

import numpy as np
import torch

from .engine import EngineState
from .errors import IasideError
from .fills import processing_order


def setup(device: str) -> tuple[tuple[int, int] | None, str]:
    """Under torchrun (WORLD_SIZE > 1): join the process group; returns ((rank, world), device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None, device
    import torch.distributed as dist

    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return (dist.get_rank(), dist.get_world_size()), device


def all_reduce(state: EngineState, device: str) -> EngineState:
    """Combine every rank's state (they hold disjoint images) field by field, by the state's merge rules.

    Ends with a barrier and tears the group down, so no rank exits while another still talks.
    """
    import torch.distributed as dist

    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
    reduced = {}
    for key, rule in EngineState.merge_rules().items():
        tensor = torch.from_numpy(np.ascontiguousarray(getattr(state, key))).to(device)
        dist.all_reduce(tensor, op=ops[rule])
        reduced[key] = tensor.cpu().numpy()
    dist.barrier()
    dist.destroy_process_group()
    return EngineState(**reduced)


def shard_indices(n_images: int, seed: int, shard: tuple[int, int]) -> np.ndarray:
    """Shard i of n: the i-th contiguous block of the seeded processing order (keeps partners
    together, and every shard is a random sample)."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise IasideError(f"--shard {i}/{n} is not valid: use i/n with 0 <= i < n")
    order = processing_order(n_images, seed)
    return order[i * n_images // n : (i + 1) * n_images // n]
