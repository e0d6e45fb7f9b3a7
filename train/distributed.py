"""Multi-process training under ``torchrun``: the process group, the device per local rank, rank-0-only I/O.

``torchrun --nproc_per_node N -m train ...`` (or ``torchrun ... $(which hoi-edge) train ...``) sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; :func:`setup` reads them, picks
NCCL on CUDA and gloo on the CPU, and gives every collective a timeout, so a rank that dies or hangs
makes the others fail after ``timeout`` instead of waiting forever (torchrun also stops the other
workers of a job as soon as one exits with an error). Without those variables everything here is a
no-op single process (rank 0 of 1), so the trainer has one code path.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from hoi_edge.core.errors import HOIEdgeError

DEFAULT_TIMEOUT_MIN = 30.0
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when a process group with more than one process is up (collectives are needed)."""
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)


def current() -> DistEnv:
    """The environment of the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistEnv(dist.get_rank(), dist.get_world_size(), local)
    return DistEnv()


def resolve_device(requested: str | None, env: DistEnv) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else the requested/default one."""
    from hoi_edge.runtime.devices import check_torch_device  # the one check of a PyTorch --device

    device = torch.device(check_torch_device(requested or "auto"))
    if device.type == "cuda" and env.world_size > 1:
        if env.local_rank >= torch.cuda.device_count():
            raise HOIEdgeError(f"local rank {env.local_rank} has no GPU: this node has "
                               f"{torch.cuda.device_count()}; lower --nproc_per_node")
        device = torch.device("cuda", env.local_rank)
    return device


@contextlib.contextmanager
def setup(device: str | None = None,
          timeout_min: float = DEFAULT_TIMEOUT_MIN) -> Iterator[tuple[DistEnv, torch.device]]:
    """Join the torchrun job (if any) for the duration of the block; yields (env, device of this rank).

    The process group is destroyed on the way out, also after an error, so no rank leaves a
    half-open group behind. An already initialised group (a test that set it up) is used as is.
    """
    if dist.is_available() and dist.is_initialized():
        env = current()
        yield env, resolve_device(device, env)
        return
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        env = DistEnv()
        yield env, resolve_device(device, env)
        return
    env = DistEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    dev = resolve_device(device, env)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    init_process_group(env, dev, timeout_min)
    try:
        yield env, dev
    finally:
        teardown()


def init_process_group(env: DistEnv, device: torch.device, timeout_min: float = DEFAULT_TIMEOUT_MIN,
                       init_method: str | None = None) -> None:
    """NCCL for CUDA, gloo for the CPU, with a collective timeout of ``timeout_min`` minutes."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":   # a dead peer raises instead of blocking the CUDA stream forever
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    kwargs = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(backend, init_method=init_method, rank=env.rank, world_size=env.world_size,
                            timeout=datetime.timedelta(minutes=timeout_min), **kwargs)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.active:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum of ``values`` over all ranks (in place, also returned); identity on one process."""
    if env.active:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
