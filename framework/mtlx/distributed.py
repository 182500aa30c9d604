"""Process-group helpers for data-parallel training under ``torchrun``.

mtlx synchronises gradients itself, once, after the strategy's backward
(one flat all-reduce), instead of wrapping the model in
``DistributedDataParallel``: DDP's reducer hooks ``.backward()`` only, while
gradient-manipulation strategies take per-task gradients with
``torch.autograd.grad`` and write ``.grad`` themselves. Per-task gradients are
averaged across processes before aggregation (``StepContext.shared_grads``),
so every rank computes the update a single process would compute on the
global batch, for a model without BatchNorm (BatchNorm, ``train.sync_batchnorm``:
README.md, "Data parallelism").

Evaluation is sharded too: each process evaluates whole batches of a split
(:func:`batch_shard`) and the meters are merged (:func:`all_gather_to_all`,
:meth:`mtlx.interfaces.Meter.merge`), so every process holds the metrics of
the one-process evaluation and none waits in a collective for another's.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError

__all__ = [
    "all_gather_to_all",
    "all_reduce_mean",
    "batch_shard",
    "broadcast_object",
    "check_device",
    "gather_to_main",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "rank",
    "shutdown",
    "sync_gradients",
    "world_size",
]


def check_device(spec: str | torch.device, nproc: int) -> None:
    """Refuse a CUDA device with an index (``cuda:0``) for ``nproc > 1`` processes: each process uses the GPU of
    its local rank (``--device cuda`` or ``auto``), and a named one would put every process on the same GPU."""
    device = torch.device(spec) if spec != "auto" else None
    if nproc > 1 and device is not None and device.type == "cuda" and device.index is not None:
        raise ConfigError(f"--device {spec} names one GPU, but each of the {nproc} processes uses the GPU of its "
                          "local rank (cuda:0, cuda:1, ...): use --device cuda, and CUDA_VISIBLE_DEVICES to choose GPUs")


def init_from_env(device: torch.device, timeout_s: float = 600.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (no-op otherwise).

    On CUDA each process takes the GPU of its local rank (``device`` has no index: :func:`check_device`).

    The group's keys live under a per-restart prefix of the launcher's store:
    after ``torchrun --max-restarts`` restarts a failed group, a plain
    ``init_process_group`` can read the dead workers' addresses left from the
    previous attempt and fail to connect (seen with gloo on torch 2.13).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    check_device(device, int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    rank_, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    timeout = datetime.timedelta(seconds=timeout_s)
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size,
        is_master=not agent_hosts_store and rank_ == 0, timeout=timeout,
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(
        backend=backend, store=dist.PrefixStore(f"/mtlx/attempt_{attempt}", store), rank=rank_, world_size=size,
        timeout=timeout,
    )
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over processes (a new tensor; identity without a process group)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


def sync_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` of ``params`` over processes with one flat all-reduce."""
    if not is_distributed():
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    for p, grad in zip(params, flat.split([p.grad.numel() for p in params]), strict=True):
        p.grad.copy_(grad.view_as(p.grad))


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (e.g. the run directory it chose); its tensors arrive on the CPU."""
    if not is_distributed():
        return obj
    box = [_to_cpu(obj) if is_main_process() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every process's ``obj`` (tensors moved to the CPU), in rank order, on rank 0; ``None`` on the others.

    A collective: every process calls it at the same point. The tensors travel on the CPU so that rank 0 does
    not unpickle another rank's CUDA tensors onto that rank's device.
    """
    obj = _to_cpu(obj)
    if not is_distributed():
        return [obj]
    box: list[Any] | None = [None] * world_size() if is_main_process() else None
    dist.gather_object(obj, box, dst=0)
    return box


def all_gather_to_all(obj: Any) -> list[Any]:
    """Every process's ``obj`` (tensors moved to the CPU), in rank order, on every process. A collective."""
    obj = _to_cpu(obj)
    if not is_distributed():
        return [obj]
    box: list[Any] = [None] * world_size()
    dist.all_gather_object(box, obj)
    return box


def batch_shard(dataset: Any, batch_size: int) -> Any:
    """This process's part of an evaluation split: whole batches ``rank, rank + W, rank + 2W, ...`` of the
    one-process evaluation's ``batch_size`` batches (the dataset itself without a process group).

    An in-order loader over it with ``batch_size`` yields exactly those batches: every batch but the split's
    last is full, and the last comes last. No sample is seen twice or padded in, so meters merged over the
    processes hold the one-process statistics, per-batch ones included. A process may get no batch.
    """
    if not is_distributed():
        return dataset
    size = len(dataset)
    starts = range(rank() * batch_size, size, world_size() * batch_size)
    indices = [i for start in starts for i in range(start, min(start + batch_size, size))]
    return torch.utils.data.Subset(dataset, indices)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
