"""Single-process and ``torchrun`` DDP runs behind one small interface.

``torchrun --nproc_per_node N -m gnm.cli train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (``nccl`` on GPU, ``gloo`` on CPU).
A process group that the caller already initialised (a notebook, a test using
``torch.multiprocessing.spawn``) is used as it is and left alone at the end.

Every rank trains on its own equal slice of each global batch (see :mod:`gnm.train.sampler`);
DDP averages the gradients, which equals the gradient of the joined batch's mean loss exactly
because the slices have equal sizes. Rank 0 alone logs, writes samples and saves checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from gnm.errors import GNMError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (selects the GPU)
    owns_group: bool = False  # True when setup() created the process group (teardown destroys it)

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and saves (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise GNMError(f"environment variable {name}={raw!r} is not an integer; "
                       "launch distributed runs with torchrun.") from exc


def setup(device: str = "auto") -> DistContext:
    """Join the process group named by the torchrun environment, if there is one.

    ``device`` is the trainer's device setting; it picks the backend (``nccl`` for CUDA,
    ``gloo`` otherwise). Without ``WORLD_SIZE > 1`` and without an initialised group this is a
    one-process run.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        return DistContext(rank, world, _env_int("LOCAL_RANK", rank), owns_group=False)
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext()
    if not dist.is_available():
        raise GNMError("WORLD_SIZE > 1 but this torch build has no torch.distributed; "
                       "run on one process or install a torch with distributed support.")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    local_rank = _env_int("LOCAL_RANK", 0)
    if use_cuda:
        torch.cuda.set_device(local_rank)
    store = _elastic_attempt_store(world)
    if store is None:
        dist.init_process_group(backend=backend, init_method="env://")
    else:
        dist.init_process_group(backend=backend, store=store, rank=_env_int("RANK", 0),
                                world_size=world)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def _elastic_attempt_store(world: int) -> dist.Store | None:
    """Under torchrun, the agent's key-value store with a prefix naming this restart attempt.

    torchrun keeps one store for all attempts of a ``--max-restarts`` run, and
    ``init_process_group("env://")`` writes the ranks' addresses under the same keys in every
    attempt: a restarted rank that comes up before rank 0 could read the address rank 0 had
    in the attempt that died and fail with "connection refused". A per-attempt prefix keeps
    the attempts apart. None outside torchrun's agent store (plain ``env://`` then).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from torch.distributed.constants import default_pg_timeout

    store = dist.TCPStore(os.environ["MASTER_ADDR"], _env_int("MASTER_PORT", 0), world,
                          is_master=False, timeout=default_pg_timeout)
    attempt = _env_int("TORCHELASTIC_RESTART_COUNT", 0)
    return dist.PrefixStore(f"gnm/attempt-{attempt}/", store)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(preference: str, ctx: DistContext) -> torch.device:
    """The device for this process: ``auto`` | ``cpu`` | ``cuda`` (DDP: ``cuda:LOCAL_RANK``)."""
    if preference not in ("auto", "cpu", "cuda"):
        raise GNMError(f"train.device={preference!r} is not known; use auto, cpu or cuda.")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise GNMError("train.device=cuda but no CUDA device is visible; "
                       "use --set train.device=cpu (or auto).")
    index = ctx.local_rank if ctx.enabled else torch.cuda.current_device()
    return torch.device("cuda", index)


def per_rank_batch(batch_size: int, ctx: DistContext) -> int:
    """Images each rank trains on per step; the global batch must split evenly."""
    if batch_size < 1:
        raise GNMError(f"train.batch_size={batch_size} must be at least 1.")
    if batch_size % ctx.world_size:
        raise GNMError(f"train.batch_size={batch_size} does not split evenly over "
                       f"{ctx.world_size} processes; use a multiple of {ctx.world_size} so every "
                       "rank's loss is a mean over equally many images.")
    return batch_size // ctx.world_size


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device,
               find_unused_parameters: bool = False) -> nn.Module:
    """``model`` itself in a one-process run, else a ``DistributedDataParallel`` around it."""
    if not ctx.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def all_reduce_mean_(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Average ``tensor`` over ranks in place (a no-op in a one-process run)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(ctx.world_size)
    return tensor


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op in a one-process run)."""
    if ctx.enabled:
        dist.barrier()
